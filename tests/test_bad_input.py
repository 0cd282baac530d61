"""Bad input gets a clear error that says what was wrong and what to do."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import MOBILENET_WEIGHTS, rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import ConvVizError, Inspector


@pytest.fixture(scope="module")
def ins():
    return Inspector(small_convnet(), preprocess="rescale")


def test_unknown_layer_lists_conv_layers_and_suggests_a_close_name(ins):
    with pytest.raises(ConvVizError) as err:
        ins.activations(rng_image(), layers=["conv_3"])
    msg = str(err.value)
    assert "No layer named 'conv_3'" in msg and "Did you mean 'conv3'" in msg
    assert "conv1, pool1, conv2, pool2, conv3" in msg


def test_dense_or_flatten_layer_as_cam_target_is_refused(ins):
    for name in ("predictions", "flatten"):
        with pytest.raises(ConvVizError, match="no spatial feature map"):
            ins.gradcam(rng_image(), layer=name)


def test_model_without_conv_layers_is_refused():
    mlp = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(4)])
    with pytest.raises(ConvVizError, match="no convolutional layer"):
        Inspector(mlp)


def test_filter_index_beyond_channels_is_refused(ins):
    with pytest.raises(ConvVizError, match=r"has 8 filters \(0..7\)"):
        ins.filter_patterns("conv1", [0, 8], size=16, steps=1)


def test_class_index_out_of_range_is_refused(ins):
    with pytest.raises(ConvVizError, match=r"3 classes \(0..2\)"):
        ins.gradcam(rng_image(), class_index=3)
    with pytest.raises(ConvVizError, match="out of range"):
        ins.gradcam(rng_image(), class_index=-1)


def test_unknown_cam_method_and_preset_are_refused(ins):
    with pytest.raises(ConvVizError, match="gradcam"):
        ins.gradcam(rng_image(), method="magic")
    with pytest.raises(ConvVizError, match="rescale"):
        Inspector(small_convnet(), preprocess="imagenet-ish")


def test_corrupt_keras_file_is_reported(tmp_path):
    bad = tmp_path / "model.keras"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ConvVizError, match="corrupt or truncated"):
        cv.load_model(bad)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_truncated_model_file_is_reported(tmp_path, suffix):
    path = tmp_path / f"m{suffix}"
    small_convnet().save(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ConvVizError, match="corrupt or truncated"):
        cv.load_model(path)


def test_missing_model_file_and_unknown_suffix(tmp_path):
    with pytest.raises(ConvVizError, match="not found"):
        cv.load_model(tmp_path / "none.keras")
    other = tmp_path / "model.onnx"
    other.write_bytes(b"x")
    with pytest.raises(ConvVizError, match="unknown model format"):
        cv.load_model(other)


@pytest.mark.parametrize("suffix", [".keras", ".h5"])
def test_lambda_layer_is_refused_in_safe_mode_and_loads_when_opted_in(tmp_path, suffix):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), keras.layers.Lambda(lambda x: x * 2.0, name="double"),
        keras.layers.Conv2D(2, 3, name="c"), keras.layers.Flatten(), keras.layers.Dense(2),
    ])
    path = tmp_path / f"lam{suffix}"
    model.save(path)
    with pytest.raises(ConvVizError, match=r"Lambda.*safe_mode=False"):
        cv.load_model(path)
    loaded = cv.load_model(path, safe_mode=False)
    assert loaded.get_layer("c").kernel.shape == (3, 3, 3, 2)


def test_weights_only_file_says_how_to_use_it():
    if not MOBILENET_WEIGHTS.exists():
        pytest.skip("needs ../shared/data/mobilenet_2_5_128_tf.h5 (a weights-only file)")
    with pytest.raises(ConvVizError, match="weights only"):
        cv.load_model(MOBILENET_WEIGHTS)


def test_multi_input_model_is_refused_clearly():
    a, b = keras.Input((16, 16, 3)), keras.Input((4,))
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Conv2D(4, 3)(a))
    out = keras.layers.Dense(2)(keras.layers.Concatenate()([x, b]))
    with pytest.raises(ConvVizError, match="2 inputs"):
        Inspector(keras.Model([a, b], out))


def test_subclassed_model_is_refused_clearly():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.c = keras.layers.Conv2D(2, 3)

        def call(self, x):
            return self.c(x)

    net = Net()
    net(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ConvVizError, match="subclassed"):
        Inspector(net)


def test_not_a_model_is_refused():
    with pytest.raises(ConvVizError, match="keras.Model"):
        Inspector(42)


def test_headless_base_model_shows_activations_but_refuses_classes_clearly():
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    ins = Inspector(base)
    assert not ins.has_classes and ins.n_classes == 0
    assert len(ins.activations(rng_image())) == 18
    for call in (lambda: ins.predict(rng_image()), lambda: ins.gradcam(rng_image())):
        with pytest.raises(ConvVizError, match="no class output"):
            call()
