"""load_image on hostile input: bombs, huge JPEGs, FIFOs, devices, corrupt bytes, odd arrays.

Whatever comes in, only two things may come out: a ConvVizError or a correct uint8 RGB array.
"""

from __future__ import annotations

import io
import os
import struct
import tempfile
import warnings
import zlib
from pathlib import Path

import numpy as np
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from PIL import Image, ImageFile

from convviz_widgets import ConvVizError, limits, load_image, load_model

PROPERTY = settings(max_examples=150, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- pictures written by hand

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grey PNG of width x height, all black: tens of kilobytes on disk, streamed row block by block."""
    rows = (b"\0" * (1 + (width + 7) // 8)) * 500
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(rows) for _ in range(height // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def _encoded(fmt: str, array: np.ndarray, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, fmt, **kw)
    return buf.getvalue()


def _is_rgb_result(out: object, size: tuple[int, int] | None) -> bool:
    """A uint8 (H, W, 3) array, of the requested size when one was asked for."""
    return (isinstance(out, np.ndarray) and out.dtype == np.uint8 and out.ndim == 3 and out.shape[2] == 3
            and out.size > 0 and (size is None or out.shape[:2] == tuple(size)))


@pytest.fixture
def decoded_sizes(monkeypatch):
    """Every size at which a PIL image is decoded (load() called) during the test."""
    seen: list[tuple[int, int]] = []
    original = ImageFile.ImageFile.load

    def spy(self):  # noqa: ANN202
        if self.tile:
            seen.append(self.size)
        return original(self)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    return seen


# ---------------------------------------------------------------- decompression bombs and big pictures

def test_png_bomb_is_refused_from_its_header_without_decoding(tmp_path, decoded_sizes):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(20_000, 20_000))
    assert path.stat().st_size < 200_000
    process = psutil.Process()
    before = process.memory_info().rss
    with pytest.raises(ConvVizError, match=r"20000x20000 = 400\.0 million pixels.*limits\.max_pixels"):
        load_image(path)
    assert decoded_sizes == []
    assert process.memory_info().rss - before < 50 * 2**20  # decoding it would take gigabytes


@pytest.mark.parametrize("wrap", [bytes, io.BytesIO], ids=["bytes", "BytesIO"])
def test_png_bomb_is_refused_from_bytes_and_streams(wrap, decoded_sizes):
    with pytest.raises(ConvVizError, match="million pixels"):
        load_image(wrap(png_bomb(20_000, 20_000)))
    assert decoded_sizes == []


def test_no_pillow_bomb_warning_or_error_reaches_the_user(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    Image.new("RGB", (120, 100)).save(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # a user's own, stricter Pillow setting
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert load_image(path).shape == (100, 120, 3)  # our limit (50 MP) decides, not Pillow's
        monkeypatch.setattr(limits, "max_pixels", 5000)
        with pytest.raises(ConvVizError, match="120x100 = 0.0 million pixels, more than the limit"):
            load_image(path)
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == 1000  # the user's setting is left as it was


def test_limit_is_changed_at_run_time(tmp_path, monkeypatch):
    path = tmp_path / "p.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setattr(limits, "max_pixels", 1199)
    with pytest.raises(ConvVizError, match="convviz_widgets.limits.max_pixels"):
        load_image(path)
    monkeypatch.setattr(limits, "max_pixels", 1200)
    assert load_image(path).shape == (30, 40, 3)


def test_big_jpeg_wanted_small_is_decoded_at_an_eighth(tmp_path, decoded_sizes):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (4000, 3000), (10, 120, 200)).save(path, quality=80)
    out = load_image(path, size=(96, 96))
    assert out.shape == (96, 96, 3) and abs(int(out[50, 50, 2]) - 200) < 8
    assert decoded_sizes == [(500, 375)]  # 1/8 scale, never the full 4000x3000


def test_jpeg_over_the_pixel_limit_loads_when_its_reduced_decode_fits(tmp_path, monkeypatch):
    path = tmp_path / "big.jpg"
    Image.new("RGB", (1600, 1200), (200, 30, 30)).save(path)
    monkeypatch.setattr(limits, "max_pixels", 100_000)  # 1.9 MP declared, 200x150 decoded at 1/8
    assert load_image(path, size=(64, 64)).shape == (64, 64, 3)
    with pytest.raises(ConvVizError, match="1600x1200 = 1.9 million pixels"):
        load_image(path)


def test_quarter_turned_jpeg_drafts_for_the_swapped_size(tmp_path, decoded_sizes):
    image = Image.new("RGB", (4000, 2000), (90, 90, 90))
    exif = image.getexif()
    exif[0x0112] = 6  # stored landscape, shown portrait (2000 wide, 4000 tall)
    path = tmp_path / "turned.jpg"
    image.save(path, exif=exif)
    out = load_image(path, size=(400, 200))
    assert out.shape == (400, 200, 3)
    assert decoded_sizes == [(500, 250)]  # the stored 4000x2000 drafted by 8, EXIF turn applied after


# ---------------------------------------------------------------- things that are not regular files

@pytest.mark.timeout(20)
def test_fifo_is_refused_at_once_for_images_and_models(tmp_path):
    if not hasattr(os, "mkfifo"):
        pytest.skip("this system has no named pipes")
    for name in ("pipe.png", "pipe.keras", "pipe.h5"):
        os.mkfifo(tmp_path / name)
    with pytest.raises(ConvVizError, match="named pipe"):
        load_image(tmp_path / "pipe.png")
    for name in ("pipe.keras", "pipe.h5"):
        with pytest.raises(ConvVizError, match="named pipe"):
            load_model(tmp_path / name)


@pytest.mark.timeout(20)
@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_devices_are_refused_for_images_and_models(device):
    if not Path(device).exists():
        pytest.skip(f"{device} does not exist on this system")
    with pytest.raises(ConvVizError, match="a device"):
        load_image(device)
    with pytest.raises(ConvVizError, match="a device"):
        load_model(device)


def test_folders_are_refused_for_images_and_models(tmp_path):
    folder = tmp_path / "model.keras"
    folder.mkdir()
    with pytest.raises(ConvVizError, match="a folder"):
        load_image(folder)
    with pytest.raises(ConvVizError, match="a folder"):
        load_model(folder)


# ---------------------------------------------------------------- properties: anything in, error or RGB out

_SMALL = np.random.default_rng(7).integers(0, 256, (12, 16, 3), dtype=np.uint8)
_ENCODED = {
    "PNG": _encoded("PNG", _SMALL),
    "JPEG": _encoded("JPEG", _SMALL, quality=90),
    "BMP": _encoded("BMP", _SMALL),
    "GIF": _encoded("GIF", _SMALL),
    "TIFF": _encoded("TIFF", _SMALL),
    "WEBP": _encoded("WEBP", _SMALL, lossless=True),
    "PNG16": _encoded("PNG", (np.arange(192, dtype=np.uint16).reshape(12, 16) * 300)),
}
_LOSSLESS = ("PNG", "BMP", "TIFF", "WEBP")
_MAGIC = [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff\xe0", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*",
          b"RIFF\x00\x00\x00\x00WEBPVP8 "]
_SIZES = st.one_of(st.none(), st.tuples(st.integers(1, 40), st.integers(1, 40)),
                   st.tuples(st.integers(-2, 3), st.integers(-2, 3)), st.just((5.0, 7.0)), st.just((2.5, 3)),
                   st.just((True, 4)), st.just((4,)), st.just("12x12"), st.just((10**6, 10**6)))


def _load_or_error(source, size):  # noqa: ANN001, ANN202
    """Run load_image; return the array, or None when it raised ConvVizError (anything else fails the test)."""
    try:
        out = load_image(source, size=size)
    except ConvVizError:
        return None
    assert _is_rgb_result(out, size), (getattr(out, "shape", None), getattr(out, "dtype", None))
    return out


@PROPERTY
@given(magic=st.sampled_from(_MAGIC), tail=st.binary(max_size=600), size=_SIZES)
def test_random_bytes_give_an_error_or_a_picture(magic, tail, size):
    _load_or_error(magic + tail, size)
    _load_or_error(io.BytesIO(magic + tail), size)


@pytest.fixture(scope="module")
def scratch():
    with tempfile.TemporaryDirectory() as folder:
        yield Path(folder)


@PROPERTY
@given(fmt=st.sampled_from(sorted(_ENCODED)), cut=st.floats(0, 1), flips=st.lists(st.integers(0, 10**6), max_size=4),
       how=st.sampled_from(["bytes", "BytesIO", "path", "file"]), size=_SIZES)
def test_truncated_or_damaged_files_give_an_error_or_a_picture(scratch, fmt, cut, flips, how, size):
    data = bytearray(_ENCODED[fmt][: round(cut * len(_ENCODED[fmt]))])
    for position in flips:
        if data:
            data[position % len(data)] ^= 0xA5
    if how == "bytes":
        out = _load_or_error(bytes(data), size)
    elif how == "BytesIO":
        out = _load_or_error(io.BytesIO(data), size)
    else:
        path = scratch / f"x.{fmt.lower()}"
        path.write_bytes(data)
        if how == "path":
            out = _load_or_error(path, size)
        else:
            with path.open("rb") as fh:
                out = _load_or_error(fh, size)
    if fmt in _LOSSLESS and not flips and len(data) == len(_ENCODED[fmt]) and size is None:
        np.testing.assert_array_equal(out, _SMALL)  # an intact lossless file comes back exactly


_DTYPES = [np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.int32, np.uint32, np.int64, np.uint64,
           np.float16, np.float32, np.float64, np.complex64, np.dtype("M8[s]"), np.dtype("U3")]


@PROPERTY
@given(array=st.sampled_from(_DTYPES).flatmap(
           lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=5, min_side=0, max_side=5))),
       size=_SIZES)
def test_arrays_of_any_dtype_and_shape_give_an_error_or_a_picture(array, size):
    out = _load_or_error(array, size)
    squeezed = array[0] if array.ndim == 4 and array.shape[0] == 1 else array
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        assert out is None  # NaN/inf never becomes a picture
    if out is not None and size is None:
        assert out.shape[:2] == squeezed.shape[:2]
    if array.dtype == np.uint8 and squeezed.ndim == 3 and squeezed.shape[2] == 3 and squeezed.size and size is None:
        np.testing.assert_array_equal(out, squeezed)


@pytest.mark.parametrize("array, needle", [
    (np.full((4, 4, 3), np.nan, np.float32), "NaN or infinite"),
    (np.full((4, 4), np.inf), "NaN or infinite"),
    (np.zeros((4, 4, 3), object), "real numbers"),
    (np.zeros((4, 4, 3), np.complex64), "real numbers"),
    (np.zeros((0, 4, 3), np.uint8), "empty"),
    (np.zeros((2, 4, 4, 3), np.uint8), "shape"),
    (np.zeros((4, 4, 5), np.uint8), "shape"),
], ids=["nan", "inf", "object", "complex", "empty", "batch-of-2", "5-channels"])
def test_odd_arrays_are_clear_errors(array, needle):
    with pytest.raises(ConvVizError, match=needle):
        load_image(array)


def test_array_over_the_pixel_limit_is_refused(monkeypatch):
    monkeypatch.setattr(limits, "max_pixels", 99)
    with pytest.raises(ConvVizError, match="million pixels"):
        load_image(np.zeros((10, 10, 3), np.uint8))


def test_requested_size_over_the_pixel_limit_is_refused():
    with pytest.raises(ConvVizError, match="requested size"):
        load_image(np.zeros((4, 4, 3), np.uint8), size=(100_000, 100_000))

