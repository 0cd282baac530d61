"""`convviz report`: render the three views of a model on an image into an HTML report."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

from ._version import __version__
from .core.batching import CTRL_C
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


def target_words(text: str) -> object:
    """--target: class:N, label:N, output[:N] or region:N, checked before anything is loaded."""
    from .core.targets import parse_target

    try:
        return parse_target(text)
    except ConvVizError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


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
    r.add_argument("--target", default=None, type=target_words,
                   help="what the CAM sections explain: class:N, label:N (label N of a multi-label sigmoid head: "
                        "its logit), output[:N] (a regression head's raw value) or region:N (class N over its "
                        "predicted region of a segmentation map); default: the top classes (a multi-label head: its "
                        "top labels), a regression head's output, the largest region of a segmentation map")
    r.add_argument("--cam-methods", default="gradcam",
                   help="comma-separated CAM methods, one report section each (default: gradcam; e.g. "
                        "gradcam,hirescam,eigencam; any registered method)")
    r.add_argument("--unsafe", action="store_true", help="allow Lambda layers when loading (trusted files only)")
    r.add_argument("--overwrite", action="store_true",
                   help="write into an --out folder that holds files the report did not write (same names are "
                        "replaced, other files kept)")
    _dataset_commands(sub)
    return p


def _dataset_commands(sub: argparse._SubParsersAction) -> None:
    """`convviz atlas` and `convviz evaluate`: whole datasets, here or on Dask workers."""
    a = sub.add_parser("atlas", help="write a channel atlas (top dataset examples of every channel) as a static site")
    e = sub.add_parser("evaluate", help="pointing game, deletion and insertion AUC of CAM methods over a dataset")
    for q in (a, e):
        q.add_argument("--model", default="demo", type=model_source,
                       help="a .keras/.h5 model file, or 'demo' (the embedded model)")
        q.add_argument("--images", default=None,
                       help="a folder of images, or .npy shards (comma-separated); default for the demo: demo scenes")
        q.add_argument("--scenes", type=positive_int, default=256, help="demo scenes when --images is not given")
        q.add_argument("--preprocess", default=None, help="rescale | caffe | tf | torch | none")
        q.add_argument("--batch-size", type=positive_int, default=None, help="images per task")
        q.add_argument("--workers", type=positive_int, default=None, help="run on a local Dask cluster of N processes")
        q.add_argument("--scheduler", default=None, help="run on an existing Dask cluster (e.g. tcp://host:8786)")
        q.add_argument("--unsafe", action="store_true", help="allow Lambda layers when loading (trusted files only)")
    a.add_argument("--out", default="convviz-atlas", type=out_folder, help="output folder (default: convviz-atlas)")
    a.add_argument("--layers", nargs="*", default=None, help="layers (default: the CAM layer and three earlier)")
    a.add_argument("-k", type=positive_int, default=9, help="examples per channel (default 9)")
    a.add_argument("--steps", type=step_count, default=40, help="filter-pattern ascent steps (default 40)")
    e.add_argument("--out", default="convviz-evaluation", type=out_folder,
                   help="output folder for evaluation.csv and evaluation.html (default: convviz-evaluation)")
    e.add_argument("--cam-methods", default="gradcam", help="comma-separated CAM methods (default: gradcam)")
    e.add_argument("--masks", default=None, help="an .npy file of object masks (N, H, W), one per image")
    e.add_argument("--steps", type=positive_int, default=16, help="deletion/insertion steps per curve (default 16)")


def _run_dataset(args: argparse.Namespace) -> int:
    """Run `convviz atlas` or `convviz evaluate`; the exit code."""
    import numpy as np

    from .scale import atlas, evaluate
    from .scale.progress import DatasetProgress

    masks = labels = None
    preprocess = args.preprocess
    if args.model == "demo":
        from . import demo

        model, preprocess = demo.load_model(), preprocess or demo.PREPROCESS
    else:
        from .core.model_io import load_model

        model = load_model(args.model, safe_mode=not args.unsafe)
    if args.images is None:
        if args.model != "demo":
            raise ConvVizError("--images is required with your own model (a folder, or .npy shards).")
        from . import demo

        scenes = [demo.scene(seed=i) for i in range(args.scenes)]
        images: object = np.stack([s.image for s in scenes])
        masks, labels = [s.masks[0] for s in scenes], [s.labels[0] for s in scenes]
    elif args.images.lower().endswith(".npy"):
        images = [p for p in args.images.split(",") if p]
    else:
        images = args.images
    if getattr(args, "masks", None):
        masks = list(np.load(args.masks))
    common = {"preprocess": preprocess, "workers": args.workers, "scheduler": args.scheduler}
    if args.batch_size:
        common["batch_size"] = args.batch_size
    bar = DatasetProgress("Images")
    if args.command == "atlas":
        done = atlas(model, images, args.out, layers=args.layers, k=args.k, progress=bar, pattern_steps=args.steps,
                     **common)
        print(f"Atlas written to {done.index.resolve()} ({done.stats.computed} batches computed, "
              f"{done.stats.resumed} resumed)")
        return 0
    from .scale.engine import claim_folder

    claim_folder(args.out, ".convviz-evaluation", "convviz evaluate")
    methods = [m.strip() for m in args.cam_methods.split(",") if m.strip()] or ["gradcam"]
    table = evaluate(model, images, methods=methods, masks=masks, labels=labels, steps=args.steps, out=args.out,
                     progress=bar, **common)
    table.to_csv(args.out / "evaluation.csv")
    (args.out / "evaluation.html").write_text(table.to_html(), encoding="utf-8")
    from .metrics import format_table

    print(format_table(list(table.columns), [[r[c] for c in table.columns] for r in table.rows]))
    print(f"Table written to {(args.out / 'evaluation.html').resolve()}")
    return 0


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
    if args.command in ("atlas", "evaluate"):
        try:
            with CTRL_C.kept():
                return _run_dataset(args)
        except ConvVizError as err:
            return _error_line(str(err))
        except OSError as err:
            return _error_line(f"could not write the {args.command} output: {err}")
        except KeyboardInterrupt:
            print(f"convviz: interrupted; run the same command again to continue from {args.out}", file=sys.stderr)
            return INTERRUPTED
    try:
        from .limits import check_settings

        check_settings()  # a bad CONVVIZ_* variable is one line, before anything is loaded or written
        from .core.cams import get_method
        from .report import build_report, output_folder

        methods = [get_method(m.strip()).name for m in args.cam_methods.split(",") if m.strip()] or ["gradcam"]
        with CTRL_C.kept():  # from loading the model on
            inspector, image = _load(args)
            out = output_folder(args.out)
            modes = ("plain", "regularized") if args.patterns == "both" else (args.patterns,)
            build_report(inspector, image, out, filter_layers=args.filter_layers, n_filters=args.filters,
                         steps=args.steps, step_size=args.step_size, pattern_modes=modes, cam_methods=methods,
                         overwrite=args.overwrite, target=args.target)
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
