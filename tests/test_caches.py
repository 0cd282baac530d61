"""Bounded caches of compiled functions: least recently used out, freed, reused, never retraced."""

from __future__ import annotations

import gc
import threading
import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import no_retracing, rng_image, small_convnet

from convviz_widgets import demo
from convviz_widgets.core import Inspector, inspector_for
from convviz_widgets.core import api as api_module
from convviz_widgets.core import feature_viz as fv
from convviz_widgets.core import filters as fp
from convviz_widgets.core.batching import bucket
from convviz_widgets.core.cache import LRUCache
from convviz_widgets.core.cams.engine import CAM_CACHE_SIZE
from convviz_widgets.core.feature_viz import Regularization
from convviz_widgets.core.inspector import PATTERN_CACHE_SIZE

psutil = pytest.importorskip("psutil", reason="psutil measures the process's resident memory")


def rss_mb() -> float:
    """Resident memory of this process after a full garbage collection, in MB."""
    gc.collect()
    return psutil.Process().memory_info().rss / 2**20


@pytest.fixture(scope="module")
def demo_ins() -> Inspector:
    return Inspector(demo.load_model(), preprocess=demo.PREPROCESS)


# ----- the cache itself -------------------------------------------------------------------------
def test_lru_cache_drops_the_least_recently_used_entry():
    cache: LRUCache = LRUCache(2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # "a" is now the most recent
    cache.put("c", 3)
    assert "b" not in cache and cache.keys() == ["a", "c"] and cache.evictions == 1
    assert cache.get("b", "gone") == "gone" and len(cache) == 2


def test_lru_cache_builds_each_value_once_across_threads():
    cache: LRUCache = LRUCache(4)
    built: list[int] = []

    def build() -> object:
        built.append(1)
        return object()

    results: list[object] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_create("k", build))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(built) == 1 and all(r is results[0] for r in results)


def test_lru_cache_is_a_mapping_and_a_picture_cache_skips_the_collection(monkeypatch):
    collections: list[int] = []
    monkeypatch.setattr(gc, "collect", lambda *a: collections.append(1) or 0)
    pictures: LRUCache = LRUCache(2, collect=False)
    pictures["a"], pictures["b"] = 1, 2
    assert pictures["a"] == 1  # reading makes "a" the most recent, as get() does
    pictures["c"] = 3
    assert dict(pictures) == {"a": 1, "c": 3} and pictures != {} and collections == []
    with pytest.raises(KeyError):
        pictures["b"]  # noqa: B018
    del pictures["a"]
    assert list(pictures) == ["c"]
    graphs: LRUCache = LRUCache(1)
    graphs["x"], graphs["y"] = 1, 2
    assert collections == [1]  # compiled graphs sit in cycles: collected on eviction


def test_lru_cache_refuses_a_size_below_one():
    with pytest.raises(ValueError, match="maxsize"):
        LRUCache(0)


