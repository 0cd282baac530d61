"""`convviz report`: render the three views of a model on an image into an HTML report."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from ._version import __version__
from .core.checks import FILTERS, STEPS, Bound
from .errors import ConvVizError

MAX_STEPS = STEPS.high  # a report, not a training run: more steps would only take hours
INTERRUPTED = 130  # the shell's status for a command ended by Ctrl-C


class _Parser(argparse.ArgumentParser):
    """argparse with every usage error as the one line `convviz: error: ...` and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.exit(_error_line(f"{message} (see {self.prog} --help)"))


def positive_int(text: str) -> int:
    """An argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _bounded(text: str, bound: Bound) -> int:
    """A whole number >= 1 within `bound`'s upper end."""
    value = positive_int(text)
    if value > bound.high:
        raise argparse.ArgumentTypeError(f"at most {bound.high:,} ({bound.what}), got {value:,}")
    return value


def step_count(text: str) -> int:
    """An argparse type: gradient-ascent steps, 1..MAX_STEPS."""
    return _bounded(text, STEPS)


def filter_count(text: str) -> int:
    """An argparse type: filters per layer, 1..FILTERS.high."""
    return _bounded(text, FILTERS)


def positive_float(text: str) -> float:
    """An argparse type: a finite number > 0 (no nan, inf, 0 or negatives)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text!r}")
    return value


def _regular_file(text: str, what: str) -> str:
    """`text` if it names an existing regular file (a folder, FIFO or device is refused at once)."""
    from .images import check_regular_file

    try:
        check_regular_file(Path(text), what)
    except ConvVizError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return text


def image_file(text: str) -> str:
    """An argparse type: an existing image file."""
    return _regular_file(text, "Image file")


def class_names_source(text: str) -> str:
    """An argparse type: 'imagenet' or an existing JSON file of class names."""
    return text if text == "imagenet" else _regular_file(text, "Class-names file")


def model_source(text: str) -> str:
    """An argparse type: 'demo' or an existing model file."""
    return text if text == "demo" else _regular_file(text, "Model file")


def out_folder(text: str) -> Path:
    """An argparse type: a folder that is, or can be created, and written to (checked by writing a probe)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("the output folder is empty: give a folder name, e.g. --out convviz-report")
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} exists and is not a folder; choose another --out")
    ancestor = path
    while not ancestor.exists():
        if ancestor.parent == ancestor:
            break
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise argparse.ArgumentTypeError(f"{path} cannot be created: {ancestor} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as err:
        raise argparse.ArgumentTypeError(
            f"{path} cannot be written: writing in {ancestor} fails ({err.strerror or err})") from None
    return path


def _parser() -> argparse.ArgumentParser:
    """Command-line options."""
    p = _Parser(prog="convviz", description="See what a convnet has learned.")
    p.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("report", help="write activation grids, filter patterns and Grad-CAM overlays as HTML")
    r.add_argument("--model", default="demo", type=model_source,
                   help="a .keras/.h5 model file, or 'demo' (the embedded model)")
    r.add_argument("--image", type=image_file, help="an image file (default for the demo model: a demo scene)")
    r.add_argument("--preprocess", default=None,
                   help="rescale | caffe | tf | torch | none (default: the model's own, if recognised, else rescale)")
    r.add_argument("--classes", default=None, type=class_names_source, help="class names: a JSON file, or 'imagenet'")
    r.add_argument("--out", default="convviz-report", type=out_folder, help="output folder (default: convviz-report)")
    r.add_argument("--filter-layers", nargs="*", default=None, help="layers for filter patterns (default: up to 4)")
    r.add_argument("--filters", type=filter_count, default=16, help="filters per layer (default 16)")
    r.add_argument("--steps", type=step_count, default=40, help="gradient-ascent steps (default 40)")
    r.add_argument("--step-size", type=positive_float, default=None,
                   help="plain ascent step in pixel levels (default 1, the book's; 3 for the demo model)")
    r.add_argument("--patterns", choices=["plain", "regularized", "both"], default="both",
                   help="filter-pattern recipe: the book's plain ascent, the regularised one, or both")
    r.add_argument("--output", default=None,
                   help="for a model with several outputs: the output to explain, by name or index")
    r.add_argument("--cam-methods", default="gradcam",
                   help="comma-separated CAM methods, one report section each (default: gradcam; e.g. "
                        "gradcam,hirescam,eigencam; any registered method)")
    r.add_argument("--unsafe", action="store_true", help="allow Lambda layers when loading (trusted files only)")
    r.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that holds files the report did not write (same names are "
                        "replaced, other files kept)")
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


def _error_line(message: str) -> int:
    """Print one error line; the exit status for errors."""
    print(f"convviz: error: {' '.join(message.split())}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the process exit code."""
    try:
        args = _parser().parse_args(argv)
    except SystemExit as done:  # --help, or a usage error already printed as one line
        return done.code if isinstance(done.code, int) else 2
    try:
        from .limits import check_settings

        check_settings()  # a bad CONVVIZ_* variable is one line, before anything is loaded or written
        from .core.cams import get_method
        from .report import build_report, output_folder

        methods = [get_method(m.strip()).name for m in args.cam_methods.split(",") if m.strip()] or ["gradcam"]
        inspector, image = _load(args)
        out = output_folder(args.out)
        modes = ("plain", "regularized") if args.patterns == "both" else (args.patterns,)
        build_report(inspector, image, out, filter_layers=args.filter_layers, n_filters=args.filters,
                     steps=args.steps, step_size=args.step_size, pattern_modes=modes, cam_methods=methods,
                     overwrite=args.overwrite)
    except ConvVizError as err:
        return _error_line(str(err))
    except OSError as err:  # e.g. the disk filled up or the folder vanished while writing
        return _error_line(f"could not write the report: {err}")
    except KeyboardInterrupt:
        if getattr(sys.stderr, "isatty", lambda: False)():
            sys.stderr.write("\n")  # end a progress bar's line
        print(f"convviz: interrupted; {args.out} was left as it was", file=sys.stderr)
        return INTERRUPTED
    print(f"Report written to {out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
