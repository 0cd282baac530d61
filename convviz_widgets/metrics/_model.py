"""Batched class probabilities through any Inspector's model: one compiled forward per chunk."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core import checks
from ..core.inspector import Inspector
from ..limits import fit_batch


def check_batch_size(batch_size: int) -> int:
    """Batch sizes must be positive integers."""
    return checks.bounded(batch_size, "batch_size", checks.BATCH_SIZE)


def fitting_batch(inspector: Inspector, batch_size: int, hw: tuple[int, int]) -> int:
    """The requested batch size, lowered so a batch of (h, w) images and its forward pass fit the memory budget."""
    per_image = inspector.bytes_per_image(hw) + 3.0 * 4 * hw[0] * hw[1] * 3  # + the frame, its copy, its batch
    return fit_batch(per_image, check_batch_size(batch_size), what="images", lower="batch_size or the image size")


def preprocessed(inspector: Inspector, images: Any) -> Any:
    """A preprocessed float32 batch (a backend tensor) of prepared RGB images (n, H, W, 3) in 0..255."""
    return inspector.input_batch([np.asarray(img) for img in images], in_graph=False)


def class_probabilities(inspector: Inspector, images: Any, class_index: int) -> np.ndarray:
    """The probability of one class for a batch of prepared images, in one forward pass."""
    probs = inspector.batch_probabilities(preprocessed(inspector, images))
    return np.asarray(probs[:, int(class_index)], np.float64)
