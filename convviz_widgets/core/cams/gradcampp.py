"""Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per position by a closed-form alpha."""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod, register_cam_method


class GradCamPlusPlus(CamMethod):
    """w_c = sum over positions of alpha * ReLU(g), alpha = g^2 / (2 g^2 + sum(A) g^3), in float64."""

    name, label, order = "gradcam++", "Grad-CAM++", 1
    tooltip = "positive gradients, weighted per position"

    def weights(self, feats: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """The closed-form alpha of the paper (exponential score), zero where its denominator vanishes."""
        g = tf.cast(grads, tf.float64)
        g2 = g * g
        total = tf.reduce_sum(tf.cast(feats, tf.float64), axis=[1, 2], keepdims=True)
        denom = 2.0 * g2 + total * g2 * g
        usable = tf.abs(denom) > 1e-12
        alpha = tf.where(usable, g2 / tf.where(usable, denom, 1.0), 0.0)
        return tf.cast(tf.reduce_sum(alpha * tf.nn.relu(g), axis=[1, 2]), tf.float32)


register_cam_method(GradCamPlusPlus)
