"""Function shortcuts over Inspector: the same work, without building the binding yourself."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..images import ImageSource
from . import checks
from .cam import CAM
from .filters import FilterPatterns, Progress
from .inspector import Inspector
from .preprocess import Preprocess

_INSPECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inspector_for(model: Any, preprocess: Preprocess = None, class_names: Any = None,
                  output: str | int | None = None) -> Inspector:
    """Reuse one Inspector per (model, preprocess, class_names, output) so compiled functions are kept."""
    if isinstance(model, Inspector):
        return model
    output = checks.output_selector(output)
    key = (preprocess if isinstance(preprocess, (str, type(None))) else id(preprocess),
           None if class_names is None else repr(class_names)[:2000], output)
    try:
        per_model = _INSPECTORS.setdefault(model, {})
    except TypeError:  # a path or something not weak-referenceable: no caching
        return Inspector(model, preprocess=preprocess, class_names=class_names, output=output)
    if key not in per_model:
        per_model[key] = Inspector(model, preprocess=preprocess, class_names=class_names, output=output)
    return per_model[key]


def activations(model: Any, image: ImageSource, *, preprocess: Preprocess = None,
                layers: Sequence[str] | None = None, output: str | int | None = None) -> dict[str, np.ndarray]:
    """Every conv/pool layer's output (H, W, C) for one image, from one forward pass."""
    return inspector_for(model, preprocess, output=output).activations(image, layers)


def filter_patterns(model: Any, layer: str, filters: int | Sequence[int], *, preprocess: Preprocess = None,
                    size: int = 64, steps: int = 40, step_size: float = 1.0, seed: int = 0,
                    progress: Progress | None = None, mode: str = "plain", output: str | int | None = None
                    ) -> FilterPatterns:
    """Pictures that maximise each requested filter's mean activation (batched within the memory budget)."""
    return inspector_for(model, preprocess, output=output).filter_patterns(
        layer, filters, size=size, steps=steps, step_size=step_size, seed=seed, progress=progress, mode=mode)


def gradcam(model: Any, image: ImageSource, *, preprocess: Preprocess = None, class_index: int | None = None,
            layer: str | None = None, method: str = "gradcam", output: str | int | None = None,
            max_channels: int | None = None) -> CAM:
    """Grad-CAM (or Grad-CAM++, Score-CAM) heatmap of a class for one image.

    `max_channels`: Score-CAM masks only that many channels of largest variance (None: all).
    """
    return inspector_for(model, preprocess, output=output).gradcam(
        image, class_index=class_index, layer=layer, method=method, max_channels=max_channels)


def predict(model: Any, image: ImageSource, *, preprocess: Preprocess = None, top: int = 5,
            class_names: Any = None, output: str | int | None = None) -> list[tuple[int, str, float]]:
    """Top classes of one image as (index, name, value): probabilities, or scores for a linear head."""
    return inspector_for(model, preprocess, class_names, output).predict(image, top=top)
