"""Does the model read the shapes or the cue?  The demo's honest and shortcut ("Clever Hans") models side by side.

On `--n` fresh single-shape scenes (seeds ``seed0..seed0+n-1``, disjoint from training), each drawn
once without and once with the colour cue (``demo.scene(seed=s, cue=False|True)``: the same pixels
apart from the cue), for each model:

1. accuracy without and with the cue, and the gap;
2. where Grad-CAM of the predicted class peaks on the cue scenes: within 15 px of the cue
   (the pointing game against ``Scene.cue_mask``) or of the shape.

Run: ``.venv/bin/python bench/shortcut_demo.py [--n 200]`` (under a minute for n=200 on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from convviz_widgets import Inspector, demo  # noqa: E402
from convviz_widgets import metrics as mx  # noqa: E402

ACCURACY_BAR = 0.90  # the shortcut model with the cue
GAP_BAR = 0.30  # ... and how much it loses without it
CUE_PEAK_BAR = 0.70  # ... and how often its Grad-CAM peaks on the cue
HONEST_GAP_BAR = 0.03  # the honest model neither needs the cue
HONEST_CUE_PEAK_BAR = 0.10  # ... nor looks at it


@dataclass(frozen=True)
class CueFigures:
    """One model's accuracy without/with the cue and where its Grad-CAM peaks on cue scenes."""

    plain: float
    cued: float
    cue_peak: float
    shape_peak: float

    @property
    def gap(self) -> float:
        """Accuracy lost when the cue is taken away."""
        return self.cued - self.plain


def accuracy(ins: Inspector, scenes: Sequence[demo.Scene]) -> float:
    """Share of scenes whose top class is the shape's class."""
    return float(np.mean([ins.predict(s.image, top=1)[0][0] == s.labels[0] for s in scenes]))


def cue_figures(ins: Inspector, plain: Sequence[demo.Scene], cued: Sequence[demo.Scene]) -> CueFigures:
    """Accuracy on both sets, and the share of cue scenes whose Grad-CAM peak is near the cue / the shape."""
    cams = [ins.gradcam(s.image) for s in cued]  # the predicted class
    on_cue = [mx.pointing_game(c.heatmap, s.cue_mask) for c, s in zip(cams, cued)]
    on_shape = [mx.pointing_game(c.heatmap, s.masks[0]) for c, s in zip(cams, cued)]
    return CueFigures(accuracy(ins, plain), accuracy(ins, cued), float(np.mean(on_cue)), float(np.mean(on_shape)))


def verdicts(honest: CueFigures, shortcut: CueFigures) -> list[str]:
    """One PASS/FAIL line per bar."""
    def line(ok: bool, text: str) -> str:
        return f"{'PASS' if ok else 'FAIL'}  {text}"

    return [
        line(shortcut.cued >= ACCURACY_BAR, f"shortcut accuracy with the cue {shortcut.cued:.3f} >= {ACCURACY_BAR}"),
        line(shortcut.gap >= GAP_BAR, f"shortcut loses {shortcut.gap:.3f} >= {GAP_BAR} without the cue"),
        line(shortcut.cue_peak >= CUE_PEAK_BAR,
             f"shortcut Grad-CAM peaks within 15 px of the cue in {shortcut.cue_peak:.3f} >= {CUE_PEAK_BAR}"),
        line(abs(honest.gap) <= HONEST_GAP_BAR,
             f"honest accuracy changes by {honest.gap:+.3f} (|.| <= {HONEST_GAP_BAR}) with the cue"),
        line(honest.cue_peak <= HONEST_CUE_PEAK_BAR,
             f"honest Grad-CAM peaks near the cue in {honest.cue_peak:.3f} <= {HONEST_CUE_PEAK_BAR}"),
    ]


def main(argv: Sequence[str] | None = None) -> None:
    """Print the cue table for both demo models."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="fresh single-shape scenes")
    parser.add_argument("--seed0", type=int, default=demo.EVAL_SEED, help="first scene seed (training stays below)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    seeds = range(args.seed0, args.seed0 + args.n)
    plain = [demo.scene(seed=s) for s in seeds]
    cued = [demo.scene(seed=s, cue=True) for s in seeds]
    figures = {}
    for kind in ("honest", "shortcut"):
        ins = Inspector(demo.load_model(kind), preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
        figures[kind] = cue_figures(ins, plain, cued)
    print(f"{args.n} fresh single-shape scenes (seeds {args.seed0}..{args.seed0 + args.n - 1}), "
          "each without and with the colour cue; Grad-CAM of the predicted class on the cue scenes")
    rows = [[kind, f.plain, f.cued, f.gap, f.cue_peak, f.shape_peak] for kind, f in figures.items()]
    print(mx.format_table(["model", "accuracy, no cue", "accuracy, cue", "gap", "peak on cue (15 px)",
                           "peak on shape (15 px)"], rows))
    print("\nBars")
    print("\n".join(verdicts(figures["honest"], figures["shortcut"])))
    print(f"\ntime: {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
