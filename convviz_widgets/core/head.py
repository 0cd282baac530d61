"""The head's maths in one place: which scores a CAM explains, and the head's values (probabilities or scores).

Written with `keras.ops` for compiled code on every backend, and in numpy for one image's logits.
A single sigmoid or linear unit is read as two classes, (-z, z): "not the class" and "the class".
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops


def class_scores(logits: Any, activation: str) -> Any:
    """Per-class scores to explain (n, classes): the logits, and (-z, z) for a single unit."""
    if logits.shape[-1] == 1:
        return ops.concatenate([-logits, logits], axis=-1)
    return logits


def head_values(logits: Any, activation: str) -> Any:
    """The head's values from its logits (n, classes): probabilities, or a linear head's scores."""
    if activation not in ("softmax", "sigmoid"):
        return class_scores(logits, activation)
    if logits.shape[-1] == 1:
        p = ops.sigmoid(logits)
        return ops.concatenate([1.0 - p, p], axis=-1)
    if activation == "sigmoid":
        return ops.sigmoid(logits)
    return ops.softmax(logits, axis=-1)


def chosen_scores(scores: Any, wanted: Any) -> tuple[Any, Any]:
    """(the explained class per image, its score): `wanted` (n,) int32, -1 for the top class."""
    top = ops.cast(ops.argmax(scores, axis=-1), "int32")
    chosen = ops.where(wanted < 0, top, ops.cast(wanted, "int32"))
    score = ops.take_along_axis(scores, chosen[:, None], axis=1)[:, 0]
    return chosen, score


def probabilities(logits: np.ndarray, activation: str) -> np.ndarray:
    """Probabilities from one image's logits (numpy); a linear head's scores, as they are."""
    z = np.asarray(logits, np.float64).reshape(-1)
    if activation not in ("softmax", "sigmoid"):
        return (np.concatenate([-z, z]) if z.size == 1 else z).astype(np.float32)
    if z.size == 1:
        p = 1.0 / (1.0 + np.exp(-z[0]))
        return np.array([1.0 - p, p], np.float32)
    if activation == "sigmoid":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    e = np.exp(z - z.max())
    return (e / e.sum()).astype(np.float32)
