"""HiResCAM (Draelos & Carin 2020): gradient times activation at each position, summed over channels."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method


class HiResCam(CamMethod):
    """map = sum_c g_c * A_c, element-wise (no spatial averaging, so it is faithful to the score)."""

    name, label, order = "hirescam", "HiResCAM", 3
    tooltip = "gradient × activation at each position (no averaging)"

    def raw_map(self, feats: Any, grads: Any) -> Any:
        """Element-wise product summed over channels."""
        return ops.sum(grads * feats, axis=-1)


register_cam_method(HiResCam)
