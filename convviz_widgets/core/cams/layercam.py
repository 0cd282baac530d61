"""LayerCAM (Jiang et al. 2021): positive gradients times activations, position by position."""

from __future__ import annotations

from typing import Any

from keras import ops

from .base import CamMethod, register_cam_method


class LayerCam(CamMethod):
    """map = sum_c ReLU(g_c) * A_c."""

    name, label, order = "layercam", "LayerCAM", 5
    tooltip = "positive gradients × activations per position (fine detail, works on early layers)"

    def raw_map(self, feats: Any, grads: Any) -> Any:
        """Element-wise ReLU(gradient) times activation, summed over channels."""
        return ops.sum(ops.relu(grads) * feats, axis=-1)


register_cam_method(LayerCam)
