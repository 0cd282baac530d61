"""Every built-in CAM method against its paper's formula, written out in numpy, on every Keras backend; the registry.

The model's head is linear after the layer, so the gradient of a class score with respect to the feature
map is the head's kernel column: the oracle needs no automatic differentiation.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet
from keras import ops

import convviz_widgets as cv
from convviz_widgets import cli
from convviz_widgets.core import cams
from convviz_widgets.errors import ConvVizError

CLASS = 1


@pytest.fixture(scope="module")
def linear_model() -> keras.Model:
    """The small convnet with a linear head, so the score the methods explain is the model's output."""
    return small_convnet(activation="linear", seed=3)


@pytest.fixture(scope="module")
def plain(linear_model):
    """Feature map of conv3, its gradient of the class score, and the flatten+dense head, computed by hand."""
    return by_hand(linear_model, rng_image(seed=11))


def by_hand(linear_model: keras.Model, image: np.ndarray) -> tuple:
    """(image, conv3's map, d score / d map, the score, (kernel, bias)) in float64, for the linear-head convnet."""
    x = image[None].astype(np.float32) / 255.0
    conv3 = keras.Model(linear_model.inputs[0], linear_model.get_layer("conv3").output)
    dense = linear_model.get_layer("predictions")
    feats = ops.convert_to_numpy(conv3(x, training=False))[0].astype(np.float64)
    kernel, bias = ops.convert_to_numpy(dense.kernel).astype(np.float64), ops.convert_to_numpy(dense.bias)
    score = float(feats.reshape(-1) @ kernel[:, CLASS] + bias[CLASS])
    grads = kernel[:, CLASS].reshape(feats.shape)  # d score / d feats of a flatten + dense head
    return image, feats, grads, score, (kernel, bias.astype(np.float64))


def package_raw(model, image, method: str, **kw) -> np.ndarray:
    """The package's map before ReLU and scaling."""
    cam = cv.gradcam(model, image, preprocess="rescale", class_index=CLASS, layer="conv3", method=method, **kw)
    assert cam.method == method and cam.layer == "conv3" and cam.class_index == CLASS
    return cam.raw


def close(got: np.ndarray, want: np.ndarray, tol: float = 1e-4) -> None:
    """Equal within `tol` of the map's largest magnitude."""
    np.testing.assert_allclose(got, want, atol=tol * max(1e-6, float(np.abs(want).max())), rtol=0)


@pytest.mark.backends
def test_gradcam_is_mean_gradient_weighted_sum(linear_model, plain):
    image, a, g, _, _ = plain
    close(package_raw(linear_model, image, "gradcam"), (a * g.mean(axis=(0, 1))).sum(-1))


@pytest.mark.backends
def test_channel_weights_come_with_weight_methods_only(linear_model, plain):
    image, a, g, _, _ = plain
    cam = cv.gradcam(linear_model, image, preprocess="rescale", class_index=CLASS, layer="conv3")
    close(cam.weights, g.mean(axis=(0, 1)))
    scored = cv.gradcam(linear_model, image, preprocess="rescale", layer="conv3", method="scorecam", max_channels=4)
    assert scored.weights.shape == (a.shape[-1],) and np.count_nonzero(scored.weights) <= 4
    assert cv.gradcam(linear_model, image, preprocess="rescale", layer="conv3", method="hirescam").weights is None


@pytest.mark.backends
def test_gradcam_plus_plus_is_the_closed_form_alpha(linear_model, plain):
    image, a, g, _, _ = plain
    denom = 2 * g**2 + a.sum(axis=(0, 1)) * g**3
    alpha = np.where(np.abs(denom) > 1e-12, g**2 / np.where(np.abs(denom) > 1e-12, denom, 1), 0)
    close(package_raw(linear_model, image, "gradcam++"), (a * (alpha * np.maximum(g, 0)).sum(axis=(0, 1))).sum(-1))


@pytest.mark.backends
@pytest.mark.backends
def test_gradcam_plus_plus_holds_for_gradients_whose_cubes_overflow_float32():
    model = small_convnet(activation="linear", seed=3)
    dense = model.get_layer("predictions")
    dense.kernel.assign(ops.convert_to_numpy(dense.kernel) * 1e15)  # gradients ~1e14: g^3 > float32's 3.4e38
    image, a, g, _, _ = by_hand(model, rng_image(seed=11))
    assert np.abs(g).max() ** 3 > np.finfo(np.float32).max
    denom = 2 * g**2 + a.sum(axis=(0, 1)) * g**3
    alpha = np.where(np.abs(denom) > 1e-12, g**2 / np.where(np.abs(denom) > 1e-12, denom, 1), 0)
    want = (a * (alpha * np.maximum(g, 0)).sum(axis=(0, 1))).sum(-1)
    assert np.abs(want).max() > 0
    close(package_raw(model, image, "gradcam++"), want)


