"""Property-based checks over the API's arguments: a ConvVizError or a correct result, nothing else."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import rng_image, small_convnet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import convviz_widgets as cv
from convviz_widgets.metrics import deletion_curve

SETTINGS = settings(max_examples=20, derandomize=True, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
JUNK = st.one_of(st.none(), st.booleans(), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                 st.just(1.7), st.just("2"), st.just(np.float32(1.0)))
MODEL = small_convnet(seed=7)
INS = cv.Inspector(MODEL, preprocess="rescale")
IMAGE = rng_image(32, 32, seed=8)


def _integral(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def _outcome(call):
    """The result, or None when the call raised a ConvVizError (any other exception fails the test)."""
    try:
        return call()
    except cv.ConvVizError as err:
        assert str(err)  # a message saying what was wrong
        return None


@SETTINGS
@given(st.one_of(st.integers(-3, 5), st.sampled_from([np.int64(1), np.int32(2)]), JUNK))
def test_class_index_is_an_existing_whole_number(class_index):
    cam = _outcome(lambda: INS.gradcam(IMAGE, class_index=class_index))
    valid = class_index is None or (_integral(class_index) and 0 <= class_index < 3)
    assert (cam is not None) == valid
    if cam is not None:
        assert class_index is None or cam.class_index == int(class_index)
        assert np.isfinite(cam.heatmap).all() and 0.0 <= cam.heatmap.min() <= cam.heatmap.max() <= 1.0


@SETTINGS
@given(st.one_of(st.integers(-3, 6), JUNK))
def test_top_is_at_least_one(top):
    preds = _outcome(lambda: INS.predict(IMAGE, top=top))
    valid = _integral(top) and top >= 1
    assert (preds is not None) == valid
    if preds is not None:
        values = [v for _, _, v in preds]
        assert len(preds) == min(int(top), 3) and values == sorted(values, reverse=True)


@SETTINGS
@given(st.one_of(st.integers(-2, 3), st.sampled_from([np.int64(2)]), JUNK),
       st.one_of(st.floats(-2.0, 4.0), st.sampled_from([float("nan"), float("inf"), 0.0, 2, np.float32(0.5)]), JUNK))
def test_steps_and_step_size(steps, step_size):
    fp = _outcome(lambda: INS.filter_patterns("conv1", [0, 1], size=16, steps=steps, step_size=step_size))
    valid = (_integral(steps) and steps >= 0 and not isinstance(step_size, (bool, np.bool_, str))
             and step_size is not None and np.isfinite(float(step_size)) and float(step_size) > 0)
    assert (fp is not None) == valid
    if fp is not None:
        assert fp.images.shape == (2, 16, 16, 3) and fp.images.dtype == np.uint8


@SETTINGS
@given(st.sampled_from([-1, 0, 7, 8, 16, np.int64(16), 4097, 10**9, 8.0, True, "16", None]))
def test_size_is_a_whole_number_in_range(size):
    fp = _outcome(lambda: INS.filter_patterns("conv1", [3], size=size, steps=1))
    valid = _integral(size) and 8 <= size <= 4096
    assert (fp is not None) == valid
    if fp is not None:
        assert fp.images.shape == (1, int(size), int(size), 3)


@SETTINGS
@given(st.one_of(st.lists(st.one_of(st.integers(-2, 10), st.booleans(), st.floats(0, 5)), max_size=4),
                 st.integers(-1, 9), JUNK))
def test_filters_are_whole_numbers_of_the_layer(filters):
    fp = _outcome(lambda: INS.filter_patterns("conv1", filters, size=16, steps=1))
    items = [filters] if not isinstance(filters, list) else filters
    valid = bool(items) and all(_integral(f) and 0 <= f < 8 for f in items)
    assert (fp is not None) == valid
    if fp is not None:
        assert fp.filters == tuple(int(f) for f in items) and len(fp.images) == len(items)


LAYERS = [None, "conv1", "pool1", "conv3", "flatten", "predictions", "nope", "", 3, b"conv1",
          MODEL.get_layer("conv2"), MODEL.get_layer("flatten")]


@SETTINGS
@given(st.sampled_from(LAYERS), st.one_of(st.sampled_from(["gradcam", "GradCAM++", "scorecam", "grad-cam", ""]),
                                          JUNK))
def test_layer_and_method(layer, method):
    cam = _outcome(lambda: INS.gradcam(IMAGE, layer=layer, method=method))
    name = getattr(layer, "name", layer)
    valid_layer = layer is None or name in ("conv1", "pool1", "conv2", "conv3")
    valid_method = isinstance(method, str) and method.lower() in ("gradcam", "gradcam++", "scorecam")
    assert (cam is not None) == (valid_layer and valid_method)
    if cam is not None:
        expected = INS.layer(name or INS.default_cam_layer).shape[1:3]
        assert cam.heatmap.shape == tuple(expected)


@SETTINGS
@given(st.one_of(st.integers(-2, 40), JUNK))
def test_batch_size_is_at_least_one(batch_size):
    curve = _outcome(lambda: deletion_curve(INS, IMAGE, None, 1, steps=4, order="random", batch_size=batch_size))
    cam = _outcome(lambda: INS.gradcam(IMAGE, method="scorecam", batch_size=batch_size))
    valid = _integral(batch_size) and batch_size >= 1
    assert (curve is not None) == valid and (cam is not None) == valid
    if curve is not None:
        assert curve.probabilities.shape == (5,) and 0.0 <= curve.auc <= 1.0


def _two_headed():
    import keras

    keras.utils.set_random_seed(0)
    x = keras.Input((32, 32, 3))
    g = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3, name="conv")(x))
    return keras.Model(x, [keras.layers.Dense(4, name="box")(g),
                           keras.layers.Dense(3, activation="softmax", name="cls")(g)])


HEADS = _two_headed()


@SETTINGS
@given(st.one_of(st.sampled_from(["box", "cls", "x", 0, 1, 2, -1, np.int64(1)]), JUNK))
def test_output_is_a_name_or_index_of_an_output(output):
    ins = _outcome(lambda: cv.Inspector(HEADS, preprocess="rescale", output=output))
    digits = isinstance(output, str) and output in ("0", "1")  # an index read from the command line
    valid = output in ("box", "cls") or digits or (_integral(output) and 0 <= output < 2)
    assert (ins is not None) == valid
    if ins is not None:
        index = {"box": 0, "cls": 1}.get(output) if output in ("box", "cls") else int(output)
        assert ins.output_index == index and ins.n_classes == (4, 3)[index]
        assert ins.score_label == ("score", "probability")[index]


def test_a_keras_layer_object_is_taken_by_its_name():
    fp = INS.filter_patterns(MODEL.get_layer("conv2"), [0], size=16, steps=1)
    assert fp.layer == "conv2"
    assert set(INS.activations(IMAGE, layers=MODEL.get_layer("pool1"))) == {"pool1"}


@pytest.mark.parametrize("mode", [None, 3, "fancy", "PLAIN"])
def test_mode_is_a_string_of_the_known_modes(mode):
    fp = _outcome(lambda: INS.filter_patterns("conv1", [0], size=16, steps=1, mode=mode))
    assert (fp is not None) == (mode == "PLAIN")
