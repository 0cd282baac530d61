"""Tiling channels and filter pictures into one image, vectorised (no per-channel loops)."""

from __future__ import annotations

import numpy as np

from ..errors import ConvVizError
from . import colormaps

DEFAULT_CMAP = "viridis"  # the look of the book's `plt.imshow(..., cmap="viridis")`


def normalize_channels(act: np.ndarray) -> np.ndarray:
    """The book's per-channel display scaling to uint8; flat channels become mid-grey, no NaN.

    Each channel: subtract its mean, divide by its std, x64 + 128, clip to 0..255.
    """
    a = np.asarray(act, np.float32)
    a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    mean = a.mean(axis=(0, 1), keepdims=True)
    std = a.std(axis=(0, 1), keepdims=True)
    safe = np.where(std > 1e-8, std, 1.0)
    scaled = (a - mean) / safe * 64.0 + 128.0
    scaled = np.where(std > 1e-8, scaled, 128.0)
    return np.clip(scaled + 0.5, 0, 255).astype(np.uint8)


def tile(tiles: np.ndarray, cols: int, margin: int, fill: int = 0) -> np.ndarray:
    """Arrange (n, h, w[, c]) tiles in rows of `cols`, `margin` pixels apart; empty cells are `fill`."""
    if cols < 1 or margin < 0:
        raise ConvVizError(f"Need cols >= 1 and margin >= 0; got cols={cols}, margin={margin}.")
    n, h, w = tiles.shape[:3]
    extra = tiles.shape[3:]
    cols = min(cols, n)
    rows = -(-n // cols)
    padded = np.full((rows * cols, h + margin, w + margin, *extra), fill, dtype=tiles.dtype)
    padded[:n, :h, :w] = tiles
    grid = padded.reshape(rows, cols, h + margin, w + margin, *extra)
    grid = grid.swapaxes(1, 2).reshape(rows * (h + margin), cols * (w + margin), *extra)
    return grid[: grid.shape[0] - margin or None, : grid.shape[1] - margin or None]


def activation_grid(act: np.ndarray, images_per_row: int = 16, cmap: str | None = None,
                    margin: int = 1) -> np.ndarray:
    """Every channel of an (H, W, C) activation as a tile, scaled per channel, as uint8 RGB.

    No channel is dropped when C is not a multiple of `images_per_row`; empty cells stay dark.
    `cmap=None` uses viridis as the book does; 'gray' gives plain intensity.
    """
    a = np.asarray(act)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ConvVizError(f"An activation must be (H, W, C); got shape {a.shape}.")
    if images_per_row < 1:
        raise ConvVizError(f"images_per_row must be >= 1; got {images_per_row}.")
    gray = normalize_channels(a)
    tiles = np.moveaxis(gray, -1, 0)
    grid = tile(tiles, images_per_row, margin, fill=0)
    rgb = colormaps.apply(grid, cmap or DEFAULT_CMAP)
    if margin:
        # Gaps and empty cells read as background, not as a dark channel.
        mask = tile(np.ones(tiles.shape, bool), images_per_row, margin, fill=False)
        rgb[~mask] = 255
    return rgb


def channel_image(act: np.ndarray, channel: int, cmap: str | None = None) -> np.ndarray:
    """One channel of an (H, W, C) activation, scaled like the grid, as uint8 RGB."""
    a = np.asarray(act)
    if not 0 <= channel < a.shape[-1]:
        raise ConvVizError(f"Channel {channel} is out of range: this layer has {a.shape[-1]} channels.")
    gray = normalize_channels(a[..., channel : channel + 1])[..., 0]
    return colormaps.apply(gray, cmap or DEFAULT_CMAP)


def filter_grid(images: np.ndarray, cols: int = 8, margin: int = 5) -> np.ndarray:
    """Filter-pattern pictures (n, s, s, 3) uint8 in a grid with black margins, as the book shows."""
    imgs = np.asarray(images)
    if imgs.ndim == 3:
        imgs = imgs[..., None].repeat(3, axis=-1)
    if imgs.ndim != 4 or imgs.shape[0] == 0:
        raise ConvVizError(f"filter_grid takes (n, h, w, 3) pictures; got shape {imgs.shape}.")
    if imgs.dtype != np.uint8:
        imgs = colormaps.to_uint8(imgs)
    return tile(imgs, cols, margin, fill=0)
