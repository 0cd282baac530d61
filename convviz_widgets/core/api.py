"""Function shortcuts over Inspector: the same work, without building the binding yourself."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..images import ImageSource
from . import checks
from .cache import LRUCache
from .cam import CAM
from .cams import method_names
from .feature_viz import Regularization
from .filters import FilterPatterns, Progress
from .inspector import Inspector
from .preprocess import Preprocess

INSPECTOR_CACHE_SIZE = 8  # models x settings kept bound; the least recently used is dropped (and can be freed)
_INSPECTORS: LRUCache = LRUCache(INSPECTOR_CACHE_SIZE)


def inspector_for(model: Any, preprocess: Preprocess = None, class_names: Any = None,
                  output: str | int | None = None, grid: tuple[int, int] | None = None) -> Inspector:
    """Reuse one Inspector per (model, preprocess, class_names, output, grid) so compiled functions are kept.

    A bounded cache: only the most recently used few stay, so a dropped model can be freed.
    """
    if isinstance(model, Inspector):
        return model
    output = checks.output_selector(output)
    if isinstance(model, (str, bytes, os.PathLike)):  # a path: a fresh model each time, nothing to reuse
        return Inspector(model, preprocess=preprocess, class_names=class_names, output=output, grid=grid)
    key = (id(model), preprocess if isinstance(preprocess, (str, type(None))) else id(preprocess),
           None if class_names is None else repr(class_names)[:2000], output, _grid_key(grid))
    with _INSPECTORS.building(key):  # several threads asking at once: one builds, the others get its Inspector
        cached = _INSPECTORS.get(key)
        if cached is not None and cached.model is model and (isinstance(preprocess, (str, type(None)))
                                                             or cached.preprocess_fn is preprocess):
            return cached
        ins = Inspector(model, preprocess=preprocess, class_names=class_names, output=output, grid=grid)
        _INSPECTORS.put(key, ins)
        return ins


def _grid_key(grid: Any) -> Any:
    """A hashable form of `grid=` for the Inspector cache (checked by the Inspector itself)."""
    try:
        return None if grid is None else tuple(grid)
    except TypeError:
        return repr(grid)


def cam_methods(model: Any = None, *, preprocess: Preprocess = None, output: str | int | None = None,
                grid: tuple[int, int] | None = None) -> list[str]:
    """The registered CAM methods' names in list order; with a model (or an Inspector), only those that apply to it.

    A method that does not apply (attention rollout on a convnet, say) says why in `Inspector.cam_methods_skipped`.
    """
    if model is None:
        return method_names()
    return method_names(inspector_for(model, preprocess, output=output, grid=grid))


def activations(model: Any, image: ImageSource | Sequence[ImageSource], *, preprocess: Preprocess = None,
                layers: Sequence[str] | None = None, output: str | int | None = None, batch_size: int = 32,
                grid: tuple[int, int] | None = None) -> dict[str, np.ndarray] | list[dict[str, np.ndarray]]:
    """Every conv/pool layer's output (H, W, C) for one image, from one forward pass; a list for several.

    Several images (a list or an (N, H, W, 3) array) are computed `batch_size` at a time in one
    compiled pass each (fewer when the memory budget needs it). `grid=(h, w)`: the patch grid of a vision
    transformer's token layers, when the one found from the model is wrong.
    """
    return inspector_for(model, preprocess, output=output, grid=grid).activations(image, layers,
                                                                                   batch_size=batch_size)


def filter_patterns(model: Any, layer: str, filters: int | Sequence[int], *, preprocess: Preprocess = None,
                    size: int = 64, steps: int = 40, step_size: float = 1.0, seed: int = 0,
                    progress: Progress | None = None, mode: str = "plain",
                    regularization: Regularization | None = None, output: str | int | None = None,
                    grid: tuple[int, int] | None = None) -> FilterPatterns:
    """Pictures that maximise each requested filter's mean activation (batched within the memory budget).

    mode="plain" is the book's ascent; mode="regularized" the Fourier/Adam recipe (`regularization`).
    """
    return inspector_for(model, preprocess, output=output, grid=grid).filter_patterns(
        layer, filters, size=size, steps=steps, step_size=step_size, seed=seed, progress=progress,
        mode=mode, regularization=regularization)


def gradcam(model: Any, image: ImageSource | Sequence[ImageSource], *, preprocess: Preprocess = None,
            class_index: Any = None, layer: str | None = None, method: str = "gradcam",
            output: str | int | None = None, max_channels: int | None = None, batch_size: int = 32,
            grid: tuple[int, int] | None = None, target: Any = None) -> CAM | list[CAM]:
    """A class activation map (any registered method) of a class for one image; a list for several.

    Several images (a list or an (N, H, W, 3) array) are computed `batch_size` at a time in one
    compiled pass each. `max_channels`: perturbation methods use only that many channels (None: all).
    `target`: what is explained (`ClassTarget`, `RegionTarget`, `LabelTarget`, `OutputTarget` or a callable
    f(outputs) -> (batch,) in keras.ops; one for all images or one per image); `class_index=k` is the short
    form of `ClassTarget(k)`.
    `grid=(h, w)`: the patch grid of a vision transformer's token layers (default: found from the model).
    """
    return inspector_for(model, preprocess, output=output, grid=grid).gradcam(
        image, class_index=class_index, layer=layer, method=method, max_channels=max_channels,
        batch_size=batch_size, target=target)


def predict(model: Any, image: ImageSource, *, preprocess: Preprocess = None, top: int = 5,
            class_names: Any = None, output: str | int | None = None) -> list[tuple[int, str, float]]:
    """Top classes of one image as (index, name, value): probabilities, or scores for a linear head."""
    return inspector_for(model, preprocess, class_names, output).predict(image, top=top)
