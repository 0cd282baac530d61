"""A static HTML report of the panel's views: activation grids, filter patterns, Grad-CAM overlays, and a section
for every registered view that writes one (`View.report_section`), so a user's own tab reaches reports too.

Written safely: every argument is checked before anything is written; the pictures go into a fresh
hidden folder beside the output folder and are moved into place at the end, so an error or Ctrl-C
leaves the output folder as it was. The report lists what it wrote (names and SHA-256 digests) in
a hidden manifest; a folder holding anything else is refused unless `overwrite=True`, and nothing
is ever written through a symbolic link.
"""

from __future__ import annotations

import contextlib
import hashlib
import html
import json
import os
import secrets
import shutil
import signal
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import render
from .core import checks
from .core.batching import CTRL_C
from .core.cam import CAM
from .core.cams import get_method
from .core.facts import layer_facts
from .core.inspector import Inspector
from .core.patterns import PATTERN_MODES
from .core.targets import OutputTarget, index_target, parse_target, plan
from .errors import ConvVizError
from .images import write_exclusive
from .widgets import ImageView, View, view_entries
from .widgets.text import error_text

PLAIN_STEP = 1.0  # the book's plain-ascent step, for models that bring none (`model.filter_step_size`)
MANIFEST = ".convviz-report.json"  # the report's own list of what it wrote: file name -> SHA-256
STAGING_PREFIX = ".convviz-report-"  # the fresh folder beside OUT that the report is written into


@dataclass
class Report:
    """What a report holds before it is written: sections of (file name, caption) pictures."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[tuple[str, str, list[tuple[str, str]]]] = field(default_factory=list)
    html: dict[str, str] = field(default_factory=dict)  # a section's own HTML (a view's), by its title


class ProgressBar:
    """A one-line text progress bar on stderr (only redraws when the percentage changes)."""

    def __init__(self, label: str, total: int, stream: Any = None, width: int = 30) -> None:
        self.label, self.total, self.width = label, max(1, total), width
        self.stream = stream if stream is not None else sys.stderr
        self._last = -1
        self._t0 = time.perf_counter()

    def __call__(self, done: int, total: int | None = None) -> None:
        CTRL_C.check()  # a Ctrl-C that a finaliser swallowed stops the work here
        total = total or self.total
        pct = int(100 * done / max(1, total))
        live = getattr(self.stream, "isatty", lambda: False)()
        if pct == self._last or (not live and done < total):
            return  # a log file gets one line per bar, a terminal a moving bar
        self._last = pct
        fill = int(self.width * done / max(1, total))
        bar = "#" * fill + "-" * (self.width - fill)
        secs = time.perf_counter() - self._t0
        lead = "\r" if live else ""
        self.stream.write(f"{lead}{bar_label(self.label)} [{bar}] {pct:3d}% {secs:5.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


LABEL_WIDTH = 28  # progress labels are padded to this width so the bars line up; a longer one is never cut


def bar_label(label: str, width: int = LABEL_WIDTH) -> str:
    """A progress bar's label, padded to `width` so bars line up, whole when longer (never cut)."""
    return label.ljust(width)


def default_filter_layers(inspector: Inspector, limit: int = 4) -> list[str]:
    """Up to `limit` conv layers spread from the first to the last (the book shows one per block)."""
    convs = [n for n in inspector.conv_layers if inspector.layer(n).has_grid]
    if len(convs) <= limit:
        return convs
    picks = np.linspace(0, len(convs) - 1, limit).round().astype(int)
    return [convs[i] for i in sorted(set(picks.tolist()))]


def _file_name(layer: str, prefix: str) -> str:
    """A safe PNG file name for a (possibly nested, 'outer/inner') layer name: the panel's slug."""
    return f"{prefix}_{render.slug(layer)}.png"


@dataclass(frozen=True)
class Options:
    """A report's checked settings."""

    filter_layers: list[str]
    n_filters: int
    filter_size: int | None
    steps: int
    step_size: float
    pattern_modes: tuple[str, ...]
    top: int
    images_per_row: int
    cam_methods: tuple[str, ...]
    target: Any = None


