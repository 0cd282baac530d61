"""Dataset examples (top_examples): brute-force agreement, every kind of source, bad images, memory, crops."""

from __future__ import annotations

import gc

import keras
import numpy as np
import pytest
from conftest import input_gradient
from PIL import Image

import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.core.examples import receptive_field

N_SCENES = 50


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return demo.load_model()


@pytest.fixture(scope="module")
def scenes() -> np.ndarray:
    """50 demo scenes, uint8 (50, 96, 96, 3)."""
    return np.stack([demo.scene(seed=i).image for i in range(N_SCENES)])


def brute_force(model: keras.Model, layer: str, images: np.ndarray, k: int):
    """Every image's per-channel maximum from a plain model call, sorted (ties: earlier image first)."""
    ins = cv.core.inspector_for(model)
    trunc = keras.Model(ins.graph.input, ins.layer(layer).output)
    feats = keras.ops.convert_to_numpy(trunc(images.astype(np.float32) / 255.0, training=False))
    n, _, w, c = feats.shape
    flat = feats.reshape(n, -1, c)
    peaks = flat.max(axis=1)  # (N, C)
    where = flat.argmax(axis=1)
    order = np.stack([np.lexsort((np.arange(n), -peaks[:, ch]))[:k] for ch in range(c)])
    values = np.take_along_axis(peaks.T, order, axis=1)
    cells = np.take_along_axis(where.T, order, axis=1)
    return order, values, np.stack([cells // w, cells % w], axis=-1), feats


@pytest.mark.backends
@pytest.mark.parametrize("layer", ["conv5", "pool2"])
def test_top_examples_match_brute_force(model, scenes, layer):
    result = cv.top_examples(model, layer, scenes, k=9, batch_size=16)
    order, values, positions, feats = brute_force(model, layer, scenes, 9)
    assert result.count == N_SCENES and result.skipped == 0 and result.layer == layer
    assert result.indices.shape == (feats.shape[-1], 9)
    # 1e-5, plus float32 rounding of values near 50 (oneDNN sums in a batch-size dependent order)
    np.testing.assert_allclose(result.values, values, atol=1e-5, rtol=1e-6)
    # the ranking equals brute force wherever neighbouring values are not within float noise of each other
    gaps = np.abs(np.diff(values, axis=1)) > 1e-4
    clear = np.concatenate([gaps[:, :1], gaps[:, 1:] & gaps[:, :-1], gaps[:, -1:]], axis=1)
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(result.indices[clear], order[clear])
    # each position holds that image's maximum in that channel
    ch = np.arange(feats.shape[-1])[:, None]
    at = feats[result.indices, result.positions[..., 0], result.positions[..., 1], ch]
    np.testing.assert_allclose(at, result.values, atol=1e-5, rtol=1e-6)
    np.testing.assert_array_equal(result.positions[clear], positions[clear])
    assert np.all(np.diff(result.values, axis=1) <= 0)


def assert_same_examples(model, ref, sources: dict) -> None:
    """Each source gives exactly the reference's examples."""
    for name, source in sources.items():
        got = cv.top_examples(model, "conv4", source, k=4, batch_size=8)
        assert got.count == N_SCENES, name
        np.testing.assert_array_equal(got.indices, ref.indices, err_msg=name)
        np.testing.assert_allclose(got.values, ref.values, atol=1e-6, err_msg=name)
        np.testing.assert_array_equal(got.positions, ref.positions, err_msg=name)


@pytest.mark.backends
def test_same_result_from_array_generator_tensor_and_folder(model, scenes, tmp_path):
    ref = cv.top_examples(model, "conv4", scenes, k=4, batch_size=8)
    for i, image in enumerate(scenes):
        Image.fromarray(image).save(tmp_path / f"scene_{i:03d}.png")
    assert_same_examples(model, ref, {
        "generator": (s for s in scenes),
        "list of PIL": [Image.fromarray(s) for s in scenes],
        "backend tensor": keras.ops.convert_to_tensor(scenes),
        "folder": str(tmp_path),
    })


def test_same_result_from_a_tf_data_dataset(model, scenes):
    tf = pytest.importorskip("tensorflow", reason="tf.data datasets need TensorFlow")
    ref = cv.top_examples(model, "conv4", scenes, k=4, batch_size=8)
    labels = np.arange(N_SCENES)
    assert_same_examples(model, ref, {
        "dataset": tf.data.Dataset.from_tensor_slices(scenes),
        "dataset batched with labels": tf.data.Dataset.from_tensor_slices((scenes, labels)).batch(7),
    })


@pytest.mark.backends
def test_inspector_method_equals_function(model, scenes):
    ins = cv.Inspector(model)
    a = ins.top_examples("conv3", scenes[:20], k=3, channels=[5, 0, 7])
    b = cv.top_examples(model, "conv3", scenes[:20], k=3, channels=[5, 0, 7])
    assert a.channels == (5, 0, 7)
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    full = cv.top_examples(model, "conv3", scenes[:20], k=3)
    np.testing.assert_array_equal(a.indices, full.indices[[5, 0, 7]])


@pytest.mark.backends
def test_corrupt_file_in_folder_is_skipped_and_counted(model, scenes, tmp_path):
    for i, image in enumerate(scenes[:6]):
        Image.fromarray(image).save(tmp_path / f"{i}.png")
    (tmp_path / "3.png").write_bytes(b"\x89PNG\r\n\x1a\n this is not a picture")
    (tmp_path / "notes.txt").write_text("not an image, not counted")
    result = cv.top_examples(model, "conv2", str(tmp_path), k=2)
    assert (result.count, result.skipped) == (5, 1)
    assert len(result.skip_reasons) == 1 and result.skip_reasons[0].startswith("image 3:")
    assert 3 not in result.indices


@pytest.mark.backends
def test_bad_items_in_a_stream_are_skipped(model, scenes):
    stream = [scenes[0], np.zeros((5,), np.uint8), "no/such/file.png", scenes[1], b"junk", scenes[2]]
    result = cv.top_examples(model, "conv2", stream, k=3)
    assert (result.count, result.skipped) == (3, 3)
    assert set(result.indices.ravel()) == {0, 3, 5}


@pytest.mark.backends
def test_nothing_readable_is_an_error(model):
    with pytest.raises(cv.ConvVizError, match="None of the 2 images"):
        cv.top_examples(model, "conv2", [b"junk", np.zeros(4)], k=1)
    with pytest.raises(cv.ConvVizError, match="held no images"):
        cv.top_examples(model, "conv2", iter([]), k=1)


@pytest.mark.backends
def test_k_larger_than_the_stream(model, scenes):
    result = cv.top_examples(model, "conv5", scenes[:5], k=20)
    assert result.indices.shape == (128, 5) and result.positions.shape == (128, 5, 2)
    assert all(sorted(row) == [0, 1, 2, 3, 4] for row in result.indices.tolist())


@pytest.mark.backends
def test_ties_go_to_the_earlier_image(model, scenes):
    same = np.repeat(scenes[:1], 12, axis=0)
    result = cv.top_examples(model, "conv3", same, k=4, batch_size=5)
    np.testing.assert_array_equal(result.indices, np.tile(np.arange(4), (64, 1)))


@pytest.mark.backends
def test_progress_reports_and_cancels(model, scenes):
    seen = []
    cv.top_examples(model, "conv1", scenes[:20], k=2, batch_size=8, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(8, 20), (16, 20), (20, 20)]
    with pytest.raises(cv.Cancelled):
        cv.top_examples(model, "conv1", scenes[:20], k=2, batch_size=8, progress=lambda d, t: False)
    calls = []

    def stop(done, total):
        calls.append(done)
        raise cv.Cancelled("stop")

    with pytest.raises(cv.Cancelled):
        cv.top_examples(model, "conv1", (s for s in scenes), k=2, batch_size=8, progress=stop)
    assert calls == [8]


@pytest.mark.backends
@pytest.mark.parametrize("kwargs, message", [
    ({"k": 0}, "k = 0 is below its lower bound 1"),
    ({"k": 2.5}, "k must be a whole number"),
    ({"k": True}, "k must be a whole number"),
    ({"batch_size": 0}, "batch_size = 0 is below its lower bound 1"),
    ({"channels": [0, 200]}, "not channels of layer"),
    ({"channels": [1, 1]}, "twice"),
    ({"channels": []}, "empty"),
    ({"layer": "gap"}, "no spatial feature map"),
    ({"layer": "conv9"}, "No layer named"),
    ({"images": None}, "images is None"),
    ({"images": np.zeros((96, 96, 3), np.uint8)}, "single image goes in a list"),
    ({"images": np.zeros((0, 96, 96, 3), np.uint8)}, "no images"),
    ({"images": 42}, "Cannot stream images"),
    ({"progress": "yes"}, "progress must be"),
    ({"images": iter([]), "k": 10**12}, "k = 1000000000000 is above its upper bound 1,000"),
])
def test_bad_arguments_are_refused_before_work(model, scenes, kwargs, message):
    args = {"layer": "conv2", "images": scenes[:3], **kwargs}
    with pytest.raises(cv.ConvVizError, match=message):
        cv.top_examples(model, args.pop("layer"), args.pop("images"), **args)


@pytest.mark.backends
def test_empty_folder_and_file_path_are_refused(model, tmp_path):
    with pytest.raises(cv.ConvVizError, match="no image files"):
        cv.top_examples(model, "conv2", str(tmp_path))
    path = tmp_path / "one.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(path)
    with pytest.raises(cv.ConvVizError, match="not a folder"):
        cv.top_examples(model, "conv2", str(path))


@pytest.mark.backends
def test_subfolders_only_when_recursive(model, scenes, tmp_path):
    (tmp_path / "b").mkdir()
    Image.fromarray(scenes[0]).save(tmp_path / "a.png")
    Image.fromarray(scenes[1]).save(tmp_path / "b" / "c.png")
    assert cv.top_examples(model, "conv1", str(tmp_path), k=1).count == 1
    assert cv.top_examples(model, "conv1", str(tmp_path), k=1, recursive=True).count == 2


@pytest.mark.backends
def test_thousands_of_images_in_bounded_memory(model):
    psutil = pytest.importorskip("psutil", reason="psutil measures the process's resident memory")
    process = psutil.Process()
    rss = {}

    def stream(n):
        rng = np.random.default_rng(0)
        for _ in range(n):
            yield rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)

    def watch(done, total):
        if done == 512:
            gc.collect()
            rss["warm"] = process.memory_info().rss

    result = cv.top_examples(model, "conv1", stream(3000), k=9, batch_size=64, progress=watch)
    gc.collect()
    growth = process.memory_info().rss - rss["warm"]
    assert result.count == 3000 and result.indices.max() < 3000
    # keeping the 2,500 later images would take 69 MB (uint8) or 1.4 GB (their conv1 maps)
    assert growth < 40 * 2**20, f"RSS grew {growth / 2**20:.1f} MB after warm-up"


def linear_probe_model(size: tuple = (61, 57)) -> keras.Model:
    """Linear layers of every kind the field follows: 'valid'/'same', strides, dilation, padding, pooling."""
    keras.utils.set_random_seed(3)
    x = keras.Input((*size, 3))
    y = keras.layers.ZeroPadding2D(((2, 1), (0, 3)))(x)
    y = keras.layers.Conv2D(4, (5, 3), strides=2, padding="valid", name="c1")(y)
    y = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="p1")(y)
    y = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="c2")(y)
    y = keras.layers.DepthwiseConv2D(3, strides=2, padding="same", name="c3")(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    return keras.Model(x, keras.layers.Dense(2)(y))


@pytest.mark.backends
@pytest.mark.parametrize("layer", ["c1", "p1", "c2", "c3"])
def test_receptive_field_is_where_the_gradient_reaches(layer):
    model = linear_probe_model()
    ins = cv.Inspector(model, preprocess="none")
    node = ins.layer(layer)
    rf = receptive_field(ins.graph, node)
    trunc = keras.Model(ins.graph.input, node.output)
    x = np.random.default_rng(0).normal(size=(1, 61, 57, 3)).astype(np.float32)
    h, w = node.shape[1:3]
    for row, col in {(0, 0), (h // 2, w // 2), (h - 1, w - 1), (1, w - 2)}:
        grad = input_gradient(lambda t, r=row, c=col: trunc(t)[0, r, c, 0], x)
        reach = np.nonzero(np.abs(grad[0]).sum(-1) > 0)
        top, left, bottom, right = rf.box(row, col, (61, 57))
        reached = (reach[0].min(), reach[1].min(), reach[0].max() + 1, reach[1].max() + 1)
        # near a border, padding inside the net may hide some of the field's pixels: never more than the box
        assert top <= reached[0] and left <= reached[1] and reached[2] <= bottom and reached[3] <= right, (row, col)
        if (row, col) == (h // 2, w // 2):
            assert reached == (top, left, bottom, right)
            assert (bottom - top, right - left) == rf.size


@pytest.mark.backends
def test_crops_have_the_receptive_field_size(model, scenes):
    result = cv.top_examples(model, "pool2", scenes, k=3)
    rf = result.receptive_field
    assert rf.exact and rf.size == (10.0, 10.0) and rf.stride == (4.0, 4.0)
    crops = result.crops(scenes)
    assert len(crops) == 32 and all(len(row) == 3 for row in crops)
    for i, row in enumerate(crops):
        for j, crop in enumerate(row):
            top, left, bottom, right = rf.box(*result.positions[i, j], (96, 96))
            assert crop.shape == (bottom - top, right - left, 3)
            np.testing.assert_array_equal(crop, scenes[result.indices[i, j]][top:bottom, left:right])
            inside = 0 < result.positions[i, j, 0] < 23 and 0 < result.positions[i, j, 1] < 23
            if inside:
                assert crop.shape == (10, 10, 3)
    assert cv.top_examples(model, "conv5", scenes[:4], k=1).receptive_field.size == (86.0, 86.0)
    with pytest.raises(cv.ConvVizError, match="does not hold images"):
        result.crops(scenes[:2])
    with pytest.raises(cv.ConvVizError, match="No example"):
        result.crop(32, 0, scenes[0])


@pytest.mark.backends
def test_flat_maps_report_the_first_cell(model):
    black = np.zeros((3, 96, 96, 3), np.uint8)  # conv1 of a black image is its bias everywhere: every map is flat
    result = cv.top_examples(model, "conv1", black, k=2)
    np.testing.assert_array_equal(result.positions, 0)
    np.testing.assert_array_equal(result.indices, np.tile([0, 1], (16, 1)))


@pytest.mark.backends
@pytest.mark.parametrize("layer", ["c1", "p1", "c2", "c3"])
def test_any_size_model_gets_the_field_of_each_image_size(layer):
    fixed = cv.Inspector(linear_probe_model(), preprocess="none")
    free = cv.Inspector(linear_probe_model((None, None)), preprocess="none")
    expected = receptive_field(fixed.graph, fixed.layer(layer))
    assert receptive_field(free.graph, free.layer(layer), (61, 57)) == expected


@pytest.mark.backends
def test_any_size_model_streams_images_of_several_sizes():
    model = linear_probe_model((None, None))
    ins = cv.Inspector(model, preprocess="none")
    rng = np.random.default_rng(1)
    images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in [(40, 33), (61, 57), (40, 33), (64, 64)] * 3]
    result = ins.top_examples("c2", images, k=3, batch_size=4)
    assert result.count == 12
    maps = [ins.activations(image, ["c2"])["c2"] for image in images]
    for row in range(4):
        peaks = np.array([m[..., row].max() for m in maps])
        best = np.lexsort((np.arange(12), -peaks))[:3]
        np.testing.assert_array_equal(result.indices[row], best)
        np.testing.assert_allclose(result.values[row], peaks[best], rtol=1e-5, atol=1e-5)
        for j, i in enumerate(best):
            cell = np.unravel_index(maps[i][..., row].argmax(), maps[i].shape[:2])
            assert tuple(result.positions[row, j]) == cell
            field_ = receptive_field(ins.graph, ins.layer("c2"), images[i].shape[:2])
            top, left, bottom, right = field_.box(*cell, images[i].shape[:2])
            assert result.crop(row, j, images[i]).shape == (bottom - top, right - left, 3)


@pytest.mark.backends
def test_overflowing_activations_are_an_error(scenes):
    model = linear_probe_model()  # finite weights so large that the maps overflow to inf at run time
    kernel, bias = model.get_layer("c1").get_weights()
    model.get_layer("c1").set_weights([np.full_like(kernel, 3e38), bias])
    with pytest.raises(cv.ConvVizError, match="NaN or infinite activation for image 0"):
        cv.top_examples(model, "c2", scenes[:4], k=1, preprocess="rescale")


@pytest.mark.backends
def test_batches_shrink_to_the_memory_budget(model, scenes, monkeypatch):
    from convviz_widgets.limits import limits

    ref = cv.top_examples(model, "conv5", scenes[:12], k=3)
    monkeypatch.setattr(limits, "memory_budget", 12 * 2**20)  # about 2.5 MB an image up to conv5
    seen = []
    small = cv.top_examples(model, "conv5", scenes[:12], k=3, progress=lambda d, t: seen.append(d))
    assert 1 < len(seen) and seen[-1] == 12
    np.testing.assert_array_equal(small.indices, ref.indices)
    np.testing.assert_allclose(small.values, ref.values, atol=1e-5, rtol=1e-6)
    monkeypatch.setattr(limits, "memory_budget", 2**20)
    with pytest.raises(cv.ConvVizError, match="memory budget"):
        cv.top_examples(model, "conv5", scenes[:12], k=3)


@pytest.mark.backends
def test_receptive_field_of_a_real_mobilenet(mobilenet):
    ins = cv.Inspector(mobilenet)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    for layer, size in [("conv_dw_2", 11.0), ("conv_pw_5_relu", 43.0)]:  # ZeroPadding + 'valid' stride-2 convs
        node = ins.layer(layer)
        rf = receptive_field(ins.graph, node)
        row, col = node.shape[1] // 2, node.shape[2] // 2
        trunc = keras.Model(ins.graph.input, node.output)
        grad = input_gradient(lambda t, m=trunc, r=row, c=col: keras.ops.sum(m(t)[0, r, c, :]), x)
        ys, xs = np.nonzero(np.abs(grad[0]).sum(-1))
        assert rf.exact and rf.size == (size, size)
        assert rf.box(row, col, (128, 128)) == (ys.min(), xs.min(), ys.max() + 1, xs.max() + 1)


def test_a_failing_dataset_pipeline_is_a_clear_error(model, scenes):
    tf = pytest.importorskip("tensorflow", reason="tf.data datasets need TensorFlow")
    broken = tf.data.Dataset.from_tensor_slices(scenes[:3]).map(
        lambda x: tf.debugging.check_numerics(tf.cast(x, tf.float32) * np.inf, "bad pixel"))
    with pytest.raises(cv.ConvVizError, match="ignore_errors"):
        cv.top_examples(model, "conv1", broken, k=1)


CROSS_BACKEND_SCRIPT = """
import json, sys
import numpy as np
import convviz_widgets as cv
from convviz_widgets import demo
scenes = np.stack([demo.scene(seed=i).image for i in range(int(sys.argv[1]))])
result = cv.top_examples(demo.load_model(), "conv5", scenes, k=5, batch_size=16)
print(json.dumps({"indices": result.indices.tolist(), "positions": result.positions.tolist()}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_every_backend_picks_the_same_examples(model, scenes, backend):
    import importlib.util
    import json
    import os
    import subprocess
    import sys

    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    ours = cv.top_examples(model, "conv5", scenes, k=5, batch_size=16)
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", CROSS_BACKEND_SCRIPT, str(N_SCENES)], env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_array_equal(np.array(theirs["indices"]), ours.indices)
    np.testing.assert_array_equal(np.array(theirs["positions"]), ours.positions)


@pytest.mark.backends
def test_the_examples_engine_keeps_a_bounded_number_of_compiled_readouts(model, scenes):
    from convviz_widgets.core.topk import READOUT_CACHE_SIZE

    ins = cv.Inspector(model)
    layers = ["conv1", "pool1", "conv2", "pool2", "conv3", "conv4"]
    assert len(layers) > READOUT_CACHE_SIZE
    results = [ins.top_examples(layer, scenes[:6], k=1, channels=[0]) for layer in layers]
    assert len(ins.examples._readouts) == READOUT_CACHE_SIZE
    assert list(ins.examples._readouts) == layers[-READOUT_CACHE_SIZE:]  # the least recently used went first
    again = ins.top_examples("conv1", scenes[:6], k=1, channels=[0])  # rebuilt after eviction: the same answer
    np.testing.assert_array_equal(again.indices, results[0].indices)
