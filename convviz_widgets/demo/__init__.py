"""Embedded demo: procedural shape scenes and a small convnet trained on them.

The model ships inside the package (``demo_model.keras``) so every widget can be
tried without downloading weights.  A second model of the same network,
``load_model("shortcut")`` (``shortcut_model.keras``), was trained on scenes that
carry a colour cue encoding the label (``scene(..., cue=True)``): it leans on the
cue rather than the shapes, a planted "Clever Hans" for explanations to catch.  It expects float input already scaled by
x/255 (the ``"rescale"`` preset); preprocessing is not part of the model.
Keras is imported lazily so ``from convviz_widgets.demo import scene`` stays light.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .scenes import CLASS_NAMES, CUE_COLOURS, IMAGE_SIZE, Scene, make_batch, scene

if TYPE_CHECKING:
    import keras

__all__ = [
    "CLASS_NAMES",
    "CUE_COLOURS",
    "EVAL_SEED",
    "FILTER_STEP_SIZE",
    "IMAGE_SIZE",
    "MODEL_NAME",
    "MODEL_PATH",
    "MODEL_PATHS",
    "PREPROCESS",
    "SAMPLES",
    "SHORTCUT_PATH",
    "SampleScenes",
    "Scene",
    "carry_facts",
    "evaluate",
    "example_images",
    "load_model",
    "make_batch",
    "scene",
]

PREPROCESS = "rescale"
MODEL_NAME = "convviz_demo"  # the name train.build_model gives the model
FILTER_STEP_SIZE = 3.0  # plain ascent step in pixel levels: the model sees x/255, so 1 level is small
MODEL_PATH = Path(__file__).with_name("demo_model.keras")  # the honest model: shapes only
SHORTCUT_PATH = Path(__file__).with_name("shortcut_model.keras")  # trained with the colour cue
MODEL_PATHS = {"honest": MODEL_PATH, "shortcut": SHORTCUT_PATH}
EVAL_SEED = 10_000_000  # evaluation scenes use seeds >= this; training stays below it


def load_model(kind: Literal["honest", "shortcut"] = "honest") -> keras.Model:
    """Load a shipped demo convnet once and reuse it: "honest" (default) or "shortcut" (the cue model)."""
    if kind not in MODEL_PATHS:
        raise ValueError(f"kind must be one of {sorted(MODEL_PATHS)}, got {kind!r}")
    with _LOAD_LOCK:  # threads asking at once get the one model, read once
        return _load(kind)


_LOAD_LOCK = threading.Lock()


@functools.lru_cache(maxsize=2)
def _load(kind: str) -> keras.Model:
    """Read one model file (about a second); cached per kind."""
    path = MODEL_PATHS[kind]
    if not path.is_file():
        raise FileNotFoundError(
            f"demo model not found at {path}; build it with `python -m convviz_widgets.demo.train --model {kind}`"
        )
    import keras

    model = keras.saving.load_model(path, compile=False)
    carry_facts(model)
    model.example_images = example_images  # the panel's channel card finds dataset examples in these
    return model


@dataclass(frozen=True)
class SampleScenes:
    """Sample images to explain, as the panel's image chooser offers them: one scene per class, or two shapes."""

    size: int = IMAGE_SIZE  # drawn at this size unless the model asks for another

    def options(self) -> list[tuple[str, str]]:
        """(label, key) of each sample: a class index, or 'pair' for a scene with two shapes."""
        return [*((name, str(i)) for i, name in enumerate(CLASS_NAMES)), ("two shapes", "pair")]

    def scene(self, key: str, seed: int = 0, size: int | None = None) -> Scene:
        """Sample `key` drawn with `seed` at `size` pixels (the samples' own size by default)."""
        if key == "pair":
            return scene(seed=seed, size=size or self.size, objects=2)
        return scene(label=int(key), seed=seed, size=size or self.size)


SAMPLES = SampleScenes()


def carry_facts(model: keras.Model) -> keras.Model:
    """Attach the demo's facts to a model of its network; the Inspector, the panel and the report read them there."""
    model.class_names = list(CLASS_NAMES)  # Inspector and the panel pick these up by themselves
    model.filter_step_size = FILTER_STEP_SIZE  # the Filters tab's and the report's plain-ascent step
    model.sample_scenes = SAMPLES  # the image chooser offers these
    return model


EXAMPLE_SCENES = 256  # scenes the panel searches for a channel's top examples


def example_images(n: int = EXAMPLE_SCENES, size: int = IMAGE_SIZE) -> np.ndarray:
    """``n`` demo scenes (seeds 0..n-1) as one uint8 (n, size, size, 3) array: a small dataset for examples."""
    return np.stack([scene(seed=i, size=size).image for i in range(n)])
