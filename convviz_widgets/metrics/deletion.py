"""Deletion and insertion curves (Petsiuk et al., "RISE", 2018): does removing what the map ranks first hurt most?

Pixels are taken in the heatmap's order (most important first; ties in a seeded random order)
or in a seeded random order, in ``steps`` equal steps. *Deletion* starts from the image and
replaces pixels with the baseline; *insertion* starts from the baseline and reveals the image's
pixels. The class probability is followed along the way; the area under the curve over the
fraction of pixels (0..1) lies in [0, 1]. A faithful map gives a low deletion AUC and a high
insertion AUC compared with the random order.

Baseline (both modes by default): the image under a strong Gaussian blur (sigma = 0.25 of the
shorter side, at least 1 px: Score-CAM's baseline), which wipes out shapes and edges but keeps
the colours, so the model is not shown a foreign black hole. RISE itself deleted to black and
inserted from a blur; pass ``baseline="black"`` (or ``"mean"``, or an image array) to choose.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from ..core import checks
from ..core.cam import BLUR_FRACTION, blurred
from ..core.inspector import Inspector
from ..errors import ConvVizError
from ..images import ImageSource
from ._maps import HeatmapLike, resize_map
from ._model import class_probabilities, fitting_batch

MODES = ("deletion", "insertion")
ORDERS = ("heatmap", "random")
BASELINES = ("blur", "mean", "black")
BLUR_SIGMA = BLUR_FRACTION  # of the shorter image side: Score-CAM's baseline too


@dataclass(frozen=True)
class DeletionCurve:
    """Class probability after each step of a deletion or insertion run, and its area."""

    fractions: np.ndarray  # share of pixels deleted (or inserted), 0..1, steps + 1 values
    probabilities: np.ndarray  # the class probability at each fraction
    auc: float  # trapezoid area under probabilities over fractions, in [0, 1]
    mode: str = "deletion"
    order: str = "heatmap"
    class_index: int = 0


def baseline_image(rgb: np.ndarray, baseline: str | np.ndarray = "blur", blur_sigma: float = BLUR_SIGMA
                   ) -> np.ndarray:
    """The 'nothing here' image, float32 in 0..255: a strong blur, the mean colour, black, or an array."""
    x = np.asarray(rgb, np.float32)
    if isinstance(baseline, np.ndarray):
        base = np.asarray(baseline, np.float32)
        if base.shape != x.shape:
            raise ConvVizError(f"The baseline image has shape {base.shape}; the prepared image has {x.shape}.")
        return base
    if baseline == "blur":
        return blurred(x, checks.real(blur_sigma, "blur_sigma", checks.BLUR))
    if baseline == "mean":
        return np.broadcast_to(x.mean(axis=(0, 1), keepdims=True), x.shape).astype(np.float32)
    if baseline == "black":
        return np.zeros_like(x)
    raise ConvVizError(f"Unknown baseline {baseline!r}: use one of {', '.join(BASELINES)} or an image array.")


def pixel_order(heatmap: HeatmapLike | None, shape: tuple[int, ...], order: str = "heatmap", seed: int = 0
                ) -> np.ndarray:
    """Flat pixel indices, most important first (heatmap resized to `shape`) or in a seeded random order."""
    h, w = int(shape[0]), int(shape[1])
    rng = np.random.default_rng(seed)
    if order == "random":
        return rng.permutation(h * w)
    if order != "heatmap":
        raise ConvVizError(f"Unknown order {order!r}: use one of {', '.join(ORDERS)}.")
    if heatmap is None:
        raise ConvVizError("order='heatmap' needs a heatmap.")
    saliency = resize_map(heatmap, (h, w)).ravel().astype(np.float64)
    return np.lexsort((rng.random(h * w), -saliency))  # ties (flat zero areas) in random, not raster, order


def step_fractions(steps: int) -> np.ndarray:
    """steps + 1 evenly spaced fractions from 0 to 1."""
    return np.linspace(0.0, 1.0, checks.bounded(steps, "steps", checks.CURVE_STEPS) + 1)


def curve_images(rgb: np.ndarray, base: np.ndarray, order: np.ndarray, fractions: np.ndarray, mode: str
                 ) -> Iterator[np.ndarray]:
    """The image at each fraction: `order`'s first pixels swapped to the baseline (deletion) or image (insertion)."""
    if mode not in MODES:
        raise ConvVizError(f"Unknown mode {mode!r}: use one of {', '.join(MODES)}.")
    image = np.asarray(rgb, np.float32)
    start, end = (image, base) if mode == "deletion" else (base, image)
    rank = np.empty(order.size, np.int64)
    rank[order] = np.arange(order.size)
    rank = rank.reshape(image.shape[:2])
    for f in fractions:
        swapped = rank < int(round(f * order.size))
        yield np.where(swapped[..., None], end, start)


def area(fractions: np.ndarray, values: np.ndarray) -> float:
    """Trapezoid area under values over fractions (0..1): the normalised AUC."""
    x = np.asarray(fractions, np.float64)
    y = np.asarray(values, np.float64)
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def deletion_curve(inspector: Inspector, image: ImageSource, heatmap: HeatmapLike | None, class_index: int,
                   steps: int = 32, order: str = "heatmap", mode: str = "deletion", seed: int = 0,
                   baseline: str | np.ndarray = "blur", batch_size: int = 64) -> DeletionCurve:
    """Follow `class_index`'s probability while pixels are deleted (or inserted) in the heatmap's or a random order.

    The image is first prepared to the model's input size; the heatmap is resized to it. All
    `steps` + 1 images go through the model in batches of `batch_size` (one forward per batch),
    lowered when a batch would not fit the memory budget. A linear head's scores are followed
    instead of probabilities (`inspector.score_label`).
    """
    class_index = inspector.check_class(class_index)
    seed = checks.bounded(seed, "seed", checks.SEED)
    rgb = inspector.prepare(image)
    inspector.check_finite(rgb)
    batch_size = fitting_batch(inspector, batch_size, rgb.shape[:2])
    fractions = step_fractions(steps)
    ranked = pixel_order(heatmap, rgb.shape, order, seed)
    frames = curve_images(rgb, baseline_image(rgb, baseline), ranked, fractions, mode)
    probs: list[np.ndarray] = []
    chunk: list[np.ndarray] = []
    for frame in frames:
        chunk.append(frame)
        if len(chunk) == batch_size:
            probs.append(class_probabilities(inspector, chunk, class_index))
            chunk = []
    if chunk:
        probs.append(class_probabilities(inspector, chunk, class_index))
    p = np.concatenate(probs)
    return DeletionCurve(fractions, p, area(fractions, p), mode, order, int(class_index))
