"""What the panel offers its tabs, so a tab that needs another's work asks the panel, never the other tab.

``PanelServices`` travels from the panel to each view's ``for_panel``: the dataset the channel cards search
(an atlas folder, when given, is read before it), the class evidence (the Grad-CAM tab provides it, the channel
card reads it) and opening a channel's card.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

EvidenceSource = Callable[[np.ndarray | None, str, int], str]  # (image, layer, channel) -> HTML


class ClassEvidence:
    """A channel's weight for a class, offered by one tab (Grad-CAM) to others (the channel card)."""

    def __init__(self) -> None:
        self._source: EvidenceSource | None = None
        self._listeners: list[Callable[[], None]] = []

    def provide(self, source: EvidenceSource) -> None:
        """The tab that computes class maps answers `text` from now on."""
        self._source = source

    @property
    def available(self) -> bool:
        """True when a tab provides class evidence."""
        return self._source is not None

    def text(self, rgb: np.ndarray | None, layer: str, channel: int) -> str | None:
        """HTML: the channel's evidence in the map shown now for the image `rgb`; None when no tab provides it."""
        return None if self._source is None else self._source(rgb, layer, channel)

    def subscribe(self, listener: Callable[[], None]) -> None:
        """Call `listener()` whenever the evidence may have changed (a new map was drawn)."""
        self._listeners.append(listener)

    def changed(self) -> None:
        """The provider drew a new map: tell the readers."""
        for listener in self._listeners:
            listener()


def _nowhere(layer: str, channel: int) -> None:
    """Opening a channel outside a panel: there is no card to open."""


@dataclass
class PanelServices:
    """What a panel offers every tab: its dataset, the class evidence and opening a channel's card."""

    dataset: Any = None
    evidence: ClassEvidence = field(default_factory=ClassEvidence)
    open_channel: Callable[[str, int], None] = _nowhere
    atlas: Any = None  # an AtlasFolder the channel cards read their examples from first
