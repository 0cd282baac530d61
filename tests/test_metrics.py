"""Faithfulness metrics: pointing game, energy, rank/SSIM similarity, deletion curves, randomisation."""

from __future__ import annotations

import importlib.util
import math

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet

from convviz_widgets import ConvVizError, Inspector
from convviz_widgets import metrics as mx
from convviz_widgets.core.cam import CAM
from convviz_widgets.metrics import _model
from convviz_widgets.metrics.sanity import compare_cams, inspector_copy

HAS_SCIPY = importlib.util.find_spec("scipy") is not None
HAS_SKIMAGE = importlib.util.find_spec("skimage") is not None


# ----- synthetic maps -----------------------------------------------------------------------------
def disk(shape: tuple[int, int], centre: tuple[int, int], radius: float) -> np.ndarray:
    """A boolean disk mask."""
    r, c = np.ogrid[: shape[0], : shape[1]]
    return (r - centre[0]) ** 2 + (c - centre[1]) ** 2 <= radius**2


def spike(shape: tuple[int, int], at: tuple[int, int]) -> np.ndarray:
    """A heatmap whose only maximum is at one pixel, falling off smoothly."""
    r, c = np.ogrid[: shape[0], : shape[1]]
    return np.exp(-((r - at[0]) ** 2 + (c - at[1]) ** 2) / 50.0).astype(np.float32)


# ----- pointing game and energy -----------------------------------------------------------------
@pytest.mark.backends
def test_pointing_game_hits_when_the_maximum_is_on_the_object():
    mask = disk((64, 64), (20, 20), 6)
    assert mx.pointing_game(spike((64, 64), (21, 19)), mask)


@pytest.mark.backends
def test_pointing_game_misses_when_the_maximum_is_far_from_the_object():
    mask = disk((64, 64), (10, 10), 4)
    assert not mx.pointing_game(spike((64, 64), (50, 50)), mask)


@pytest.mark.backends
def test_pointing_game_tolerance_counts_object_pixels_within_15_px():
    mask = np.zeros((64, 64), bool)
    mask[30, 10] = True
    heat = spike((64, 64), (30, 22))  # 12 px right of the only object pixel
    assert mx.pointing_game(heat, mask, tolerance=15)
    assert mx.pointing_game(heat, mask, tolerance=12)
    assert not mx.pointing_game(heat, mask, tolerance=11)
    assert not mx.pointing_game(heat, mask, tolerance=0)


@pytest.mark.backends
def test_pointing_game_resizes_a_feature_map_heatmap_to_the_mask():
    heat = np.zeros((8, 8), np.float32)
    heat[6, 1] = 1.0  # cell (6, 1) of an 8x8 grid covers rows 48..55, cols 8..15 of 64x64
    assert mx.pointing_game(heat, disk((64, 64), (52, 12), 3), tolerance=0)
    assert not mx.pointing_game(heat, disk((64, 64), (12, 52), 3), tolerance=15)


@pytest.mark.backends
def test_pointing_game_takes_a_cam_and_counts_a_blank_map_as_a_miss():
    mask = np.ones((16, 16), bool)
    assert not mx.pointing_game(np.zeros((4, 4)), mask)
    cam = CAM(heatmap=spike((16, 16), (3, 3)), class_index=0, score=1.0, layer="conv")
    assert mx.pointing_game(cam, mask)


@pytest.mark.backends
def test_energy_is_the_share_of_heatmap_mass_inside_the_mask():
    mask = np.zeros((10, 10), bool)
    mask[:, :5] = True
    heat = np.ones((10, 10), np.float32)
    heat[:, :5] = 3.0
    assert mx.energy(heat, mask) == pytest.approx(0.75)
    assert mx.energy(mask.astype(np.float32), mask) == pytest.approx(1.0)
    assert mx.energy(np.zeros((10, 10)), mask) == 0.0