# ----- what the Inspector keeps -------------------------------------------------------------------
def test_evicted_cam_functions_are_freed(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    ins.cam_engine.functions = LRUCache(2)
    img = rng_image(seed=30)
    ins.gradcam(img, layer="conv1")
    first = weakref.ref(ins.cam_engine.functions.get(("conv1", "gradcam", True)))  # new image: every layer checked
    ins.gradcam(img, layer="conv2")
    ins.gradcam(img, layer="conv3")
    assert ("conv1", "gradcam", True) not in ins.cam_engine.functions
    gc.collect()
    assert first() is None  # nothing else held the compiled function: its graph can go


def test_cam_cache_holds_at_most_its_size(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    img = rng_image(seed=31)
    for layer in ("conv1", "pool1", "conv2", "pool2", "conv3"):
        for method in ("gradcam", "gradcam++", "scorecam"):
            ins.gradcam(img, layer=layer, method=method)
    assert len(ins.cam_engine.functions) == CAM_CACHE_SIZE


def test_pattern_steps_are_bounded_and_results_do_not_depend_on_the_cache(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    first = ins.filter_patterns("conv2", range(3), size=16, steps=3)
    for size in range(17, 18 + PATTERN_CACHE_SIZE):
        ins.filter_patterns("conv2", [1], size=size, steps=1)
    steps = ins._patterns.steps
    assert len(steps) == PATTERN_CACHE_SIZE and ("plain", "conv2", 16, 3) not in steps
    again = ins.filter_patterns("conv2", range(3), size=16, steps=3)  # rebuilt after eviction
    np.testing.assert_array_equal(again.images, first.images)
    np.testing.assert_allclose(again.final_activation, first.final_activation, rtol=1e-6)


def test_filter_counts_share_padded_batches():
    assert [bucket(n) for n in range(1, 18)] == [1, 2, 3, 4, 6, 6, 8, 8, 12, 12, 12, 12, 16, 16, 16, 16, 24]
    assert all(n <= bucket(n) < 1.5 * n for n in range(2, 600))


def test_padded_batches_give_the_unpadded_results(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    got = ins.filter_patterns("conv2", [4, 0, 7, 2, 9], size=16, steps=4, seed=3)  # 5 filters run as 6
    assert ("plain", "conv2", 16, 6) in ins._patterns.steps
    objective = ins._patterns._objective_for("conv2", 16)
    step, measure = fp.make_step(objective, 5, 16, 3, tiny_model.weights)
    x, start, final = fp.ascend(step, measure, fp.start_images(5, 16, 3, 3), [4, 0, 7, 2, 9], 4, 1.0, None)
    np.testing.assert_array_equal(got.images, fp.deprocess(x))
    np.testing.assert_allclose(got.start_activation, start, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.final_activation, final, rtol=1e-5, atol=1e-7)

    reg = Regularization()
    got = ins.filter_patterns("conv2", [4, 0, 7, 2, 9], size=16, steps=4, seed=3, mode="regularized")
    step, measure = fv.make_step(objective, 5, 16, reg, tiny_model.weights)
    images, start, final = fv.run(step, measure, [4, 0, 7, 2, 9], 16, 4, 3, reg, None)
    np.testing.assert_array_equal(got.images, images)
    np.testing.assert_allclose(got.final_activation, final, rtol=1e-5, atol=1e-7)


def test_regularized_step_is_compiled_once_and_serves_every_seed(tiny_model):
    ins = Inspector(tiny_model, preprocess="rescale")
    a = ins.filter_patterns("conv2", [0, 1], size=16, steps=3, mode="regularized", seed=1)
    step = ins._patterns.steps.get(("regularized", "conv2", 16, 2, Regularization()))[0]
    b = ins.filter_patterns("conv2", [0, 1], size=16, steps=3, mode="regularized", seed=2)
    c = ins.filter_patterns("conv2", [0, 1], size=16, steps=3, mode="regularized", seed=1)
    assert len(ins._patterns.steps) == 1
    assert ins._patterns.steps.get(("regularized", "conv2", 16, 2, Regularization()))[0] is step
    np.testing.assert_array_equal(a.images, c.images)  # the seed is an input, not a baked-in constant
    assert not np.array_equal(a.images, b.images)


def test_inspector_for_keeps_a_bounded_number_of_inspectors():
    api_module._INSPECTORS.clear()
    first = small_convnet(size=16, seed=1)
    ins = inspector_for(first, "rescale")
    assert inspector_for(first, "rescale") is ins
    dropped = weakref.ref(first)
    del first, ins
    for seed in range(api_module.INSPECTOR_CACHE_SIZE):
        inspector_for(small_convnet(size=16, seed=seed + 2), "rescale")
    assert len(api_module._INSPECTORS) == api_module.INSPECTOR_CACHE_SIZE
    gc.collect()
    assert dropped() is None  # the least recently used model is no longer kept alive
    api_module._INSPECTORS.clear()


# ----- soak: memory stays bounded -----------------------------------------------------------------
def test_changing_filter_counts_and_sizes_do_not_grow_memory(demo_ins):
    sizes = (24, 32, 40)
    for count in (1, 2, 3, 4, 6, 8, 12, 16, 24):  # warm-up: every padded batch once at every size
        for size in sizes:
            demo_ins.filter_patterns("conv3", range(count), size=size, steps=1)
    before = rss_mb()
    for i in range(60):  # counts 1..23 in a scrambled order: each call's graph was evicted meanwhile
        demo_ins.filter_patterns("conv3", range(1 + (i * 7) % 23), size=sizes[i % 3], steps=1)
    grown = rss_mb() - before
    print(f"resident memory growth over 60 filter-pattern calls: {grown:.1f} MB")
    assert grown <= 100, f"resident memory grew by {grown:.0f} MB over 60 filter-pattern calls"


def test_mixed_gradcam_calls_keep_memory_flat(demo_ins):
    layers = ("conv2", "conv3", "bn3", "conv4", "conv5")
    images = [demo.scene(seed=s).image for s in range(4)]

    def run(calls: range) -> None:
        for i in calls:
            demo_ins.gradcam(images[i % 4], layer=layers[i % 5], method=("gradcam", "gradcam++")[i % 2],
                             class_index=None if i % 3 == 0 else i % 5)

    run(range(40))  # warm-up: every (layer, method) pair compiled
    before = rss_mb()
    run(range(300))
    grown = rss_mb() - before
    print(f"resident memory growth over 300 Grad-CAM calls: {grown:.1f} MB")
    assert grown <= 30, f"resident memory grew by {grown:.0f} MB over 300 Grad-CAM calls"


# ----- no retracing warnings reach the user -------------------------------------------------------
def test_changing_counts_sizes_and_layers_never_warns_about_retracing(demo_ins):
    with no_retracing():
        img = demo.scene(seed=5).image
        for i in range(8):
            demo_ins.filter_patterns(("conv1", "conv2")[i % 2], range(1 + 2 * i), size=24 + 4 * (i % 3), steps=1)
        for i in range(4):
            demo_ins.filter_patterns("conv2", range(1 + 2 * i), size=24 + 8 * (i % 2), steps=1, mode="regularized",
                                     seed=i)
        for layer in ("conv1", "pool1", "conv2", "bn2", "conv3", "conv5"):
            for method in ("gradcam", "gradcam++"):
                demo_ins.gradcam(img, layer=layer, method=method)
        for layer in ("conv3", "conv4", "conv5"):
            demo_ins.gradcam(img, layer=layer, method="scorecam", max_channels=4)
        demo_ins.activations(img)
        demo_ins.activations(demo.scene(seed=6).image)


# ----- the compiled CAM paths agree with the plain ones --------------------------------------------
def test_in_graph_preprocessing_matches_a_custom_preprocess_function(tiny_model):
    img = rng_image(seed=40)
    preset = Inspector(tiny_model, preprocess="rescale")
    numpy_fn = Inspector(tiny_model, preprocess=lambda b: np.asarray(b) / 255.0)  # not traceable: run eagerly
    assert preset._preprocess_in_graph and not numpy_fn._preprocess_in_graph
    for method in ("gradcam", "gradcam++"):
        a = preset.gradcam(img, method=method, class_index=2)
        b = numpy_fn.gradcam(img, method=method, class_index=2)
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-7)
        assert a.score == pytest.approx(b.score, abs=1e-6) and a.probability == pytest.approx(b.probability)


def test_grayscale_models_convert_pixels_inside_the_compiled_cam():
    keras.utils.set_random_seed(3)
    gray = keras.Sequential([keras.Input((24, 24, 1)), keras.layers.Conv2D(6, 3, activation="relu", name="c"),
                             keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3, activation="softmax")])
    img = rng_image(24, 24, seed=41)
    a = Inspector(gray, preprocess="rescale").gradcam(img, class_index=1)
    b = Inspector(gray, preprocess=lambda x: x / 255.0).gradcam(img, class_index=1)  # numpy conversion path
    np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-7)


def test_compiled_gradcam_plus_plus_matches_the_numpy_rule(tiny_model):
    img = rng_image(seed=42)
    x = tf.constant(img[None].astype(np.float32) / 255.0)
    ins = Inspector(tiny_model, preprocess="rescale")
    node = ins.layer("conv3")
    model = keras.Model(ins.graph.input, [node.output, ins.graph.head.logits])
    with tf.GradientTape() as tape:
        feats, logits = model(x, training=False)
        score = logits[0, 1]
    grads = tape.gradient(score, feats)
    f, g = np.asarray(feats[0], np.float64), np.asarray(grads[0], np.float64)
    denom = 2.0 * g**2 + f.sum(axis=(0, 1), keepdims=True) * g**3  # Chattopadhay et al.'s closed-form alpha
    alpha = np.divide(g**2, denom, out=np.zeros_like(g), where=np.abs(denom) > 1e-12)
    weights = (alpha * np.maximum(g, 0.0)).sum(axis=(0, 1))
    raw = (f * weights).sum(axis=-1)  # the map before its ReLU
    cam = ins.gradcam(img, layer="conv3", method="gradcam++", class_index=1)
    np.testing.assert_allclose(cam.raw, raw, rtol=1e-4, atol=1e-6)


def test_get_or_create_builds_a_key_once_and_other_keys_meanwhile():
    """Threads asking for one key share one build; a slow build does not hold up another key's build."""
    from convviz_widgets.core.cache import LRUCache

    cache: LRUCache = LRUCache(4, collect=False)
    other_built, calls = threading.Event(), []

    def slow() -> str:
        calls.append("slow")
        assert other_built.wait(10), "another key's build was held up by this one"
        return "slow"

    def fast() -> str:
        calls.append("fast")
        other_built.set()
        return "fast"

    slow_threads = [threading.Thread(target=lambda: cache.get_or_create("a", slow)) for _ in range(4)]
    for t in slow_threads:
        t.start()
    while not calls:  # the slow build has begun
        threading.Event().wait(0.01)
    assert cache.get_or_create("b", fast) == "fast"
    for t in slow_threads:
        t.join(20)
    assert cache["a"] == "slow" and calls.count("slow") == 1 and calls.count("fast") == 1
