"""Embedded demo: procedural shape scenes and a small convnet trained on them.

The model ships inside the package (``demo_model.keras``) so every widget can be
tried without downloading weights.  It expects float input already scaled by
x/255 (the ``"rescale"`` preset); preprocessing is not part of the model.
Keras is imported lazily so ``from convviz_widgets.demo import scene`` stays light.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .scenes import CLASS_NAMES, IMAGE_SIZE, Scene, make_batch, scene

if TYPE_CHECKING:
    import keras

__all__ = [
    "CLASS_NAMES",
    "EVAL_SEED",
    "FILTER_STEP_SIZE",
    "IMAGE_SIZE",
    "MODEL_NAME",
    "MODEL_PATH",
    "PREPROCESS",
    "Scene",
    "evaluate",
    "example_images",
    "load_model",
    "make_batch",
    "scene",
]

PREPROCESS = "rescale"
MODEL_NAME = "convviz_demo"  # the name train.build_model gives the model
FILTER_STEP_SIZE = 3.0  # plain ascent step in pixel levels: the model sees x/255, so 1 level is small
MODEL_PATH = Path(__file__).with_name("demo_model.keras")
EVAL_SEED = 10_000_000  # evaluation scenes use seeds >= this; training stays below it


@functools.lru_cache(maxsize=1)
def load_model() -> keras.Model:
    """Load the shipped demo convnet once and reuse it (loading takes about a second)."""
    if not MODEL_PATH.is_file():
        raise FileNotFoundError(
            f"demo model not found at {MODEL_PATH}; build it with `python -m convviz_widgets.demo.train`"
        )
    import keras

    model = keras.saving.load_model(MODEL_PATH, compile=False)
    model.class_names = list(CLASS_NAMES)  # Inspector and the panel pick these up by themselves
    model.example_images = example_images  # the panel's channel card finds dataset examples in these
    return model


EXAMPLE_SCENES = 256  # scenes the panel searches for a channel's top examples


def example_images(n: int = EXAMPLE_SCENES, size: int = IMAGE_SIZE) -> np.ndarray:
    """``n`` demo scenes (seeds 0..n-1) as one uint8 (n, size, size, 3) array: a small dataset for examples."""
    return np.stack([scene(seed=i, size=size).image for i in range(n)])


def evaluate(
    model: keras.Model | None = None,
    n: int = 1000,
    seed: int = EVAL_SEED,
    batch_size: int = 250,
) -> float:
    """Top-1 accuracy on ``n`` fresh single-shape scenes (seeds ``seed..seed+n-1``)."""
    model = load_model() if model is None else model
    size = int(model.input_shape[1])
    correct = 0
    for start in range(0, n, batch_size):
        shots = [scene(seed=seed + i, size=size) for i in range(start, min(n, start + batch_size))]
        x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
        predicted = np.argmax(model.predict_on_batch(x), axis=1)
        correct += int(np.sum(predicted == np.array([s.labels[0] for s in shots])))
    return correct / n
