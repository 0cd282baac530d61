"""XGrad-CAM (Fu et al. 2020): gradients weighted by the activation's share of its channel."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method

EPS = 1e-7  # keeps an all-zero channel's weight at zero


class XGradCam(CamMethod):
    """w_c = sum(g_c * A_c) / (sum(A_c) + eps)."""

    name, label, order = "xgradcam", "XGrad-CAM", 4
    tooltip = "gradients weighted by normalised activations"

    def weights(self, feats: Any, grads: Any) -> Any:
        """Activation-weighted gradient sum per channel."""
        total = ops.sum(feats, axis=(1, 2))
        return ops.sum(grads * feats, axis=(1, 2)) / (total + EPS)


register_cam_method(XGradCam)
