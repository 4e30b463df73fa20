"""The models a server edits with, and the one Fader they make.

Models given on the command line are loaded at start-up. Without any, the registry's Fader models
are offered and each is loaded (downloaded and converted, as the CLI does) when first asked for;
those already in the cache are loaded at start-up. Every photo's analysis shares the server's
Fader, so a model loaded later is there for photos uploaded before.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from fadercli.api import Fader
from fadercli.devices import Precision, pick_precision
from fadercli.engine.chain import Model
from fadercli.errors import ModelError, UsageError
from fadercli.limits import SERVE, Limits
from fadercli.train.card import CARD_FILE


@dataclass
class Offer:
    """A model the page can use: a name, and once loaded the Model (None until then)."""

    name: str
    description: str = ""
    licence: str = "unknown"
    cached: bool = False
    attribute: str | None = None  # what a registry entry says it edits (before it is loaded)
    model: Model | None = None


class ModelPool:
    """The offered models and the Fader made of those loaded, in the order they were offered."""

    def __init__(
        self,
        specs: list[str],
        *,
        device: torch.device,
        precision: Precision | None = None,
        threshold: float | None,
        quiet: bool = True,
        limits: Limits = SERVE,
    ):
        self.device = device
        self.precision = precision or pick_precision("auto", device)  # as Fader's, so pages and fader edit agree
        self.threshold = threshold
        self.quiet = quiet
        self.limits = limits
        self.registry_mode = not specs
        self._lock = threading.Lock()
        self.fader: Fader | None = None
        self.offers: dict[str, Offer] = {}
        if specs:
            from fadercli.weights import hub

            for spec in specs:
                loaded = hub.resolve_model(spec, kind="fader", quiet=quiet)
                self._add(Offer(spec, str(loaded.path or spec), cached=True), loaded)
        else:
            for row in _registry_rows():
                offer = Offer(row["name"], row["description"], row["licence"], row["cached"], row["attribute"])
                self.offers[offer.name] = offer
            for offer in list(self.offers.values()):
                if offer.cached:
                    try:
                        self.load(offer.name)
                    except ModelError:  # a damaged cache entry is reported when someone asks for it
                        pass

    def _add(self, offer: Offer, loaded) -> None:
        ready = Fader([loaded], device=self.device, precision=self.precision, quiet=self.quiet).models[0]
        offer.model = ready
        self.offers[offer.name] = offer
        models = [o.model for o in self.offers.values() if o.model is not None]
        if self.fader is None:
            self.fader = Fader(
                models,
                device=self.device,
                precision=self.precision,
                threshold=self.threshold,
                quiet=self.quiet,
                limits=self.limits,
            )
        else:
            self.fader.models[:] = models  # analyses made before share this Fader and see the new model

    def load(self, name: str) -> Offer:
        """Load (download on first use) one of the offered models; ModelError if none is called that."""
        from fadercli.weights import hub

        with self._lock:
            offer = self.offers.get(name)
            if offer is None:
                raise ModelError(f"no model {name!r} is offered here: {', '.join(self.offers)}", code="no_such_model")
            if offer.model is None:
                loaded = hub.resolve_model(name, kind="fader", quiet=self.quiet)
                offer.cached = True
                self._add(offer, loaded)
            return offer

    def folder(self, name: str) -> Path:
        """The folder beside a loaded model's weights: a training run's (curves, card) or a Hub
        snapshot's (card)."""
        offer = self.offers.get(name)
        if offer is None or offer.model is None or offer.model.loaded.path is None:
            raise ModelError(f"no model {name!r} is loaded here", code="no_such_model")
        return offer.model.loaded.path.parent

    def require_fader(self) -> Fader:
        if self.fader is None:
            raise UsageError("no model is loaded yet: choose an attribute to edit first", code="no_model")
        return self.fader

    def describe(self) -> list[dict]:
        """The offered models as GET /api/models gives them."""
        out = []
        for offer in self.offers.values():
            record = {
                "name": offer.name,
                "loaded": offer.model is not None,
                "cached": offer.cached,
                "description": offer.description,
                "licence": offer.licence,
            }
            if offer.model is None:
                names = (offer.attribute or "").split(", ")
                record |= {"size": None, "attributes": [{"name": n, "range": None, "categories": None} for n in names]}
            else:
                model = offer.model
                ranges = model.loaded.slider_ranges
                path = model.loaded.path  # None for a model given in memory: no card, no curves
                record |= {
                    "card": path is not None and (path.parent / CARD_FILE).is_file(),
                    "curves": path is not None and (path.parent / "metrics.jsonl").is_file(),
                    "size": model.size,
                    "attributes": [
                        {"name": a.name, "range": list(ranges[a.name]), "categories": a.n_categories}
                        for a in model.attributes
                    ],
                }
            out.append(record)
        return out

    def attributes(self) -> list[dict]:
        """Every attribute the loaded models edit, with its slider range and the model editing it."""
        fader = self.fader
        if fader is None:
            return []
        names = {id(o.model): o.name for o in self.offers.values() if o.model is not None}
        out, seen = [], set()
        for model in fader.models:
            for a in model.attributes:
                if a.name.lower() in seen:  # the first model that edits an attribute gets it
                    continue
                seen.add(a.name.lower())
                out.append(
                    {
                        "name": a.name,
                        "range": list(model.loaded.slider_ranges[a.name]),
                        "categories": a.n_categories,
                        "model": names.get(id(model)),
                    }
                )
        return out


def _registry_rows() -> list[dict]:
    from fadercli.weights import hub

    return [row for row in hub.list_models() if row["kind"] in ("fader", None) and row["attribute"]]
