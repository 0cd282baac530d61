"""A static HTML report of the panel's views: activation grids, filter patterns, Grad-CAM overlays, and a section
for every registered view that writes one (`View.report_section`), so a user's own tab reaches reports too."""

from __future__ import annotations

import html
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import render
from .core.cam import CAM
from .core.cams import get_method
from .core.facts import layer_facts
from .core.inspector import Inspector
from .widgets import ImageView, View, view_entries
from .widgets.text import error_text

PLAIN_STEP = 1.0  # the book's plain-ascent step, for models that bring none (`model.filter_step_size`)


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
        self.stream.write(f"{lead}{self.label:<28} [{bar}] {pct:3d}% {secs:5.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


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


def build_report(inspector: Inspector, image: Any, out: Path, *, filter_layers: Sequence[str] | None = None,
                 n_filters: int = 16, filter_size: int | None = None, steps: int = 40,
                 step_size: float | None = None,
                 pattern_modes: Sequence[str] = ("plain", "regularized"), top: int = 3,
                 images_per_row: int = 16, log: Callable[[str], None] = print,
                 cam_methods: Sequence[str] = ("gradcam",)) -> Report:
    """Compute the three views for one image and write their PNGs into `out`.

    `step_size` None: the model's own plain-ascent step (`model.filter_step_size`, e.g. the demo's), else 1.
    """
    out.mkdir(parents=True, exist_ok=True)
    if step_size is None:
        step_size = float(getattr(inspector.model, "filter_step_size", PLAIN_STEP))
    rgb = inspector.prepare(image)
    report = Report(title=f"What {inspector.model.name} sees")
    _save(out / "input.png", render.enlarge_figure(rgb))
    preds = inspector.predict(rgb, top=max(5, top))
    report.facts += [
        ("Model", f"{inspector.model.name} — {inspector.model.count_params():,} parameters"),
        ("Input", f"{rgb.shape[1]}x{rgb.shape[0]} RGB, preprocess '{inspector.preprocess_name}'"),
        ("Top-5", ", ".join(f"{name} {_value(inspector, p)}" for _, name, p in preds[:5])),
    ]
    report.sections.append(("Input", "The image as the model sees it.", [("input.png", "input")]))
    report.sections.append(_activation_section(inspector, rgb, out, images_per_row))
    layers = list(filter_layers) if filter_layers else default_filter_layers(inspector)
    report.sections.append(_filter_section(inspector, layers, out, n_filters, filter_size, steps, step_size,
                                           pattern_modes))
    for method in cam_methods:
        report.sections.append(_cam_section(inspector, rgb, out, preds[:top], method))
    for entry in view_entries():
        if entry.view.report_section is not View.report_section:  # the tab writes a section of its own
            _view_section(report, entry.key, entry.title, entry.view, inspector, rgb, out)
    write_html(report, out / "index.html")
    return report


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
            bar = ProgressBar(f"filters {node.name} {mode[:3]}"[:28], steps)
            fp = inspector.filter_patterns(node.name, range(k), size=size, steps=steps, step_size=step_size,
                                           mode=mode, progress=bar)
            grid = render.filter_picture(fp)  # the Filters tab's labelled tiles
            fname = _file_name(node.name, "filters" if mode == "plain" else "filters_regularized")
            _save(out / fname, grid)
            gain = float(np.median(fp.final_activation - fp.start_activation))
            how = f"book's ascent, step {step_size:g}" if mode == "plain" else "regularised (Fourier, jitter, Adam)"
            items.append((fname, f"{node.name} — filters 0..{k - 1}, {size}px, {steps} steps, {how}; "
                                 f"median gain {gain:+.2f}"))
    return ("Filter patterns", "Inputs that maximise each filter's mean activation (gradient ascent).", items)


def _cam_section(inspector: Inspector, rgb: np.ndarray, out: Path,
                 preds: Sequence[tuple[int, str, float]], method: str = "gradcam"
                 ) -> tuple[str, str, list[tuple[str, str]]]:
    """Overlays of one registered CAM method (Grad-CAM by default) for the top classes."""
    rule = get_method(method)
    shown = render.enlarge_figure(rgb)
    items = []
    bar = ProgressBar(rule.name, len(preds))
    for rank, (idx, name, prob) in enumerate(preds, 1):
        cam = inspector.gradcam(rgb, class_index=idx, method=rule.name)
        fname = _file_name(f"top{rank}", rule.name) if rule.name != "gradcam" else f"gradcam_top{rank}.png"
        _save(out / fname, cam_picture(shown, cam))
        items.append((fname, cam_caption(rank, name, prob, cam, probability=inspector.score_label == "probability")))
        bar(rank, len(preds))
    return (rule.label, "Where the evidence for each class lies (red = most).", items)


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
    """Write a picture as PNG."""
    path.write_bytes(render.to_png(array, compress_level=6))


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
    path.write_text("\n".join(parts), encoding="utf-8")
