"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the feature map, no gradients."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method

TIE = 1e-6  # |cos(map, total activation)| at most this: the sign falls back to the vector's largest entry


class EigenCam(CamMethod):
    """map = (A - mean over positions) projected on its first right singular vector.

    Class-agnostic. A singular vector's sign is arbitrary, so it is fixed: the map correlates
    positively with the total activation at each position (ties: the vector's largest entry is positive).
    The activations are centred and scaled by their peak before the SVD, so float32 is enough.
    """

    name, label, order = "eigencam", "Eigen-CAM", 6
    tooltip = "no gradients: first principal component of the activations (the same for every class)"
    needs_gradients = False
    class_agnostic = True

    def raw_map(self, feats: Any, grads: Any | None) -> Any:
        """Projection of the centred activations on the leading principal direction, sign fixed."""
        _, h, w, c = feats.shape
        flat = ops.reshape(ops.cast(feats, "float32"), (-1, h * w, c))
        centred = flat - ops.mean(flat, axis=1, keepdims=True)
        peak = ops.max(ops.abs(centred), axis=(1, 2), keepdims=True)
        scaled = centred / ops.where(peak > 0, peak, 1.0)  # entries in [-1, 1]: no overflow, same vectors
        _, _, vh = ops.svd(scaled, full_matrices=False)
        first = vh[:, 0, :]  # (B, C)
        proj = ops.sum(centred * first[:, None, :], axis=-1)  # (B, hw)
        total = ops.sum(centred, axis=-1)
        agree = ops.sum(proj * total, axis=-1)
        norms = ops.sqrt(ops.sum(proj * proj, axis=-1) * ops.sum(total * total, axis=-1))
        biggest = ops.take_along_axis(first, ops.argmax(ops.abs(first), axis=-1)[:, None], axis=1)[:, 0]
        fallback = ops.where(biggest < 0, -1.0, 1.0)
        sign = ops.where(ops.abs(agree) > TIE * norms, ops.sign(agree), fallback)
        return ops.reshape(proj * sign[:, None], (-1, h, w))


register_cam_method(EigenCam)
