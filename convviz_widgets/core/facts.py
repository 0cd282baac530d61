"""Facts about one layer's activations that viewers and reports print beside the grid."""

from __future__ import annotations

import numpy as np


def layer_facts(act: np.ndarray) -> dict[str, float]:
    """Dead channels (never positive for this image) and sparsity (share of exact zeros)."""
    peak = act.max(axis=(0, 1))
    return {
        "channels": int(act.shape[-1]),
        "dead": int(np.count_nonzero(peak <= 0.0)),
        "sparsity": float(np.count_nonzero(act == 0.0)) / act.size,
        "max": float(peak.max(initial=0.0)),
    }
