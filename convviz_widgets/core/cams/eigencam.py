"""Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the feature map, no gradients."""

from __future__ import annotations

import tensorflow as tf

from .base import CamMethod, register_cam_method


class EigenCam(CamMethod):
    """map = (A - mean over positions) projected on its first right singular vector.

    Class-agnostic. A singular vector's sign is arbitrary, so it is fixed: the map correlates
    positively with the total activation at each position (ties: the vector's largest entry is positive).
    """

    name, label, order = "eigencam", "Eigen-CAM", 6
    tooltip = "no gradients: first principal component of the activations (the same for every class)"
    needs_gradients = False

    def raw_map(self, feats: tf.Tensor, grads: tf.Tensor | None) -> tf.Tensor:
        """Projection of the centred activations on the leading principal direction, sign fixed."""
        shape = tf.shape(feats)
        flat = tf.reshape(tf.cast(feats, tf.float64), [shape[0], shape[1] * shape[2], shape[3]])
        centred = flat - tf.reduce_mean(flat, axis=1, keepdims=True)
        _, _, v = tf.linalg.svd(centred)
        first = v[..., 0]  # (B, C)
        proj = tf.linalg.matvec(centred, first)  # (B, hw)
        total = tf.reduce_sum(centred, axis=-1)
        agree = tf.reduce_sum(proj * total, axis=-1)
        biggest = tf.gather(first, tf.argmax(tf.abs(first), axis=-1), batch_dims=1)
        fallback = tf.where(biggest < 0, tf.constant(-1.0, tf.float64), 1.0)
        sign = tf.where(tf.abs(agree) > 1e-12, tf.sign(agree), fallback)
        proj = proj * sign[:, None]
        return tf.cast(tf.reshape(proj, shape[:3]), tf.float32)


register_cam_method(EigenCam)
