"""Ablation-CAM (Desai & Ramaswamy 2020): a channel weighs the score lost when it is zeroed."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...errors import Cancelled
from ...limits import fit_batch
from .. import cam as cam_maths
from .base import CamRequest, PerturbationMethod, register_cam_method


class AblationCam(PerturbationMethod):
    """w_c = (score - score with channel c zeroed) / score, the class score being the logit.

    The ablated feature maps go through the layers after the target only, in batches sized by the
    memory budget; `max_channels` ablates only the most varied channels (the others weigh 0).
    """

    name, label, order = "ablationcam", "Ablation-CAM", 7
    tooltip = "no gradients: the score lost when each channel is zeroed (one pass from the layer on each)"

    def channel_weights(self, request: CamRequest) -> np.ndarray:
        """Batched forward passes from the layer on, one per zeroed channel."""
        ins, node, feats, k = request.inspector, request.node, request.feats, request.class_index
        after = ins._cam_fns.get_or_create((node.name, "ablationcam/after"), lambda: _after_layer(ins, node))
        chosen = cam_maths.top_variance_channels(feats, request.max_channels)
        size = (int(request.x.shape[1]), int(request.x.shape[2]))
        per_item = ins.bytes_per_image(size) + 3.0 * feats.nbytes
        chunk = fit_batch(per_item, request.batch_size, what="ablated feature maps of Ablation-CAM",
                          lower="max_channels, the image size or the model")
        f = tf.constant(feats[None])
        score = float(after(request.x, f)[0, k])
        scale = score if abs(score) > 1e-12 else 1.0
        weights = np.zeros(feats.shape[-1], np.float32)
        total = len(chosen)
        for i in range(0, total, chunk):
            part = chosen[i : i + chunk]
            keep = np.ones((len(part), feats.shape[-1]), np.float32)
            keep[np.arange(len(part)), part] = 0.0
            ablated = f * tf.constant(keep[:, None, None, :])
            xs = tf.repeat(request.x, len(part), axis=0)
            weights[part] = (score - np.asarray(after(xs, ablated)[:, k])) / scale
            done = min(i + chunk, total)
            if request.progress is not None and request.progress(done, total) is False:
                raise Cancelled(f"Ablation-CAM cancelled after {done} of {total} channels.")
        return weights


def _after_layer(ins: Any, node: Any) -> Any:
    """Compiled class scores from (input, the layer's output): paths that skip the layer still see the input."""
    from ..head import class_scores

    model = keras.Model([ins.graph.input, node.output], ins.graph.head.logits)
    activation = ins.graph.head.activation
    dtype = node.output.dtype  # a mixed-precision layer's own dtype
    fn = tf.function(lambda x, f: class_scores(tf.cast(model([x, tf.cast(f, dtype)], training=False), tf.float32),
                                               activation))
    spec_f = tf.TensorSpec([None, *node.output.shape[1:]], tf.float32)
    return fn.get_concrete_function(ins._batch_spec(None), spec_f)


register_cam_method(AblationCam)
