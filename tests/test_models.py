"""Models people really have: nested sub-models, legacy Keras-2 .h5 files, softmax heads."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import Inspector


@pytest.fixture(scope="module")
def nested_vgg():
    """VGG16 (weights=None) as the base of a Sequential with a dense head, as in the book."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    return keras.Sequential([
        keras.Input((64, 64, 3)), base, keras.layers.Flatten(),
        keras.layers.Dense(32, activation="relu"), keras.layers.Dense(1, activation="sigmoid"),
    ], name="cats_vs_dogs")


def test_nested_model_activations_include_inner_layers_with_qualified_names(nested_vgg):
    acts = cv.activations(nested_vgg, rng_image(64, 64), preprocess="caffe")
    names = list(acts)
    assert names[0] == "vgg16/block1_conv1" and names[-1] == "vgg16/block5_pool"
    assert len(names) == 18  # 13 convs + 5 pools
    assert acts["vgg16/block3_conv1"].shape == (16, 16, 256)


def test_nested_model_gradcam_at_block5_conv3(nested_vgg):
    ins = Inspector(nested_vgg, preprocess="caffe")
    assert ins.default_cam_layer == "vgg16/block5_conv3"
    assert ins.preprocess_name == "caffe"
    cam = ins.gradcam(rng_image(64, 64, seed=1), layer="block5_conv3")  # inner name works too
    assert cam.layer == "vgg16/block5_conv3" and cam.heatmap.shape == (4, 4)
    assert np.isfinite(cam.heatmap).all()
    assert ins.n_classes == 2


def test_nested_model_filter_patterns_reach_inner_layers(nested_vgg):
    fp = cv.filter_patterns(nested_vgg, "vgg16/block2_conv1", [0, 5], preprocess="caffe", size=32, steps=3)
    assert fp.images.shape == (2, 32, 32, 3) and fp.layer == "vgg16/block2_conv1"


def test_user_model_is_not_changed_by_inspection(nested_vgg):
    before = [w.copy() for w in nested_vgg.get_weights()]
    n_layers = len(nested_vgg.layers)
    ins = Inspector(nested_vgg, preprocess="caffe")
    ins.gradcam(rng_image(64, 64))
    ins.filter_patterns("vgg16/block1_conv1", [0], size=16, steps=2)
    assert len(nested_vgg.layers) == n_layers
    assert all(np.array_equal(a, b) for a, b in zip(before, nested_vgg.get_weights()))
    assert nested_vgg.layers[-1].activation.__name__ == "sigmoid"


def test_functional_model_with_branches_is_traced():
    inp = keras.Input((24, 24, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", name="a")(inp)
    b = keras.layers.Conv2D(4, 1, name="b")(inp)
    x = keras.layers.Add(name="add")([a, b])
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax")(x)
    ins = Inspector(keras.Model(inp, out), preprocess="rescale")
    assert ins.layers == ["a", "b"]
    assert ins.default_cam_layer == "relu"  # after the residual add and its activation
    assert ins.gradcam(rng_image(24, 24)).heatmap.shape == (24, 24)


def test_keras3_legacy_h5_round_trip(tmp_path):
    model = small_convnet(classes=1, activation="sigmoid")
    path = tmp_path / "small.h5"
    model.save(path)
    loaded = cv.load_model(path)
    img = rng_image(seed=4)
    a = cv.activations(model, img, preprocess="rescale")
    b = cv.activations(loaded, img, preprocess="rescale")
    assert list(a) == list(b)
    np.testing.assert_allclose(a["conv3"], b["conv3"], atol=1e-6)
    assert cv.gradcam(loaded, img, preprocess="rescale").score == pytest.approx(
        cv.gradcam(model, img, preprocess="rescale").score, abs=1e-5)


def test_keras2_h5_file_of_the_books_model_loads(tmp_path):
    k2 = pytest.importorskip("tf_keras", reason="tf-keras (Keras 2) writes a genuine Keras-2 .h5 file")
    k2.utils.set_random_seed(0)
    layers = k2.layers
    book = k2.Sequential([
        layers.Conv2D(32, 3, activation="relu", input_shape=(64, 64, 3)), layers.MaxPooling2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPooling2D(),
        layers.Flatten(), layers.Dropout(0.5),
        layers.Dense(32, activation="relu"), layers.Dense(1, activation="sigmoid"),
    ])
    book.compile(optimizer=k2.optimizers.RMSprop(1e-4), loss="binary_crossentropy", metrics=["acc"])
    path = tmp_path / "cats_and_dogs_small_2.h5"
    book.save(path)
    model = cv.load_model(path)
    img = rng_image(64, 64, seed=2)
    ref = float(book.predict(img[None].astype("float32") / 255.0, verbose=0)[0, 0])
    preds = dict((i, p) for i, _, p in cv.predict(model, img, preprocess="rescale"))
    assert preds[1] == pytest.approx(ref, rel=1e-4, abs=1e-6)
    cam = cv.gradcam(model, img, preprocess="rescale")
    assert cam.layer == model.layers[2].name and cam.heatmap.shape == (29, 29)


def test_softmax_activation_layer_head_uses_its_input_as_logits():
    keras.utils.set_random_seed(3)
    inp = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="c")(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    z = keras.layers.Dense(3, name="logits")(x)
    out = keras.layers.Activation("softmax", name="probs")(z)
    model = keras.Model(inp, out)
    ins = Inspector(model, preprocess="rescale")
    assert ins.graph.head.activation == "softmax"
    img = rng_image(16, 16)
    logits = keras.Model(inp, z)(img[None].astype("float32") / 255.0)
    assert ins.gradcam(img, class_index=0).score == pytest.approx(float(logits[0, 0]), abs=1e-5)


def test_a_model_with_a_layer_named_image_can_be_explained():
    """The traced graph's own input never takes a name a user's layer may have (here "image")."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="image")(inputs)
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(2)(x))
    ins = cv.Inspector(model, preprocess="rescale")
    rng = np.random.default_rng(0)
    cam = ins.gradcam(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    assert ins.layers == ["image"] and cam.heatmap.shape == (30, 30)
