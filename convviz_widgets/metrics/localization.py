"""Does the heatmap sit on the object? The pointing game and its energy variant.

Pointing game (Zhang et al., "Top-down neural attention by excitation backprop", 2016):
the heatmap, resized to the image, scores a hit when its maximum lies on the object,
with a tolerance: any object pixel within ``tolerance`` pixels (Euclidean) of the maximum.
Energy (the "energy-based pointing game" of Wang et al., Score-CAM, here with exact masks):
the share of the heatmap's mass that falls inside the object's mask.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import ConvVizError
from ._maps import HeatmapLike, as_mask, is_blank, resize_map

TOLERANCE = 15  # pixels: Zhang et al.'s tolerance


@dataclass(frozen=True)
class PointingResult:
    """Pointing-game hits and mean energy over a set of (heatmap, mask) pairs."""

    hits: int
    total: int
    energy: float  # mean share of heatmap mass inside the mask
    tolerance: float

    @property
    def accuracy(self) -> float:
        """Share of hits (0.0 for an empty set)."""
        return self.hits / self.total if self.total else 0.0


def peak(heatmap: HeatmapLike, shape: tuple[int, ...]) -> tuple[int, int] | None:
    """(row, col) of the resized heatmap's maximum; ties go to the tied pixel nearest their centroid.

    None for a blank map (nothing positive, or the same value everywhere): it points nowhere.
    """
    x = resize_map(heatmap, shape)
    if is_blank(x):
        return None
    rows, cols = np.nonzero(x >= x.max())
    centre_r, centre_c = rows.mean(), cols.mean()
    best = int(np.argmin((rows - centre_r) ** 2 + (cols - centre_c) ** 2))
    return int(rows[best]), int(cols[best])


def distance_to_mask(mask: np.ndarray) -> np.ndarray:
    """Euclidean distance (pixels) from every pixel to the nearest object pixel; 0 on the object."""
    m = as_mask(mask)
    if not m.any():
        return np.full(m.shape, np.inf, np.float32)
    outside = (~m).astype(np.uint8)
    return cv2.distanceTransform(outside, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def pointing_game(heatmap: HeatmapLike, mask: np.ndarray, tolerance: float = TOLERANCE) -> bool:
    """A hit when the heatmap's maximum (resized to the mask) is within `tolerance` px of the object.

    A blank heatmap and an empty mask are misses.
    """
    if tolerance < 0:
        raise ConvVizError(f"tolerance must be >= 0 pixels; got {tolerance}.")
    m = as_mask(mask)
    at = peak(heatmap, m.shape)
    if at is None:
        return False
    return bool(distance_to_mask(m)[at] <= tolerance)


def energy(heatmap: HeatmapLike, mask: np.ndarray) -> float:
    """Share of the (resized, non-negative) heatmap's mass inside the mask; 0.0 for a blank map."""
    m = as_mask(mask)
    x = np.maximum(resize_map(heatmap, m.shape), 0.0).astype(np.float64)
    total = float(x.sum())
    return float(x[m].sum() / total) if total > 0.0 else 0.0


def pointing_accuracy(heatmaps: Iterable[HeatmapLike], masks: Sequence[np.ndarray] | Iterable[np.ndarray],
                      tolerance: float = TOLERANCE) -> PointingResult:
    """Pointing-game accuracy and mean energy over paired heatmaps and masks."""
    hits, total, shares = 0, 0, []
    for heatmap, mask in zip(heatmaps, masks, strict=True):
        hits += pointing_game(heatmap, mask, tolerance)
        shares.append(energy(heatmap, mask))
        total += 1
    return PointingResult(hits, total, float(np.mean(shares)) if shares else 0.0, float(tolerance))


def centre_prior(shape: tuple[int, ...]) -> np.ndarray:
    """A heatmap that always points at the image centre (Zhang et al.'s baseline), shape (h, w)."""
    h, w = int(shape[0]), int(shape[1])
    r = np.linspace(-1.0, 1.0, h)[:, None]
    c = np.linspace(-1.0, 1.0, w)[None, :]
    return np.exp(-2.0 * (r * r + c * c)).astype(np.float32)