@pytest.mark.backends
def test_a_model_of_any_size_gets_gradcam_at_each_images_size():
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((None, None, 3)),
                              keras.layers.Conv2D(6, 3, strides=2, activation="relu", name="conv"),
                              keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(3, name="predictions")])
    kernel = ops.convert_to_numpy(model.get_layer("predictions").kernel).astype(np.float64)
    conv = keras.Model(model.inputs[0], model.get_layer("conv").output)
    images = [rng_image(32, 32, seed=13), rng_image(40, 24, seed=14), rng_image(32, 32, seed=15)]
    cams_out = cv.gradcam(model, images, preprocess="rescale", class_index=CLASS, layer="conv")
    for image, cam in zip(images, cams_out):
        a = ops.convert_to_numpy(conv(image[None].astype(np.float32) / 255.0))[0].astype(np.float64)
        weights = kernel[:, CLASS] / (a.shape[0] * a.shape[1])  # the mean gradient under global average pooling
        assert cam.raw.shape == a.shape[:2]
        close(cam.raw, (a * weights).sum(-1))


@pytest.mark.backends
def test_a_layer_feeding_a_skip_path_in_a_model_with_a_layer_named_add_gets_its_full_gradient():
    keras.utils.set_random_seed(9)
    c1, c2 = keras.layers.Conv2D(4, 3, padding="same", name="c1"), keras.layers.Conv2D(4, 3, padding="same", name="c2")
    add, flat, dense = keras.layers.Add(name="add"), keras.layers.Flatten(), keras.layers.Dense(3, name="predictions")
    inp = keras.Input((12, 12, 3))
    first = c1(inp)
    model = keras.Model(inp, dense(flat(add([first, c2(first)]))))
    image = rng_image(12, 12, seed=16)
    a = ops.convert_to_numpy(keras.Model(inp, first)(image[None].astype(np.float32) / 255.0))[0]
    feats_in = keras.Input((12, 12, 4))
    after = keras.Model(feats_in, dense(flat(add([feats_in, c2(feats_in)]))))  # linear in the feature map
    basis = np.eye(a.size, dtype=np.float32).reshape(-1, *a.shape)
    scores = ops.convert_to_numpy(after(np.concatenate([a[None], a[None] + basis])))[:, CLASS].astype(np.float64)
    grads = (scores[1:] - scores[0]).reshape(a.shape)  # exact for a linear map, up to rounding
    cam = cv.gradcam(model, image, preprocess="rescale", class_index=CLASS, layer="c1", method="hirescam")
    close(cam.raw, (grads * a).sum(-1), tol=1e-3)


@pytest.mark.backends
def test_hirescam_is_elementwise_gradient_times_activation(linear_model, plain):
    image, a, g, _, _ = plain
    close(package_raw(linear_model, image, "hirescam"), (g * a).sum(-1))


@pytest.mark.backends
def test_hirescam_draws_a_sum_that_cancels_to_float_rounding_as_zero_not_as_noise():
    # position (0, 0): terms +1000 and -1000 cancel, leaving float32 rounding at most; (0, 1): they add up
    feats = np.array([[[[1000.0, 1000.0], [3.0, 1.0]]]], np.float32)  # (1, 1, 2, 2)
    grads = np.array([[[[1.0, -1.0000001], [1.0, 1.0]]]], np.float32)
    raw = ops.convert_to_numpy(cams.get_method("hirescam").raw_map(ops.convert_to_tensor(feats),
                                                                   ops.convert_to_tensor(grads)))
    assert raw[0, 0, 0] == 0.0  # |sum| below 1e-4 of the sum of |terms|: nothing but rounding
    assert raw[0, 0, 1] == pytest.approx(4.0)  # a sum that does not cancel is kept as it is


@pytest.mark.backends
def test_xgradcam_weights_are_activation_normalised_gradient_sums(linear_model, plain):
    image, a, g, _, _ = plain
    w = (g * a).sum(axis=(0, 1)) / (a.sum(axis=(0, 1)) + 1e-7)
    close(package_raw(linear_model, image, "xgradcam"), (a * w).sum(-1))


@pytest.mark.backends
def test_layercam_is_positive_gradient_times_activation(linear_model, plain):
    image, a, g, _, _ = plain
    close(package_raw(linear_model, image, "layercam"), (np.maximum(g, 0) * a).sum(-1))


@pytest.mark.backends
def test_eigencam_is_the_first_principal_component_with_a_fixed_sign(linear_model, plain):
    image, a, _, _, _ = plain
    flat = a.reshape(-1, a.shape[-1])
    centred = flat - flat.mean(axis=0)
    v = np.linalg.svd(centred, full_matrices=False)[2][0]
    proj = centred @ v
    proj *= np.sign(proj @ centred.sum(axis=1))  # positive correlation with the total activation
    close(package_raw(linear_model, image, "eigencam"), proj.reshape(a.shape[:2]))


