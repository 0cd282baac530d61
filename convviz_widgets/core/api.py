"""Function shortcuts over Inspector: the same work, without building the binding yourself."""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..images import ImageSource
from .cam import CAM
from .feature_viz import Regularization
from .filters import FilterPatterns, Progress
from .inspector import Inspector
from .preprocess import Preprocess

_INSPECTORS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inspector_for(model: Any, preprocess: Preprocess = None, class_names: Any = None) -> Inspector:
    """Reuse one Inspector per (model, preprocess, class_names) so compiled functions are kept."""
    if isinstance(model, Inspector):
        return model
    key = (preprocess if isinstance(preprocess, (str, type(None))) else id(preprocess),
           None if class_names is None else repr(class_names)[:2000])
    try:
        per_model = _INSPECTORS.setdefault(model, {})
    except TypeError:  # a path or something not weak-referenceable: no caching
        return Inspector(model, preprocess=preprocess, class_names=class_names)
    if key not in per_model:
        per_model[key] = Inspector(model, preprocess=preprocess, class_names=class_names)
    return per_model[key]


def activations(model: Any, image: ImageSource, *, preprocess: Preprocess = None,
                layers: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Every conv/pool layer's output (H, W, C) for one image, from one forward pass."""
    return inspector_for(model, preprocess).activations(image, layers)


def filter_patterns(model: Any, layer: str, filters: int | Sequence[int], *, preprocess: Preprocess = None,
                    size: int = 64, steps: int = 40, step_size: float = 1.0, seed: int = 0,
                    progress: Progress | None = None, mode: str = "plain",
                    regularization: Regularization | None = None) -> FilterPatterns:
    """Pictures that maximise each requested filter's mean activation (one batched ascent).

    mode="plain" is the book's ascent; mode="regularized" the Fourier/Adam recipe (`regularization`).
    """
    return inspector_for(model, preprocess).filter_patterns(
        layer, filters, size=size, steps=steps, step_size=step_size, seed=seed, progress=progress,
        mode=mode, regularization=regularization)


def gradcam(model: Any, image: ImageSource, *, preprocess: Preprocess = None, class_index: int | None = None,
            layer: str | None = None, method: str = "gradcam") -> CAM:
    """Grad-CAM (or Grad-CAM++) heatmap of a class for one image."""
    return inspector_for(model, preprocess).gradcam(image, class_index=class_index, layer=layer, method=method)


def predict(model: Any, image: ImageSource, *, preprocess: Preprocess = None, top: int = 5,
            class_names: Any = None) -> list[tuple[int, str, float]]:
    """Top classes of one image as (index, name, probability)."""
    return inspector_for(model, preprocess, class_names).predict(image, top=top)
