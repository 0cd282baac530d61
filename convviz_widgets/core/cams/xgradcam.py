"""XGrad-CAM (Fu et al. 2020): gradients weighted by the activation's share of its channel."""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod, register_cam_method

EPS = 1e-7  # keeps an all-zero channel's weight at zero


class XGradCam(CamMethod):
    """w_c = sum(g_c * A_c) / (sum(A_c) + eps)."""

    name, label, order = "xgradcam", "XGrad-CAM", 4
    tooltip = "gradients weighted by normalised activations"

    def weights(self, feats: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """Activation-weighted gradient sum per channel."""
        total = tf.reduce_sum(feats, axis=[1, 2])
        return tf.reduce_sum(grads * feats, axis=[1, 2]) / (total + EPS)


register_cam_method(XGradCam)
