"""Many threads, one model: explanations equal serial ones, and the user's own model is never touched.

A notebook kernel runs the panel's worker thread beside the user's cells, so building Inspectors,
tracing and compiling CAMs happen at the same time as the user's own `model(x)`. Every case runs
several rounds with all threads released together by a barrier; the expected values are computed
serially first, and the head's logits and probabilities also by hand from the layer's own weights.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pytest

import convviz_widgets as cv
from convviz_widgets.core import api as api_module

demo = pytest.importorskip("convviz_widgets.demo", reason="the thread cases run on the demo model")
if not demo.MODEL_PATH.is_file():
    pytest.skip(f"the demo model file {demo.MODEL_PATH.name} is not built", allow_module_level=True)

# Keras warns when a model is called with a tensor where its input structure is a list, or the other way round
pytestmark = pytest.mark.filterwarnings("ignore:The structure of `inputs`:UserWarning")

HEAD = "predictions"  # the demo model's softmax Dense head
ATOL = 1e-4  # float32 sums in a different order (batched or not) agree this closely


@pytest.fixture(scope="module")
def source_model() -> keras.Model:
    """A private instance of the demo model: a test that broke it cannot break other modules' tests."""
    return _load_demo()


def _load_demo() -> keras.Model:
    """The shipped demo convnet, read from its file (not the shared cached instance)."""
    model = keras.saving.load_model(demo.MODEL_PATH, compile=False)
    return demo.carry_facts(model)


def _fresh(model: keras.Model) -> keras.Model:
    """A new model object with the same architecture and weights: nothing about it is cached yet."""
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return demo.carry_facts(twin)


def _images(n: int) -> list[np.ndarray]:
    """n demo scenes of different classes."""
    return [demo.scene(label=i % len(demo.CLASS_NAMES), seed=100 + i).image for i in range(n)]


def _together(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run work(0..n-1) in n threads released at the same moment; re-raise the first error."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as err:  # noqa: BLE001 - handed to the test below
            errors.append(err)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors[0]
    return results


def _hand_logits(model: keras.Model, rgb: np.ndarray) -> np.ndarray:
    """The head's pre-activation, by hand: the features under the head times its kernel, plus its bias."""
    head = model.get_layer(HEAD)
    features = keras.Model(model.inputs, model.get_layer("gap").output)([rgb[None].astype(np.float32) / 255.0])
    kernel, bias = (np.asarray(w, np.float64) for w in head.get_weights())
    return (np.asarray(features, np.float64) @ kernel + bias)[0]


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max())
    return e / e.sum()


def _assert_model_untouched(model: keras.Model, rgb: np.ndarray) -> None:
    """The user's head is still softmax and the user's own call still returns probabilities."""
    assert model.get_layer(HEAD).activation is keras.activations.softmax
    out = np.asarray(model([rgb[None].astype(np.float32) / 255.0], training=False))
    assert abs(float(out.sum()) - 1.0) < 1e-5, out


def _assert_same_cam(got: cv.CAM, want: cv.CAM) -> None:
    """Same class, the logit as the score, the probability set, the same heatmap."""
    assert got.class_index == want.class_index
    assert got.probability is not None
    assert got.score == pytest.approx(want.score, abs=ATOL)
    assert got.probability == pytest.approx(want.probability, abs=ATOL)
    np.testing.assert_allclose(got.heatmap, want.heatmap, atol=ATOL)


def _inspect(model: keras.Model, rgb: np.ndarray) -> tuple[str, np.ndarray]:
    """A new Inspector's head label and its probabilities for one image."""
    ins = cv.Inspector(model, preprocess=demo.PREPROCESS)
    return ins.score_label, ins.probabilities(rgb)


def _api_gradcam(model: keras.Model, rgb: np.ndarray, class_index: int | None = None) -> tuple[cv.CAM, Any]:
    """Grad-CAM through the function API, and the Inspector the API keeps for the model."""
    cam = cv.gradcam(model, rgb, class_index=class_index, preprocess=demo.PREPROCESS)
    return cam, api_module.inspector_for(model, demo.PREPROCESS)


