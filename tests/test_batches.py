"""Several images at once: a list of CAMs equal to single calls, computed in batches that fit the budget."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import limits
from convviz_widgets.core import cams
from convviz_widgets.errors import ConvVizError


@pytest.fixture(scope="module")
def model():
    return small_convnet(seed=7)


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([rng_image(seed=50 + i) for i in range(5)])


@pytest.mark.backends
@pytest.mark.parametrize("method", [m for m in cams.method_names() if cams.get_method(m).batchable
                                    and m in ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam")])
def test_a_batch_equals_single_calls(model, images, method):
    batch = cv.gradcam(model, images, preprocess="rescale", method=method, batch_size=3)
    assert isinstance(batch, list) and len(batch) == len(images)
    for img, cam in zip(images, batch):
        one = cv.gradcam(model, img, preprocess="rescale", method=method, class_index=cam.class_index)
        np.testing.assert_allclose(cam.raw, one.raw, atol=1e-4 * max(1e-6, np.abs(one.raw).max()), rtol=0)
        assert cam.class_index == one.class_index and cam.score == pytest.approx(one.score, abs=1e-4)


@pytest.mark.backends
def test_a_batch_runs_padded_to_a_compiled_size_and_the_padding_is_dropped(model, images):
    ins = cv.Inspector(model, preprocess="rescale")
    singles = [ins.gradcam(img, class_index=c) for img, c in zip(images, [0, 1, 2, 0, 1])]
    calls = []
    fn = ins.cam_engine.function(ins.layer(ins.default_cam_layer), cams.get_method("gradcam"), deep=False)
    ins.cam_engine.functions.put((ins.default_cam_layer, "gradcam", False),
                                 lambda x, c: calls.append((int(x.shape[0]), list(c))) or fn(x, c))
    got = ins.gradcam(images, class_index=[0, 1, 2, 0, 1], batch_size=8)
    assert calls == [(6, [0, 1, 2, 0, 1, 0])]  # 5 images padded to 6 with a copy of the first
    assert [c.class_index for c in got] == [0, 1, 2, 0, 1]
    for a, b in zip(got, singles):
        np.testing.assert_allclose(a.raw, b.raw, atol=1e-5 * max(1e-6, np.abs(b.raw).max()), rtol=0)


@pytest.mark.backends
def test_perturbation_methods_take_lists_too(model, images):
    batch = cv.gradcam(model, list(images[:2]), preprocess="rescale", method="ablationcam", class_index=[0, 2])
    assert [c.class_index for c in batch] == [0, 2]
    one = cv.gradcam(model, images[1], preprocess="rescale", method="ablationcam", class_index=2)
    np.testing.assert_allclose(batch[1].raw, one.raw, atol=1e-5)


@pytest.mark.backends
def test_batches_shrink_to_the_memory_budget(model, images, monkeypatch):
    ins = cv.Inspector(model, preprocess="rescale")
    want = ins.gradcam(images, batch_size=5)
    per_image = ins.bytes_per_image(gradient=True)
    monkeypatch.setattr(limits, "memory_budget", int(per_image * 2.5))
    calls = []
    # The images were checked in every layer by the first call, so the light function runs now.
    fn = ins.cam_engine.function(ins.layer(ins.default_cam_layer), cams.get_method("gradcam"), deep=False)
    ins.cam_engine.functions.put((ins.default_cam_layer, "gradcam", False),
                                 lambda x, c: calls.append(int(x.shape[0])) or fn(x, c))
    got = ins.gradcam(images, batch_size=5)
    assert calls == [2, 2, 1]
    for a, b in zip(got, want):
        np.testing.assert_allclose(a.raw, b.raw, atol=1e-5)


def test_activations_of_several_images_are_a_list_of_dicts(model, images):
    acts = cv.activations(model, images[:2], preprocess="rescale")
    assert isinstance(acts, list) and len(acts) == 2
    one = cv.activations(model, images[1], preprocess="rescale")
    assert acts[1].keys() == one.keys()
    np.testing.assert_allclose(acts[1]["conv2"], one["conv2"], atol=1e-6)


@pytest.mark.backends
def test_bad_batches_are_clear_errors(model, images):
    with pytest.raises(ConvVizError, match="one per image"):
        cv.gradcam(model, images, preprocess="rescale", class_index=[0, 1])
    with pytest.raises(ConvVizError, match="empty"):
        cv.gradcam(model, [], preprocess="rescale")
