"""load_image: every common picture kind becomes plain uint8 RGB; bad input says what is wrong."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from convviz_widgets import ConvVizError, load_image


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_rgb_png_round_trips_exactly(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)
    out = load_image(_save(Image.fromarray(arr), tmp_path / "a.png"))
    assert out.dtype == np.uint8 and out.shape == (20, 30, 3)
    np.testing.assert_array_equal(out, arr)


def test_grayscale_file_becomes_three_equal_channels(tmp_path):
    gray = np.arange(200, dtype=np.uint8).reshape(10, 20)
    out = load_image(_save(Image.fromarray(gray, "L"), tmp_path / "g.png"))
    assert out.shape == (10, 20, 3)
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 0], out[..., 2])


def test_rgba_transparent_pixels_become_white(tmp_path):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    rgba[:2, :, 3] = 255  # top half opaque red, bottom half transparent
    out = load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "t.png"))
    assert out.shape == (4, 4, 3)
    assert tuple(out[0, 0]) == (200, 0, 0)
    assert tuple(out[3, 3]) == (255, 255, 255)


def test_palette_image_becomes_rgb(tmp_path):
    pal = Image.fromarray(np.random.default_rng(1).integers(0, 256, (8, 8, 3), dtype=np.uint8)).convert("P")
    out = load_image(_save(pal, tmp_path / "p.png"))
    assert out.shape == (8, 8, 3) and out.dtype == np.uint8


def test_sixteen_bit_grayscale_is_scaled_not_clipped(tmp_path):
    ramp = np.linspace(0, 65535, 64, dtype=np.uint16).reshape(8, 8)
    out = load_image(_save(Image.fromarray(ramp), tmp_path / "d.png"))
    assert out.shape == (8, 8, 3)
    assert out.min() == 0 and out.max() == 255
    assert len(np.unique(out[..., 0])) > 30  # a ramp, not a saturated white picture


def test_sixteen_bit_array_is_scaled():
    out = load_image(np.full((4, 4, 3), 65535, np.uint16))
    assert out.max() == 255


def test_exif_rotation_is_applied(tmp_path):
    arr = np.zeros((10, 20, 3), np.uint8)  # landscape
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    out = load_image(_save(img, tmp_path / "r.jpg", exif=exif))
    assert out.shape == (20, 10, 3)  # shown upright: portrait


def test_float_array_in_unit_range_is_scaled():
    out = load_image(np.full((3, 3), 0.5, np.float32))
    assert out.shape == (3, 3, 3) and out[0, 0, 0] == 128


def test_size_resizes_to_height_width(tmp_path):
    arr = np.zeros((100, 50, 3), np.uint8)
    assert load_image(arr, size=(32, 16)).shape == (32, 16, 3)
    assert load_image(_save(Image.fromarray(arr), tmp_path / "s.png"), size=(7, 9)).shape == (7, 9, 3)


def test_huge_jpeg_resized_on_load_stays_cheap(tmp_path):
    big = Image.new("RGB", (8000, 6000), (10, 120, 200))
    path = _save(big, tmp_path / "big.jpg", quality=70)
    out = load_image(path, size=(128, 128))
    assert out.shape == (128, 128, 3)
    assert abs(int(out[64, 64, 2]) - 200) < 8


def test_missing_file_says_not_found(tmp_path):
    with pytest.raises(ConvVizError, match="not found"):
        load_image(tmp_path / "nope.png")


def test_non_image_file_says_it_cannot_be_read(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("this is text, not a picture")
    with pytest.raises(ConvVizError, match="not an image"):
        load_image(path)


def test_truncated_image_file_is_a_clear_error(tmp_path):
    path = _save(Image.fromarray(np.zeros((64, 64, 3), np.uint8)), tmp_path / "cut.png")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvVizError):
        load_image(path)


def test_bad_array_shape_is_a_clear_error():
    with pytest.raises(ConvVizError, match="shape"):
        load_image(np.zeros((4, 4, 7)))


def test_bytes_and_open_file_objects_load_like_paths(tmp_path):
    arr = np.random.default_rng(3).integers(0, 256, (9, 11, 3), dtype=np.uint8)
    path = _save(Image.fromarray(arr), tmp_path / "b.png")
    np.testing.assert_array_equal(load_image(path.read_bytes()), arr)
    np.testing.assert_array_equal(load_image(bytearray(path.read_bytes())), arr)
    with path.open("rb") as fh:
        np.testing.assert_array_equal(load_image(fh), arr)
        assert not fh.closed  # the caller's file stays the caller's


def test_other_formats_are_refused_without_running_their_decoders(tmp_path, monkeypatch):
    from PIL import EpsImagePlugin

    opened = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: opened.append(self))
    path = tmp_path / "page.eps"  # PostScript: Pillow would hand it to Ghostscript
    path.write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    with pytest.raises(ConvVizError, match="PNG, JPEG"):
        load_image(path)
    assert opened == []
