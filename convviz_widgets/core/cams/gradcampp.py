"""Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per position by a closed-form alpha."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method

USABLE = 1e-12  # a denominator 2 g^2 + sum(A) g^3 at most this large gives alpha = 0


class GradCamPlusPlus(CamMethod):
    """w_c = sum over positions of alpha * ReLU(g), alpha = g^2 / (2 g^2 + sum(A) g^3).

    For g != 0, alpha = 1 / (2 + sum(A) g): computed in that form there is no cube of a small
    gradient to underflow, so float32 (every backend's default) gives the float64 result.
    """

    name, label, order = "gradcam++", "Grad-CAM++", 1
    tooltip = "positive gradients, weighted per position"

    def weights(self, feats: Any, grads: Any) -> Any:
        """The closed-form alpha of the paper (exponential score), zero where its denominator vanishes."""
        total = ops.sum(feats, axis=(1, 2), keepdims=True)
        rest = 2.0 + total * grads  # the denominator over g^2
        usable = ops.abs(grads) * ops.abs(grads) * ops.abs(rest) > USABLE  # |2 g^2 + sum(A) g^3| > USABLE
        alpha = ops.where(usable, 1.0 / ops.where(usable, rest, 1.0), 0.0)
        return ops.sum(alpha * ops.relu(grads), axis=(1, 2))


register_cam_method(GradCamPlusPlus)