@pytest.mark.backends
@pytest.mark.parametrize("max_channels", [None, 6])
def test_ablationcam_is_the_relative_score_drop_of_each_zeroed_channel(linear_model, plain, max_channels):
    image, a, _, score, (kernel, bias) = plain
    keep = np.arange(a.shape[-1])
    if max_channels:
        keep = np.sort(np.argsort(-a.reshape(-1, a.shape[-1]).var(axis=0), kind="stable")[:max_channels])
    w = np.zeros(a.shape[-1])
    for c in keep:
        ablated = a.copy()
        ablated[..., c] = 0
        w[c] = (score - (ablated.reshape(-1) @ kernel + bias)[CLASS]) / score
    close(package_raw(linear_model, image, "ablationcam", max_channels=max_channels), (a * w).sum(-1))


@pytest.mark.backends
def test_every_builtin_method_is_registered_with_a_label_and_tooltip():
    names = cv.cam_methods()
    assert names[:3] == ["gradcam", "gradcam++", "scorecam"]
    assert {"hirescam", "xgradcam", "layercam", "eigencam", "ablationcam"} <= set(names)
    for name in names:
        method = cams.get_method(name)
        assert method.label and method.tooltip


class AbsGrad(cv.CamMethod):
    """A user's toy method written with keras.ops: channels weighted by their mean absolute gradient."""

    name, label, tooltip = "absgrad", "|Grad|-CAM", "mean absolute gradient per channel"

    def weights(self, feats, grads):
        return ops.mean(ops.abs(grads), axis=(1, 2))


class TfAbsGradMap(cv.CamMethod):
    """The same user's method written with TensorFlow ops, as a whole map (for the TensorFlow backend)."""

    name, label, tooltip = "tf_absgrad", "TF |Grad|-CAM", "mean absolute gradient per channel, TensorFlow ops"

    def raw_map(self, feats, grads):
        import tensorflow as tf

        return tf.reduce_sum(feats * tf.reduce_mean(tf.abs(grads), axis=[1, 2])[:, None, None, :], axis=-1)


@pytest.fixture()
def absgrad():
    """|Grad|-CAM registered for one test (the public scoped API): it does not outlive the test."""
    with cv.registered_cam_method(AbsGrad) as method:
        yield method
    assert "absgrad" not in cv.cam_methods()


@pytest.mark.backends
def test_a_user_method_written_with_keras_ops_runs_on_every_backend(linear_model, plain, absgrad):
    image, a, g, _, _ = plain
    close(package_raw(linear_model, image, "absgrad"), (a * np.abs(g).mean(axis=(0, 1))).sum(-1))
    batch = cv.gradcam(linear_model, [image, rng_image(seed=12)], preprocess="rescale", class_index=CLASS,
                       layer="conv3", method="absgrad")
    np.testing.assert_allclose(batch[0].raw, package_raw(linear_model, image, "absgrad"), atol=1e-5)


@pytest.mark.skipif(keras.config.backend() != "tensorflow",
                    reason="a method written with TensorFlow ops runs on the TensorFlow backend only")
def test_a_user_method_written_with_tensorflow_ops_works_on_the_tensorflow_backend(linear_model, plain):
    image, a, g, _, _ = plain
    with cv.registered_cam_method(TfAbsGradMap):
        close(package_raw(linear_model, image, "tf_absgrad"), (a * np.abs(g).mean(axis=(0, 1))).sum(-1))


def test_a_user_method_works_in_the_report_and_the_panel(tmp_path, tiny_model, absgrad):
    out = tmp_path / "report"
    assert cli.main(["report", "--model", "demo", "--out", str(out), "--steps", "1", "--filters", "2",
                     "--patterns", "plain", "--cam-methods", "gradcam,absgrad"]) == 0
    html = (out / "index.html").read_text()
    assert "|Grad|-CAM" in html and (out / "absgrad_top1.png").exists()

    view = cv.CamView(tiny_model, rng_image(seed=4), background=False)
    assert ("|Grad|-CAM", "absgrad") in view.method.options
    view.method.value = "absgrad"
    assert "|Grad|-CAM of" in view.score.value
    assert view.method.tooltips[view.method.options.index(("|Grad|-CAM", "absgrad"))].startswith("mean absolute")


def test_bad_registrations_and_unknown_methods_are_clear_errors():
    class NoRule(cv.CamMethod):
        name = "norule"

    with pytest.raises(ConvVizError, match="weights"):
        cv.register_cam_method(NoRule)
    with pytest.raises(ConvVizError, match="already registered"):
        cv.register_cam_method(type("Other", (AbsGrad,), {"name": "gradcam"}))
    with pytest.raises(ConvVizError, match="hirescam"):
        cv.gradcam(small_convnet(), rng_image(), preprocess="rescale", method="hirescm")
    assert cli.main(["report", "--model", "demo", "--cam-methods", "nope"]) == 2
