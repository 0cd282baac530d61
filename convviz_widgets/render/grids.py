"""Tiling channels and filter pictures into one image, vectorised (no per-channel loops)."""

from __future__ import annotations

import numpy as np

from ..core import checks
from ..errors import ConvVizError
from . import colormaps
from .layout import GRID_PIXELS, GRID_TARGET, GRID_WIDTH, block_mean, enlarge, shrink_factor

DEFAULT_CMAP = "viridis"  # the look of the book's `plt.imshow(..., cmap="viridis")`


def normalize_channels(act: np.ndarray) -> np.ndarray:
    """The book's per-channel display scaling to uint8; flat channels become mid-grey, no NaN.

    Each channel: subtract its mean, divide by its std, x64 + 128, clip to 0..255. One pass
    for the statistics and in-place arithmetic keep it fast on large layers.
    """
    a = np.asarray(act, np.float32)
    if not np.isfinite(a).all():
        a = np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)
    flat = a.reshape(-1, a.shape[-1])
    d = flat - flat.mean(axis=0, dtype=np.float32)
    std = np.sqrt(np.einsum("ij,ij->j", d, d) / max(flat.shape[0], 1))
    live = std > 1e-8
    d *= np.where(live, 64.0 / np.where(live, std, 1.0), 0.0).astype(np.float32)
    d += np.float32(128.5)  # +128, and +0.5 to round on the cast
    np.clip(d, 0, 255, out=d)
    return d.astype(np.uint8).reshape(a.shape)


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

    No channel is dropped when C is not a multiple of `images_per_row`; gaps and empty cells are
    white. `cmap=None` uses viridis as the book does; 'gray' gives plain intensity.
    """
    import cv2

    a = np.asarray(act)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ConvVizError(f"An activation must be (H, W, C); got shape {a.shape}.")
    images_per_row = checks.bounded(images_per_row, "images_per_row", checks.PER_ROW)
    margin = checks.bounded(margin, "margin", checks.MARGIN)
    table = np.ascontiguousarray(colormaps.lut(cmap or DEFAULT_CMAP))[None]
    gray = normalize_channels(a)
    h, w, n = gray.shape
    cols = min(images_per_row, n)
    full, last = divmod(n, cols)
    rows = full + (last > 0)
    canvas = np.zeros((rows, h + margin, cols, w + margin), np.uint8)
    canvas[:full, :h, :, :w] = gray[:, :, : full * cols].reshape(h, w, full, cols).transpose(2, 0, 3, 1)
    if last:
        canvas[full, :h, :last, :w] = gray[:, :, full * cols :].transpose(0, 2, 1)
    flat = canvas.reshape(rows * (h + margin), cols * (w + margin))
    rgb = cv2.LUT(cv2.cvtColor(flat, cv2.COLOR_GRAY2RGB), table)
    if margin:
        cells = rgb.reshape(rows, h + margin, cols, w + margin, 3)
        cells[:, h:] = 255
        cells[:, :, :, w:] = 255
        if last:
            cells[full, :, last:] = 255
        rgb = rgb[:-margin, :-margin]
    return np.ascontiguousarray(rgb)


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
    cols = checks.bounded(cols, "cols", checks.PER_ROW)
    return tile(imgs, cols, checks.bounded(margin, "margin", checks.MARGIN), fill=0)


def activation_picture(act: np.ndarray, images_per_row: int = 16, cmap: str | None = None, width: int | None = None,
                       full: bool = False) -> tuple[np.ndarray, int]:
    """A layer's channel grid as shown (panel) or saved (panel and report), and the factor its tiles were shrunk by.

    Shown: tiles block-averaged so the grid stays within `width` and GRID_PIXELS. Saved (`full`): every cell.
    Either way a small grid is enlarged towards GRID_TARGET wide, never beyond `width` (or its own width).
    """
    a = np.asarray(act)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim != 3:
        raise ConvVizError(f"An activation must be (H, W, C); got shape {a.shape}.")
    width = width or GRID_WIDTH
    per_row = min(checks.bounded(images_per_row, "images_per_row", checks.PER_ROW), a.shape[-1])
    f = 1 if full else shrink_factor(a.shape, per_row, width, GRID_PIXELS)
    grid = activation_grid(block_mean(a, f), per_row, cmap)
    return enlarge(grid, target=min(GRID_TARGET, width), limit=max(width, grid.shape[1])), f
