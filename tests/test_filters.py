"""Filter patterns: batched gradient ascent that is deterministic, cancellable and correct."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import small_convnet

import convviz_widgets as cv
from convviz_widgets import Cancelled, Inspector
from convviz_widgets.core import filters as fp_mod


@pytest.fixture(scope="module")
def ins():
    return Inspector(small_convnet(size=32, seed=5), preprocess="rescale")


def test_patterns_have_the_documented_shapes(ins):
    fp = ins.filter_patterns("conv2", [0, 3, 11], size=32, steps=5)
    assert fp.images.shape == (3, 32, 32, 3) and fp.images.dtype == np.uint8
    assert fp.start_activation.shape == fp.final_activation.shape == (3,)
    assert fp.layer == "conv2" and fp.filters == (0, 3, 11)


def test_patterns_are_deterministic_for_a_seed(ins):
    a = ins.filter_patterns("conv1", range(4), size=32, steps=5, seed=1)
    b = ins.filter_patterns("conv1", range(4), size=32, steps=5, seed=1)
    c = ins.filter_patterns("conv1", range(4), size=32, steps=5, seed=2)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)


def test_ascent_raises_every_live_filters_activation(ins):
    fp = ins.filter_patterns("conv3", range(8), size=32, steps=30, step_size=4.0)
    live = fp.start_activation > 0  # a ReLU filter that is zero everywhere has no gradient to follow
    assert live.sum() >= 6
    assert (fp.final_activation[live] > 1.3 * fp.start_activation[live]).all()
    assert (fp.final_activation >= fp.start_activation).all()


def test_progress_is_called_each_step_and_false_cancels(ins):
    seen = []
    ins.filter_patterns("conv1", [0], size=16, steps=6, progress=lambda i, n: seen.append((i, n)))
    assert seen == [(i, 6) for i in range(1, 7)]

    def stop_at_three(i, n):
        return i < 3 and None  # None keeps going, False stops

    with pytest.raises(Cancelled, match="after 3 of 40"):
        ins.filter_patterns("conv1", [0, 1], size=16, steps=40, progress=stop_at_three)


def test_progress_may_raise_cancelled(ins):
    def boom(i, n):
        raise Cancelled("user pressed cancel")

    with pytest.raises(Cancelled, match="user pressed"):
        ins.filter_patterns("conv1", [0], size=16, steps=5, progress=boom)


def test_one_batch_equals_the_books_loop_for_the_same_start():
    model = small_convnet(size=32, seed=6)
    ins = Inspector(model, preprocess="rescale")
    filters = [1, 4, 7]
    fp = ins.filter_patterns("conv2", filters, size=32, steps=10, seed=3)
    start = fp_mod.start_images(len(filters), 32, 3, 3)
    sub = keras.Model(model.inputs[0], model.get_layer("conv2").output)
    for k, f in enumerate(filters):
        x = tf.Variable(start[k : k + 1])
        for _ in range(10):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(sub(x / 255.0)[..., f])
            g = tape.gradient(loss, x)
            x.assign_add(g / tf.sqrt(tf.reduce_mean(tf.square(g))))  # the book's step, without its + 1e-5
        book_final = float(tf.reduce_mean(sub(x / 255.0)[..., f]))
        assert fp.final_activation[k] == pytest.approx(book_final, rel=1e-3, abs=1e-4)


def test_sliced_conv_objective_matches_the_full_layer():
    model = small_convnet(size=32, seed=7)
    ins = Inspector(model, preprocess="rescale")
    node = ins.graph.node("conv2")
    assert fp_mod._sliced_conv(node)
    x = tf.constant(np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32"))
    f = tf.constant([2, 0, 9])
    sliced = fp_mod.build_objective(ins.graph, node, ins._preprocess)(x, f)[1]
    full = keras.Model(ins.graph.input, node.output)(x / 255.0)
    expected = [float(tf.reduce_mean(full[i, ..., int(f[i])])) for i in range(3)]
    np.testing.assert_allclose(np.asarray(sliced), expected, rtol=1e-5, atol=1e-6)


def test_pooling_layer_targets_work(ins):
    fp = ins.filter_patterns("pool1", [0, 1], size=32, steps=4)
    assert fp.images.shape == (2, 32, 32, 3)


def test_size_other_than_the_models_input_works_for_conv_prefixes(ins):
    fp = ins.filter_patterns("conv2", [0], size=48, steps=2)
    assert fp.images.shape == (1, 48, 48, 3)


def test_function_shortcut_matches_inspector():
    model = small_convnet(size=32, seed=8)
    a = cv.filter_patterns(model, "conv1", [0, 1], preprocess="rescale", size=16, steps=3)
    b = Inspector(model, preprocess="rescale").filter_patterns("conv1", [0, 1], size=16, steps=3)
    np.testing.assert_array_equal(a.images, b.images)


def test_regularized_mode_raises_activation_and_is_deterministic(ins):
    a = ins.filter_patterns("conv2", [0, 2, 5], size=32, steps=25, mode="regularized", seed=4)
    b = ins.filter_patterns("conv2", [0, 2, 5], size=32, steps=25, mode="regularized", seed=4)
    assert a.images.shape == (3, 32, 32, 3) and a.images.dtype == np.uint8
    np.testing.assert_array_equal(a.images, b.images)
    live = a.start_activation > 0
    assert (a.final_activation[live] > a.start_activation[live]).all()


def test_regularized_mode_honours_cancel_and_settings(ins):
    from convviz_widgets.core.feature_viz import Regularization

    with pytest.raises(Cancelled):
        ins.filter_patterns("conv1", [0], size=32, steps=10, mode="regularized", progress=lambda i, n: i < 2)
    fp = ins.filter_patterns("conv1", [0], size=32, steps=3, mode="regularized",
                             regularization=Regularization(jitter=0, scale=0.0, rotation=0.0))
    assert fp.images.shape == (1, 32, 32, 3)


def test_unknown_mode_is_a_clear_error(ins):
    with pytest.raises(cv.ConvVizError, match="regularized"):
        ins.filter_patterns("conv1", [0], size=16, steps=1, mode="fancy")


def test_random_transforms_identity_when_disabled():
    from convviz_widgets.core.feature_viz import Regularization, random_transforms, transform

    reg = Regularization(jitter=0, scale=0.0, rotation=0.0)
    x = tf.constant(np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32"))
    y = transform(x, random_transforms(2, 16, reg, tf.constant([0, 0])))
    np.testing.assert_allclose(np.asarray(y), np.asarray(x), atol=1e-5)


def test_silent_relu_units_climb_until_they_fire():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(2, 3, activation="relu", name="c", bias_initializer=keras.initializers.Constant(-5.0)),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2),
    ])
    ins = Inspector(model, preprocess="rescale")
    fp = ins.filter_patterns("c", [0, 1], size=16, steps=60, step_size=30.0)
    assert (fp.start_activation == 0).all()  # silent on the grey start: no gradient for the book's loss
    assert (fp.final_activation > 0).all()


def test_filter_counts_can_change_between_calls(ins):
    for n in (1, 4, 2, 7):
        assert ins.filter_patterns("conv3", range(n), size=32, steps=2).images.shape[0] == n


def test_the_step_is_step_size_pixels_rms_however_small_the_gradient():
    rng = np.random.default_rng(0)
    for scale in (1e-9, 1e-7, 1e-3, 1e3):
        g = (rng.normal(size=(2, 8, 8, 3)) * scale).astype(np.float32)
        step = np.asarray(fp_mod.unit_rms(tf.constant(g)))
        rms = np.sqrt((step.astype(np.float64) ** 2).mean(axis=(1, 2, 3)))
        np.testing.assert_allclose(rms, 1.0, rtol=1e-4)  # the book's "/ (rms + 1e-5)" gives 0.01 at scale 1e-7
        np.testing.assert_allclose(step, g / np.sqrt((g.astype(np.float64) ** 2).mean(axis=(1, 2, 3), keepdims=True)),
                                   rtol=1e-4, atol=1e-6)
    assert not np.asarray(fp_mod.unit_rms(tf.zeros((1, 4, 4, 3)))).any()  # no gradient: no step, no NaN


def _first_layer_gain(model: keras.Model, layer: str, start: np.ndarray, final: np.ndarray,
                      filters: list[int]) -> np.ndarray:
    """Each filter's mean activation on its final picture minus on its start picture, computed with Keras here."""
    conv = model.get_layer(layer)

    def mean_act(x: np.ndarray) -> np.ndarray:
        out = np.asarray(conv(tf.constant(x.astype(np.float32) / 255.0)))  # the demo's rescale, then conv + ReLU
        return np.array([out[i, ..., f].mean() for i, f in enumerate(filters)])

    return mean_act(final) - mean_act(start)


