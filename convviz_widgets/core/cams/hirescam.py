"""HiResCAM (Draelos & Carin 2020): gradient times activation at each position, summed over channels."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method

CANCELLED = 1e-4  # |sum| below this share of the sum of |terms|: the terms cancel (float32 rounding is ~1e-7 a term)


class HiResCam(CamMethod):
    """map = sum_c g_c * A_c, element-wise (no spatial averaging, so it is faithful to the score)."""

    name, label, order = "hirescam", "HiResCAM", 3
    tooltip = "gradient × activation at each position (no averaging)"

    def raw_map(self, feats: Any, grads: Any) -> Any:
        """Element-wise product summed over channels; a sum that cancels to float rounding is 0, not noise.

        At the input of a LayerNormalization (a ViT block's input) the sum is exactly 0 at every patch token,
        since a norm ignores its input's scale: scaled to [0, 1], its rounding would look like a map.
        """
        terms = grads * feats
        total = ops.sum(terms, axis=-1)
        size = ops.sum(ops.abs(terms), axis=-1)
        return ops.where(ops.abs(total) <= CANCELLED * size, ops.zeros_like(total), total)


register_cam_method(HiResCam)
