"""Heatmaps over photos, and pictures to PNG bytes."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from ..core import checks
from ..errors import ConvVizError
from ..images import load_image, resize_map
from . import colormaps


def heatmap_image(heatmap: np.ndarray, cmap: str = "jet", size: tuple[int, int] | None = None,
                  cells: bool = False) -> np.ndarray:
    """A [0, 1] heatmap as uint8 RGB, optionally resized to (h, w) first: bilinear, or nearest with `cells`."""
    h = np.asarray(heatmap, np.float32)
    if h.ndim != 2:
        raise ConvVizError(f"A heatmap must be 2-D (h, w); got shape {h.shape}.")
    if size is not None:
        h = resize_map(h, size, nearest=cells)
    return colormaps.apply(colormaps.to_uint8(h), cmap)


def heatmap_picture(heatmap: np.ndarray, cmap: str, shape: tuple[int, ...]) -> np.ndarray:
    """The raw heatmap at its own resolution, colour-mapped and enlarged (nearest: its cells show) to shape[:2]."""
    return heatmap_image(heatmap, cmap, size=shape[:2], cells=True)


def overlay(image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.4, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap, resized to the image, over it: uint8 RGB out.

    alpha is the heatmap's opacity (0 = photo only, 1 = heatmap only).
    """
    alpha = checks.real(alpha, "alpha", checks.ALPHA)
    rgb = load_image(image)
    colour = heatmap_image(heatmap, cmap, size=rgb.shape[:2])
    out = rgb.astype(np.float32) * (1.0 - alpha)
    out += colour.astype(np.float32) * alpha
    return (out + 0.5).clip(0, 255).astype(np.uint8)


def noted(image: np.ndarray, lines: list[str]) -> np.ndarray:
    """The image dimmed (plainly not an overlay) with `lines` of white text centred on it: uint8 RGB."""
    import cv2

    rgb = np.asarray(image, np.uint8)
    rgb = np.repeat(rgb[..., None], 3, axis=2) if rgb.ndim == 2 else rgb[..., :3]
    picture = (rgb.astype(np.float32) * 0.35 + 40).astype(np.uint8)
    scale = max(0.35, picture.shape[1] / 600)
    height = int(28 * scale) + 4
    top = max(height, (picture.shape[0] - height * len(lines)) // 2 + height // 2)
    for i, line in enumerate(lines):
        width = cv2.getTextSize(line, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)[0][0]
        org = (max(2, (picture.shape[1] - width) // 2), top + i * height)
        cv2.putText(picture, line, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return picture


def to_png(array: np.ndarray, compress_level: int = 1) -> bytes:
    """Encode a uint8 (H, W), (H, W, 3) or (H, W, 4) array as PNG bytes (fast compression)."""
    a = np.asarray(array)
    if a.dtype != np.uint8:
        a = colormaps.to_uint8(a) if np.issubdtype(a.dtype, np.floating) else a.clip(0, 255).astype(np.uint8)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (3, 4)):
        raise ConvVizError(f"to_png takes (H, W), (H, W, 3) or (H, W, 4); got shape {a.shape}.")
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def upscale(image: np.ndarray, min_side: int) -> np.ndarray:
    """Enlarge a small picture with nearest-neighbour so its shorter side is at least `min_side`."""
    h, w = image.shape[:2]
    k = max(1, -(-min_side // max(1, min(h, w))))
    return image if k == 1 else np.repeat(np.repeat(image, k, axis=0), k, axis=1)