def check_options(inspector: Inspector, *, filter_layers: Sequence[str] | None = None, n_filters: int = 16,
                  filter_size: int | None = None, steps: int = 40, step_size: float | None = None,
                  pattern_modes: Sequence[str] = ("plain", "regularized"), top: int = 3, images_per_row: int = 16,
                  cam_methods: Sequence[str] = ("gradcam",), target: Any = None) -> Options:
    """Every report argument checked (layers, methods, bounds), before anything is computed or written."""
    if isinstance(target, str):
        target = parse_target(target)
    if inspector.output_kind == "features" and target is None:
        raise ConvVizError("This model has no class output, so a report (which explains classes) cannot be made; "
                           "pass the full model (e.g. include_top=True) or one with a classifier head.")
    if isinstance(filter_layers, str):
        filter_layers = [filter_layers]
    layers = list(dict.fromkeys(inspector.layer(name).name for name in filter_layers)) if filter_layers else \
        default_filter_layers(inspector)
    if step_size is None:
        step_size = float(getattr(inspector.model, "filter_step_size", PLAIN_STEP))
    modes = tuple(dict.fromkeys(checks.choice(m, "pattern mode", PATTERN_MODES) for m in pattern_modes))
    size = None if filter_size is None else checks.bounded(filter_size, "filter_size", checks.PATTERN_SIZE)
    return Options(layers, checks.bounded(n_filters, "n_filters", checks.FILTERS), size,
                   checks.bounded(steps, "steps", checks.STEPS), checks.step_size(step_size), modes,
                   checks.bounded(top, "top", checks.TOP), checks.bounded(images_per_row, "images_per_row",
                                                                          checks.PER_ROW),
                   tuple(dict.fromkeys(get_method(m).name for m in cam_methods)) or ("gradcam",), target)


def build_report(inspector: Inspector, image: Any, out: Path, *, filter_layers: Sequence[str] | None = None,
                 n_filters: int = 16, filter_size: int | None = None, steps: int = 40,
                 step_size: float | None = None,
                 pattern_modes: Sequence[str] = ("plain", "regularized"), top: int = 3,
                 images_per_row: int = 16, log: Callable[[str], None] = print,
                 cam_methods: Sequence[str] = ("gradcam",), overwrite: bool = False, target: Any = None) -> Report:
    """Compute the three views for one image and write them into `out` (index.html and PNGs).

    `step_size` None: the model's own plain-ascent step (`model.filter_step_size`, e.g. the demo's), else 1.
    Every argument is checked first; the files are written into a fresh folder beside `out` and moved into
    place at the end (an error or KeyboardInterrupt leaves `out` as it was). A folder holding files this
    report did not write (see MANIFEST) is refused unless `overwrite`; links in it are never followed.
    `target`: what the CAM sections explain (`core.targets`; None: the top classes of a classifier, else the
    model's default target); it is checked on the image before anything is written.
    """
    options = check_options(inspector, filter_layers=filter_layers, n_filters=n_filters, filter_size=filter_size,
                            steps=steps, step_size=step_size, pattern_modes=pattern_modes, top=top,
                            images_per_row=images_per_row, cam_methods=cam_methods, target=target)
    rgb = inspector.prepare(image)
    if options.target is not None or inspector.output_kind != "classes":
        plan(inspector, options.target, rgb.shape[:2])  # a bad target is refused before anything is written
    target = output_folder(out)
    check_foreign(target, overwrite)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = staging_folder(target)
    try:
        with CTRL_C.kept():
            report = _write_views(inspector, rgb, staging, options)
            CTRL_C.check()
            write_manifest(staging)
        commit(staging, target, overwrite)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _write_views(inspector: Inspector, rgb: np.ndarray, out: Path, options: Options) -> Report:
    """The three views of one prepared image, as PNGs in `out` and the page that shows them."""
    top, step_size = options.top, options.step_size
    report = Report(title=f"What {inspector.model.name} sees")
    _save(out / "input.png", render.enlarge_figure(rgb))
    preds = inspector.predict(rgb, top=max(5, top)) if inspector.has_classes else []
    report.facts += [
        ("Model", f"{inspector.model.name} — {inspector.model.count_params():,} parameters"),
        ("Input", f"{rgb.shape[1]}x{rgb.shape[0]} RGB, preprocess '{inspector.preprocess_name}'"),
        ("Preprocessing", f"'{inspector.preprocess_name}': {inspector.preprocess_reason}"),
    ]
    if preds:
        report.facts.append(_predictions_fact(inspector, preds))
    report.sections.append(("Input", "The image as the model sees it.", [("input.png", "input")]))
    report.sections.append(_activation_section(inspector, rgb, out, options.images_per_row))
    report.sections.append(_filter_section(inspector, options.filter_layers, out, options.n_filters,
                                           options.filter_size, options.steps, step_size, options.pattern_modes))
    for method in options.cam_methods:
        rule = get_method(method)
        why = rule.applies_to(inspector)
        if why is not None:  # a method for other kinds of model (attention rollout on a convnet): skipped, said why
            report.sections.append((rule.label, f"Not drawn: {rule.label} does not apply to this model: {why}.", []))
            continue
        if options.target is None and inspector.output_kind == "classes":
            report.sections.append(_cam_section(inspector, rgb, out, preds[:top], method))
        else:
            report.sections.append(_target_section(inspector, rgb, out, options.target, method))
    for entry in view_entries():
        if entry.view.report_section is not View.report_section:  # the tab writes a section of its own
            _view_section(report, entry.key, entry.title, entry.view, inspector, rgb, out)
    write_html(report, out / "index.html")
    return report


