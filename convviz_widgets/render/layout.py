"""Picture sizes shared by the panel and the report: enlarging, shrinking, side by side, and file names.

One aspect cap: a picture is enlarged (nearest neighbour, whole factors) until its longer side reaches a
target, never beyond a limit; a picture larger than the limit is shrunk to it. The panel's views and the
report's figures all size their pictures with :func:`enlarge` and these constants.
"""

from __future__ import annotations

import math
import re

import numpy as np

from .overlay import upscale

FIGURE_SIDE = 256  # small pictures (a model input, an overlay, one channel) are enlarged to about this size
FIGURE_LIMIT = 512  # and never beyond this
DISPLAY_MAX_SIDE = 512  # uploads are shown (and overlaid) at most this large
HEADER_SIDE = 192  # the panel's header shows every image with its longer side this long
GRID_WIDTH = 1280  # a grid much wider than a notebook column is shrunk by the browser anyway
GRID_PIXELS = 1_500_000  # and a taller one costs PNG time without showing more
GRID_TARGET = 640  # small grids are enlarged to about this width


def enlarge(image: np.ndarray, target: int = FIGURE_SIDE, limit: int = 1024) -> np.ndarray:
    """Nearest-neighbour enlargement so the longer side reaches `target`, never beyond `limit`."""
    h, w = image.shape[:2]
    longest = max(h, w, 1)
    k = max(1, math.ceil(target / longest))
    while k > 1 and k * longest > limit:
        k -= 1
    return upscale(image, k * min(h, w)) if k > 1 else image


def enlarge_figure(image: np.ndarray) -> np.ndarray:
    """A small picture at figure size: enlarged towards FIGURE_SIDE, never beyond FIGURE_LIMIT."""
    return enlarge(image, FIGURE_SIDE, FIGURE_LIMIT)


def fit(image: np.ndarray, side: int) -> np.ndarray:
    """The picture with its longer side `side` pixels (nearest when enlarged, area-averaged when shrunk)."""
    import cv2

    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    out = cv2.resize(image, size, interpolation=cv2.INTER_NEAREST if scale >= 1 else cv2.INTER_AREA)
    return out if out.ndim == image.ndim else out[..., None]


def shrink(image: np.ndarray, max_side: int = DISPLAY_MAX_SIDE) -> np.ndarray:
    """The picture as it is, or shrunk (area-averaged, aspect kept) so its longer side is `max_side`."""
    return image if max(image.shape[:2]) <= max_side else fit(image, max_side)


def at_side(image: np.ndarray, side: int = HEADER_SIDE) -> np.ndarray:
    """The picture with its longer side exactly `side`, aspect kept: one display size for any image.

    A small picture is first enlarged by a whole factor (crisp pixels), then area-averaged down to `side`.
    """
    big = enlarge(image, side, max(side, 1024))
    return big if max(big.shape[:2]) == side else fit(big, side)


def side_by_side(*pictures: np.ndarray, gap: int = 8) -> np.ndarray:
    """RGB pictures of equal height next to each other on white."""
    spacer = np.full((pictures[0].shape[0], gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for picture in pictures:
        parts += [spacer, picture] if parts else [picture]
    return np.concatenate(parts, axis=1)


def shrink_factor(shape: tuple[int, ...], per_row: int, width: int = GRID_WIDTH, pixels: int = GRID_PIXELS) -> int:
    """Smallest integer factor that keeps an (H, W, C) channel grid within `width` and `pixels`."""
    h, w, c = shape
    cols = min(per_row, c)
    rows = math.ceil(c / cols)
    f = 1
    while f < max(h, w) and (cols * (w // f + 1) > width or rows * cols * (h // f + 1) * (w // f + 1) > pixels):
        f += 1
    return f


def block_mean(act: np.ndarray, f: int) -> np.ndarray:
    """Average f x f blocks of an (H, W, C) map (edges that do not fill a block are dropped)."""
    if f <= 1:
        return act
    h, w, c = act.shape
    h, w = max(f, h - h % f), max(f, w - w % f)
    return act[:h, :w].reshape(h // f, f, w // f, f, c).mean(axis=(1, 3))


def slug(text: str) -> str:
    """A file-name-safe version of a layer name or label ('outer/inner' -> 'outer-inner')."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "view"
