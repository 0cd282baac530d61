"""render: grids show every channel, flat channels stay finite, overlays and PNGs are right."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pytest
from PIL import Image

from convviz_widgets import ConvVizError, activation_grid, filter_grid, overlay, render, to_png


def _act(h=6, w=5, c=20, seed=0):
    return np.random.default_rng(seed).normal(size=(h, w, c)).astype(np.float32)


def test_activation_grid_keeps_channels_not_divisible_by_row_length():
    act = _act(c=20)
    grid = activation_grid(act, images_per_row=16, margin=0)
    # 20 channels in rows of 16 -> 2 rows; the book's code would have dropped 4 channels.
    assert grid.shape == (2 * 6, 16 * 5, 3)
    last_tile = grid[6:12, 3 * 5 : 4 * 5]
    assert last_tile.std() > 0  # channel 19 is drawn, not blank


def test_activation_grid_tile_matches_per_channel_book_scaling():
    act = _act(c=3)
    grid = activation_grid(act, images_per_row=3, cmap="gray", margin=0)
    ch = act[..., 1]
    expected = np.clip((ch - ch.mean()) / ch.std() * 64 + 128, 0, 255)
    np.testing.assert_allclose(grid[:, 5:10, 0].astype(float), expected, atol=1.01)


def test_dead_channels_become_flat_tiles_without_nan_or_warning():
    act = _act(c=4)
    act[..., 2] = 0.0  # dead after ReLU
    act[..., 3] = 7.0  # constant
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        grid = activation_grid(act, images_per_row=4, cmap="gray", margin=0)
    assert np.isfinite(grid).all()
    for k in (2, 3):
        tile = grid[:, k * 5 : (k + 1) * 5, 0]
        assert tile.min() == tile.max() == 128


def test_activation_grid_with_nan_input_draws_it_as_zero():
    act = _act(c=2)
    act[0, 0, 0] = np.nan
    grid = activation_grid(act, images_per_row=2, cmap="gray", margin=0)
    assert grid.dtype == np.uint8
    for k in (0, 1):  # the book's scaling of each channel, the NaN counted as 0
        ch = np.where(np.isnan(act[..., k]), 0.0, act[..., k])
        expected = np.clip((ch - ch.mean()) / ch.std() * 64 + 128, 0, 255)
        np.testing.assert_allclose(grid[:, k * 5 : (k + 1) * 5, 0].astype(float), expected, atol=1.01)


def test_activation_grid_margin_separates_tiles_with_background():
    grid = activation_grid(_act(c=4), images_per_row=2, margin=1)
    assert grid.shape == (6 * 2 + 1, 5 * 2 + 1, 3)
    assert (grid[6] == 255).all()  # the gap row


def test_activation_grid_rejects_wrong_rank():
    with pytest.raises(ConvVizError, match="H, W, C"):
        activation_grid(np.zeros((3, 3)))


def test_filter_grid_places_pictures_with_margins():
    imgs = np.full((10, 8, 8, 3), 200, np.uint8)
    grid = filter_grid(imgs, cols=4, margin=5)
    assert grid.shape == (3 * 8 + 2 * 5, 4 * 8 + 3 * 5, 3)
    assert (grid[8:13] == 0).all()  # margin between the first two rows
    assert (grid[:8, :8] == 200).all()


def test_overlay_resizes_heatmap_to_image_and_blends():
    img = np.zeros((40, 60, 3), np.uint8)
    heat = np.zeros((4, 6), np.float32)
    heat[0, 0] = 1.0
    out = overlay(img, heat, alpha=0.5, cmap="gray")
    assert out.shape == (40, 60, 3) and out.dtype == np.uint8
    assert out[0, 0, 0] > 100 and out[39, 59, 0] == 0


def test_overlay_alpha_zero_returns_the_photo():
    img = np.random.default_rng(0).integers(0, 256, (10, 10, 3), dtype=np.uint8)
    np.testing.assert_array_equal(overlay(img, np.ones((2, 2)), alpha=0.0), img)


def test_overlay_on_huge_image_stays_uint8():
    img = np.zeros((3000, 4000, 3), np.uint8)
    out = overlay(img, np.eye(7, dtype=np.float32))
    assert out.shape == img.shape and out.dtype == np.uint8


def test_to_png_decodes_back_to_the_same_pixels():
    arr = np.random.default_rng(2).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    data = to_png(arr)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(np.asarray(Image.open(io.BytesIO(data))), arr)


def test_channel_image_rejects_out_of_range_channel():
    with pytest.raises(ConvVizError, match="out of range"):
        render.channel_image(_act(c=3), 3)


def test_unknown_colormap_is_a_clear_error():
    with pytest.raises(ConvVizError, match="colormap"):
        activation_grid(_act(), cmap="no-such-map")


@pytest.mark.parametrize("h, w", [(1200, 1600), (300, 400), (96, 96), (150, 150), (40, 300), (2000, 500)])
def test_the_header_shows_any_image_at_one_size_keeping_its_aspect(h, w):
    shown = render.at_side(np.zeros((h, w, 3), np.uint8), 192)
    assert max(shown.shape[:2]) == 192
    short = round(min(h, w) * 192 / max(h, w))
    assert abs(min(shown.shape[:2]) - short) <= 1 and (shown.shape[0] >= shown.shape[1]) == (h >= w)


def test_a_small_header_image_is_enlarged_with_whole_pixels():
    img = np.random.default_rng(3).integers(0, 256, (96, 96, 3)).astype(np.uint8)
    np.testing.assert_array_equal(render.at_side(img, 192), np.repeat(np.repeat(img, 2, axis=0), 2, axis=1))


def test_a_large_header_image_is_averaged_not_sampled():
    img = np.zeros((1200, 1600, 3), np.uint8)
    img[::2] = 255  # fine stripes: an average is grey, a nearest sample would be black or white
    shown = render.at_side(img, 192)
    assert shown.shape == (144, 192, 3) and 100 < shown.mean() < 155


def test_a_filter_that_never_fired_is_a_flat_tile_labelled_dead():
    from types import SimpleNamespace

    from convviz_widgets.render.filters import tile_label

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 24, 24, 3)).astype(np.uint8)
    final = np.array([0.7, 0.0, -0.1], np.float32)
    shown = render.shown_patterns(images, final)
    np.testing.assert_array_equal(shown[0], images[0])  # a live filter keeps its pattern
    assert shown[1].std() == 0 and shown[2].std() == 0  # no noise dressed up as a pattern
    assert (tile_label(4, 0.0), tile_label(4, 0.512)) == ("#4  dead", "#4  0.512")
    grid = render.filter_picture(SimpleNamespace(images=images, filters=(0, 4, 9), final_activation=final))
    assert grid.shape[0] > 96 and grid.dtype == np.uint8
