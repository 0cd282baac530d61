"""Loading pictures from paths, PIL images or arrays as plain uint8 RGB arrays."""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ConvVizError

Image.MAX_IMAGE_PIXELS = 250_000_000  # large photos are fine; decompression bombs are not

ImageSource = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray


def load_image(source: ImageSource, size: tuple[int, int] | None = None) -> np.ndarray:
    """Return `source` as a uint8 RGB array (H, W, 3), optionally resized to `size=(h, w)`.

    Grayscale, RGBA, palette, 16-bit and EXIF-rotated pictures all become plain RGB.
    """
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
        return rgb if size is None else resize_rgb(rgb, size)
    if isinstance(source, Image.Image):
        pil = source
    else:
        pil = _open(source)
    return _pil_to_rgb(pil, size)


def _open(source: ImageSource) -> Image.Image:
    """Open a path or raw bytes with PIL, turning failures into clear errors."""
    if isinstance(source, (bytes, bytearray)):
        try:
            return Image.open(io.BytesIO(source))
        except (UnidentifiedImageError, OSError) as err:
            raise ConvVizError(f"These bytes are not an image PIL can read ({err}).") from err
    if not isinstance(source, (str, os.PathLike)):
        raise ConvVizError(
            f"Cannot read an image from a {type(source).__name__}: "
            "pass a file path, a PIL image or a numpy array (H, W[, C])."
        )
    path = Path(source)
    if not path.exists():
        raise ConvVizError(f"Image file not found: {path}. Check the path (relative to {Path.cwd()}).")
    if path.is_dir():
        raise ConvVizError(f"{path} is a folder, not an image file.")
    try:
        pil = Image.open(path)
        pil.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as err:
        raise ConvVizError(
            f"{path} is not an image that can be read (or it is truncated): {err}. "
            "Use a PNG, JPEG, BMP, GIF, TIFF or WebP file."
        ) from err
    return pil


def _pil_to_rgb(pil: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    """Convert any PIL mode to RGB, honouring EXIF orientation, then resize."""
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        rgb = _array_to_rgb(np.asarray(pil))
        return rgb if size is None else resize_rgb(rgb, size)
    if size is not None:
        _check_size(size)
        h, w = size
        # draft() lets JPEG decode at a reduced scale: huge photos never load in full.
        pil.draft("RGB", (w, h))
    if pil.mode in ("RGBA", "LA", "PA") or (pil.mode == "P" and "transparency" in pil.info):
        pil = _flatten_alpha(pil.convert("RGBA"))
    pil = pil.convert("RGB")
    if size is not None and pil.size != (size[1], size[0]):
        pil = pil.resize((size[1], size[0]), Image.Resampling.BILINEAR, reducing_gap=3.0)
    return np.asarray(pil, dtype=np.uint8).copy()


def _flatten_alpha(rgba: Image.Image) -> Image.Image:
    """Composite transparent pixels on white, as a browser shows them."""
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _array_to_rgb(array: np.ndarray) -> np.ndarray:
    """Turn a 2-D or 3-D array of any numeric dtype into uint8 RGB."""
    a = np.asarray(array)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ConvVizError(
            f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}."
        )
    if a.size == 0:
        raise ConvVizError("The image array is empty.")
    if not np.issubdtype(a.dtype, np.number) and a.dtype != bool:
        raise ConvVizError(f"An image array must be numeric; got dtype {a.dtype}.")
    alpha = None
    if a.ndim == 3 and a.shape[2] in (2, 4):
        alpha, a = a[..., -1], a[..., :-1]
    a = _to_uint8(a)
    if alpha is not None:
        a = _blend_on_white(a, _to_uint8(alpha))
    if a.ndim == 2:
        a = a[..., None]
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    return np.ascontiguousarray(a)


def _to_uint8(a: np.ndarray) -> np.ndarray:
    """Scale an array to 0..255 by its dtype's meaning (16-bit, float 0..1, float 0..255)."""
    if a.dtype == np.uint8:
        return a
    if a.dtype == bool:
        return a.astype(np.uint8) * 255
    if np.issubdtype(a.dtype, np.integer):
        top = 65535 if a.max(initial=0) > 255 else 255
        return (a.astype(np.float32) * (255.0 / top) + 0.5).clip(0, 255).astype(np.uint8)
    f = np.nan_to_num(a.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    scale = 255.0 if f.max(initial=0) <= 1.0 and f.min(initial=0) >= 0.0 else 1.0
    return (f * scale + 0.5).clip(0, 255).astype(np.uint8)


def _blend_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite colour channels on a white background using an alpha channel."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    base = rgb if rgb.ndim == 3 else rgb[..., None]
    out = base.astype(np.float32) * a + 255.0 * (1.0 - a)
    return (out + 0.5).astype(np.uint8).squeeze(-1) if rgb.ndim == 2 else (out + 0.5).astype(np.uint8)


def _check_size(size: tuple[int, int]) -> None:
    """Reject sizes that are not two positive integers."""
    if len(size) != 2 or min(int(size[0]), int(size[1])) < 1:
        raise ConvVizError(f"size must be (height, width) with positive integers; got {size!r}.")


def resize_rgb(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize a uint8 image to (h, w): area averaging when shrinking, bilinear when growing."""
    import cv2

    _check_size(size)
    h, w = int(size[0]), int(size[1])
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] and w < image.shape[1]
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interpolation)
    return out if out.ndim == image.ndim else out[..., None]
