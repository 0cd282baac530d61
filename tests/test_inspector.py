"""Inspector on tiny models: one forward pass, logits under softmax/sigmoid, correct Grad-CAM."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import ConvVizError, Inspector


class CountCalls(keras.layers.Layer):
    """Identity layer that counts how many times it really runs (inside compiled graphs too)."""

    calls = 0

    def call(self, x):
        def bump(t):
            CountCalls.calls += 1
            return t

        y = tf.py_function(bump, [x], x.dtype)
        y.set_shape(x.shape)
        return y


@pytest.mark.backends
def test_activations_cover_conv_and_pool_layers_in_model_order(tiny_model):
    acts = cv.activations(tiny_model, rng_image(), preprocess="rescale")
    assert list(acts) == ["conv1", "pool1", "conv2", "pool2", "conv3"]
    assert acts["conv1"].shape == (32, 32, 8) and acts["pool2"].shape == (8, 8, 12)
    assert all(a.dtype == np.float32 for a in acts.values())


@pytest.mark.backends
def test_activations_equal_a_reference_submodel(tiny_model):
    img = rng_image(seed=3)
    acts = cv.activations(tiny_model, img, preprocess="rescale")
    ref = keras.Model(tiny_model.inputs[0], tiny_model.get_layer("conv2").output)(img[None].astype("float32") / 255.0)
    np.testing.assert_allclose(acts["conv2"], keras.ops.convert_to_numpy(ref)[0], rtol=1e-5, atol=1e-5)


def test_activations_come_from_one_forward_pass():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)), CountCalls(name="counter"),
        keras.layers.Conv2D(4, 3, name="c1"), keras.layers.MaxPooling2D(name="p1"),
        keras.layers.Conv2D(4, 3, name="c2"), keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(2, activation="softmax"),
    ])
    ins = Inspector(model, preprocess="rescale")
    CountCalls.calls = 0
    acts = ins.activations(rng_image(16, 16))
    assert set(acts) == {"c1", "p1", "c2"}
    assert CountCalls.calls == 1
    ins.predict(rng_image(16, 16))  # same image: served from the same pass
    assert CountCalls.calls == 1


@pytest.mark.backends
def test_activations_and_predict_of_one_image_share_one_compiled_pass(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    compiled = ins._activation_fn(None)
    sizes = []
    ins._activation_fns.put(None, lambda x: sizes.append(int(x.shape[0])) or compiled(x))
    img = rng_image(seed=21)
    acts = ins.activations(img)
    preds = ins.predict(img)
    ins.check_finite(img)
    assert sizes == [1]  # one pass of one image served activations, predict and the finiteness check
    outputs = [tiny_model.get_layer("conv1").output, tiny_model.get_layer("predictions").output]
    ref = keras.Model(tiny_model.inputs[0], outputs)
    conv1, probs = (np.asarray(keras.ops.convert_to_numpy(t)) for t in ref(img[None].astype("float32") / 255.0))
    np.testing.assert_allclose(acts["conv1"], conv1[0], rtol=1e-5, atol=1e-5)
    assert [i for i, _, _ in preds] == list(np.argsort(-probs[0], kind="stable"))
    np.testing.assert_allclose([p for _, _, p in preds], np.sort(probs[0])[::-1], rtol=1e-4, atol=1e-6)


@pytest.mark.backends
def test_a_single_sigmoid_unit_predicts_two_classes():
    model = small_convnet(classes=1, activation="sigmoid", seed=1)
    ins = Inspector(model, preprocess="rescale")
    img = rng_image(seed=11)
    p = dict((i, pr) for i, _, pr in ins.predict(img))
    prob = float(keras.ops.convert_to_numpy(model(img[None].astype("float32") / 255.0))[0, 0])
    assert ins.n_classes == 2
    assert p[1] == pytest.approx(prob, rel=1e-4) and p[0] == pytest.approx(1 - prob, rel=1e-4)


@pytest.mark.backends
def test_a_grayscale_model_sees_the_luminance_of_rgb_images():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="c"),
        keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax"),
    ])
    img = rng_image(28, 28, seed=8)
    gray = img.astype(np.float64) @ np.array([0.299, 0.587, 0.114])  # ITU-R 601 luma
    ref = keras.Model(model.inputs[0], model.get_layer("c").output)((gray[None, :, :, None] / 255.0).astype("float32"))
    for preprocess in ("rescale", lambda b: b / 255.0):  # inside the compiled pass, and eagerly
        acts = Inspector(model, preprocess=preprocess).activations([img, img], batch_size=2)
        for one in acts:
            np.testing.assert_allclose(one["c"], keras.ops.convert_to_numpy(ref)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.backends
@pytest.mark.parametrize("units", [3, 40000], ids=["small weight", "weight above CHECK_SLICE, read in slices"])
def test_a_nan_weight_is_refused_when_the_model_is_bound(units):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.Flatten(), keras.layers.Dense(units, name="wide"),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    Inspector(model, preprocess="rescale")  # finite weights bind
    kernel, bias = model.get_layer("wide").get_weights()  # (144, units): 23 MB for 40,000 units
    kernel[-1, -1] = np.nan  # in the last row: a sliced check must read it too
    model.get_layer("wide").set_weights([kernel, bias])
    with pytest.raises(ConvVizError, match=r"weight .*wide.* holds NaN/inf"):
        Inspector(model, preprocess="rescale")


@pytest.mark.backends
def test_activations_accept_explicit_layers_including_non_conv_maps(tiny_model):
    acts = cv.activations(tiny_model, rng_image(), preprocess="rescale", layers=["conv3", "pool1"])
    assert list(acts) == ["conv3", "pool1"]


def test_softmax_head_scores_are_logits_not_probabilities(tiny_model):
    img = rng_image(seed=5)
    cam = cv.gradcam(tiny_model, img, preprocess="rescale", class_index=1)
    logits_model = keras.Model(tiny_model.inputs[0], tiny_model.get_layer("flatten").output)
    dense = tiny_model.get_layer("predictions")
    feats = np.asarray(logits_model(img[None].astype("float32") / 255.0))
    logits = feats @ np.asarray(dense.kernel) + np.asarray(dense.bias)
    assert cam.score == pytest.approx(float(logits[0, 1]), rel=1e-4, abs=1e-4)
    probs = np.exp(logits[0]) / np.exp(logits[0]).sum()
    assert cam.probability == pytest.approx(float(probs[1]), rel=1e-4)


def _reference_gradcam(model, img, class_index):
    """Grad-CAM as the Keras example writes it, for a Sequential conv3 -> flatten -> dense model."""
    x = tf.constant(img[None].astype("float32") / 255.0)
    feat_model = keras.Model(model.inputs[0], model.get_layer("conv3").output)
    head = keras.Sequential([model.get_layer("flatten")])
    dense = model.get_layer("predictions")
    with tf.GradientTape() as tape:
        a = feat_model(x)
        tape.watch(a)
        logit = tf.matmul(head(a), dense.kernel) + dense.bias
        score = logit[0, class_index]
    g = tape.gradient(score, a)[0].numpy()
    w = g.mean(axis=(0, 1))
    return np.maximum((a[0].numpy() * w).sum(-1), 0)


def test_gradcam_matches_the_reference_formula(tiny_model):
    img = rng_image(seed=7)
    checked = 0
    for c in range(3):
        ref = _reference_gradcam(tiny_model, img, c)
        cam = cv.gradcam(tiny_model, img, preprocess="rescale", class_index=c, layer="conv3")
        assert cam.heatmap.shape == (8, 8) and cam.layer == "conv3"
        if ref.max() > 0:
            np.testing.assert_allclose(cam.heatmap, ref / ref.max(), atol=1e-4)
            checked += 1
        else:
            assert cam.heatmap.max() == 0.0
    assert checked >= 1


def test_gradcam_defaults_to_top_class_and_last_spatial_conv(tiny_model):
    img = rng_image(seed=9)
    cam = cv.gradcam(tiny_model, img, preprocess="rescale")
    top = cv.predict(tiny_model, img, preprocess="rescale", top=1)[0][0]
    assert cam.class_index == top and cam.layer == "conv3"
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0


def test_single_sigmoid_unit_has_two_classes_with_negated_logit():
    model = small_convnet(classes=1, activation="sigmoid", seed=1)
    ins = Inspector(model, preprocess="rescale")
    img = rng_image(seed=11)
    assert ins.n_classes == 2
    c1 = ins.gradcam(img, class_index=1)
    c0 = ins.gradcam(img, class_index=0)
    assert c0.score == pytest.approx(-c1.score, abs=1e-5)
    p = dict((i, pr) for i, _, pr in ins.predict(img))
    prob = float(model(img[None].astype("float32") / 255.0)[0, 0])
    assert p[1] == pytest.approx(prob, rel=1e-4) and p[0] == pytest.approx(1 - prob, rel=1e-4)


def test_gradcam_plus_plus_gives_a_valid_map(tiny_model):
    cam = cv.gradcam(tiny_model, rng_image(seed=2), preprocess="rescale", method="gradcam++")
    assert cam.method == "gradcam++" and np.isfinite(cam.heatmap).all()
    assert 0.0 <= cam.heatmap.min() and cam.heatmap.max() <= 1.0


def test_cam_resized_is_bilinear_and_in_range(tiny_model):
    cam = cv.gradcam(tiny_model, rng_image(seed=4), preprocess="rescale")
    big = cam.resized(64, 48)
    assert big.shape == (64, 48) and big.dtype == np.float32
    assert 0.0 <= big.min() and big.max() <= 1.0


def test_constant_image_gives_zero_cam_without_nan():
    model = small_convnet(padding="valid", seed=2)  # no padding: a constant image gives constant maps
    cam = cv.gradcam(model, np.full((32, 32, 3), 90, np.uint8), preprocess="rescale")
    assert np.isfinite(cam.heatmap).all()
    assert cam.heatmap.max() == 0.0


def test_constant_image_on_padded_model_stays_finite(tiny_model):
    cam = cv.gradcam(tiny_model, np.zeros((32, 32, 3), np.uint8), preprocess="rescale")
    assert np.isfinite(cam.heatmap).all() and cam.heatmap.max() <= 1.0


def test_huge_image_is_resized_to_the_model_input(tiny_model):
    huge = np.zeros((6000, 8000, 3), np.uint8)
    huge[:3000] = 255
    ins = Inspector(tiny_model, preprocess="rescale")
    assert ins.prepare(huge).shape == (32, 32, 3)
    cam = ins.gradcam(huge)
    assert np.isfinite(cam.heatmap).all()


@pytest.mark.backends
def test_model_without_fixed_size_caps_large_images():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None, None, 3)), keras.layers.Conv2D(4, 3, padding="same", name="c"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])
    ins = Inspector(model, preprocess="rescale")
    assert max(ins.prepare(np.zeros((6000, 8000, 3), np.uint8)).shape[:2]) == 512
    assert ins.activations(np.zeros((50, 70, 3), np.uint8))["c"].shape == (50, 70, 4)


def test_grayscale_model_takes_rgb_images():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((28, 28, 1)), keras.layers.Conv2D(4, 3, activation="relu", name="c"),
        keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax"),
    ])
    cam = cv.gradcam(model, rng_image(40, 40), preprocess="rescale")
    assert cam.heatmap.shape == (26, 26)


@pytest.mark.backends
def test_preprocess_presets_and_callable_agree():
    x = np.array([[[[0.0, 127.5, 255.0]]]], np.float32)
    assert np.allclose(cv.PRESETS["tf"](x), [-1, 0, 1])
    assert np.allclose(cv.PRESETS["rescale"](x), [0, 0.5, 1])
    caffe = np.asarray(cv.PRESETS["caffe"](x))
    assert np.allclose(caffe, [255 - 103.939, 127.5 - 116.779, 0 - 123.68])
    ins = Inspector(small_convnet(), preprocess=lambda b: b / 255.0)
    ref = Inspector(small_convnet(), preprocess="rescale")
    img = rng_image(seed=1)
    assert np.allclose(ins.activations(img)["conv1"], ref.activations(img)["conv1"], atol=1e-5)


@pytest.mark.backends
def test_keras_applications_preset_is_recognised():
    base = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(32, 32, 3), include_top=False)
    assert Inspector(base).preprocess_name == "tf"
    assert Inspector(small_convnet()).preprocess_name == "rescale"  # documented default


@pytest.mark.backends
def test_class_names_from_list_and_keras_index_file(tmp_path):
    ins = Inspector(small_convnet(), preprocess="rescale", class_names=["cat", "dog", "fox"])
    assert {name for _, name, _ in ins.predict(rng_image())} == {"cat", "dog", "fox"}
    index = tmp_path / "index.json"
    index.write_text('{"0": ["n1", "cat"], "1": ["n2", "dog"], "2": ["n3", "fox"]}')
    ins2 = Inspector(small_convnet(), preprocess="rescale", class_names=str(index))
    assert ins2.class_names == ["cat", "dog", "fox"]
    with pytest.raises(ConvVizError, match="3 classes"):
        Inspector(small_convnet(), class_names=["a", "b"])


@pytest.mark.backends
def test_predict_returns_sorted_top_k(tiny_model):
    preds = cv.predict(tiny_model, rng_image(), preprocess="rescale", top=2)
    assert len(preds) == 2 and preds[0][2] >= preds[1][2]
    assert all(isinstance(i, int) and isinstance(p, float) for i, _, p in preds)


def test_scorecam_is_gradient_free_batched_and_valid(tiny_model):
    img = rng_image(seed=12)
    ins = Inspector(tiny_model, preprocess="rescale")
    a = ins.gradcam(img, method="scorecam", batch_size=3)
    b = ins.gradcam(img, method="scorecam", batch_size=64)
    assert a.method == "scorecam" and a.heatmap.shape == (8, 8)
    np.testing.assert_allclose(a.heatmap, b.heatmap, atol=1e-5)  # batching does not change the map
    assert np.isfinite(a.heatmap).all() and 0.0 <= a.heatmap.min() and a.heatmap.max() <= 1.0


def test_scorecam_weights_are_probability_gains_of_revealed_inputs(tiny_model):
    from convviz_widgets.core.cam import blurred, upsampled_masks

    img = rng_image(seed=13)
    ins = Inspector(tiny_model, preprocess="rescale")
    feats = ins.activations(img)["conv3"]
    x = img[None].astype("float32") / 255.0
    blur = blurred(x[0])[None]
    masks = upsampled_masks(feats, (32, 32))
    probs = np.asarray(tiny_model(x * masks + blur * (1 - masks)))[:, 1] - float(tiny_model(blur)[0, 1])
    raw = np.tensordot(feats, probs, axes=([-1], [0]))
    cam = ins.gradcam(img, method="scorecam", class_index=1)
    np.testing.assert_allclose(cam.raw, raw, rtol=1e-4, atol=1e-5)
