"""Score-CAM (Wang et al. 2020): each channel weighs the class-probability gain of the input it reveals."""

from __future__ import annotations

import numpy as np

from ...limits import fit_batch
from .. import backend as bk
from .. import batching
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
        engine = request.engine or ins.cam_engine
        size = (int(x.shape[1]), int(x.shape[2]))
        chosen = cam_maths.top_variance_channels(feats, request.max_channels)
        chunk = fit_batch(masked_image_bytes(ins, size), request.batch_size, what="masked images of Score-CAM",
                          lower="max_channels, the image size or the model")
        blurred = cam_maths.blurred(np.asarray(bk.to_numpy(x))[0])[None]
        k = request.class_index
        base = float(engine.masked_head_values(x, blurred, np.zeros((1, *size, 1), np.float32))[0, k])
        weights = np.zeros(feats.shape[-1], np.float32)
        total = len(chosen)
        for lo, hi in batching.chunks(total, batching.bucket_below(chunk)):  # masks made per batch: bounded memory
            part = chosen[lo:hi]
            masks = cam_maths.upsampled_masks(feats[..., part], size)
            weights[part] = engine.masked_head_values(x, blurred, masks)[:, k] - base
            batching.report(request.progress, hi, total, "Score-CAM", "masked images")
        return weights


def masked_image_bytes(ins: object, size: tuple[int, int]) -> float:
    """Memory one masked image takes: the masked input, its mask and blend, and one forward pass."""
    pixels = float(size[0] * size[1])
    return pixels * (3 * ins.channels + 1) * 4 + ins.bytes_per_image(size)


register_cam_method(ScoreCam)