@pytest.mark.backends
def test_pointing_accuracy_aggregates_hits_and_mean_energy():
    mask = disk((32, 32), (8, 8), 4)
    result = mx.pointing_accuracy([spike((32, 32), (8, 8)), spike((32, 32), (30, 30))], [mask, mask], tolerance=2)
    assert (result.hits, result.total, result.accuracy) == (1, 2, 0.5)
    assert 0.0 < result.energy < 1.0


# ----- similarity ---------------------------------------------------------------------------------
@pytest.mark.backends
def test_average_ranks_share_tied_ranks():
    assert mx.average_ranks(np.array([10, 20, 20, 30, 20])).tolist() == [1.0, 3.0, 3.0, 5.0, 3.0]


@pytest.mark.backends
def test_spearman_equals_a_hand_computed_example_with_ties():
    # ranks a = (1, 2.5, 2.5, 4), b = (1, 3, 2, 4): sum of centred products 4.5 / sqrt(4.5 * 5) = 3 / sqrt(10)
    a = np.array([[1.0, 2.0], [2.0, 3.0]])
    b = np.array([[1.0, 3.0], [2.0, 4.0]])
    assert mx.spearman(a, b) == pytest.approx(3.0 / math.sqrt(10.0), abs=1e-12)


@pytest.mark.backends
def test_spearman_of_a_constant_map_is_zero():
    assert mx.spearman(np.zeros((4, 4)), np.arange(16.0).reshape(4, 4)) == 0.0


@pytest.mark.backends
@pytest.mark.skipif(not HAS_SCIPY, reason="scipy is not installed; the hand-computed example covers Spearman")
def test_spearman_matches_scipy_on_maps_with_many_ties():
    from scipy.stats import spearmanr

    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(size=(12, 12)), 0)  # a ReLU map: many tied zeros
    b = np.maximum(a + rng.normal(scale=0.5, size=a.shape), 0)
    assert mx.spearman(a, b) == pytest.approx(spearmanr(a.ravel(), b.ravel())[0], abs=1e-12)


@pytest.mark.backends
def test_ssim_of_identical_maps_is_one_and_of_unrelated_noise_near_zero():
    rng = np.random.default_rng(2)
    a, b = rng.random((64, 64)), rng.random((64, 64))
    assert mx.ssim(a, a) == pytest.approx(1.0)
    assert abs(mx.ssim(a, b)) < 0.05


@pytest.mark.backends
@pytest.mark.skipif(not HAS_SKIMAGE, reason="scikit-image is not installed; identity/noise checks cover SSIM")
def test_ssim_matches_scikit_image_with_wang_et_al_settings():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(3)
    a = rng.random((40, 48))
    b = np.clip(a + rng.normal(scale=0.2, size=a.shape), 0, 1)
    expected = structural_similarity(a, b, data_range=1.0, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert mx.ssim(a, b) == pytest.approx(expected, abs=1e-9)


# ----- deletion / insertion on a model whose evidence is known -----------------------------------
REGION = (slice(4, 16), slice(4, 16))  # rows, cols where red pixels are class-1 evidence


def red_region_model(size: int = 32) -> keras.Model:
    """Class-1 logit = 12 * (mean red in REGION) - 6, class-0 logit = 0: the evidence is exactly known."""
    x = keras.Input((size, size, 3))
    red = keras.layers.Conv2D(1, 1, name="red")(x)
    crop = keras.layers.Cropping2D(((4, size - 16), (4, size - 16)))(red)
    mean = keras.layers.GlobalAveragePooling2D()(crop)
    out = keras.layers.Dense(2, activation="softmax", name="predictions")(mean)
    model = keras.Model(x, out)
    model.get_layer("red").set_weights([np.array([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1), np.zeros(1)])
    model.get_layer("predictions").set_weights([np.array([[0.0, 12.0]]), np.array([0.0, -6.0])])
    return model


@pytest.fixture(scope="module")
def red_inspector() -> Inspector:
    """An Inspector on the red-region model (input rescaled to 0..1)."""
    return Inspector(red_region_model(), preprocess="rescale")


@pytest.fixture(scope="module")
def red_image() -> np.ndarray:
    """Grey noise with a pure red square exactly on the evidence region."""
    img = np.full((32, 32, 3), 90, np.uint8) + rng_image(32, 32, seed=4) // 8
    img[REGION] = (255, 0, 0)
    return img


def perfect_heatmap() -> np.ndarray:
    """The region mask: the true explanation of class 1."""
    heat = np.zeros((32, 32), np.float32)
    heat[REGION] = 1.0
    return heat


def test_deletion_of_a_perfect_heatmap_has_lower_auc_than_random(red_inspector, red_image):
    kw = dict(steps=16, baseline="black", mode="deletion")
    ours = mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 1, **kw)
    rand = mx.deletion_curve(red_inspector, red_image, None, 1, order="random", seed=0, **kw)
    assert ours.probabilities[0] > 0.99 and ours.probabilities[-1] < 0.01
    assert ours.auc < rand.auc - 0.3
    assert 0.0 <= ours.auc <= 1.0 and len(ours.fractions) == 17


def test_insertion_of_a_perfect_heatmap_has_higher_auc_than_random(red_inspector, red_image):
    kw = dict(steps=16, baseline="black", mode="insertion")
    ours = mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 1, **kw)
    rand = mx.deletion_curve(red_inspector, red_image, None, 1, order="random", seed=0, **kw)
    assert ours.auc > rand.auc + 0.2


