"""Model files are sized before Keras reads them, and a `.keras` model is built without its random initialisers."""

from __future__ import annotations

import json
import threading
import time
import zipfile
from pathlib import Path

import h5py
import keras
import numpy as np
import psutil
import pytest
from conftest import MOBILENET_WEIGHTS
from model_bombs import tiny_flatten_dense, write_assets_bomb, write_config_bomb, write_huge_dense

import convviz_widgets as cv
from convviz_widgets import limits
from convviz_widgets.core import model_io
from convviz_widgets.core.model_io import declared_weight_bytes
from convviz_widgets.demo import __file__ as demo_init

DEMO_FILE = Path(demo_init).parent / "demo_model.keras"
MB = 2**20


class Watch:
    """Peak resident memory over the start (sampled every 2 ms) and wall time of a block."""

    def __enter__(self) -> Watch:
        self.process = psutil.Process()
        self.start = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        self.t0 = time.monotonic()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.002)

    def __exit__(self, *_: object) -> None:
        self.seconds = time.monotonic() - self.t0
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.process.memory_info().rss)
        self.grew_mb = (self.peak - self.start) / MB


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny.keras"
    tiny_flatten_dense().save(path)
    return path


def refused(path: Path) -> tuple[str, Watch]:
    """The message of cv.load_model's refusal of `path`, and the memory and time it took."""
    with Watch() as watch, pytest.raises(cv.ConvVizError) as err:
        cv.load_model(path)
    return str(err.value), watch


# ----- bombs ----------------------------------------------------------------------------------------
def test_config_inflating_to_2_gib_is_refused_within_100_mb_and_a_second(tmp_path):
    bomb = tmp_path / "bomb.keras"
    write_config_bomb(bomb)
    assert bomb.stat().st_size < 4 * MB and zipfile.ZipFile(bomb).getinfo("config.json").file_size == 2**31
    text, watch = refused(bomb)
    assert "bomb.keras" in text and "config.json" in text and "2.00 GB" in text and "1.00 GB" in text
    assert "limits.max_model_bytes" in text and "CONVVIZ_MAX_MODEL_BYTES" in text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


def test_config_under_the_file_limit_is_still_refused_by_its_parsing_cost(tmp_path, monkeypatch):
    bomb = tmp_path / "big_config.keras"
    write_config_bomb(bomb, mebibytes=200)  # under the 1 GB file limit; parsing it would take about 2 GB
    monkeypatch.setattr(limits, "memory_budget", 500 * MB)
    text, watch = refused(bomb)
    assert "configuration of big_config.keras" in text and "200 MB" in text and "memory budget of 500 MB" in text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


def test_huge_declared_dense_is_refused_before_anything_is_built(tmp_path, tiny_file, monkeypatch):
    bomb = tmp_path / "huge.keras"
    write_huge_dense(bomb, tiny_file)
    assert bomb.stat().st_size < 1 * MB
    text, watch = refused(bomb)
    weights = (3_000_000 * 10_000 + 10_000 + 3 * 3 * 3 * 3 + 3) * 4  # the Dense and the small conv, float32
    assert "huge.keras" in text and f"the weights its layers declare come to {weights / 2**30:,.1f} GB" in text
    assert "limit of 1.00 GB" in text and "limits.max_model_bytes" in text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)
    monkeypatch.setattr(limits, "max_model_bytes", 2**50)  # past the file limit, the memory budget still holds
    monkeypatch.setattr(limits, "memory_budget", 2**34)
    text, watch = refused(bomb)
    assert f"{weights / 2**30:,.1f} GB of weights declared" in text and "memory budget of 16.0 GB" in text, text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


def test_layer_shapes_understated_by_the_file_are_inferred_from_its_input(tmp_path, tiny_file):
    bomb = tmp_path / "understated.keras"
    write_huge_dense(bomb, tiny_file, understate=True)  # every layer declares the small model's input shapes
    declared = json.loads(zipfile.ZipFile(bomb).read("config.json"))
    dense = next(layer for layer in declared["config"]["layers"] if layer["class_name"] == "Dense")
    assert dense["build_config"]["input_shape"] == [None, 37 * 41 * 3] and dense["config"]["units"] == 10_000
    text, watch = refused(bomb)
    weights = (3_000_000 * 10_000 + 10_000 + 3 * 3 * 3 * 3 + 3) * 4  # what Keras would build from the input
    assert f"the weights its layers declare come to {weights / 2**30:,.1f} GB" in text, text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