def _predictions_fact(inspector: Inspector, preds: Sequence[tuple[int, str, float]]) -> tuple[str, str]:
    """The page's line of predictions: the top classes, a multi-label head's top labels, a regression output."""
    if inspector.output_kind == "regression":  # one linear unit read as (-z, z): entry 1 is the output itself
        value = next(p for i, _, p in preds if i == 1)
        return ("Output", f"{value:.4g} (the raw value of a one-unit linear head)")
    listed = ", ".join(f"{name} {_value(inspector, p)}" for _, name, p in preds[:5])
    if inspector.multi_label:
        return ("Top labels", f"{listed} (each label's own sigmoid probability)")
    return ("Top-5", listed)


def _activation_section(inspector: Inspector, rgb: np.ndarray, out: Path,
                        images_per_row: int) -> tuple[str, str, list[tuple[str, str]]]:
    """Every conv/pool layer's channels as a grid (one forward pass)."""
    acts = inspector.activations(rgb)
    bar = ProgressBar("activation grids", len(acts))
    items = []
    for i, (name, act) in enumerate(acts.items(), 1):
        grid, _ = render.activation_picture(act, images_per_row, full=True)  # as the panel saves it
        fname = _file_name(name, "act")
        _save(out / fname, grid)
        facts = layer_facts(act)
        items.append((fname, f"{name} — {act.shape[0]}x{act.shape[1]}, {facts['channels']} channels, "
                             f"{facts['dead']} dead, {facts['sparsity']:.0%} zeros"))
        bar(i, len(acts))
    return ("Intermediate activations", "Each tile is one channel, scaled on its own.", items)


