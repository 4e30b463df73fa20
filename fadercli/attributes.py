"""Attribute sets, `Name=value` parsing, and slider values -> decoder input.

A Fader decoder is conditioned on one group of channels per attribute: a binary attribute with
slider value a becomes the pair (1 - a, a) (0 = without, 1 = with, beyond exaggerates); a
categorical attribute with k values becomes a one-hot vector of k channels. Pure Python: the CLI
parses options with this module before torch is imported.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from fadercli.errors import UsageError


@dataclass(frozen=True)
class Attribute:
    name: str
    n_categories: int = 2

    @property
    def binary(self) -> bool:
        return self.n_categories == 2


@dataclass(frozen=True)
class AttributeSet:
    """The attributes a model was trained on, in the order of its decoder channels."""

    attributes: tuple[Attribute, ...]

    def __post_init__(self) -> None:
        if not self.attributes:
            raise ValueError("an attribute set needs at least one attribute")
        lowered = [a.name.lower() for a in self.attributes]
        if len(set(lowered)) != len(lowered):
            raise ValueError(f"duplicate attribute names in {self.names}")
        for a in self.attributes:
            if a.n_categories < 2:
                raise ValueError(f"attribute {a.name} needs at least 2 categories")

    @classmethod
    def from_pairs(cls, pairs: Iterable[Sequence]) -> AttributeSet:
        """From (name, n_categories) pairs, as model configs store them."""
        return cls(tuple(Attribute(str(name), int(n)) for name, n in pairs))

    @classmethod
    def binary(cls, names: Iterable[str]) -> AttributeSet:
        return cls(tuple(Attribute(n) for n in names))

    def pairs(self) -> tuple[tuple[str, int], ...]:
        return tuple((a.name, a.n_categories) for a in self.attributes)

    @property
    def names(self) -> list[str]:
        return [a.name for a in self.attributes]

    @property
    def n_channels(self) -> int:
        return sum(a.n_categories for a in self.attributes)

    def __len__(self) -> int:
        return len(self.attributes)

    def __iter__(self):
        return iter(self.attributes)

    def offsets(self) -> list[int]:
        """First decoder channel of each attribute."""
        out, start = [], 0
        for a in self.attributes:
            out.append(start)
            start += a.n_categories
        return out

    def resolve(self, name: str) -> str:
        """The canonical spelling of `name` (case-insensitive), or a UsageError that helps."""
        for a in self.attributes:
            if a.name.lower() == name.lower():
                return a.name
        raise UsageError(
            f"unknown attribute {name!r}: this model edits {', '.join(self.names)}.{did_you_mean(name, self.names)}",
            code="unknown_attribute",
        )

    def index(self, name: str) -> int:
        canonical = self.resolve(name)
        return self.names.index(canonical)

    def channels(self, values: Sequence[float]) -> list[float]:
        """Decoder input for one slider value per attribute (in this set's order).

        Binary: a -> (1 - a, a). Categorical: the value is a category index -> one-hot.
        """
        if len(values) != len(self.attributes):
            raise ValueError(f"expected {len(self.attributes)} values, got {len(values)}")
        out: list[float] = []
        for a, v in zip(self.attributes, values):
            if a.binary:
                out += [1.0 - float(v), float(v)]
            else:
                k = int(round(float(v)))
                if not 0 <= k < a.n_categories:
                    raise UsageError(f"{a.name} takes a category index from 0 to {a.n_categories - 1}, got {v}")
                out += [1.0 if i == k else 0.0 for i in range(a.n_categories)]
        return out


def did_you_mean(name: str, options: Iterable[str]) -> str:
    """ " Did you mean X?" for the option closest to `name` (case-insensitive), or ""."""
    lowered = {o.lower(): o for o in options}
    close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
    return f" Did you mean {lowered[close[0]]}?" if close else ""


def parse_number(text: str, what: str) -> float:
    """A finite float, or a UsageError naming `what`."""
    try:
        value = float(text)
    except ValueError:
        raise UsageError(f"{what}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise UsageError(f"{what}: {text!r} is not a finite number")
    return value


def parse_assignment(text: str) -> tuple[str, float]:
    """Split `Name=value` into its name and a finite float (syntax only; names are checked later)."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name or not value.strip():
        raise UsageError(f"expected NAME=VALUE (e.g. Eyeglasses=1.5), got {text!r}")
    return name, parse_number(value.strip(), f"value of {name}")


def parse_assignments(
    texts: Iterable[str] | None, attributes: AttributeSet | None = None, option: str = "--set"
) -> dict[str, float]:
    """`["eyeglasses=1.5", ...]` (what `--set` / `--shift`, or the server's `set` / `shift` fields, were
    given) -> {"Eyeglasses": 1.5}: with `attributes`, names checked against them and spelt as they
    are (else checked later, against the models: engine.chain.Chain.plan); a name given twice is a
    UsageError."""
    out: dict[str, float] = {}
    for text in texts or []:
        name, value = parse_assignment(text)
        name = attributes.resolve(name) if attributes is not None else name
        if name.lower() in {k.lower() for k in out}:
            raise UsageError(f"{option} {name} is given twice")
        out[name] = value
    return out


def edit_values(
    set_texts: Iterable[str] | None, shift_texts: Iterable[str] | None, options: tuple[str, str] = ("--set", "--shift")
) -> tuple[dict[str, float], dict[str, float]]:
    """The values an edit sets and shifts, from the user's `Name=value` texts (the CLI's options or
    the server's fields, named by `options`); UsageError for nothing to edit or a name both set and
    shifted, before any model is loaded."""
    values = parse_assignments(set_texts, option=options[0])
    shifts = parse_assignments(shift_texts, option=options[1])
    if not values and not shifts:
        raise nothing_to_edit(options)
    both = {k.lower() for k in values} & {k.lower() for k in shifts}
    if both:
        raise UsageError(f"{sorted(both)[0]} is both set and shifted: give one")
    return values, shifts


def nothing_to_edit(options: tuple[str, str] = ("--set", "--shift")) -> UsageError:
    return UsageError(
        f"nothing to edit: give values to set ({options[0]} NAME=VALUE) or to shift ({options[1]} NAME=DELTA)"
    )