@pytest.mark.parametrize("build", [
    lambda: keras.applications.ResNet50(input_shape=(64, 64, 3), weights=None),
    lambda: keras.applications.EfficientNetB0(input_shape=(64, 64, 3), weights=None),
    lambda: keras.applications.DenseNet121(input_shape=(64, 64, 3), weights=None),
], ids=["resnet50", "efficientnetb0", "densenet121"])
def test_declared_weights_of_keras_applications_equal_their_real_size(build):
    model = build()
    config = json.loads(json.dumps(keras.saving.serialize_keras_object(model)))
    estimate, unknown = declared_weight_bytes(config)
    assert not unknown and estimate == sum(int(np.prod(w.shape)) * 4 for w in model.weights)


def test_assets_inflating_past_the_limit_are_refused_before_any_reaches_the_disk(tmp_path, tiny_file):
    bomb = tmp_path / "assets.keras"
    write_assets_bomb(bomb, tiny_file)
    text, watch = refused(bomb)
    assert "assets.keras" in text and "assets/vocabulary.txt" in text and "2.00 GB" in text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


def test_total_of_members_over_the_limit_is_refused_and_names_the_assets(tmp_path, tiny_file, monkeypatch):
    bomb = tmp_path / "assets.keras"
    write_assets_bomb(bomb, tiny_file, mebibytes=3)
    monkeypatch.setattr(limits, "max_model_bytes", 3 * MB + 10_000)  # every member fits, the total does not
    text, _ = refused(bomb)
    assert "the archive" in text and "assets written to disk on loading 3.0 MB" in text, text
    assert "limit of 3.0 MB" in text


def test_model_file_limit_is_a_setting_and_names_the_file_size_and_limit(monkeypatch):
    size = zipfile.ZipFile(DEMO_FILE).getinfo("model.weights.h5").file_size
    monkeypatch.setattr(limits, "max_model_bytes", 100_000)
    text, _ = refused(DEMO_FILE)
    assert "demo_model.keras" in text and "model.weights.h5" in text and "limit of 98 KB" in text
    assert limits.size_text(size) in text
    monkeypatch.setattr(limits, "max_model_bytes", 2 * size)
    assert isinstance(cv.load_model(DEMO_FILE), keras.Model)


def test_h5_model_is_sized_from_its_datasets_shapes(tmp_path, monkeypatch):
    model = tiny_flatten_dense()
    path = tmp_path / "tiny.h5"
    model.save(path)
    weights = sum(int(np.prod(w.shape)) * 4 for w in model.weights)
    loaded = cv.load_model(path)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(loaded.weights, model.weights))
    monkeypatch.setattr(limits, "max_model_bytes", weights - 1)
    text, _ = refused(path)
    assert "tiny.h5" in text and "datasets" in text and limits.size_text(weights) in text
    assert "CONVVIZ_MAX_MODEL_BYTES" in text


def test_h5_model_declaring_a_huge_layer_is_refused_before_it_is_built(tmp_path, tiny_file):
    path = tmp_path / "huge.h5"
    tiny_flatten_dense().save(path)
    grown = tmp_path / "grown.keras"
    write_huge_dense(grown, tiny_file)  # the same growth, applied to the .h5 file's configuration
    with h5py.File(path, "a") as h5:
        h5.attrs["model_config"] = zipfile.ZipFile(grown).read("config.json").decode()
    text, watch = refused(path)
    assert "huge.h5" in text and "the weights its layers declare come to 111.8 GB" in text, text
    assert watch.grew_mb < 100 and watch.seconds < 1.0, (watch.grew_mb, watch.seconds)