def _filter_section(inspector: Inspector, layers: Sequence[str], out: Path, n_filters: int, size: int | None,
                    steps: int, step_size: float, modes: Sequence[str]) -> tuple[str, str, list[tuple[str, str]]]:
    """Filter-pattern grids for the chosen layers: the book's plain ascent and/or the regularised one."""
    size = size or (inspector.input_size[0] if inspector.input_size else 64)
    items = []
    for name in layers:
        node = inspector.layer(name)
        k = min(n_filters, node.channels)
        for mode in modes:
            bar = ProgressBar(f"filters {node.name} {mode}", steps)
            fp = inspector.filter_patterns(node.name, range(k), size=size, steps=steps, step_size=step_size,
                                           mode=mode, progress=bar)
            grid = render.filter_picture(fp)  # the Filters tab's labelled tiles
            fname = _file_name(node.name, "filters" if mode == "plain" else "filters_regularized")
            _save(out / fname, grid)
            gain = float(np.median(fp.final_activation - fp.start_activation))
            how = f"book's ascent, step {step_size:g}" if mode == "plain" else "regularised (Fourier, jitter, Adam)"
            items.append((fname, f"{node.name} — filters 0..{k - 1}, {size}px, {steps} steps, {how}; "
                                 f"median gain {gain:+.3g}"))
    return ("Filter patterns", "Inputs that maximise each filter's mean activation (gradient ascent).", items)


def _cam_section(inspector: Inspector, rgb: np.ndarray, out: Path,
                 preds: Sequence[tuple[int, str, float]], method: str = "gradcam"
                 ) -> tuple[str, str, list[tuple[str, str]]]:
    """Overlays of one registered CAM method (Grad-CAM by default) for the top classes."""
    rule = get_method(method)
    shown = render.enlarge_figure(rgb)
    noun = "label" if inspector.multi_label else "class"
    items = []
    if rule.class_agnostic:  # one map: it is the same for every class
        preds = preds[:1]
    bar = ProgressBar(rule.name, len(preds))
    for rank, (idx, name, prob) in enumerate(preds, 1):
        cam = inspector.gradcam(rgb, target=index_target(inspector, idx), method=rule.name)  # a class or a label
        fname = _file_name(f"top{rank}", rule.name) if rule.name != "gradcam" else f"gradcam_top{rank}.png"
        _save(out / fname, cam_picture(shown, cam))
        items.append((fname, cam_caption(rank, name, prob, cam, probability=inspector.score_label == "probability")))
        bar(rank, len(preds))
    if rule.class_agnostic:
        return (rule.label, f"{rule.label} is class-agnostic: one map, the same for every {noun} ({rule.tooltip}).",
                items)
    return (rule.label, f"Where the evidence for each {noun} lies (red = most).", items)


def _target_section(inspector: Inspector, rgb: np.ndarray, out: Path, target: Any, method: str = "gradcam"
                    ) -> tuple[str, str, list[tuple[str, str]]]:
    """The overlay of one registered CAM method for one target (given, or the model's default)."""
    rule = get_method(method)
    cam = inspector.gradcam(rgb, target=target, method=rule.name)
    fname = f"{rule.name.replace('+', 'p')}_target.png"
    _save(out / fname, cam_picture(render.enlarge_figure(rgb), cam))
    value = "" if cam.probability is None else f"p = {cam.probability:.2f}, "
    score = f"score {cam.score:.2f}"
    intro = f"Where the evidence for {cam.target} lies (red = most)."
    if inspector.output_kind == "regression" and (target is None or isinstance(target, OutputTarget)):
        score = f"value {cam.score:.4g}" if cam.class_index == 1 else f"score {cam.score:.4g} (minus the output)"
        intro = ("Where the evidence that " + ("raises" if cam.class_index == 1 else "lowers")
                 + " the output lies (red = most): the map of the output's raw value, not of a class.")
    caption = f"{cam.target} — {value}{score} at {cam.layer}"
    note = no_evidence_note(cam)
    items = [(fname, caption if note is None else f"{caption} — {note}")]
    return (rule.label, intro, items)


def _view_section(report: Report, key: str, title: str, view_class: type, inspector: Inspector, rgb: np.ndarray,
                  out: Path) -> None:
    """A registered view's own section: the view is built alone, explains the image inline, then writes it."""
    try:
        view = view_class(inspector, background=False)
        if isinstance(view, ImageView):
            view.set_image(rgb)
        if view.error:
            raise RuntimeError(view.error)
        section = view.report_section()
    except Exception as err:  # noqa: BLE001 - one view's failure leaves the rest of the report
        report.sections.append((title, f"This view could not run: {error_text(err)}", []))
        return
    if section is None:
        return
    items = []
    for name, picture in section.pictures.items():
        fname = _file_name(f"{key}-{name}", "view")
        _save(out / fname, picture)
        items.append((fname, name))
    report.sections.append((section.title, "", items))
    report.html[section.title] = section.html


