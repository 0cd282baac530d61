"""Loading pictures from paths, bytes, file objects, PIL images or arrays as plain uint8 RGB arrays.

Every picture is sized from its header before it is decoded: more pixels than
`limits.max_pixels` is refused, and a JPEG wanted at a small size is decoded at a reduced scale.
Only regular files are opened (a FIFO or a device would hang or never end), and any failure of
the decoder on bad bytes becomes a ConvVizError.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import stat
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.JpegImagePlugin import JpegImageFile

from .errors import ConvVizError
from .limits import check_fits, limits

ImageSource = Any  # str | os.PathLike | bytes | file object | PIL.Image.Image | np.ndarray

FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")  # what the decoders may be; no EPS, PSD, ...
_HIGH_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I", "F")
_EXIF_ORIENTATION = 0x0112
_QUARTER_TURNS = (5, 6, 7, 8)  # EXIF orientations that swap width and height
_PILLOW_LIMIT_LOCK = threading.RLock()
_CHANGE_LIMIT = ("raise it with convviz_widgets.limits.max_pixels = <pixels> "
                 "(or the CONVVIZ_MAX_PIXELS environment variable)")


def load_image(source: ImageSource, size: tuple[int, int] | None = None) -> np.ndarray:
    """Return `source` as a uint8 RGB array (H, W, 3), optionally resized to `size=(h, w)`.

    Grayscale, RGBA, palette, 16-bit and EXIF-rotated pictures all become plain RGB.
    """
    if size is not None:
        size = _check_size(size)
    if isinstance(source, np.ndarray):
        rgb = _array_to_rgb(source)
        return rgb if size is None else resize_rgb(rgb, size)
    if isinstance(source, Image.Image):
        return _decode(source, size, "The image")
    with _opened(source) as (pil, name):
        return _decode(pil, size, name)


@contextlib.contextmanager
def _pillow_limit_is_ours(*, off: bool = False) -> Iterator[None]:
    """Pillow's own bomb check, silenced: off while a header is read (ours follows), else at our limit.

    Pillow warns above its MAX_IMAGE_PIXELS and raises above twice it; the pixels a decode really
    needs are checked here instead (a JPEG drafted to 1/8 scale needs 1/64 of its header's).
    """
    with _PILLOW_LIMIT_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        before = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = None if off else int(limits.max_pixels)
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = before


@contextlib.contextmanager
def _opened(source: ImageSource) -> Iterator[tuple[Image.Image, str]]:
    """Open a path, raw bytes or a file object with PIL (header only), closing what we opened."""
    fp, name, owned = _as_stream(source)
    try:
        with _pillow_limit_is_ours(off=True):
            try:
                pil = Image.open(fp, formats=FORMATS)
            except Exception as err:  # noqa: BLE001 - any decoder failure on untrusted bytes is "not an image"
                why = "" if isinstance(err, UnidentifiedImageError) else f" ({type(err).__name__}: {err})"
                raise ConvVizError(
                    f"{name} is not an image that can be read{why}. "
                    f"Use a {', '.join(FORMATS[:-1])} or {FORMATS[-1]} file."
                ) from None
        with pil:
            yield pil, name
    finally:
        if owned:
            fp.close()


def _as_stream(source: ImageSource) -> tuple[Any, str, bool]:
    """(binary stream, name for messages, whether we must close it) for bytes, file objects and paths."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return io.BytesIO(bytes(source)), f"The {type(source).__name__} object", True
    if hasattr(source, "read") and not isinstance(source, (str, os.PathLike)):
        return source, f"The {type(source).__name__} object", False
    if not isinstance(source, (str, os.PathLike)):
        raise ConvVizError(
            f"Cannot read an image from a {type(source).__name__}: pass a file path, bytes, a file object, "
            "a PIL image or a numpy array (H, W[, C])."
        )
    path = Path(source)
    check_regular_file(path, "Image file")
    try:
        return path.open("rb"), str(path), True
    except OSError as err:
        raise ConvVizError(f"{path} cannot be opened: {err.strerror or err}. Check its permissions.") from None


def check_regular_file(path: Path, what: str) -> None:
    """Refuse, without opening it, anything but an existing regular file (FIFOs and devices would hang)."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        raise ConvVizError(f"{what} not found: {path}. Check the path (relative to {Path.cwd()}).") from None
    except (OSError, ValueError) as err:
        raise ConvVizError(f"{what} {path} cannot be examined: {err}.") from None
    if stat.S_ISREG(mode):
        return
    kind = ("a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "not a regular file")
    raise ConvVizError(f"{path} is {kind}, not a file: give the path of a file.")


def _decode(pil: Image.Image, size: tuple[int, int] | None, name: str) -> np.ndarray:
    """Decode at reduced scale when possible, after checking the pixels that decode needs; then make RGB."""
    declared = pil.size
    with _pillow_limit_is_ours():
        try:
            _draft(pil, size)
            _check_pixels(pil.size, name if pil.size == declared else f"{name} ({declared[0]}x{declared[1]})",
                          decoded=pil.size != declared)
            check_fits(_decode_bytes(pil), what=f"Decoding {name} ({pil.size[0]}x{pil.size[1]})",
                       lower="the image's size")
            pil.load()
            return _pil_to_rgb(pil, size)
        except ConvVizError:
            raise
        except Image.DecompressionBombError as err:
            raise ConvVizError(f"{name} is larger than the pixel limit ({err}); {_CHANGE_LIMIT}.") from None
        except Exception as err:  # noqa: BLE001 - any decoder failure on untrusted bytes is a clear error
            raise ConvVizError(
                f"{name} could not be decoded, it is corrupt or truncated ({type(err).__name__}: {err}). "
                "Save or download it again."
            ) from None


def _check_pixels(size: tuple[int, int], name: str, *, decoded: bool = False) -> None:
    """Refuse a picture whose width x height (as declared, or as it would decode) exceeds limits.max_pixels."""
    w, h = int(size[0]), int(size[1])
    if w * h > limits.max_pixels:
        raise ConvVizError(
            f"{name} {'decodes at' if decoded else 'is'} {w}x{h} = {w * h / 1e6:,.1f} million pixels, "
            f"more than the limit of "
            f"{limits.max_pixels / 1e6:,.1f} million; shrink it first, or {_CHANGE_LIMIT}."
        )


def _draft(pil: Image.Image, size: tuple[int, int] | None) -> None:
    """Ask a JPEG to decode at 1/2, 1/4 or 1/8 scale when `size` allows; EXIF orientation applied later."""
    if size is None or not isinstance(pil, JpegImageFile) or not pil.tile:
        return
    h, w = size
    if pil.getexif().get(_EXIF_ORIENTATION) in _QUARTER_TURNS:
        h, w = w, h  # the stored picture is turned a quarter: its width becomes the shown height
    pil.draft(pil.mode, (w, h))


def _decode_bytes(pil: Image.Image) -> int:
    """Memory the decode and the RGB conversion need: decoded bands, RGB copy, final array."""
    bands = len(pil.getbands())
    per_band = 4 if pil.mode in _HIGH_BIT_MODES else 1
    return pil.size[0] * pil.size[1] * (bands * per_band + 3 + 3 + 4)


def _pil_to_rgb(pil: Image.Image, size: tuple[int, int] | None) -> np.ndarray:
    """Convert any PIL mode to RGB, honouring EXIF orientation, then resize."""
    pil = ImageOps.exif_transpose(pil)
    if pil.mode in _HIGH_BIT_MODES:
        rgb = _array_to_rgb(np.asarray(pil))
        return rgb if size is None else resize_rgb(rgb, size)
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
    """Turn a 2-D or 3-D array of any numeric dtype into uint8 RGB, refusing what is not a picture."""
    a = np.asarray(array)
    if a.ndim == 4 and a.shape[0] == 1:
        a = a[0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[2] not in (1, 2, 3, 4)):
        raise ConvVizError(
            f"An image array must be (H, W), (H, W, 1), (H, W, 3) or (H, W, 4); got shape {a.shape}."
        )
    if a.size == 0:
        raise ConvVizError(f"The image array is empty (shape {a.shape}).")
    if a.dtype != bool and (not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating)):
        raise ConvVizError(f"An image array must hold real numbers; got dtype {a.dtype}.")
    _check_pixels((a.shape[1], a.shape[0]), f"The image array {a.shape}")
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise ConvVizError("The image array holds NaN or infinite values; replace them (e.g. np.nan_to_num) first.")
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
    with np.errstate(over="ignore", invalid="ignore"):
        f = a.astype(np.float32)  # float64 beyond float32's range becomes inf here: mapped to 0/255 below
    scale = 255.0 if f.max(initial=0) <= 1.0 and f.min(initial=0) >= 0.0 else 1.0
    return np.nan_to_num(f * scale + 0.5, nan=0.0, posinf=255.0, neginf=0.0).clip(0, 255).astype(np.uint8)


def _blend_on_white(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Composite colour channels on a white background using an alpha channel."""
    a = alpha.astype(np.float32)[..., None] / 255.0
    base = rgb if rgb.ndim == 3 else rgb[..., None]
    out = base.astype(np.float32) * a + 255.0 * (1.0 - a)
    return (out + 0.5).astype(np.uint8).squeeze(-1) if rgb.ndim == 2 else (out + 0.5).astype(np.uint8)


def _check_size(size: Any) -> tuple[int, int]:
    """(height, width) as two positive whole numbers whose product stays within the pixel limit."""
    try:
        h, w = (_whole(v) for v in size)
    except (TypeError, ValueError):
        h = w = 0
    if min(h, w) < 1:
        raise ConvVizError(f"size must be (height, width) with positive integers; got {size!r}.")
    _check_pixels((w, h), f"The requested size {h}x{w} (height x width)")
    return h, w


def _whole(value: Any) -> int:
    """An int from an int, a numpy integer or an integral float; ValueError for anything else."""
    if isinstance(value, bool):
        raise ValueError("a bool is not a size")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    raise ValueError(f"{value!r} is not a whole number")


def resize_rgb(image: np.ndarray, size: tuple[int, int], bilinear: bool = False) -> np.ndarray:
    """Resize a uint8 image to (h, w): area averaging when shrinking, bilinear when growing (always with `bilinear`,
    as a resizing layer without antialiasing does)."""
    import cv2

    h, w = _check_size(size)
    if image.shape[:2] == (h, w):
        return image
    shrink = h < image.shape[0] and w < image.shape[1] and not bilinear
    interpolation = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    out = cv2.resize(image, (w, h), interpolation=interpolation)
    return out if out.ndim == image.ndim else out[..., None]


def centre_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The largest centred window of `image` with the aspect ratio of `size=(h, w)` (before resizing to it)."""
    h, w = _check_size(size)
    ih, iw = image.shape[:2]
    ch, cw = (ih, max(1, round(ih * w / h))) if iw * h > ih * w else (max(1, round(iw * h / w)), iw)
    top, left = (ih - ch) // 2, (iw - cw) // 2
    return image[top : top + ch, left : left + cw]


def pixel_key(rgb: np.ndarray) -> str:
    """A short key for an image's pixels and shape (for caches of per-image results)."""
    return hashlib.blake2b(np.ascontiguousarray(rgb).tobytes(), digest_size=16).hexdigest() + str(rgb.shape)


def short_digest(rgb: np.ndarray) -> str:
    """Eight hex digits naming an image's pixels, for file names (two images' files never share a name)."""
    return hashlib.blake2b(np.ascontiguousarray(rgb).tobytes() + str(rgb.shape).encode(), digest_size=4).hexdigest()


# ----- writing: never over another file, never through a link ------------------------------------------------
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
MAX_NAME_TRIES = 1000  # name.png, name-2.png, ... name-1000.png


def write_exclusive(path: Path, data: bytes) -> None:
    """Create `path` and write `data`; FileExistsError if anything (a file, a folder, a link) is there already.

    O_EXCL never opens an existing name, so a symlink (even one pointing nowhere) is never written through;
    a write that fails half-way removes the part it wrote.
    """
    fd = os.open(path, _NEW_FILE, 0o644)
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(path)
        raise


def write_new_file(folder: Path, stem: str, suffix: str, data: bytes) -> Path:
    """Write `data` under a name nothing in `folder` has yet: stem+suffix, else stem-2+suffix, stem-3+suffix, ..."""
    folder = Path(folder)
    for n in range(1, MAX_NAME_TRIES + 1):
        path = folder / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            write_exclusive(path, data)
        except FileExistsError:
            continue
        return path
    raise ConvVizError(f"{folder} already holds {stem}{suffix} and {MAX_NAME_TRIES - 1} numbered copies of it; "
                       "save into another folder or tidy this one.")


def resize_map(values: np.ndarray, shape: tuple[int, ...], nearest: bool = False) -> np.ndarray:
    """A float map (h, w) or maps (h, w, c) resized to (H, W) = shape[:2]: bilinear, or nearest to show its cells.

    The one resize of heatmaps and feature maps: overlays, CAM.resized, Score-CAM's masks and the metrics use it.
    """
    import cv2

    x = np.asarray(values, np.float32)
    h, w = int(shape[0]), int(shape[1])
    if x.ndim not in (2, 3) or x.size == 0 or h < 1 or w < 1:
        raise ConvVizError(f"A map must be a non-empty (h, w) or (h, w, c) array resized to a positive size; "
                           f"got shape {x.shape} to ({h}, {w}).")
    if x.shape[:2] == (h, w):
        return x
    interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_LINEAR
    if x.ndim == 2:
        return cv2.resize(x, (w, h), interpolation=interpolation)
    # cv2 resizes up to 512 channels at once; more go in slices.
    parts = [cv2.resize(x[..., i : i + 512], (w, h), interpolation=interpolation).reshape(h, w, -1)
             for i in range(0, x.shape[-1], 512)]
    return np.concatenate(parts, axis=-1)