def test_real_mobilenet_h5_is_sized_then_explained_as_weights_only(monkeypatch):
    if not MOBILENET_WEIGHTS.exists():
        pytest.skip(f"the ImageNet MobileNet .h5 is not here ({MOBILENET_WEIGHTS})")
    text, _ = refused(MOBILENET_WEIGHTS)
    assert "weights only" in text  # within the limits: Keras reads it and finds no model in it
    monkeypatch.setattr(limits, "max_model_bytes", 1_000_000)
    text, _ = refused(MOBILENET_WEIGHTS)
    assert MOBILENET_WEIGHTS.name in text and "datasets" in text and "limit of 977 KB" in text


# ----- load light ----------------------------------------------------------------------------------
def assert_same_model(path: Path, x: np.ndarray) -> keras.Model:
    """cv.load_model(path) equals keras.saving.load_model(path): every weight and the predictions, exactly."""
    ours = cv.load_model(path)
    theirs = keras.saving.load_model(path, compile=False)
    assert [w.path for w in ours.weights] == [w.path for w in theirs.weights]
    for a, b in zip(ours.weights, theirs.weights):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path
    np.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))
    return ours


@pytest.mark.backends
def test_light_load_of_the_demo_model_equals_keras_loader():
    x = np.random.default_rng(0).uniform(0, 1, (2, 96, 96, 3)).astype("float32")
    model = assert_same_model(DEMO_FILE, x)
    assert all("assign" not in vars(v) for v in model.variables)  # nothing of the loading is left on the model
    assert all("load_own_variables" not in vars(layer) for layer in model._flatten_layers())


@pytest.mark.backends
def test_light_load_of_a_deflated_archive_equals_keras_loader(tmp_path):
    """A .keras re-zipped with compression (Keras writes it stored) loads through zipfile's own reader."""
    path = tmp_path / "deflated.keras"
    with zipfile.ZipFile(DEMO_FILE) as src, zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as dst:
        for name in src.namelist():
            dst.writestr(name, src.read(name))
    assert zipfile.ZipFile(path).getinfo("model.weights.h5").compress_type == zipfile.ZIP_DEFLATED
    assert_same_model(path, np.random.default_rng(2).uniform(0, 1, (1, 96, 96, 3)).astype("float32"))


@pytest.mark.backends
def test_light_load_of_a_saved_keras_application_equals_keras_loader(tmp_path):
    keras.utils.set_random_seed(3)
    app = keras.applications.MobileNet(input_shape=(32, 32, 3), alpha=0.25, weights=None, classes=7)
    path = tmp_path / "mobilenet.keras"
    app.save(path)
    x = np.random.default_rng(1).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    model = assert_same_model(path, x)
    for a, b in zip(model.weights, app.weights):  # and equal to the model that was saved
        assert np.array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.backends
def test_light_load_of_h5_files_equals_keras_loader(tmp_path):
    keras3 = tmp_path / "tiny.h5"
    tiny_flatten_dense().save(keras3)
    assert_same_model(keras3, np.random.default_rng(3).uniform(0, 1, (2, 37, 41, 3)).astype("float32"))
    k2 = pytest.importorskip("tf_keras", reason="tf-keras (Keras 2) writes a genuine Keras-2 .h5 file")
    k2.utils.set_random_seed(0)
    book = k2.Sequential([k2.layers.Conv2D(4, 3, activation="relu", input_shape=(16, 16, 3)),
                          k2.layers.BatchNormalization(), k2.layers.Flatten(), k2.layers.Dense(3)])
    keras2 = tmp_path / "book.h5"
    book.save(keras2)
    x = np.random.default_rng(4).uniform(0, 1, (2, 16, 16, 3)).astype("float32")
    assert_same_model(keras2, x)
    np.testing.assert_allclose(cv.load_model(keras2).predict(x, verbose=0), book.predict(x, verbose=0), atol=1e-6)


