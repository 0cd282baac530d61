"""Should you believe the demo model's heatmaps? Pointing game, deletion/insertion and randomisation figures.

On `--n` generated two-object scenes (``demo.scene(objects=2, seed=seed0 + i)``), the CAM of each
of the two classes present is scored:

1. pointing game (15 px tolerance, and 0 px) and energy for Grad-CAM, Grad-CAM++ and Score-CAM,
   against a centre-prior map (Zhang et al.'s baseline) and a uniform map (energy = object area);
2. deletion and insertion AUC (blurred baseline) in the heatmap's order against a seeded random order;
3. cascading model randomisation (Adebayo et al.): mean rank correlation per stage.

Run: ``.venv/bin/python bench/metrics_demo.py [--n 200] [--steps 32] [--kind honest|shortcut | --model PATH]``
(about 2.5 to 3 minutes for n=200 on 2 shared CPU cores).  The default seeds (from 20000000) are
held out: training never draws them.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from convviz_widgets import Inspector, demo, load_model  # noqa: E402
from convviz_widgets import metrics as mx  # noqa: E402

METHODS = ("gradcam", "gradcam++", "scorecam")
POINTING_BAR = 0.90
SANITY_BAR = 0.30


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="two-object scenes (2 targets each)")
    parser.add_argument("--seed0", type=int, default=20_000_000, help="first scene seed (default: held out)")
    parser.add_argument("--steps", type=int, default=32, help="deletion/insertion steps")
    parser.add_argument("--model", type=Path, default=None, help="a .keras file instead of the demo model")
    parser.add_argument("--kind", choices=("honest", "shortcut"), default="honest", help="which demo model")
    parser.add_argument("--deletion-methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--sanity-n", type=int, default=None, help="scenes for the randomisation check (default n)")
    return parser.parse_args(argv)


def inspector(path: Path | None, kind: str = "honest") -> Inspector:
    """The demo model (or the given file) bound with the demo's preprocessing and class names."""
    model = demo.load_model(kind) if path is None else load_model(path)
    return Inspector(model, preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))


