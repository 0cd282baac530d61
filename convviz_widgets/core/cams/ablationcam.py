"""Ablation-CAM (Desai & Ramaswamy 2020): a channel weighs the score lost when it is zeroed."""

from __future__ import annotations

import numpy as np

from ...limits import fit_batch
from .. import batching
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
        engine = request.engine or ins.cam_engine
        chosen = cam_maths.top_variance_channels(feats, request.max_channels)
        size = (int(request.x.shape[1]), int(request.x.shape[2]))
        per_item = ins.bytes_per_image(size) + 3.0 * feats.nbytes
        chunk = fit_batch(per_item, request.batch_size, what="ablated feature maps of Ablation-CAM",
                          lower="max_channels, the image size or the model")
        channels = feats.shape[-1]
        score = float(engine.ablated_scores(node, request.x, feats, np.ones((1, channels), np.float32))[0, k])
        scale = score if abs(score) > 1e-12 else 1.0
        weights = np.zeros(channels, np.float32)
        total = len(chosen)
        for lo, hi in batching.chunks(total, batching.bucket_below(chunk)):
            part = chosen[lo:hi]
            keep = np.ones((len(part), channels), np.float32)
            keep[np.arange(len(part)), part] = 0.0
            weights[part] = (score - engine.ablated_scores(node, request.x, feats, keep)[:, k]) / scale
            batching.report(request.progress, hi, total, "Ablation-CAM", "channels")
        return weights


register_cam_method(AblationCam)
