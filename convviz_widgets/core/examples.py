"""Dataset examples: for every channel of a layer, the k images that excite it most, and where.

The entry point. The work is split by job: `core.sources` reads the images (arrays, iterables,
folders, tf.data where TensorFlow is installed), `core.topk` holds the engine (a compiled per-batch
readout and an exact running top-k) and `core.receptive_field` gives each example's crop.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .receptive_field import ReceptiveField, receptive_field
from .sources import IMAGE_SUFFIXES, MAX_REASONS, Batches, Reader, reader
from .topk import (
    ExamplesEngine,
    Progress,
    TopExamples,
    TopK,
    batch_peaks,
    check_channels,
    check_counts,
    check_layer,
    check_progress,
    field_at,
)

__all__ = [
    "IMAGE_SUFFIXES", "MAX_REASONS", "Batches", "ExamplesEngine", "ReceptiveField", "Reader", "TopExamples", "TopK",
    "batch_peaks", "check_channels", "check_counts", "check_layer", "check_progress", "examples_for", "field_at",
    "reader", "receptive_field", "top_examples",
]


def examples_for(inspector: Any, layer: str, images: Any, *, k: int = 9, channels: Any = None,
                 batch_size: int = 64, progress: Progress | None = None, recursive: bool = False) -> TopExamples:
    """top_examples on a bound Inspector (its examples engine)."""
    return inspector.examples.top_examples(layer, images, k=k, channels=channels, batch_size=batch_size,
                                           progress=progress, recursive=recursive)


def top_examples(model: Any, layer: str, images: Any, k: int = 9, channels: Sequence[int] | int | None = None,
                 batch_size: int = 64, progress: Progress | None = None, preprocess: Any = None,
                 output: Any = None, recursive: bool = False, grid: tuple[int, int] | None = None) -> TopExamples:
    """For every channel of `layer`, the k images of `images` with the highest maximum activation, and where.

    `images`: an (N, H, W, C) array, an iterable of images (arrays, paths, PIL images, bytes), a
    tf.data.Dataset (images or (image, label), batched or not; TensorFlow installed) or a folder of
    image files (`recursive=True` includes sub-folders). Unreadable images are skipped and counted.
    Batches are `batch_size` images at most (fewer when the memory budget needs it, rounded down to a
    compiled size). `progress(done, total or None)` is called after each batch; False (or raising
    Cancelled) stops. `output` names the model output to bind, for models with several; `grid=(h, w)` the
    patch grid of a vision transformer's token layers (default: found from the model).
    """
    from .api import inspector_for

    kwargs = {} if output is None else {"output": output}
    inspector = inspector_for(model, preprocess, grid=grid, **kwargs)
    return examples_for(inspector, layer, images, k=k, channels=channels, batch_size=batch_size,
                        progress=progress, recursive=recursive)
