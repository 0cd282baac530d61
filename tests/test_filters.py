"""Filter patterns: batched gradient ascent that is deterministic, cancellable and correct, on every backend."""

from __future__ import annotations

import ast
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import input_gradient, small_convnet
from keras import ops

import convviz_widgets as cv
from convviz_widgets import Cancelled, Inspector
from convviz_widgets.core import feature_viz as fv
from convviz_widgets.core import filters as fp_mod

pytestmark = pytest.mark.backends  # pure core maths: runs under TensorFlow, JAX and PyTorch


def numpy_of(t) -> np.ndarray:
    """A backend tensor as numpy."""
    return np.asarray(ops.convert_to_numpy(ops.stop_gradient(t)))


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
    filters = list(range(12))
    fp = ins.filter_patterns("conv2", filters, size=32, steps=10, seed=3)
    start = fp_mod.start_images(len(filters), 32, 3, 3)
    sub = keras.Model(model.inputs[0], model.get_layer("conv2").output)
    live = [k for k in filters if fp.start_activation[k] > 0][:3]  # the book has no gradient for a silent unit
    assert len(live) == 3  # (each backend draws its own random weights)
    for k in live:
        f = filters[k]
        x = start[k : k + 1]
        for _ in range(10):
            g = input_gradient(lambda im, f=f: ops.mean(sub(im / 255.0)[..., f]), x)
            x = x + g / np.sqrt(np.mean(np.square(g)))  # the book's step, without its + 1e-5
        book_final = float(numpy_of(ops.mean(sub(x / 255.0)[..., f])))
        assert fp.final_activation[k] == pytest.approx(book_final, rel=1e-3, abs=1e-4)


