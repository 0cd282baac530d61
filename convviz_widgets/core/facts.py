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


def channel_means(act: np.ndarray) -> np.ndarray:
    """Each channel's mean activation over the map, (C,); NaN/inf count as never active (-inf)."""
    means = np.asarray(act, np.float64).reshape(-1, act.shape[-1]).mean(axis=0)
    return np.where(np.isfinite(means), means, -np.inf)


def most_active_channel(act: np.ndarray) -> int:
    """The channel with the highest mean activation for this image (the first on a tie, 0 if all are dead).

    The mean, not the peak: a channel that responds across the image says more about it than one hot pixel,
    and a dead channel (never positive) has mean 0, so it is chosen only when every channel is dead.
    """
    means = channel_means(act)
    return int(np.argmax(means)) if np.isfinite(means).any() else 0


def is_dead(act: np.ndarray, channel: int) -> bool:
    """True when the channel is never positive for this image."""
    return not float(np.nanmax(act[..., channel], initial=0.0)) > 0.0


def channel_note(act: np.ndarray, channel: int) -> str:
    """A few words on a channel for its caption: dead, the most active one, or nothing."""
    if is_dead(act, channel):
        return "dead: never positive for this image"
    if channel == most_active_channel(act):
        return "the most active channel for this image (highest mean)"
    return ""
