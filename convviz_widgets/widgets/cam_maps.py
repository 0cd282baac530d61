"""The Grad-CAM tab's typed request and result, and the maps it keeps for the current image (no widgets)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from ..core import CAM, Cancelled
from ..core.cam import contributions
from ..metrics import Sanity
from .text import EVIDENCE_LATER, NO_CLASS_EVIDENCE, evidence_elsewhere, evidence_html

Predictions = tuple[tuple[int, str, float], ...]


class MapKey(NamedTuple):
    """Which map: class, layer, method and a perturbation method's channels (0 = all; None for the others)."""

    class_index: int
    layer: str
    method: str
    channels: int | None


@dataclass(frozen=True, eq=False)
class MapRequest:
    """What the controls ask for, read in the caller's thread, with what the caches already hold for it."""

    choice: int | None  # the class picked; None: the image's top class
    layer: str
    method: str
    channels: int | None
    depth: int | None  # the sanity check's depth; None while it is off
    predictions: Predictions  # the current image's top classes (empty before the first map)
    cam: CAM | None = None  # the map, when only its sanity check is missing
    means: np.ndarray | None = None  # the layer's channel means, when known

    def key(self, predictions: Predictions | None = None) -> MapKey | None:
        """The map asked for: its class is the choice, else the top prediction; None while that is unknown."""
        predictions = self.predictions if predictions is None else predictions
        index = self.choice if self.choice is not None else (predictions[0][0] if predictions else None)
        return None if index is None else MapKey(int(index), self.layer, self.method, self.channels)


@dataclass(frozen=True, eq=False)
class MapResult:
    """A request's outcome: the top classes, the map, its sanity check (if on) and the layer's channel means."""

    predictions: Predictions
    key: MapKey
    cam: CAM
    sanity: Sanity | BaseException | None
    means: np.ndarray


class Maps:
    """The maps, sanity checks and channel means computed for the current image (emptied for a new one)."""

    def __init__(self) -> None:
        self.predictions: Predictions = ()
        self.cams: dict[MapKey, CAM] = {}
        self.means: dict[str, np.ndarray] = {}  # per layer: each channel's mean activation on this image
        self.sanity: dict[tuple[MapKey, int], Sanity | BaseException] = {}

    def request(self, choice: int | None, layer: str, method: str, channels: int | None,
                depth: int | None) -> MapRequest:
        """A request for these settings, with the map and means already kept for it."""
        key = MapRequest(choice, layer, method, channels, depth, self.predictions).key()
        return MapRequest(choice, layer, method, channels, depth, self.predictions,
                          None if key is None else self.cams.get(key), self.means.get(layer))

    def holds(self, want: MapRequest) -> bool:
        """True when the map (and the sanity check, if on) of the request are kept."""
        key = want.key()
        return key in self.cams and (want.depth is None or (key, want.depth) in self.sanity)

    def keep(self, result: MapResult, depth: int | None, fresh: bool) -> bool:
        """Keep a result (a new image's, or new top classes, empty the rest first); True when the classes changed."""
        changed = fresh or result.predictions != self.predictions
        if changed:
            self.predictions, self.cams, self.means, self.sanity = result.predictions, {}, {}, {}
        self.cams[result.key] = result.cam
        self.means[result.key.layer] = result.means
        if depth is not None and result.sanity is not None and not isinstance(result.sanity, Cancelled):
            self.sanity[(result.key, depth)] = result.sanity  # a cancelled check is asked again next time
        return changed

    def contributions(self, key: MapKey) -> np.ndarray | None:
        """Weight × mean activation of every channel of a kept map (None when it is not kept)."""
        cam = self.cams.get(key)
        return None if cam is None else contributions(cam, self.means.get(cam.layer))

    def evidence(self, key: MapKey, has_classes: bool, layer: str, channel: int, same_image: bool,
                 noun: str = "class") -> str:
        """HTML: a channel's weight and contribution in the map `key` (the channel card's class-evidence line;
        `noun`: what the head's entries are, "class", "label" or "output")."""
        if not has_classes:
            return NO_CLASS_EVIDENCE
        if layer != key.layer:
            return evidence_elsewhere(key.layer)
        cam, shares = self.cams.get(key), self.contributions(key)
        if cam is None or shares is None or not same_image:
            return EVIDENCE_LATER
        k = int(channel)
        weight = float(cam.weights[k])
        mean = float(shares[k]) / weight if weight else float(self.means[cam.layer][k])
        return evidence_html(cam, k, shares, mean, noun)

