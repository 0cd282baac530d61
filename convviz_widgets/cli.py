"""`convviz report`: render the three views of a model on an image into an HTML report."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import ConvVizError


def _parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = argparse.ArgumentParser(prog="convviz", description="See what a convnet has learned.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write activation grids, filter patterns and Grad-CAM overlays as HTML")
    r.add_argument("--model", default="demo", help="a .keras/.h5 model file, or 'demo' (the embedded model)")
    r.add_argument("--image", help="an image file (default for the demo model: a demo scene)")
    r.add_argument("--preprocess", default=None,
                   help="rescale | caffe | tf | torch | none (default: the model's own, if recognised, else rescale)")
    r.add_argument("--classes", default=None, help="class names: a JSON file, or 'imagenet'")
    r.add_argument("--out", default="convviz-report", help="output folder (default: convviz-report)")
    r.add_argument("--filter-layers", nargs="*", default=None, help="layers for filter patterns (default: up to 4)")
    r.add_argument("--filters", type=int, default=16, help="filters per layer (default 16)")
    r.add_argument("--steps", type=int, default=40, help="gradient-ascent steps (default 40)")
    r.add_argument("--step-size", type=float, default=None,
                   help="plain ascent step in pixel levels (default 1, the book's; 3 for the demo model)")
    r.add_argument("--patterns", choices=["plain", "regularized", "both"], default="both",
                   help="filter-pattern recipe: the book's plain ascent, the regularised one, or both")
    r.add_argument("--output", default=None,
                   help="for a model with several outputs: the output to explain, by name or index")
    r.add_argument("--unsafe", action="store_true", help="allow Lambda layers when loading (trusted files only)")
    return p


def _load(args: argparse.Namespace):  # noqa: ANN202 - returns (Inspector, image)
    """Build the Inspector and pick the image for the report."""
    from .core.inspector import Inspector
    from .core.model_io import load_model

    if args.model == "demo":
        from . import demo

        model = demo.load_model()
        inspector = Inspector(model, preprocess=args.preprocess or demo.PREPROCESS, class_names=args.classes,
                              output=args.output)
        image = args.image or demo.scene(seed=3).image
        return inspector, image
    model = load_model(args.model, safe_mode=not args.unsafe)
    if not args.image:
        raise ConvVizError("--image is required with your own model (only the demo model has a built-in image).")
    return Inspector(model, preprocess=args.preprocess, class_names=args.classes, output=args.output), args.image


def demo_step_size() -> float:
    """The demo model's plain-ascent step (it sees x/255, so a pixel level is a small step)."""
    from . import demo

    return demo.FILTER_STEP_SIZE


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    args = _parser().parse_args(argv)
    try:
        from .report import build_report

        inspector, image = _load(args)
        out = Path(args.out)
        step_size = args.step_size or (demo_step_size() if args.model == "demo" else 1.0)
        modes = ("plain", "regularized") if args.patterns == "both" else (args.patterns,)
        build_report(inspector, image, out, filter_layers=args.filter_layers, n_filters=args.filters,
                     steps=args.steps, step_size=step_size, pattern_modes=modes)
    except ConvVizError as err:
        print(f"convviz: error: {err}", file=sys.stderr)
        return 2
    print(f"Report written to {(out / 'index.html').resolve()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
