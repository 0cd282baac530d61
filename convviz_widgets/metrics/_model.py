"""Batched class probabilities through any Inspector's model: one compiled forward per chunk."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from ..core.inspector import Inspector
from ..errors import ConvVizError


def check_batch_size(batch_size: int) -> int:
    """Batch sizes must be positive integers."""
    if int(batch_size) < 1:
        raise ConvVizError(f"batch_size must be >= 1; got {batch_size}.")
    return int(batch_size)


def preprocessed(inspector: Inspector, images: Any) -> tf.Tensor:
    """A preprocessed batch from prepared RGB images (n, H, W, 3), uint8 or float in 0..255."""
    return tf.concat([inspector.batch(np.asarray(img)) for img in images], axis=0)


def class_probabilities(inspector: Inspector, images: Any, class_index: int) -> np.ndarray:
    """The probability of one class for a batch of prepared images, in one forward pass."""
    probs = inspector.batch_probabilities(preprocessed(inspector, images))
    return np.asarray(probs[:, int(class_index)], np.float64)
