"""Colour look-up tables: a 256-entry uint8 table applied by indexing (fast, no float images)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from ..errors import ConvVizError


@lru_cache(maxsize=32)
def lut(name: str) -> np.ndarray:
    """A (256, 3) uint8 table for a matplotlib colormap name ('gray' needs no matplotlib)."""
    if name in ("gray", "grey"):
        ramp = np.arange(256, dtype=np.uint8)
        return np.stack([ramp] * 3, axis=1)
    import matplotlib

    try:
        cmap = matplotlib.colormaps[name]
    except KeyError as err:
        raise ConvVizError(f"Unknown colormap {name!r}; try 'viridis', 'magma', 'jet', 'gray'.") from err
    table = cmap(np.linspace(0.0, 1.0, 256))[:, :3]
    table = (table * 255.0 + 0.5).astype(np.uint8)
    table.setflags(write=False)
    return table


def apply(gray: np.ndarray, name: str) -> np.ndarray:
    """Map a uint8 (H, W) image through a colormap to uint8 RGB (H, W, 3)."""
    return lut(name)[gray]


def to_uint8(values: np.ndarray) -> np.ndarray:
    """Map floats in [0, 1] to uint8 0..255 (NaN becomes 0)."""
    v = np.nan_to_num(np.asarray(values, np.float32), nan=0.0, posinf=1.0, neginf=0.0)
    return (np.clip(v, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
