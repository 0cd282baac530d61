"""Class activation maps: the result type and the numpy maths shared by the methods in `cams/`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ConvVizError
from ..images import resize_map

BLUR_FRACTION = 0.25  # the blurred baseline's sigma, as a share of the image's shorter side


@dataclass(frozen=True)
class CAM:
    """A class activation map at the feature-map resolution, values in [0, 1].

    `class_index`/`class_name` are the explained class (the class of a class, label or region target; -1 and
    None for a callable target); `target` says in words what was explained, whatever the target.
    """

    heatmap: np.ndarray
    class_index: int
    score: float
    layer: str
    method: str = "gradcam"
    class_name: str | None = None
    probability: float | None = None
    raw: np.ndarray | None = None  # the weighted sum before ReLU and scaling
    weights: np.ndarray | None = None  # (C,) channel weights; None for methods that build the map directly
    target: str = ""  # what was explained, in words: "class 3 (star)", "class 1 (circle) over its predicted region"
    region: np.ndarray | None = None  # a region target's mask (h, w) on the output's grid; None for other targets

    def resized(self, h: int, w: int) -> np.ndarray:
        """The heatmap upsampled bilinearly to (h, w), still float32 in [0, 1]."""
        if h < 1 or w < 1:
            raise ConvVizError(f"resized() needs a positive size; got ({h}, {w}).")
        return np.clip(resize_map(self.heatmap, (int(h), int(w))), 0.0, 1.0).astype(np.float32)


def contributions(cam: CAM, means: np.ndarray | None) -> np.ndarray | None:
    """Each channel's share of the map: its weight times its mean activation (they sum to the raw map's mean).

    None for methods without channel weights, or when `means` does not have one value per channel.
    """
    if cam.weights is None or means is None or len(means) != len(cam.weights):
        return None
    return (np.asarray(cam.weights, np.float64) * np.asarray(means, np.float64)).astype(np.float32)


def top_contributors(shares: np.ndarray, n: int) -> list[int]:
    """The channels of the `n` largest positive contributions, largest first (ties: the lower index)."""
    order = np.argsort(-shares, kind="stable")
    return [int(k) for k in order[:n] if shares[k] > 0]


def top_variance_channels(feats: np.ndarray, max_channels: int | None) -> np.ndarray:
    """Channel indices (ascending) of the `max_channels` maps with the largest spatial variance.

    "Faster Score-CAM": flat maps reveal almost nothing, so only the most varied ones are masked.
    None or a count <= 0 keeps every channel; ties go to the lower index.
    """
    channels = feats.shape[-1]
    if max_channels is None or int(max_channels) <= 0 or int(max_channels) >= channels:
        return np.arange(channels)
    f = np.nan_to_num(feats.astype(np.float64)).reshape(-1, channels)
    order = np.argsort(-f.var(axis=0), kind="stable")
    return np.sort(order[: int(max_channels)])


def upsampled_masks(feats: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Score-CAM masks: each channel upsampled to the input (h, w), scaled to [0, 1]; (C, h, w, 1)."""
    f = np.nan_to_num(feats.astype(np.float32))
    lo = f.min(axis=(0, 1), keepdims=True)
    span = f.max(axis=(0, 1), keepdims=True) - lo
    norm = np.where(span > 1e-12, (f - lo) / np.where(span > 1e-12, span, 1.0), 0.0).astype(np.float32)
    return np.moveaxis(resize_map(norm, size), -1, 0)[..., None]


def blurred(image: np.ndarray, fraction: float = BLUR_FRACTION) -> np.ndarray:
    """A Gaussian blur with sigma = `fraction` of the shorter side (at least 1 px): the image with its shapes gone.

    The one blurred baseline: Score-CAM's and the deletion/insertion metrics' (float32 out).
    """
    import cv2

    sigma = max(1.0, float(fraction) * min(image.shape[:2]))
    out = cv2.GaussianBlur(np.asarray(image, np.float32), (0, 0), sigmaX=sigma, sigmaY=sigma,
                           borderType=cv2.BORDER_REFLECT)
    return out.reshape(image.shape)


def combine(feats: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted channel sum, then ReLU and scaling to [0, 1]; returns (heatmap, raw sum)."""
    return finish(np.tensordot(feats.astype(np.float32), weights.astype(np.float32), axes=([-1], [0])))


def finish(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A weighted channel sum to (heatmap, raw sum): ReLU and scaling to [0, 1], non-finite values as 0."""
    raw = np.nan_to_num(raw, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
    pos = np.maximum(raw, 0.0)
    top = float(pos.max(initial=0.0))
    scale = float(np.abs(raw).max(initial=0.0))
    spread = float(raw.max() - raw.min()) if raw.size else 0.0
    # No positive evidence, or evidence that is the same everywhere, says nothing about
    # *where*: the map is all-zero rather than a division by ~0 or a uniform glare.
    if top <= 1e-12 or spread <= 1e-4 * scale:
        return np.zeros_like(pos), raw
    return (pos / top).astype(np.float32), raw
