"""Facts about one layer's activations that viewers and reports print beside the grid."""

from __future__ import annotations

from typing import Any

import numpy as np


def signed(act: np.ndarray) -> bool:
    """True for a map that goes below zero (no ReLU: a residual stream, a normalised token layer).

    There negative values carry as much as positive ones, so a channel is dead only when it is constant.
    """
    return bool(np.nanmin(act, initial=0.0) < 0.0)


def dead_rule(act: np.ndarray) -> str:
    """What 'dead' means for this map, in words: never positive (ReLU maps) or constant (signed maps)."""
    return "constant over this image" if signed(act) else "never positive for this image"


def layer_facts(act: np.ndarray) -> dict[str, Any]:
    """Dead channels (see `dead_rule`), sparsity (share of exact zeros), the peak and the rule used."""
    peak = act.max(axis=(0, 1))
    dead = peak - act.min(axis=(0, 1)) <= 0.0 if signed(act) else peak <= 0.0
    return {
        "channels": int(act.shape[-1]),
        "dead": int(np.count_nonzero(dead)),
        "sparsity": float(np.count_nonzero(act == 0.0)) / act.size,
        "max": float(peak.max(initial=0.0)),
        "dead_rule": dead_rule(act),
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
    """True when the channel is never positive for this image (constant, on a signed map: `dead_rule`)."""
    values = act[..., channel]
    if signed(act):
        return not float(np.nanmax(values) - np.nanmin(values)) > 0.0
    return not float(np.nanmax(values, initial=0.0)) > 0.0


def channel_note(act: np.ndarray, channel: int) -> str:
    """A few words on a channel for its caption: dead, the most active one, or nothing."""
    if is_dead(act, channel):
        return f"dead: {dead_rule(act)}"
    if channel == most_active_channel(act):
        return "the most active channel for this image (highest mean)"
    return ""
