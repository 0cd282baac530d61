"""Faithfulness of CAM methods over a dataset: pointing game, deletion and insertion AUC, with 95 % intervals.

Each task explains its batch's images (the model's top class, or the given label) with every
method and sends back one number per image and metric; the table is computed from all of
them in image order, so it is the same whatever the number of workers or the finishing order.
"""

from __future__ import annotations

import csv
import html
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..core.api import inspector_for
from ..core.cams import get_method, method_for
from ..core.examples import MAX_REASONS, Batches
from ..errors import ConvVizError
from ..metrics.deletion import deletion_curve
from ..metrics.localization import TOLERANCE, pointing_game
from ..metrics.sanity import default_depth, sanity_check
from . import engine
from .engine import Batch, ModelSpec, Progress, RunStats

Z95 = 1.959963984540054  # the normal quantile of a two-sided 95 % interval
COLUMNS = ("method", "images", "pointing", "pointing_ci", "pointing_n", "deletion_auc", "deletion_ci",
           "insertion_auc", "insertion_ci", "randomization", "randomization_ci")
METRICS = ("pointing", "deletion", "insertion", "randomization")


@dataclass
class EvaluationTable:
    """One row per method: means and 95 % half-widths (mean ± 1.96 s / sqrt(n)), and every image's values."""

    rows: list[dict[str, Any]]
    per_image: dict[str, dict[str, np.ndarray]]  # method -> metric -> values in image order ("index" too)
    skipped: int = 0
    skip_reasons: list[str] = field(default_factory=list)
    stats: RunStats | None = None
    columns: tuple[str, ...] = COLUMNS

    def __len__(self) -> int:
        return len(self.rows)

    def row(self, method: str) -> dict[str, Any]:
        """The row of one method."""
        for r in self.rows:
            if r["method"] == method:
                return r
        raise ConvVizError(f"No row for method {method!r}; rows: {', '.join(r['method'] for r in self.rows)}.")

    def to_csv(self, path: Any = None) -> str:
        """The table as CSV text (also written to `path` when given)."""
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=list(self.columns), lineterminator="\n")
        writer.writeheader()
        for r in self.rows:
            writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
        if path is not None:
            Path(path).write_text(buf.getvalue(), encoding="utf-8")
        return buf.getvalue()

    def to_html(self) -> str:
        """A standalone HTML page of the table."""
        esc = html.escape

        def cell(r: dict[str, Any], metric: str) -> str:
            mean = r[metric if metric in ("pointing", "randomization") else f"{metric}_auc"]
            ci = r[f"{metric}_ci"]
            return "–" if not math.isfinite(mean) else f"{mean:.3f} ± {ci:.3f}" if math.isfinite(ci) else f"{mean:.3f}"

        body = "".join(
            f"<tr><th>{esc(r['method'])}</th><td>{r['images']}</td><td>{cell(r, 'pointing')}</td>"
            f"<td>{cell(r, 'deletion')}</td><td>{cell(r, 'insertion')}</td><td>{cell(r, 'randomization')}</td></tr>"
            for r in self.rows)
        skipped = f" {self.skipped} images could not be read and were skipped." if self.skipped else ""
        return ("<!doctype html><html><head><meta charset='utf-8'><title>CAM faithfulness</title><style>"
                "body{font-family:system-ui,sans-serif;margin:2em;color:#222}td,th{padding:.2em 1em;text-align:left}"
                "</style></head><body><h1>CAM faithfulness</h1>"
                "<p>Means with 95 % intervals (± 1.96 standard errors). Pointing game: the map's peak within "
                f"{TOLERANCE} px of the object (images with a mask). Deletion AUC: lower is better; insertion AUC: "
                f"higher is better. Randomisation: Spearman correlation with the map after the CAM layer's block is "
                f"randomised; near 0 is good.{skipped}</p><table><tr><th>method</th><th>images</th><th>pointing</th>"
                f"<th>deletion AUC</th><th>insertion AUC</th><th>randomisation</th></tr>{body}</table></body></html>")