def test_deletion_curve_runs_one_forward_per_batch_and_chunking_changes_nothing(red_inspector, red_image,
                                                                                 monkeypatch):
    calls = []
    real = _model.class_probabilities

    def counting(inspector, images, class_index):
        calls.append(len(images))
        return real(inspector, images, class_index)

    monkeypatch.setattr("convviz_widgets.metrics.deletion.class_probabilities", counting)
    whole = mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 1, steps=10, batch_size=64)
    assert calls == [11]
    calls.clear()
    chunked = mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 1, steps=10, batch_size=4)
    assert calls == [4, 4, 3]
    np.testing.assert_allclose(whole.probabilities, chunked.probabilities, atol=1e-6)


@pytest.mark.backends
def test_random_order_is_seeded_and_heatmap_ties_are_not_in_raster_order():
    a = mx.pixel_order(None, (8, 8), "random", seed=5)
    assert np.array_equal(a, mx.pixel_order(None, (8, 8), "random", seed=5))
    heat = np.zeros((8, 8))
    heat[0, 0] = 1.0
    order = mx.pixel_order(heat, (8, 8), "heatmap", seed=0)
    assert order[0] == 0 and not np.array_equal(order[1:], np.arange(1, 64))


def test_deletion_curve_refuses_unknown_options(red_inspector, red_image):
    with pytest.raises(ConvVizError, match="mode"):
        mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 1, mode="erase")
    with pytest.raises(ConvVizError, match="out of range"):
        mx.deletion_curve(red_inspector, red_image, perfect_heatmap(), 7)


# ----- model-randomisation sanity check ---------------------------------------------------------
@pytest.fixture(scope="module")
def sanity_model() -> keras.Model:
    """The book-style tiny convnet (3 conv layers + dense head)."""
    return small_convnet(size=32, seed=3)


def test_randomization_check_leaves_the_users_model_unchanged(sanity_model):
    before = [w.copy() for w in sanity_model.get_weights()]
    mx.randomization_check(Inspector(sanity_model), rng_image(32, 32, seed=6), 0)
    after = sanity_model.get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(before, after))


def test_randomization_check_gives_one_finite_stage_per_layer_top_first(sanity_model):
    stages = mx.randomization_check(Inspector(sanity_model), rng_image(32, 32, seed=7), class_index=1, seed=0)
    assert [s.layer for s in stages] == ["predictions", "conv3", "conv2", "conv1"]
    for s in stages:
        assert all(math.isfinite(v) for v in (s.spearman, s.spearman_raw, s.ssim))
        assert -1.0 <= s.spearman <= 1.0 and -1.0 <= s.spearman_raw <= 1.0