@pytest.mark.backends
def test_light_load_runs_no_random_initialiser(tmp_path, monkeypatch):
    """Building from the file never calls a random initialiser (their temporaries are what load light avoids)."""
    calls = []
    original = keras.initializers.GlorotUniform.__call__
    monkeypatch.setattr(keras.initializers.GlorotUniform, "__call__",
                        lambda self, *a, **k: calls.append(1) or original(self, *a, **k))
    path = tmp_path / "tiny.keras"
    tiny_flatten_dense().save(path)
    built = len(calls)
    assert built > 0  # the oracle: building the model in code does call them
    cv.load_model(path)
    assert len(calls) == built
    tiny_flatten_dense().save(tmp_path / "tiny.h5")
    built = len(calls)
    cv.load_model(tmp_path / "tiny.h5")
    assert len(calls) == built


@pytest.mark.backends
def test_light_loading_in_a_thread_leaves_models_built_meanwhile_random():
    """Loading light changes no global Keras state: a model built in another thread meanwhile is random."""
    done = threading.Event()
    loaded = []

    def load_many() -> None:
        while not done.is_set() and len(loaded) < 20:
            loaded.append(cv.load_model(DEMO_FILE))

    worker = threading.Thread(target=load_many)
    worker.start()
    try:
        for _ in range(20):
            layer = keras.layers.Dense(64)
            layer.build((None, 32))
            assert np.asarray(layer.kernel).std() > 0.01  # glorot-uniform, not the loader's zeros
    finally:
        done.set()
        worker.join()
    assert loaded and all(isinstance(m, keras.Model) for m in loaded)


def test_light_load_names_the_files_initialisers_so_the_randomisation_check_draws_random_weights(tmp_path):
    """Built with zeros, the model still names the file's initialisers: a randomised copy is random, not blank."""
    from convviz_widgets.metrics import sanity

    ours, theirs = cv.load_model(DEMO_FILE), keras.saving.load_model(DEMO_FILE, compile=False)
    for a, b in zip(ours._flatten_layers(), theirs._flatten_layers()):
        assert a.get_config() == b.get_config(), a.name
    copy = sanity.randomized_copy(cv.Inspector(ours), depth=2, seed=0)
    name, layer = sanity.weighted_layers(copy.model)[-1]
    kernel = np.asarray(layer.weights[0])
    assert kernel.std() > 0 and not np.array_equal(kernel, np.asarray(ours.get_layer(name.split("/")[-1]).weights[0]))
    keras3 = tmp_path / "tiny.h5"
    tiny_flatten_dense().save(keras3)
    assert cv.load_model(keras3).layers[-1].kernel_initializer.__class__ is not keras.initializers.Zeros


@pytest.mark.backends
def test_light_load_copies_every_weight_in_slices_the_backends_way(monkeypatch):
    """On every backend the saved arrays reach the variables slice by slice (no plain assign of a whole array)."""
    monkeypatch.setattr(model_io, "FILL_SLICE", 4096)
    sliced: dict[tuple, int] = {}
    rows = model_io._rows

    def counted(value, variable):
        for start, part in rows(value, variable):
            sliced[tuple(value.shape)] = sliced.get(tuple(value.shape), 0) + 1
            yield start, part

    monkeypatch.setattr(model_io, "_rows", counted)
    plain = []
    x = np.random.default_rng(5).uniform(0, 1, (2, 96, 96, 3)).astype("float32")
    theirs = keras.saving.load_model(DEMO_FILE, compile=False)
    original = type(theirs.weights[0]).assign

    def watched(variable, value):
        if type(value).__module__.split(".")[0] in ("numpy", "h5py"):
            plain.append(variable.path)
        return original(variable, value)

    monkeypatch.setattr(type(theirs.weights[0]), "assign", watched)
    ours = cv.load_model(DEMO_FILE)
    monkeypatch.undo()
    kernels = [w for w in ours.weights if len(w.shape) == 4]
    biggest = max(kernels, key=lambda w: int(np.prod(w.shape)))
    assert sliced.get(tuple(biggest.shape), 0) > 1, sliced  # the largest kernel came in several slices
    assert sum(sliced.values()) >= len(ours.weights)
    assert plain == []  # no variable took a whole array from the file
    for a, b in zip(ours.weights, theirs.weights):
        assert np.array_equal(np.asarray(a), np.asarray(b)), a.path
    np.testing.assert_array_equal(ours.predict(x, verbose=0), theirs.predict(x, verbose=0))