def _value(inspector: Inspector, value: float) -> str:
    """A head's value for a caption: a percentage for probabilities, 'score 1.23' for a linear head."""
    return f"{value:.1%}" if inspector.score_label == "probability" else f"score {value:.2f}"


def no_evidence_note(cam: CAM) -> str | None:
    """Why a CAM's map is blank (no positive evidence, or evidence equal everywhere); None if it is not."""
    if float(np.max(cam.heatmap, initial=0.0)) > 0.0:
        return None
    if cam.raw is not None and float(np.max(cam.raw, initial=0.0)) > 0.0:
        return "evidence equal everywhere: no location for this class"
    return "no positive evidence for this class"


def cam_caption(rank: int, name: str, prob: float, cam: CAM, probability: bool = True) -> str:
    """'#1 star — p = 0.93, logit 4.1 at conv5' (a linear head: 'score 4.1'), plus the note when the map is blank."""
    if probability:
        p = "p < 0.01" if prob < 0.005 else f"p = {prob:.2f}"
        caption = f"#{rank} {name} — {p}, logit {cam.score:.1f} at {cam.layer}"
    else:
        caption = f"#{rank} {name} — score {cam.score:.2f} at {cam.layer}"
    note = no_evidence_note(cam)
    return caption if note is None else f"{caption} — {note}"


def cam_picture(shown: np.ndarray, cam: CAM) -> np.ndarray:
    """The heat-map overlay, or for a blank map the image dimmed with the note written on it."""
    note = no_evidence_note(cam)
    if note is None:
        return render.overlay(shown, cam.heatmap)
    lines = note.split(": ") if ": " in note else ["no positive evidence", "for this class"]
    return render.noted(shown, lines)


def _save(path: Path, array: np.ndarray) -> None:
    """Write a picture as a new PNG file (never over another file, never through a link)."""
    write_exclusive(path, render.to_png(array, compress_level=6))


def write_html(report: Report, path: Path) -> None:
    """A self-contained index page linking the PNGs."""
    esc = html.escape
    facts = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in report.facts)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{esc(report.title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}",
        "figure{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top}",
        "img{image-rendering:pixelated;max-width:100%;border:1px solid #ddd}",
        "figcaption{font-size:.85em;color:#555;max-width:60em}th{text-align:left;padding-right:1em}",
        f"</style></head><body><h1>{esc(report.title)}</h1><table>{facts}</table>",
    ]
    for heading, blurb, items in report.sections:
        parts.append(f"<h2>{esc(heading)}</h2><p>{esc(blurb)}</p>{report.html.get(heading, '')}")
        parts += [f"<figure><img src='{esc(f)}' alt='{esc(c)}'><figcaption>{esc(c)}</figcaption></figure>"
                  for f, c in items]
    parts.append("</body></html>")
    write_exclusive(path, "\n".join(parts).encode("utf-8"))


# ----- the output folder: the report's own files only, moved into place at the end ------------------------------
def output_folder(out: Path | str) -> Path:
    """The real folder the report goes to: a link to a folder is followed once, here (the user named it).

    Refused: a path that exists and is not a folder, and a link that points nowhere.
    """
    path = Path(out).expanduser()
    if path.is_symlink() and not path.exists():
        raise ConvVizError(f"{path} is a symbolic link to nothing ({os.readlink(path)}); choose another folder.")
    target = path.resolve()
    if target.exists() and not target.is_dir():
        raise ConvVizError(f"{path} exists and is not a folder; choose another folder.")
    return target


