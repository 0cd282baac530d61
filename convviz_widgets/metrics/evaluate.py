"""Set-level evaluation: run the metrics over many (image, class, mask) targets and summarise them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..core.cam import CAM
from ..core.inspector import Inspector
from .deletion import deletion_curve
from .localization import TOLERANCE, PointingResult, pointing_accuracy, pointing_game
from .sanity import SanityStage

Progress = Callable[[int, int], Any] | None


@dataclass(frozen=True)
class Target:
    """One object to explain: the image, the object's class and mask, and the other objects' masks."""

    image: np.ndarray
    class_index: int
    mask: np.ndarray
    others: tuple[np.ndarray, ...] = ()


@dataclass(frozen=True)
class LocalizationSummary:
    """Pointing game at the tolerance and at 0 px, how often the peak sits on another object, and energy."""

    method: str
    pointing: PointingResult
    strict: PointingResult
    on_other: float  # share of peaks lying on (0 px) another object of the same image


@dataclass(frozen=True)
class DeletionSummary:
    """Mean area under deletion or insertion curves over a set, for one pixel order."""

    mode: str
    order: str
    aucs: np.ndarray  # one area per target, in target order
    mean_curve: np.ndarray  # mean probability at each fraction

    @property
    def auc(self) -> float:
        """Mean area over the set."""
        return float(self.aucs.mean()) if self.aucs.size else float("nan")

    @property
    def n(self) -> int:
        """Number of curves."""
        return int(self.aucs.size)


@dataclass(frozen=True)
class StageSummary:
    """Cascade stage averaged over a set: mean correlations, SSIM and the share of blank maps."""

    layer: str
    spearman: float
    spearman_raw: float
    ssim: float
    blank: float


def scene_targets(scenes: Iterable[Any]) -> list[Target]:
    """One Target per object of each scene (anything with .image, .labels and .masks, e.g. demo.Scene)."""
    targets = []
    for s in scenes:
        for i, (label, mask) in enumerate(zip(s.labels, s.masks, strict=True)):
            others = tuple(m for j, m in enumerate(s.masks) if j != i)
            targets.append(Target(np.asarray(s.image), int(label), np.asarray(mask, bool), others))
    return targets


def _tick(progress: Progress, done: int, total: int) -> None:
    """Report progress when asked to."""
    if progress is not None:
        progress(done, total)


def compute_cams(inspector: Inspector, targets: Sequence[Target], method: str = "gradcam",
                 layer: str | None = None, progress: Progress = None) -> list[CAM]:
    """The CAM of each target's own class."""
    cams = []
    for i, t in enumerate(targets):
        cams.append(inspector.gradcam(t.image, class_index=t.class_index, layer=layer, method=method))
        _tick(progress, i + 1, len(targets))
    return cams


def localization_summary(method: str, heatmaps: Sequence[Any], targets: Sequence[Target],
                         tolerance: float = TOLERANCE) -> LocalizationSummary:
    """Pointing game (at `tolerance` and at 0 px), peaks on other objects, and energy for a set."""
    masks = [t.mask for t in targets]
    on_other = [any(pointing_game(h, m, 0) for m in t.others) for h, t in zip(heatmaps, targets, strict=True)]
    return LocalizationSummary(method, pointing_accuracy(heatmaps, masks, tolerance),
                               pointing_accuracy(heatmaps, masks, 0), float(np.mean(on_other)) if on_other else 0.0)


def deletion_summary(inspector: Inspector, targets: Sequence[Target], heatmaps: Sequence[Any] | None, *,
                     mode: str = "deletion", order: str = "heatmap", steps: int = 32, seed: int = 0,
                     baseline: str | np.ndarray = "blur", batch_size: int = 64,
                     progress: Progress = None) -> DeletionSummary:
    """Mean deletion/insertion AUC over a set; target i uses seed + i (random order and tie-breaks)."""
    maps = heatmaps if heatmaps is not None else [None] * len(targets)
    curves = []
    for i, (t, h) in enumerate(zip(targets, maps, strict=True)):
        curves.append(deletion_curve(inspector, t.image, h, t.class_index, steps=steps, order=order, mode=mode,
                                     seed=seed + i, baseline=baseline, batch_size=batch_size))
        _tick(progress, i + 1, len(targets))
    aucs = np.array([c.auc for c in curves], np.float64)
    mean_curve = np.mean([c.probabilities for c in curves], axis=0) if curves else np.zeros(0)
    return DeletionSummary(mode, order, aucs, mean_curve)


def stage_summaries(per_image: Sequence[Sequence[SanityStage]]) -> list[StageSummary]:
    """Average randomisation-cascade stages over images (all runs must share one cascade)."""
    if not per_image:
        return []
    summaries = []
    for k, first in enumerate(per_image[0]):
        stages = [run[k] for run in per_image]
        summaries.append(StageSummary(
            first.layer,
            float(np.mean([s.spearman for s in stages])),
            float(np.nanmean([s.spearman_raw for s in stages])) if any(np.isfinite(s.spearman_raw) for s in stages)
            else float("nan"),
            float(np.mean([s.ssim for s in stages])),
            float(np.mean([s.blank for s in stages])),
        ))
    return summaries


def format_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A compact fixed-width text table; floats with 3 decimals."""
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = "  ".join(f"{h:<{w}}" for h, w in zip(headers, widths))
    body = ["  ".join(f"{c:<{w}}" for c, w in zip(r, widths)) for r in cells]
    return "\n".join([line, "  ".join("-" * w for w in widths), *body])