def _mean_ci(values: np.ndarray) -> tuple[float, float, int]:
    """Mean, 95 % half-width and count of the finite values (NaN where there are none / too few)."""
    v = np.asarray(values, np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return float("nan"), float("nan"), 0
    ci = Z95 * float(np.std(v, ddof=1)) / math.sqrt(v.size) if v.size > 1 else float("nan")
    return float(np.mean(v)), ci, int(v.size)


def _randomized_spearman(ins: Any, rgb: np.ndarray, cam: Any) -> float:
    """Spearman correlation of the map with the same map after the CAM layer's block is randomised (seeded)."""
    checked = sanity_check(ins, rgb, cam, default_depth(ins, cam.layer))
    if isinstance(checked, BaseException):
        raise ConvVizError(f"The randomisation check could not run: {checked}") from checked
    return float(checked[1].spearman)


def evaluate_task(batch: Batch, spec: ModelSpec, methods: tuple[str, ...], steps: int, labels_given: bool,
                  randomization: bool = True, payload: bytes | None = None, inspector: Any = None
                  ) -> dict[str, np.ndarray]:
    """One batch: for each readable image and method, the pointing hit (NaN without a mask) and both AUCs."""
    ins = inspector if inspector is not None else engine.worker_inspector(spec, payload)
    prep = Batches(ins, 1)
    extra = batch.extra if batch.extra is not None else [(None, None)] * batch.size
    index, rows = [], {m: {metric: [] for metric in METRICS} for m in methods}
    for (i, item), (mask, label) in zip(batch.items(), extra, strict=True):
        rgb = prep._prepare(i, item)
        if rgb is None:
            continue
        c = int(label) if labels_given and label is not None else int(np.argmax(ins.probabilities(rgb)))
        index.append(i)
        for m in methods:
            cam = ins.gradcam(rgb, class_index=c, method=m)
            got = rows[m]
            got["pointing"].append(float("nan") if mask is None else float(pointing_game(cam, mask)))
            for mode in ("deletion", "insertion"):
                got[mode].append(deletion_curve(ins, rgb, cam, c, steps=steps, mode=mode, seed=i).auc)
            got["randomization"].append(_randomized_spearman(ins, rgb, cam) if randomization else float("nan"))
    part = {"index": np.array(index, np.int64), "skipped": np.array(prep.skipped, np.int64),
            "reasons": np.array(prep.reasons[:MAX_REASONS], dtype=np.str_)}
    for m in methods:
        for metric, values in rows[m].items():
            part[f"{m}.{metric}"] = np.array(values, np.float64)
    return part


class _Collected:
    """Every batch's per-image values, kept until the table is made."""

    def __init__(self) -> None:
        self.parts: list[dict[str, np.ndarray]] = []

    def __call__(self, part: dict[str, np.ndarray]) -> None:
        self.parts.append(part)


def evaluate(model: Any, images: Any, methods: Sequence[str] = ("gradcam",), masks: Any = None, client: Any = None,
             workers: int | None = None, *, labels: Any = None, preprocess: Any = None, output: Any = None,
             steps: int = 16, batch_size: int = 16, out: Any = None, scheduler: str | None = None,
             progress: Progress | None = None, recursive: bool = False, randomization: bool = True
             ) -> EvaluationTable:
    """Pointing game (where `masks` are given: one 2-D mask or None per image), deletion and insertion AUC.

    Each image is explained for the model's top class (or `labels[i]`), by every method in `methods`.
    `steps` pixel-fraction steps per curve; `out` keeps finished batches so a stopped run resumes.
    `randomization`: also the Spearman correlation of each map with the map of a seeded copy of the model whose
    CAM-layer block is randomised (the panel's sanity check; near 0 is good, near 1 means the map ignores the
    weights).
    """
    if isinstance(methods, str):
        methods = (methods,)
    names = tuple(get_method(m).name for m in methods)
    if not names:
        raise ConvVizError("methods is empty: name at least one CAM method, e.g. ('gradcam',).")
    ins = inspector_for(model, preprocess, output=output)
    names = tuple(method_for(m, ins).name for m in names)  # one that does not apply is refused here, with its reason
    data = engine.dataset(images, batch_size, recursive)
    mask_list = [None] * data.total if masks is None else list(masks)
    label_list = [None] * data.total if labels is None else list(labels)
    if len(mask_list) != data.total or len(label_list) != data.total:
        raise ConvVizError(f"masks and labels need one entry per image ({data.total} images); "
                           f"got {len(mask_list)} masks and {len(label_list)} labels.")
    data = engine.with_extra(data, list(zip(mask_list, label_list)), "masks and labels")
    collected = _Collected()
    args_sig = (names, int(steps), labels is not None, batch_size, bool(randomization))
    with engine.dask_client(client, workers, scheduler) as dask:
        spec, payload, digest, task = engine.placed_task(evaluate_task, model, ins, preprocess, output, dask)
        job = engine.job_id("evaluate", digest, repr(preprocess), repr(output), data.fingerprint, args_sig)
        stats = engine.run(task, data, (spec, names, int(steps), labels is not None, bool(randomization)),
                           client=dask,
                           partials=engine.Partials(out, job), progress=progress, payload=payload, merge=collected)
    return _table(names, collected.parts, stats)


def _table(methods: tuple[str, ...], parts: list[dict[str, np.ndarray]], stats: RunStats) -> EvaluationTable:
    """Per-image values in image order, then one row of means and intervals per method."""
    order = np.argsort(np.concatenate([p["index"] for p in parts]), kind="stable") if parts else np.zeros(0, int)
    index = np.concatenate([p["index"] for p in parts])[order] if parts else np.zeros(0, np.int64)
    if index.size == 0:
        raise ConvVizError("None of the images could be read, so nothing was evaluated.")
    per_image: dict[str, dict[str, np.ndarray]] = {}
    rows = []
    for m in methods:
        vals = {metric: np.concatenate([p[f"{m}.{metric}"] for p in parts])[order] for metric in METRICS}
        per_image[m] = {"index": index, **vals}
        point, point_ci, point_n = _mean_ci(vals["pointing"])
        dele, dele_ci, _ = _mean_ci(vals["deletion"])
        ins_, ins_ci, _ = _mean_ci(vals["insertion"])
        rand, rand_ci, _ = _mean_ci(vals["randomization"])
        rows.append({"method": m, "images": int(index.size), "pointing": point, "pointing_ci": point_ci,
                     "pointing_n": point_n, "deletion_auc": dele, "deletion_ci": dele_ci,
                     "insertion_auc": ins_, "insertion_ci": ins_ci, "randomization": rand,
                     "randomization_ci": rand_ci})
    skipped = int(sum(int(p["skipped"]) for p in parts))
    reasons = [str(r) for p in sorted(parts, key=lambda p: int(p["index"][0]) if p["index"].size else 0)
               for r in p["reasons"]][:MAX_REASONS]
    return EvaluationTable(rows, per_image, skipped, reasons, stats)


__all__ = ["EvaluationTable", "evaluate"]
