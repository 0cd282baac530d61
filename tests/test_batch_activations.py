"""Activations of several images: one compiled pass per chunk, equal to single calls, in input order."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import no_retracing, rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import demo, limits
from convviz_widgets.core import Inspector, inspector_for
from convviz_widgets.errors import ConvVizError

ATOL = 1e-4


@pytest.fixture(scope="module")
def demo_ins() -> Inspector:
    return Inspector(demo.load_model(), preprocess=demo.PREPROCESS)


@pytest.fixture(scope="module")
def demo_images() -> np.ndarray:
    return np.stack([demo.scene(seed=100 + i).image for i in range(7)])


@pytest.fixture(scope="module")
def small() -> keras.Model:
    return small_convnet(seed=11)


@pytest.fixture(scope="module")
def small_images() -> np.ndarray:
    return np.stack([rng_image(seed=60 + i) for i in range(5)])


@pytest.fixture
def tiny_budget():
    """Set `limits.memory_budget` for one test and restore it afterwards."""
    before = limits.memory_budget
    yield lambda n_bytes: setattr(limits, "memory_budget", int(n_bytes))
    limits.memory_budget = before


def free_size_model() -> keras.Model:
    """A convnet that takes any image size (global pooling before the head)."""
    keras.utils.set_random_seed(3)
    return keras.Sequential([
        keras.Input((None, None, 3)),
        keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1"),
        keras.layers.MaxPooling2D(name="p1"),
        keras.layers.Conv2D(8, 3, padding="same", name="c2"),
        keras.layers.ReLU(name="r2"),
        keras.layers.GlobalAveragePooling2D(name="gap"),
        keras.layers.Dense(3, activation="softmax", name="head"),
    ], name="free_size")


def assert_equal_to_singles(ins: Inspector, images, batch, layers=None) -> None:
    """Each image's dict has the single call's layers, in its order, with values within ATOL."""
    assert isinstance(batch, list) and len(batch) == len(images)
    for image, got in zip(images, batch):
        want = ins.activations(image, layers)
        assert list(got) == list(want)
        for name in want:
            assert got[name].dtype == np.float32 and got[name].shape == want[name].shape
            np.testing.assert_allclose(got[name], want[name], atol=ATOL, rtol=0)


def spy_on_passes(ins: Inspector, names) -> list[int]:
    """Record the batch size of every batched pass the Inspector runs for `names` (None: all layers)."""
    fn = ins._activation_fn(names)
    sizes: list[int] = []
    ins._activation_fns.put(names, lambda x: sizes.append(int(x.shape[0])) or fn(x))
    return sizes


@pytest.mark.backends
@pytest.mark.parametrize("as_list", [False, True], ids=["array", "list"])
def test_a_batch_of_demo_images_equals_single_calls(demo_ins, demo_images, as_list):
    images = list(demo_images) if as_list else demo_images
    assert_equal_to_singles(demo_ins, images, demo_ins.activations(images, batch_size=3))


@pytest.mark.backends
def test_a_batch_runs_one_pass_per_chunk_and_keeps_the_last_chunk_short(demo_ins, demo_images):
    sizes = spy_on_passes(demo_ins, None)
    try:
        batch = demo_ins.activations(demo_images, batch_size=3)
    finally:
        demo_ins._activation_fns.clear()
    assert sizes == [3, 3, 1]
    assert_equal_to_singles(demo_ins, demo_images, batch)


@pytest.mark.backends
def test_a_chunk_is_padded_to_a_compiled_size_and_the_padding_dropped(demo_ins, demo_images):
    sizes = spy_on_passes(demo_ins, None)
    try:
        batch = demo_ins.activations(demo_images[:5], batch_size=5)
    finally:
        demo_ins._activation_fns.clear()
    assert sizes == [6]  # 5 images run as the compiled batch of 6; the copy's results are dropped
    assert len(batch) == 5
    assert_equal_to_singles(demo_ins, demo_images[:5], batch)


@pytest.mark.backends
def test_requested_layers_include_a_non_conv_layer_and_are_batched(demo_ins, demo_images):
    layers = ["bn2", "conv3", "pool1"]
    key = tuple(layers)
    sizes = spy_on_passes(demo_ins, key)
    try:
        batch = demo_ins.activations(list(demo_images[:5]), layers=layers, batch_size=2)
    finally:
        demo_ins._activation_fns.clear()
    assert sizes == [2, 2, 1]  # one pass per chunk gives every requested layer, the non-conv one too
    assert_equal_to_singles(demo_ins, demo_images[:5], batch, layers)


@pytest.mark.backends
def test_the_function_shortcut_batches_a_small_model(small, small_images):
    batch = cv.activations(small, small_images, preprocess="rescale", batch_size=2)
    ins = inspector_for(small, "rescale")
    assert_equal_to_singles(ins, small_images, batch)
    some = cv.activations(small, list(small_images), preprocess="rescale", layers=["conv2", "pool1"], batch_size=4)
    assert_equal_to_singles(ins, small_images, some, ["conv2", "pool1"])


@pytest.mark.backends
def test_a_preprocess_function_outside_the_graph_gives_the_same_batches(small, small_images):
    ins = Inspector(small, preprocess=lambda b: np.asarray(b) / 255.0)  # run eagerly, image by image
    assert not ins._preprocess_in_graph
    assert_equal_to_singles(ins, small_images, ins.activations(small_images, batch_size=2))


@pytest.mark.backends
def test_a_free_size_model_returns_images_of_two_sizes_in_input_order():
    ins = Inspector(free_size_model(), preprocess="rescale")
    images = [rng_image(32, 32, seed=1), rng_image(40, 48, seed=2), rng_image(32, 32, seed=3),
              rng_image(40, 48, seed=4), rng_image(32, 32, seed=5)]
    batch = ins.activations(images, layers=["c1", "r2"], batch_size=2)
    assert [acts["c1"].shape[:2] for acts in batch] == [(32, 32), (40, 48), (32, 32), (40, 48), (32, 32)]
    assert_equal_to_singles(ins, images, batch, ["c1", "r2"])
    assert_equal_to_singles(ins, images, ins.activations(images))


@pytest.mark.backends
@pytest.mark.parametrize("bad", [0, -2, 2.5, True, "8", None])
def test_a_bad_batch_size_is_refused(small, small_images, bad):
    with pytest.raises(ConvVizError, match="batch_size"):
        cv.activations(small, small_images, preprocess="rescale", batch_size=bad)
    with pytest.raises(ConvVizError, match="batch_size"):
        Inspector(small, preprocess="rescale").activations(small_images[0], batch_size=bad)


@pytest.mark.backends
def test_a_layer_that_is_not_a_feature_map_is_refused_before_any_pass(demo_ins, demo_images):
    with pytest.raises(ConvVizError, match="not a feature map"):
        demo_ins.activations(demo_images, layers=["conv1", "gap"])


@pytest.mark.backends
def test_an_empty_list_gives_an_empty_list_and_no_layers_give_empty_dicts(small, small_images):
    assert cv.activations(small, [], preprocess="rescale") == []
    assert cv.activations(small, small_images[:2], preprocess="rescale", layers=[]) == [{}, {}]


@pytest.mark.backends
def test_a_budget_for_one_image_gives_chunks_of_one_and_the_same_values(demo_images, tiny_budget):
    ins = Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
    want = ins.activations(demo_images[:4], batch_size=4)
    keep = set(ins.layers)
    tiny_budget(ins.footprint().forward(ins.input_size, keep) * 1.5)
    sizes = spy_on_passes(ins, None)
    got = ins.activations(demo_images[:4], batch_size=4)
    assert sizes == [1, 1, 1, 1]
    for a, b in zip(got, want):
        assert list(a) == list(b)
        for name in a:
            np.testing.assert_allclose(a[name], b[name], atol=ATOL, rtol=0)


@pytest.mark.backends
def test_a_padded_pass_never_exceeds_the_budget(demo_images, tiny_budget):
    ins = Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
    per_image = ins.footprint().forward(ins.input_size, set(ins.layers))
    tiny_budget(per_image * 5.5)  # room for 5 images: a chunk of 5 would run padded to 6
    sizes = spy_on_passes(ins, None)
    got = ins.activations(demo_images[:5], batch_size=5)
    assert sizes == [4, 1] and max(sizes) * per_image <= per_image * 5.5
    assert_equal_to_singles(ins, demo_images[:5], got)


@pytest.mark.backends
def test_a_budget_too_small_for_one_image_is_a_clear_error(small, small_images, tiny_budget):
    tiny_budget(1000)
    with pytest.raises(ConvVizError, match="memory budget"):
        Inspector(small, preprocess="rescale").activations(small_images, batch_size=4)


@pytest.mark.backends
def test_nan_in_one_image_of_a_batch_names_the_layer_and_the_image():
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="linear_conv"),
                              keras.layers.ReLU(name="relu"), keras.layers.GlobalAveragePooling2D(name="gap"),
                              keras.layers.Dense(2, activation="softmax", name="head")])
    ins = Inspector(model, preprocess=lambda b: keras.ops.log(keras.ops.cast(b, "float32") - 1.0))  # NaN at pixel 0
    good = np.full((16, 16, 3), 200, np.uint8)
    bad = good.copy()
    bad[3, 4] = 0
    assert len(ins.activations([good, good], batch_size=2)) == 2
    with pytest.raises(ConvVizError, match=r"(?s)image 1 of the batch.*layer 'linear_conv'.*NaN"):
        ins.activations([good, bad, good], batch_size=3)
    with pytest.raises(ConvVizError, match=r"(?s)layer 'linear_conv'.*NaN"):
        ins.activations(bad)


def test_changing_batch_counts_never_warns_about_retracing(demo_ins, demo_images):
    with no_retracing():
        for n in (1, 2, 3, 5, 7, 4, 6):
            demo_ins.activations(demo_images[:n], batch_size=4)
            demo_ins.activations(list(demo_images[:n]), layers=["bn1", "conv2"], batch_size=3)


@pytest.mark.backends
def test_activations_are_read_only_views_so_the_cache_cannot_be_changed(demo_ins, demo_images):
    """No copies (a VGG16 image's layers hold 60 MB): writing is refused, so the forward cache stays right."""
    before = demo_ins.activations(demo_images[0])["conv1"].copy()
    for acts in (demo_ins.activations(demo_images[0]), *demo_ins.activations(demo_images[:3], batch_size=2)):
        with pytest.raises(ValueError, match="read-only"):
            acts["conv1"][:, :, 4] -= acts["conv1"][:, :, 4].mean()
    channel_image = demo_ins.activations(demo_images[0])["conv1"][:, :, 4].copy()
    channel_image -= channel_image.mean()  # the book's loop, on a copy (as the README says)
    np.testing.assert_array_equal(demo_ins.activations(demo_images[0])["conv1"], before)
