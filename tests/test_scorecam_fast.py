"""Faster Score-CAM: only the most varied channels are masked, in memory-sized batches, with progress."""

from __future__ import annotations

import cv2
import keras
import numpy as np
import pytest
from conftest import rng_image
from keras import ops

import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.core import Inspector
from convviz_widgets.errors import Cancelled, ConvVizError
from convviz_widgets.limits import limits
from convviz_widgets.metrics import spearman


@pytest.fixture(scope="module")
def demo_inspector() -> Inspector:
    return Inspector(demo.load_model(), preprocess=demo.PREPROCESS)


@pytest.fixture(scope="module")
def demo_image() -> np.ndarray:
    return demo.scene(seed=3).image


def plain_fast_scorecam(model, image: np.ndarray, feats: np.ndarray, class_index: int, n: int) -> np.ndarray:
    """The recipe written out: top-n channels by spatial variance, min-max masks, blurred baseline."""
    h, w = image.shape[:2]
    x = image[None].astype(np.float32) / 255.0
    sigma = max(1.0, 0.25 * min(h, w))
    blur = cv2.GaussianBlur(x[0], (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REFLECT)[None]
    variance = feats.reshape(-1, feats.shape[-1]).var(axis=0)
    top = np.argsort(-variance, kind="stable")[:n]
    base = float(ops.convert_to_numpy(model(blur, training=False))[0, class_index])
    weights = np.zeros(feats.shape[-1], np.float64)
    for c in top:
        f = feats[..., c]
        span = f.max() - f.min()
        norm = (f - f.min()) / span if span > 1e-12 else np.zeros_like(f)
        mask = cv2.resize(norm.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)[None, ..., None]
        prob = float(ops.convert_to_numpy(model(x * mask + blur * (1.0 - mask), training=False))[0, class_index])
        weights[c] = prob - base
    return np.tensordot(feats.astype(np.float64), weights, axes=([-1], [0]))


@pytest.mark.backends
def test_fast_scorecam_equals_the_plain_recipe_on_the_demo_model(demo_inspector, demo_image):
    layer = demo_inspector.default_cam_layer
    model = demo_inspector.model
    x = demo_image[None].astype(np.float32) / 255.0
    feats = ops.convert_to_numpy(keras.Model(model.inputs[0], model.get_layer(layer).output)(x, training=False))[0]
    cam = demo_inspector.gradcam(demo_image, method="scorecam", class_index=2, max_channels=10)
    raw = plain_fast_scorecam(demo_inspector.model, demo_image, feats, 2, 10)
    np.testing.assert_allclose(cam.raw, raw, atol=1e-4)
    assert cam.method == "scorecam" and cam.layer == layer


@pytest.mark.backends
def test_fast_scorecam_ranks_pixels_like_the_full_one(demo_inspector, demo_image):
    full = demo_inspector.gradcam(demo_image, method="scorecam")
    fast = demo_inspector.gradcam(demo_image, method="scorecam", class_index=full.class_index, max_channels=32)
    assert full.class_index == fast.class_index
    assert spearman(fast.heatmap, full.heatmap) > 0.8  # 32 of 128 channels keep the map's ranking


@pytest.mark.backends
def test_no_channel_limit_means_every_channel(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    img = rng_image(seed=21)
    full = ins.gradcam(img, method="scorecam", class_index=0)
    for n in (None, 0, -3, 20, 500):  # conv3 has 20 channels
        cam = ins.gradcam(img, method="scorecam", class_index=0, max_channels=n)
        np.testing.assert_allclose(cam.raw, full.raw, atol=1e-6)
    fewer = ins.gradcam(img, method="scorecam", class_index=0, max_channels=5)
    assert not np.allclose(fewer.raw, full.raw)


@pytest.mark.backends
def test_api_function_passes_max_channels(tiny_model):
    img = rng_image(seed=22)
    ins = Inspector(tiny_model, preprocess="rescale")
    expected = ins.gradcam(img, method="scorecam", class_index=1, max_channels=4)
    got = cv.gradcam(tiny_model, img, preprocess="rescale", method="scorecam", class_index=1, max_channels=4)
    np.testing.assert_allclose(got.raw, expected.raw, atol=1e-6)


@pytest.mark.backends
def test_progress_is_called_after_each_masked_batch(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    calls: list[tuple[int, int]] = []
    ins.gradcam(rng_image(seed=23), method="scorecam", batch_size=3, max_channels=8,
                progress=lambda done, total: calls.append((done, total)))
    assert calls == [(3, 8), (6, 8), (8, 8)]


@pytest.mark.backends
def test_progress_returning_false_or_raising_cancelled_stops_scorecam(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    calls: list[int] = []

    def stop_at_second(done: int, total: int) -> bool:
        calls.append(done)
        return done < 4

    with pytest.raises(Cancelled, match="4 of 20"):
        ins.gradcam(rng_image(seed=24), method="scorecam", batch_size=2, progress=stop_at_second)
    assert calls == [2, 4]

    def raise_cancelled(done: int, total: int) -> None:
        raise Cancelled("stop")

    with pytest.raises(Cancelled, match="stop"):
        ins.gradcam(rng_image(seed=24), method="scorecam", progress=raise_cancelled)


@pytest.mark.backends
def test_masked_batches_shrink_to_fit_the_memory_budget(demo_inspector, demo_image, monkeypatch):
    per_image = demo_inspector._masked_image_bytes((96, 96))
    assert 2e6 < per_image < 2e7  # input, mask, blend and the demo model's activations for one image
    big = demo_inspector.gradcam(demo_image, method="scorecam", class_index=1, max_channels=12)
    monkeypatch.setattr(limits, "memory_budget", int(per_image * 4.5))
    sizes: list[int] = []
    done_before = [0]

    def record(done: int, total: int) -> None:
        sizes.append(done - done_before[0])
        done_before[0] = done

    small = demo_inspector.gradcam(demo_image, method="scorecam", class_index=1, max_channels=12, batch_size=32,
                                   progress=record)
    assert sizes == [4, 4, 4]
    np.testing.assert_allclose(small.raw, big.raw, atol=1e-5)
    monkeypatch.setattr(limits, "memory_budget", int(per_image * 0.5))
    with pytest.raises(ConvVizError, match="memory budget"):
        demo_inspector.gradcam(demo_image, method="scorecam", max_channels=12)


@pytest.mark.backends
@pytest.mark.parametrize("bad", [2.5, "8", True])
def test_max_channels_must_be_a_whole_number(tiny_model, bad):
    with pytest.raises(ConvVizError, match="max_channels"):
        Inspector(tiny_model, preprocess="rescale").gradcam(rng_image(), method="scorecam", max_channels=bad)