def test_sliced_conv_objective_matches_the_full_layer():
    model = small_convnet(size=32, seed=7)
    ins = Inspector(model, preprocess="rescale")
    node = ins.graph.node("conv2")
    assert fp_mod._sliced_conv(node)
    assert fp_mod._diagonal_conv(node)  # the depthwise "diagonal" objective
    x = np.random.default_rng(0).uniform(0, 255, (3, 32, 32, 3)).astype("float32")
    f = np.array([2, 0, 9], np.int32)
    sliced = fp_mod.build_objective(ins.graph, node, ins.preprocess_fn)(ops.convert_to_tensor(x),
                                                                        ops.convert_to_tensor(f))[1]
    full = numpy_of(keras.Model(ins.graph.input, node.output)(x / 255.0))
    expected = [full[i, ..., f[i]].mean() for i in range(3)]
    np.testing.assert_allclose(numpy_of(sliced), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("layer", [
    keras.layers.Conv2D(6, 3, strides=(2, 1), padding="same", activation="relu", name="target"),  # sliced, not diagonal
    keras.layers.Conv2D(6, 3, strides=2, padding="valid", activation="tanh", name="target"),  # diagonal, strided
    keras.layers.DepthwiseConv2D(3, padding="same", name="target"),  # neither: the whole layer, then each own channel
], ids=["sliced", "diagonal-strided", "whole-layer"])
def test_every_objective_path_is_each_pictures_own_filters_mean(layer):
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((20, 20, 3)), keras.layers.Conv2D(6, 3, name="c1"), layer,
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    ins = Inspector(model, preprocess="rescale")
    node = ins.graph.node("target")
    x = np.random.default_rng(1).uniform(0, 255, (4, 20, 20, 3)).astype("float32")
    f = np.array([5, 0, 3, 3], np.int32)
    got = fp_mod.build_objective(ins.graph, node, ins.preprocess_fn)(ops.convert_to_tensor(x),
                                                                     ops.convert_to_tensor(f))[1]
    full = numpy_of(keras.Model(model.inputs[0], model.get_layer("target").output)(x / 255.0))
    np.testing.assert_allclose(numpy_of(got), [full[i, ..., f[i]].mean() for i in range(4)], rtol=1e-5, atol=1e-6)


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
    Regularization = fv.Regularization
    with pytest.raises(Cancelled):
        ins.filter_patterns("conv1", [0], size=32, steps=10, mode="regularized", progress=lambda i, n: i < 2)
    fp = ins.filter_patterns("conv1", [0], size=32, steps=3, mode="regularized",
                             regularization=Regularization(jitter=0, scale=0.0, rotation=0.0))
    assert fp.images.shape == (1, 32, 32, 3)


def test_unknown_mode_is_a_clear_error(ins):
    with pytest.raises(cv.ConvVizError, match="regularized"):
        ins.filter_patterns("conv1", [0], size=16, steps=1, mode="fancy")


def test_random_transforms_identity_when_disabled():
    reg = fv.Regularization(jitter=0, scale=0.0, rotation=0.0)
    x = np.random.default_rng(0).uniform(size=(2, 16, 16, 3)).astype("float32")
    y = fv.transform(ops.convert_to_tensor(x), fv.random_transforms([0, 5], 16, reg, seed=0, step=3))
    np.testing.assert_allclose(numpy_of(y), x, atol=1e-5)


def test_a_filters_transforms_depend_on_seed_step_and_filter_not_on_its_batch_mates():
    reg = fv.Regularization()
    alone = fv.random_transforms([7], 64, reg, seed=2, step=5)
    np.testing.assert_array_equal(fv.random_transforms([3, 7, 100], 64, reg, seed=2, step=5)[1], alone[0])
    for seed, step in ((3, 5), (2, 6)):
        assert not np.array_equal(fv.random_transforms([7], 64, reg, seed=seed, step=step), alone)
    moves = fv.random_transforms(range(200), 128, reg, seed=0, step=0)
    zoom = np.hypot(moves[:, 0], moves[:, 1])  # 1 / zoom of each rotation-and-zoom
    angle = np.degrees(np.arctan2(moves[:, 1], moves[:, 0]))
    assert (np.abs(1.0 / zoom - 1.0) <= reg.scale + 1e-6).all() and (np.abs(angle) <= reg.rotation + 1e-4).all()
    assert moves.dtype == np.float32 and moves.shape == (200, 8)


def _reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    """Half-sample reflection of whole-number indices (d c b a | a b c d | d c b a)."""
    i = np.mod(i, 2 * n)
    return np.where(i >= n, 2 * n - 1 - i, i)


def test_transform_samples_bilinearly_with_reflected_borders_and_its_gradient_is_the_exact_adjoint():
    reg = fv.Regularization(jitter=40, scale=0.5, rotation=90.0)  # large moves: many reads fall outside
    rng = np.random.default_rng(4)
    x = rng.uniform(size=(3, 12, 10, 2)).astype("float32")
    moves = fv.random_transforms([0, 1, 2], 12, reg, seed=1, step=0)
    got = numpy_of(fv.transform(ops.convert_to_tensor(x), moves.copy()))
    expected = np.zeros_like(x)
    for b in range(3):
        a0, a1, a2, b0, b1, b2 = moves[b, :6].astype(np.float64)
        for yy in range(12):
            for xx in range(10):
                sx, sy = a0 * xx + a1 * yy + a2, b0 * xx + b1 * yy + b2
                x0, y0 = np.floor(sx), np.floor(sy)
                for dy, wy in ((0, 1 - (sy - y0)), (1, sy - y0)):
                    for dx, wx in ((0, 1 - (sx - x0)), (1, sx - x0)):
                        r = _reflect_index(np.array(int(y0) + dy), 12)
                        c = _reflect_index(np.array(int(x0) + dx), 10)
                        expected[b, yy, xx] += wy * wx * x[b, r, c]
    np.testing.assert_allclose(got, expected, atol=2e-5)
    w = rng.normal(size=x.shape).astype("float32")
    grad = input_gradient(lambda im: ops.sum(ops.multiply(fv.transform(im, moves.copy()), w)), x)
    assert float((x * grad).sum()) == pytest.approx(float((got * w).sum()), rel=1e-4)  # <T x, w> = <x, T' w>
    assert np.abs(grad).sum() > 0


@pytest.mark.parametrize("size", [16, 17])
def test_pixels_are_the_inverse_real_fft_of_the_spectrum(size):
    reg = fv.Regularization(decay_power=0.0)  # a flat 1/f weighting: every coefficient scaled by `size`
    params = np.random.default_rng(size).normal(size=(2, 3, size, size // 2 + 1, 2)).astype("float32")
    got = numpy_of(fv.make_pixels(size, reg)(ops.convert_to_tensor(params)))
    spectrum = (params[..., 0] + 1j * params[..., 1]).astype(np.complex128) * size
    image = np.fft.irfft2(spectrum, s=(size, size)).transpose(0, 2, 3, 1) / 4.0 @ fv._COLOR_SQRT.T
    np.testing.assert_allclose(got, 255.0 / (1.0 + np.exp(-image)), atol=2e-3)


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
        step = numpy_of(fp_mod.unit_rms(ops.convert_to_tensor(g)))
        rms = np.sqrt((step.astype(np.float64) ** 2).mean(axis=(1, 2, 3)))
        np.testing.assert_allclose(rms, 1.0, rtol=1e-4)  # the book's "/ (rms + 1e-5)" gives 0.01 at scale 1e-7
        np.testing.assert_allclose(step, g / np.sqrt((g.astype(np.float64) ** 2).mean(axis=(1, 2, 3), keepdims=True)),
                                   rtol=1e-4, atol=1e-6)
    assert not numpy_of(fp_mod.unit_rms(ops.zeros((1, 4, 4, 3)))).any()  # no gradient: no step, no NaN


def _first_layer_gain(model: keras.Model, layer: str, start: np.ndarray, final: np.ndarray,
                      filters: list[int]) -> np.ndarray:
    """Each filter's mean activation on its final picture minus on its start picture, computed with Keras here."""
    conv = model.get_layer(layer)

    def mean_act(x: np.ndarray) -> np.ndarray:
        out = numpy_of(conv(x.astype(np.float32) / 255.0))  # the demo's rescale, then conv + ReLU
        return np.array([out[i, ..., f].mean() for i, f in enumerate(filters)])

    return mean_act(final) - mean_act(start)


def test_the_demo_first_layer_patterns_climb_in_both_recipes():
    from convviz_widgets import demo

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
    grey = numpy_of(fv.make_pixels(96, reg)(ops.convert_to_tensor(fv.init_params(16, 96, reg, 0))))
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


def test_the_pattern_engine_owns_its_caches_and_reads_the_inspector_through_public_members(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    ins.filter_patterns("conv2", [0, 1], size=16, steps=1)
    engine = ins._patterns
    assert ("plain", "conv2", 16, 2) in engine.steps and len(engine.objectives) == 1
    assert not hasattr(ins, "_pattern_fns") and not hasattr(ins, "_objectives")
    source = Path(fp_mod.__file__).with_name("patterns.py").read_text()
    reads = {node.attr for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "ins"}
    assert reads and not {name for name in reads if name.startswith("_")}, reads
    imports = {node.module for node in ast.walk(ast.parse(source)) if isinstance(node, ast.ImportFrom)}
    assert "inspector" not in imports and "tensorflow" not in imports


@pytest.mark.parametrize("module", ["filters", "feature_viz", "patterns"])
def test_the_pattern_maths_uses_no_tensorflow(module):
    tree = ast.parse(Path(fp_mod.__file__).with_name(f"{module}.py").read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {n for n in names if n.split(".")[0] == "tensorflow"}


@pytest.mark.parametrize("preset", ["caffe", "torch", "tf", "rescale", "none"])
def test_every_named_preprocessing_lets_the_ascent_reach_the_pixels(preset: str) -> None:
    """A preset's constants (numpy means and deviations) meet the backend's tensors through keras.ops, so the
    gradient flows on every backend (PyTorch refused `tensor - ndarray` on a tensor that needs a gradient)."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((24, 24, 3)), keras.layers.Conv2D(4, 3, name="c"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2)])
    result = Inspector(model, preprocess=preset).filter_patterns("c", [0, 1], size=24, steps=3, mode="plain")
    assert np.isfinite(result.final_activation).all()
    assert not np.array_equal(result.final_activation, result.start_activation)  # the pixels moved
