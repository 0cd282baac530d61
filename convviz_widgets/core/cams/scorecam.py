"""Score-CAM (Wang et al. 2020): each channel weighs the class-probability gain of the input it reveals."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from ...errors import Cancelled
from ...limits import fit_batch
from .. import cam as cam_maths
from .base import CamRequest, PerturbationMethod, register_cam_method


class ScoreCam(PerturbationMethod):
    """w_c = p(class | input revealed by map c) - p(class | blurred input); batches of masked images.

    Where a map is low the input is replaced by a heavily blurred copy (not black, which is itself
    strong evidence for some classes). Only the `max_channels` most varied maps are masked
    ("Faster Score-CAM"); the others weigh 0.
    """

    name, label, order = "scorecam", "Score-CAM", 2
    tooltip = "no gradients: one masked forward pass per channel (slower)"

    def channel_weights(self, request: CamRequest) -> np.ndarray:
        """Masked forward passes, `batch_size` at a time or fewer when the memory budget needs it."""
        ins, x, feats = request.inspector, request.x, request.feats
        size = (int(x.shape[1]), int(x.shape[2]))
        chosen = cam_maths.top_variance_channels(feats, request.max_channels)
        chunk = fit_batch(masked_image_bytes(ins, size), request.batch_size, what="masked images of Score-CAM",
                          lower="max_channels, the image size or the model")
        probs_fn = ins._probs_fn()
        blurred = tf.constant(cam_maths.blurred(np.asarray(x[0]))[None])
        k = request.class_index
        base = float(probs_fn(blurred)[0, k])
        weights = np.zeros(feats.shape[-1], np.float32)
        total = len(chosen)
        for i in range(0, total, chunk):  # masks made per batch: memory stays bounded
            part = chosen[i : i + chunk]
            masks = cam_maths.upsampled_masks(feats[..., part], size)
            weights[part] = np.asarray(probs_fn(x * masks + blurred * (1.0 - masks))[:, k]) - base
            done = min(i + chunk, total)
            if request.progress is not None and request.progress(done, total) is False:
                raise Cancelled(f"Score-CAM cancelled after {done} of {total} masked images.")
        return weights


def masked_image_bytes(ins: object, size: tuple[int, int]) -> float:
    """Memory one masked image takes: the masked input, its mask and blend, and one forward pass."""
    pixels = float(size[0] * size[1])
    return pixels * (3 * ins.channels + 1) * 4 + ins.bytes_per_image(size)


register_cam_method(ScoreCam)
