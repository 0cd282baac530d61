"""Grad-CAM (Selvaraju et al. 2017): each channel weighs the spatial mean of its gradient."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method


class GradCam(CamMethod):
    """w_c = mean over positions of dScore/dA_c."""

    name, label, order = "gradcam", "Grad-CAM", 0
    tooltip = "gradients, averaged per channel"

    def weights(self, feats: Any, grads: Any) -> Any:
        """Spatial mean of each channel's gradient."""
        return ops.mean(grads, axis=(1, 2))


register_cam_method(GradCam)
