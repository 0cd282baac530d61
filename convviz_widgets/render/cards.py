"""The channel card's pictures: a channel's map over the image, and dataset examples with their maxima marked."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .grids import channel_image
from .layout import fit
from .overlay import overlay

MAP_SIDE = 160  # the activation map and its overlay are enlarged to about this size
THUMB = 96  # each example is shown at most this large
MARK = (255, 32, 32)  # the receptive-field box and the maximum's cross
GAP = 4


def map_pictures(act: np.ndarray, channel: int, display: np.ndarray, cmap: str,
                 side: int = MAP_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """The channel upsampled over the image (scaled by its maximum; all-zero stays clear) and the raw map."""
    import cv2

    ch = np.nan_to_num(act[..., channel].astype(np.float32))
    top = float(ch.max(initial=0.0))
    heat = np.clip(ch / top, 0.0, 1.0) if top > 0 else np.zeros_like(ch)
    blended = fit(overlay(display, heat, alpha=0.5, cmap=cmap), side)
    raw = cv2.resize(channel_image(act, channel, cmap), (blended.shape[1], blended.shape[0]),
                     interpolation=cv2.INTER_NEAREST)
    return blended, raw


def marked_thumbnail(image: np.ndarray, box: tuple[int, int, int, int], centre: tuple[float, float],
                     side: int = THUMB) -> np.ndarray:
    """The image at most `side` pixels a side with a (top, left, bottom, right) box and a cross at `centre`."""
    import cv2

    scale = side / max(image.shape[:2])
    thumb = np.ascontiguousarray(fit(image, side))
    top, left, bottom, right = (round(v * scale) for v in box)
    cv2.rectangle(thumb, (left, top), (max(left, right - 1), max(top, bottom - 1)), MARK, 1)
    cy, cx = round(centre[0] * scale), round(centre[1] * scale)
    cv2.drawMarker(thumb, (cx, cy), MARK, cv2.MARKER_CROSS, 7, 1)
    return thumb


def thumbnail_grid(thumbs: Sequence[np.ndarray], columns: int, gap: int = GAP) -> np.ndarray:
    """RGB thumbnails in rows of `columns` on white, each cell as large as the largest thumbnail."""
    th, tw = max(t.shape[0] for t in thumbs), max(t.shape[1] for t in thumbs)
    cols = min(columns, len(thumbs))
    rows = -(-len(thumbs) // cols)
    grid = np.full((rows * th + (rows - 1) * gap, cols * tw + (cols - 1) * gap, 3), 255, np.uint8)
    for i, thumb in enumerate(thumbs):
        y, x = (i // cols) * (th + gap), (i % cols) * (tw + gap)
        grid[y : y + thumb.shape[0], x : x + thumb.shape[1]] = thumb
    return grid