class Clock:
    """Section timings for the footer."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.marks: list[tuple[str, float]] = []

    def mark(self, name: str) -> None:
        """Record the time since the previous mark under `name`."""
        now = time.perf_counter()
        last = self.start + sum(t for _, t in self.marks)
        self.marks.append((name, now - last))


def pair_accuracy(ins: Inspector, scenes: list[demo.Scene]) -> float:
    """Share of scenes whose two most probable classes are exactly the two shapes present."""
    hits = [set(int(i) for i, _, _ in ins.predict(s.image, top=2)) == set(s.labels) for s in scenes]
    return float(np.mean(hits))


def localization(ins: Inspector, targets: list[mx.Target]) -> tuple[dict[str, list], list[list]]:
    """CAMs per method and the pointing/energy table rows (with the centre and uniform baselines)."""
    cams = {m: mx.compute_cams(ins, targets, m) for m in METHODS}
    rows = []
    for m in METHODS:
        s = mx.localization_summary(m, cams[m], targets)
        rows.append([m, s.pointing.accuracy, s.strict.accuracy, s.on_other, s.pointing.energy])
    shape = targets[0].mask.shape
    centre = mx.localization_summary("centre prior", [mx.centre_prior(shape)] * len(targets), targets)
    rows.append(["centre prior", centre.pointing.accuracy, centre.strict.accuracy, centre.on_other,
                 centre.pointing.energy])
    area = float(np.mean([t.mask.mean() for t in targets]))
    rows.append(["uniform map", "-", "-", "-", area])
    return cams, rows


def deletion(ins: Inspector, targets: list[mx.Target], cams: dict[str, list], methods: Sequence[str],
             steps: int) -> tuple[dict[tuple[str, str], mx.DeletionSummary], list[list]]:
    """Deletion and insertion summaries per order, and the table rows."""
    runs: dict[tuple[str, str], mx.DeletionSummary] = {}
    for order in [*methods, "random"]:
        maps = None if order == "random" else [c.heatmap for c in cams[order]]
        for mode in ("deletion", "insertion"):
            runs[order, mode] = mx.deletion_summary(ins, targets, maps, mode=mode, steps=steps, seed=0,
                                                    order="random" if order == "random" else "heatmap")
    rows = []
    for order in [*methods, "random"]:
        d, i = runs[order, "deletion"], runs[order, "insertion"]
        beats = "-" if order == "random" else float(np.mean(d.aucs < runs["random", "deletion"].aucs))
        rows.append([order, d.auc, i.auc, i.auc - d.auc, beats])
    return runs, rows


def sanity(ins: Inspector, targets: list[mx.Target]) -> list[mx.StageSummary]:
    """Cascading randomisation of Grad-CAM over the targets, averaged per stage."""
    runs = mx.randomization_checks(ins, [t.image for t in targets], [t.class_index for t in targets],
                                   method="gradcam", seed=0)
    return mx.stage_summaries(runs)


def top_conv_stage(ins: Inspector, stages: list[mx.StageSummary]) -> int:
    """Index of the first stage that randomises a conv layer (the top conv layer)."""
    convs = set(ins.conv_layers)
    return next(k for k, s in enumerate(stages) if s.layer in convs)


def verdicts(loc_rows: list[list], runs: dict, stages: list[mx.StageSummary], top_conv: int) -> list[str]:
    """One PASS/FAIL line per bar of the issue."""
    pointing = loc_rows[0][1]
    d_cam, d_rand = runs["gradcam", "deletion"].auc, runs["random", "deletion"].auc
    i_cam, i_rand = runs["gradcam", "insertion"].auc, runs["random", "insertion"].auc
    rho = stages[top_conv].spearman
    below = next((k for k, s in enumerate(stages) if s.spearman < SANITY_BAR), None)
    return [
        f"{'PASS' if pointing >= POINTING_BAR else 'FAIL'}  Grad-CAM pointing game {pointing:.3f} >= {POINTING_BAR}",
        f"{'PASS' if d_cam < d_rand else 'FAIL'}  Grad-CAM deletion AUC {d_cam:.3f} < random {d_rand:.3f} "
        f"(insertion {i_cam:.3f} vs random {i_rand:.3f})",
        f"{'PASS' if rho < SANITY_BAR else 'FAIL'}  rank correlation once the top conv layer "
        f"({stages[top_conv].layer}) is randomised: {rho:.3f} < {SANITY_BAR}"
        + ("" if below is None else f" (first below at stage {below + 1}: {stages[below].layer})"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the faithfulness tables for the demo model."""
    args = parse_args(argv)
    clock = Clock()
    ins = inspector(args.model, args.kind)
    scenes = [demo.scene(objects=2, seed=args.seed0 + i) for i in range(args.n)]
    targets = mx.scene_targets(scenes)
    print(f"model: {args.model or demo.MODEL_PATHS[args.kind].name}; {args.n} two-object scenes (seeds {args.seed0}.."
          f"{args.seed0 + args.n - 1}), {len(targets)} targets (CAM of each class present); "
          f"CAM layer {ins.default_cam_layer}")
    print(f"top-2 classes == the two shapes present: {pair_accuracy(ins, scenes):.3f}")
    clock.mark("setup")

    cams, loc_rows = localization(ins, targets)
    clock.mark("cams + pointing")
    print(f"\n1. Localisation (pointing game: hit if the peak is within {mx.localization.TOLERANCE} px of the object)")
    print(mx.format_table(["map", "pointing@15px", "pointing@0px", "peak on other obj", "energy"], loc_rows))
    print(f"note: the centre prior alone scores {loc_rows[3][1]:.3f} at 15 px on these "
          f"{targets[0].mask.shape[0]} px scenes; the 0 px column and energy separate the maps")

    runs, del_rows = deletion(ins, targets, cams, args.deletion_methods, args.steps)
    clock.mark("deletion/insertion")
    print(f"\n2. Deletion / insertion ({args.steps} steps, blurred baseline; AUC of the class probability)")
    print(mx.format_table(["order", "deletion AUC (lower=better)", "insertion AUC (higher=better)",
                           "insertion - deletion", "deletion < random"], del_rows))
    base = runs["random", "deletion"].mean_curve[-1]
    print(f"mean class probability: original {runs['random', 'deletion'].mean_curve[0]:.3f}, "
          f"blurred baseline {base:.3f}")

    sanity_targets = targets[: 2 * (args.sanity_n or args.n)]
    stages = sanity(ins, sanity_targets)
    clock.mark("randomisation")
    print(f"\n3. Cascading randomisation of Grad-CAM ({len(sanity_targets)} targets; stage k randomises "
          "the top k weighted layers)")
    rows = [[k + 1, s.layer, s.spearman, s.spearman_raw, s.ssim, s.blank] for k, s in enumerate(stages)]
    print(mx.format_table(["stage", "+ randomised layer", "spearman (blank=0)", "spearman pre-ReLU", "SSIM",
                           "blank share"], rows))

    top_conv = top_conv_stage(ins, stages)
    print("\nBars")
    print("\n".join(verdicts(loc_rows, runs, stages, top_conv)))
    timing = ", ".join(f"{name} {t:.0f}s" for name, t in clock.marks)
    print(f"\ntime: {timing}; total {time.perf_counter() - clock.start:.0f}s")


if __name__ == "__main__":
    main()