def test_randomization_check_is_deterministic_and_selects_top_layers(sanity_model):
    ins = Inspector(sanity_model)
    image = rng_image(32, 32, seed=8)
    first = mx.randomization_check(ins, image, 2, layers=2, seed=4, method="gradcam++")
    again = mx.randomization_check(ins, image, 2, layers=2, seed=4, method="gradcam++")
    assert [s.layer for s in first] == ["predictions", "conv3"] and first == again
    assert [s.layer for s in mx.randomization_check(ins, image, 2, layers=["conv2"])] == ["conv2"]
    with pytest.raises(ConvVizError, match="No layer with weights"):
        mx.cascade_layers(sanity_model, ["pool1"])


def test_an_unrandomised_copy_gives_the_same_heatmap(sanity_model):
    ins = Inspector(sanity_model)
    image = rng_image(32, 32, seed=10)
    same = compare_cams(ins.gradcam(image, class_index=0), inspector_copy(ins).gradcam(image, class_index=0),
                        "none", (32, 32))
    assert same.spearman == pytest.approx(1.0) and same.ssim == pytest.approx(1.0)


def test_model_copy_descends_into_nested_models_and_matches_the_original():
    keras.utils.set_random_seed(9)
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="c1"),
                             keras.layers.BatchNormalization(name="bn")], name="base")
    model = keras.Sequential([keras.Input((16, 16, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(2, name="head")])
    assert [n for n, _ in mx.weighted_layers(model)] == ["base/c1", "base/bn", "head"]
    copy = mx.model_copy(model)
    x = rng_image(16, 16, seed=1)[None].astype(np.float32) / 255
    np.testing.assert_allclose(copy(x), model(x), atol=1e-6)
    copy.get_layer("base").get_layer("c1").kernel.assign(np.zeros((3, 3, 3, 4)))
    assert np.abs(model.get_layer("base").get_layer("c1").kernel.numpy()).sum() > 0


@pytest.mark.backends
def test_a_blank_heatmap_counts_as_rank_correlation_zero():
    heat = spike((8, 8), (2, 2))
    raw = heat - 0.5
    original = CAM(heatmap=heat, class_index=0, score=1.0, layer="conv", raw=raw)
    blank = CAM(heatmap=np.zeros((8, 8), np.float32), class_index=0, score=0.0, layer="conv", raw=-raw)
    stage = compare_cams(original, blank, "predictions", (32, 32))
    assert stage.blank and stage.spearman == 0.0
    assert stage.spearman_raw == pytest.approx(-1.0)


# ----- the demo model ------------------------------------------------------------------------------
def test_demo_gradcam_points_at_each_of_two_objects_at_least_95_percent():
    from convviz_widgets import demo

    ins = Inspector(demo.load_model(), preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
    targets = mx.scene_targets(demo.scene(objects=2, seed=i) for i in range(30))
    cams = mx.compute_cams(ins, targets, "gradcam")
    result = mx.pointing_accuracy(cams, [t.mask for t in targets])
    # The model is trained on cross-entropy alone; bench/metrics_demo.py measures 1.000 at 15 px
    # (0.863 at 0 px) on 200 held-out two-object scenes.
    assert result.total == 60 and result.accuracy >= 0.95, result


@pytest.mark.backends
def test_normal_reinitialisation_keeps_scale_and_never_negative_variances():
    bn = keras.layers.BatchNormalization()
    bn.build((None, 4, 4, 8))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 8))
    kernel_layer = keras.layers.Dense(64)
    kernel_layer.build((None, 64))
    kernel_layer.kernel.assign(np.random.default_rng(0).normal(0, 0.3, (64, 64)))
    mx.sanity.randomize_layer(bn, seed=1, init="normal")
    mx.sanity.randomize_layer(kernel_layer, seed=1, init="normal")
    assert bn.moving_variance.numpy().min() >= 0.0
    assert np.std(kernel_layer.kernel.numpy()) == pytest.approx(0.3, rel=0.1)