@pytest.mark.parametrize(("threads", "rounds"), [(8, 3), (32, 1)])
def test_inspectors_built_at_once_all_see_the_softmax_head(source_model: keras.Model, threads: int,
                                                           rounds: int) -> None:
    model = _fresh(source_model)
    rgb = _images(1)[0]
    want = _softmax(_hand_logits(model, rgb))
    for _ in range(rounds):
        seen = _together(threads, lambda i: _inspect(model, rgb))
        assert [label for label, _ in seen] == ["probability"] * threads
        for _, probs in seen:
            np.testing.assert_allclose(probs, want, atol=ATOL)
        _assert_model_untouched(model, rgb)


@pytest.mark.parametrize("threads", [4, 32])
def test_cold_and_warm_gradcam_from_many_threads_equal_serial(source_model: keras.Model, threads: int) -> None:
    images = _images(threads)
    classes = [i % len(demo.CLASS_NAMES) for i in range(threads)]
    serial = cv.Inspector(_fresh(source_model), preprocess=demo.PREPROCESS)
    want = [serial.gradcam(img, class_index=c) for img, c in zip(images, classes)]
    for i in (0, threads - 1):  # the score is the logit, the probability its softmax: by hand
        logits = _hand_logits(source_model, images[i])
        assert want[i].score == pytest.approx(logits[classes[i]], abs=ATOL)
        assert want[i].probability == pytest.approx(_softmax(logits)[classes[i]], abs=ATOL)
    models = [_fresh(source_model) for _ in range(2)]  # cold: nothing cached for them yet
    for model in models:
        for _phase in ("cold", "warm"):
            got = _together(threads, lambda i, model=model: _api_gradcam(model, images[i], classes[i]))
            for (cam, _), expected in zip(got, want):
                _assert_same_cam(cam, expected)
            assert len({id(ins) for _, ins in got}) == 1, "inspector_for built several Inspectors for one key"
        _assert_model_untouched(model, images[0])


def _trace_often(model: keras.Model, rgb: np.ndarray, explain: bool) -> None:
    """Build (trace) several Inspectors on the model; the first one also compiles and runs a Grad-CAM."""
    for k in range(6):
        ins = cv.Inspector(model, preprocess=demo.PREPROCESS)
        if explain and not k:
            ins.gradcam(rgb)


def test_users_own_model_call_stays_softmax_while_package_traces(source_model: keras.Model) -> None:
    model = _fresh(source_model)
    images = _images(8)
    x = images[0][None].astype(np.float32) / 255.0
    sums: list[float] = []
    stop = threading.Event()

    def user() -> None:
        while not stop.is_set():
            sums.append(float(np.asarray(model([x], training=False)).sum()))

    watcher = threading.Thread(target=user)
    watcher.start()
    try:
        for _ in range(2):
            _together(8, lambda i: _trace_often(model, images[i], explain=i == 0))
    finally:
        stop.set()
        watcher.join(60)
    assert sums
    wrong = sum(abs(s - 1.0) >= 1e-5 for s in sums)
    assert not wrong, f"{wrong} of {len(sums)} calls of the user's model returned something else than softmax"
    _assert_model_untouched(model, images[0])


def test_panel_worker_and_api_calls_together_equal_serial(source_model: keras.Model) -> None:
    images = _images(6)
    serial = cv.Inspector(_fresh(source_model), preprocess=demo.PREPROCESS)
    want = [serial.gradcam(img) for img in images]
    for model in [_fresh(source_model) for _ in range(2)]:
        panel = cv.ConvVizPanel(model, images[0], preprocess=demo.PREPROCESS, background=True)
        panel.select("Grad-CAM")  # the worker traces and compiles while the threads below do the same

        def call(i: int, model: keras.Model = model) -> cv.CAM:
            if i % 2:  # half through the API's shared Inspector, half on Inspectors of their own
                return _api_gradcam(model, images[i])[0]
            return cv.Inspector(model, preprocess=demo.PREPROCESS).gradcam(images[i])

        got = _together(6, call)
        assert panel.wait(120)
        for cam, expected in zip(got, want):
            _assert_same_cam(cam, expected)
        shown = panel.cam.current_cam()
        assert shown is not None
        _assert_same_cam(shown, want[0])
        assert panel.cam.inspector.score_label == "probability"
        _assert_model_untouched(model, images[0])
        panel.close()


def test_inspector_for_builds_one_inspector_per_key_under_threads(source_model: keras.Model) -> None:
    model = _fresh(source_model)
    api_module._INSPECTORS.clear()
    built = _together(16, lambda i: api_module.inspector_for(model, demo.PREPROCESS))
    assert len({id(ins) for ins in built}) == 1
