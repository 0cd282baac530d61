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


def output_kind(shape: tuple, activation: str, units: int, input_hw: tuple | None, final_is_conv: bool) -> str:
    """What the explained output is: "classes", "regression" (one linear unit), "segmentation" or "features".

    A 4-D output is a segmentation map when it ends in a softmax/sigmoid, or is a linear conv output on the
    input's own grid; any other 4-D output (a headless base) is a feature map.
    """
    if len(shape) == 2:
        return "regression" if activation not in ("softmax", "sigmoid") and units == 1 else "classes"
    if len(shape) == 4:
        if activation in ("softmax", "sigmoid"):
            return "segmentation"
        same_grid = input_hw is not None and tuple(shape[1:3]) == tuple(input_hw)
        if final_is_conv and same_grid:
            return "segmentation"
    return "features"


def region_scores(scores: Any, values: Any, wanted: Any, given: Any, use_given: Any, background: int
                  ) -> tuple[Any, Any, Any, Any]:
    """A class over a region of a segmentation map: (class, score, mean head values over the region, region).

    `scores`, `values` (B, h, w, K): per-pixel class scores (logits) and head values; `wanted` (B,) int32,
    -1 for the class the model predicts over the largest area (`background`, when >= 0, is never that class);
    `given` (B, h, w) a mask of each image, used where `use_given` (B,) is 1, else the pixels the model
    predicts as the class. The score is the sum of the class's scores over the region.
    """
    classes = int(scores.shape[-1])
    predicted = ops.stop_gradient(ops.one_hot(ops.argmax(scores, axis=-1), classes))  # (B, h, w, K)
    areas = ops.sum(predicted, axis=(1, 2))
    if background >= 0:
        areas = areas - 2.0 * ops.max(areas) * ops.one_hot(ops.full((1,), background, "int32"), classes)
    top = ops.cast(ops.argmax(areas, axis=-1), "int32")
    chosen = ops.where(wanted < 0, top, ops.cast(wanted, "int32"))
    pick = ops.one_hot(chosen, classes)[:, None, None, :]  # (B, 1, 1, K)
    mine = ops.sum(predicted * pick, axis=-1)
    region = ops.where(use_given[:, None, None] > 0, ops.stop_gradient(given), mine)
    score = ops.sum(ops.sum(scores * pick, axis=-1) * region, axis=(1, 2))
    area = ops.maximum(ops.sum(region, axis=(1, 2)), 1e-6)
    mean_values = ops.sum(values * region[..., None], axis=(1, 2)) / area[:, None]
    return chosen, score, mean_values, region


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
