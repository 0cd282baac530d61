"""Shared fixtures: tiny models built in code, the shared ImageNet MobileNet, a cat photo; the Keras backend.

The suite runs on the Keras backend that KERAS_BACKEND names (TensorFlow by default). Tests marked
`backends` are the core's and also run under jax and torch (`make test` does both); a test marked
`tensorflow_only` (tf.data, TensorFlow ops, training the demo) is skipped, with the reason, on the others.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

BACKEND = keras.config.backend()  # "tensorflow", "jax" or "torch", from KERAS_BACKEND

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MOBILENET_WEIGHTS = SHARED_DATA / "mobilenet_2_5_128_tf.h5"
IMAGENET_INDEX = SHARED_DATA / "imagenet_class_index.json"


def pytest_report_header(config: pytest.Config) -> str:
    """Say which Keras backend the tests run on, at the top of the run."""
    return f"Keras backend: {BACKEND} (KERAS_BACKEND)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked tensorflow_only, with the reason, when another backend computes."""
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason=f"needs the TensorFlow backend (tf.data, TensorFlow ops or training); "
                                   f"Keras runs on {BACKEND} here (KERAS_BACKEND)")
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def backend() -> str:
    """The Keras backend the tests run on: "tensorflow", "jax" or "torch"."""
    return BACKEND


def require_backend(name: str) -> None:
    """Skip, with the reason, when the package of Keras's `name` backend is not installed here."""
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed here; pip install \".[{name}]\" brings it")


def small_convnet(size: int = 32, classes: int = 3, activation: str = "softmax", seed: int = 0,
                  padding: str = "same") -> keras.Model:
    """A book-style Sequential convnet: conv/pool blocks, flatten, dense head."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((size, size, 3)),
            keras.layers.Conv2D(8, 3, padding=padding, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(name="pool1"),
            keras.layers.Conv2D(12, 3, padding=padding, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(name="pool2"),
            keras.layers.Conv2D(20, 3, padding=padding, activation="relu", name="conv3"),
            keras.layers.Flatten(name="flatten"),
            keras.layers.Dense(classes, activation=activation, name="predictions"),
        ],
        name="small_convnet",
    )


@pytest.fixture(scope="session")
def tiny_model() -> keras.Model:
    """A 32 px, 3-class softmax convnet with random weights."""
    return small_convnet()


@pytest.fixture(scope="session")
def cat_image() -> np.ndarray:
    """The cat photo scikit-image ships (chelsea.png), uint8 RGB."""
    skdata = pytest.importorskip("skimage.data", reason="scikit-image ships the cat photo used here")
    return skdata.chelsea()


@pytest.fixture(scope="session")
def mobilenet() -> keras.Model:
    """The real ImageNet MobileNet v1 0.25/128 from ../shared/data (skipped when absent)."""
    if not MOBILENET_WEIGHTS.exists():
        pytest.skip(f"the ImageNet MobileNet weights are not here ({MOBILENET_WEIGHTS}); they live in ../shared/data")
    return keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(MOBILENET_WEIGHTS))


def wait_until(condition: Callable[[], object], timeout: float = 60.0, what: str = "the condition") -> None:
    """Poll `condition()` until it is true (background work reaching a point); fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g} s")
        time.sleep(0.005)


def rng_image(h: int = 32, w: int = 32, seed: int = 0) -> np.ndarray:
    """A deterministic random uint8 RGB image."""
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


class _Collect(logging.Handler):
    """Keeps every record the TensorFlow logger emits."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def no_retracing() -> Iterator[None]:
    """Fail when TensorFlow logs or warns about retracing while the block runs (the user would see it).

    On another backend, only Python warnings about retracing are watched (TensorFlow is not imported).
    """
    handler = _Collect()
    logger = logging.getLogger("tensorflow")  # tf.get_logger() is this logger
    logger.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        logger.removeHandler(handler)
    texts = handler.messages + [str(w.message) for w in caught]
    assert not [t for t in texts if "retracing" in t], texts


def input_gradient(f, x: np.ndarray) -> np.ndarray:
    """d f(x) / d x of a scalar function, with the running backend's own autodiff (the tests' oracle)."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = f(x)
        return tape.gradient(y, x).numpy()
    if backend == "jax":
        import jax

        return np.asarray(jax.grad(f)(jax.numpy.asarray(x)))
    import torch

    x = torch.tensor(x, requires_grad=True)
    f(x).backward()
    return x.grad.numpy()


# ----- small vision transformers (tests/vit_models.py), shared by the token-grid and attention tests ---------
@pytest.fixture(scope="module")
def vit() -> keras.Model:
    """Class token, 8x8 patches of 8 px at 64 px, a linear head on the class token (scores are logits)."""
    from vit_models import small_vit

    return small_vit(classes=5, seed=1, head="linear")


@pytest.fixture(scope="module")
def registers_vit() -> keras.Model:
    """Four register tokens, no class token, a head on the mean of the tokens."""
    from vit_models import small_vit

    return small_vit(registers=4, class_token=False, pool="mean", seed=2)


@pytest.fixture(scope="module")
def vit_scene() -> np.ndarray:
    """A demo scene at the small ViTs' 64 px."""
    from convviz_widgets.demo.scenes import scene

    return scene(seed=3, size=64).image