def test_the_demo_first_layer_patterns_climb_in_both_recipes():
    from convviz_widgets import demo
    from convviz_widgets.core import feature_viz as fv

    model = demo.load_model()
    ins = Inspector(model, preprocess="rescale")
    filters = list(range(16))
    step, measure = ins._patterns._plain_fns("conv1", 96, 16)
    x0 = fp_mod.start_images(16, 96, 3, 0, demo.FILTER_STEP_SIZE)
    x, _, _ = fp_mod.ascend(step, measure, x0, filters, 40, demo.FILTER_STEP_SIZE, None)
    plain = _first_layer_gain(model, "conv1", x0, x, filters)
    assert np.median(plain) > 0.01  # was 0.0: the + 1e-5 swamped conv1's 2e-7 gradients
    reg = fv.Regularization()
    pictures = ins.filter_patterns("conv1", filters, size=96, steps=40, mode="regularized").images
    grey = np.asarray(fv.make_pixels(96, reg)(tf.constant(fv.init_params(16, 96, reg, 0))))
    regularized = _first_layer_gain(model, "conv1", grey, pictures, filters)
    assert np.median(regularized) > 0.0
    assert (plain > 0).sum() >= 12 and (regularized > 0).sum() >= 10  # silent filters fire too


def test_the_start_is_the_books_for_a_step_of_one_and_its_noise_scales_with_the_step():
    book = fp_mod.start_images(2, 32, 3, seed=4)
    assert 128.0 <= book.min() and book.max() < 148.0 and book.std() > 5.0  # grey + U(0, 20), as in the book
    rng = np.random.default_rng(4)
    expected = rng.random((2, 32, 32, 3), dtype=np.float32) * np.float32(60.0) + np.float32(128.0)
    np.testing.assert_allclose(fp_mod.start_images(2, 32, 3, seed=4, step_size=3.0), expected, rtol=1e-6)
    assert fp_mod.start_images(2, 32, 3, seed=4, step_size=30.0).max() <= 255.0  # a picture, whatever the step
