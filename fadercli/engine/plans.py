"""What an edit asks of a chain of models' attribute sets, checked before any work: which model
each named attribute goes to (the first that edits it), and whether its value can be used.

Pure Python over attributes.AttributeSet: engine.chain.Chain plans its torch models with it, and
the ONNX runner (onnxrun.py), which never imports torch, plans its exported model the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from fadercli.attributes import AttributeSet, did_you_mean, nothing_to_edit
from fadercli.errors import UsageError
from fadercli.limits import MAX_VALUE


def owner(sets: Sequence[AttributeSet], name: str) -> tuple[int, str]:
    """The index of the first set that has attribute `name` (case-insensitive), and the name as it spells it."""
    for i, attributes in enumerate(sets):
        for a in attributes:
            if a.name.lower() == name.lower():
                return i, a.name
    names = [n for attributes in sets for n in attributes.names]
    what = "this model edits" if len(sets) == 1 else "these models edit"
    raise UsageError(
        f"unknown attribute {name!r}: {what} {', '.join(names)}.{did_you_mean(name, names)}",
        code="unknown_attribute",
    )


def plan(
    sets: Sequence[AttributeSet], values: Mapping[str, float] | None, shift: Mapping[str, float] | None
) -> list[tuple[int, dict[str, float], dict[str, float]]]:
    """(set index, values set, values shifted) for each set an edit concerns, in set order, names as
    the sets spell them; UsageError for unknown names, impossible values, or nothing to do."""
    steps: dict[int, tuple[dict[str, float], dict[str, float]]] = {}
    seen: set[str] = set()
    for kind, given in (("set", values or {}), ("shift", shift or {})):
        for name, value in given.items():
            index, canonical = owner(sets, name)
            if canonical in seen:
                raise UsageError(f"{canonical} is given more than once (set it or shift it, once)")
            seen.add(canonical)
            value = float(value)
            if not math.isfinite(value) or abs(value) > MAX_VALUE:
                raise UsageError(f"{canonical}: {value:g} is not a number from -{MAX_VALUE} to {MAX_VALUE}")
            attribute = sets[index].attributes[sets[index].index(canonical)]
            if (
                kind == "set"
                and not attribute.binary
                and (value != round(value) or not 0 <= value < attribute.n_categories)
            ):
                raise UsageError(
                    f"{canonical} takes a category index from 0 to {attribute.n_categories - 1}, got {value:g}"
                )
            absolute, shifted = steps.setdefault(index, ({}, {}))
            (absolute if kind == "set" else shifted)[canonical] = value
    if not steps:
        raise nothing_to_edit()
    return [(i, *steps[i]) for i in sorted(steps)]
