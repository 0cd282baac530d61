"""Shared helpers: heatmaps from CAMs or arrays, resized to an image's grid."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConvVizError
from ..images import resize_map as resize_values

HeatmapLike = Any  # a 2-D array, or an object with a `.heatmap` array (a CAM)


def as_map(heatmap: HeatmapLike) -> np.ndarray:
    """The 2-D float32 map behind a CAM or an array, NaN/inf replaced by 0."""
    values = getattr(heatmap, "heatmap", heatmap)
    x = np.asarray(values, np.float32)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2 or x.size == 0:
        raise ConvVizError(f"A heatmap must be a non-empty 2-D array; got shape {x.shape}.")
    return np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0)


def resize_map(heatmap: HeatmapLike, shape: tuple[int, ...]) -> np.ndarray:
    """The map bilinearly resized to (h, w) = shape[:2], as CAM.resized does, so it lines up with the image."""
    return resize_values(as_map(heatmap), shape)


def as_mask(mask: np.ndarray) -> np.ndarray:
    """A 2-D boolean object mask, checked."""
    m = np.asarray(mask)
    if m.ndim != 2 or m.size == 0:
        raise ConvVizError(f"An object mask must be a non-empty 2-D array; got shape {m.shape}.")
    return m.astype(bool)


def is_blank(heatmap: HeatmapLike) -> bool:
    """True when a map has no positive, varying evidence: nothing to point at or rank."""
    x = as_map(heatmap)
    return float(x.max()) <= 0.0 or float(x.max() - x.min()) <= 0.0