def staging_folder(target: Path) -> Path:
    """A fresh, empty folder beside `target` (same file system, so the report moves into place by renaming);
    inside an existing `target` when its parent cannot be written (`--out .` in a read-only parent)."""
    home = target.parent
    while True:
        path = home / f"{STAGING_PREFIX}{secrets.token_hex(6)}"
        try:
            path.mkdir(0o777)  # the user's umask applies, as for any folder they make
        except FileExistsError:
            continue
        except PermissionError:
            if home != target.parent or not target.is_dir():
                raise
            home = target
            continue
        return path


def digest(path: Path) -> str | None:
    """SHA-256 of a regular file (links and other kinds are never opened: None)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    with os.fdopen(fd, "rb") as stream:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        sha = hashlib.sha256()
        for block in iter(lambda: stream.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def manifest_of(folder: Path) -> dict[str, str]:
    """The report's own files in `folder` by its manifest (name -> SHA-256); {} without a readable one."""
    path = folder / MANIFEST
    if path.is_symlink() or not path.is_file():
        return {}
    try:
        files = json.loads(path.read_text(encoding="utf-8")).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def foreign_entries(folder: Path, staging: Path | None = None) -> list[str]:
    """Names in `folder` the report did not write: not in its manifest, changed since, a link or a folder
    (the report's own `staging` folder, when it lies inside, is not counted)."""
    if not folder.is_dir():
        return []
    own = manifest_of(folder)
    foreign = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name == MANIFEST and not entry.is_symlink() and entry.is_file():
            continue
        if staging is not None and Path(entry.path) == staging:
            continue
        if entry.name not in own or entry.is_symlink() or not entry.is_file() \
                or digest(Path(entry.path)) != own[entry.name]:
            foreign.append(entry.name)
    return foreign


def check_foreign(folder: Path, overwrite: bool, staging: Path | None = None) -> None:
    """Refuse a folder holding files the report did not write, unless `overwrite`."""
    foreign = foreign_entries(folder, staging)
    if foreign and not overwrite:
        shown = ", ".join(foreign[:3]) + (f" and {len(foreign) - 3} more" if len(foreign) > 3 else "")
        raise ConvVizError(f"{folder} holds files this report did not write ({shown}); nothing was changed. "
                           "Choose a new or empty folder, or pass --overwrite (overwrite=True) to replace "
                           "the report's own file names in it (other files are kept).")


def write_manifest(folder: Path) -> None:
    """List every file of the finished report in `folder` with its SHA-256."""
    files = {p.name: digest(p) for p in sorted(folder.iterdir()) if p.name != MANIFEST}
    text = json.dumps({"written_by": "convviz report", "files": files}, indent=1, sort_keys=True)
    write_exclusive(folder / MANIFEST, text.encode("utf-8"))


@contextlib.contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Let a few renames finish: a Ctrl-C meanwhile is noted, not raised (the report then stands complete)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def commit(staging: Path, target: Path, overwrite: bool) -> None:
    """Move the finished report from `staging` into `target`: the whole folder when `target` is new, else file by
    file with `os.replace` (which replaces a link itself, never what it points to), the manifest last; the old
    report's files that the new one does not have are removed."""
    with _ctrl_c_deferred():
        if not os.path.lexists(target):
            os.rename(staging, target)
            return
        check_foreign(target, overwrite, staging)  # the folder may have changed while the report was computed
        names = sorted(p.name for p in staging.iterdir())
        blocked = [n for n in names if os.path.isdir(target / n) and not os.path.islink(target / n)]
        if blocked:
            raise ConvVizError(f"{target / blocked[0]} is a folder where the report writes a file; nothing was "
                               "changed. Move it away or choose another output folder.")
        old = manifest_of(target)
        for name in (n for n in names if n != MANIFEST):
            os.replace(staging / name, target / name)
        for name in old:
            stale = target / name
            if name not in names and not stale.is_symlink() and stale.is_file() and digest(stale) == old[name]:
                stale.unlink()
        os.replace(staging / MANIFEST, target / MANIFEST)
