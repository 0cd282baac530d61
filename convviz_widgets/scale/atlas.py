"""A channel atlas: every channel's top dataset examples, their receptive-field crops and its filter pattern.

Written as a static site that opens from the disk, no server: `index.html` lists the layers,
`<layer>/index.html` shows one card per channel (its best crop and its pattern), and
`<layer>/channel-NNNN.html` shows the channel's k examples (crop, marked image, value, image
number), its filter pattern and, at the CAM layer, the classes it feeds most; `<layer>/examples.json`
holds the same examples as data.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import render
from ..core.api import inspector_for
from ..core.atlas_folder import model_fingerprint
from ..core.examples import TopExamples
from ..errors import ConvVizError
from ..render.cards import marked_thumbnail
from ..render.layout import fit
from .engine import Progress, RunStats, _distributed, claim_folder, dataset
from .examples import dataset_examples

MARKER = ".convviz-atlas"  # the file that says this folder holds an atlas the package wrote
THUMB = 96  # crops and patterns on the pages, pixels a side
PATTERN_SIZE = 64
CLASSES_SHOWN = 3


@dataclass
class Atlas:
    """What `atlas` wrote: the folder, each layer's top examples, and how the run went."""

    out: Path
    examples: dict[str, TopExamples]
    stats: RunStats
    pages: list[Path] = field(default_factory=list)

    @property
    def index(self) -> Path:
        """The atlas's front page."""
        return self.out / "index.html"


def default_layers(inspector: Any, earlier: int = 3) -> list[str]:
    """The CAM layer and up to `earlier` conv layers before it, spread from the first."""
    cam = inspector.default_cam_layer
    convs = [n for n in inspector.conv_layers if inspector.layer(n).is_spatial and n != cam]
    before = [n for n in convs if inspector.layer(n).index < inspector.layer(cam).index]
    if len(before) > earlier:
        picks = np.linspace(0, len(before) - 1, earlier).round().astype(int)
        before = [before[i] for i in sorted(set(picks.tolist()))]
    return [*before, cam]


def atlas(model: Any, images: Any, out: Any, layers: Sequence[str] | None = None, k: int = 9, client: Any = None,
          workers: int | None = None, progress: Progress | None = None, *, preprocess: Any = None,
          output: Any = None, batch_size: int = 64, scheduler: str | None = None, patterns: bool = True,
          pattern_steps: int = 40, recursive: bool = False) -> Atlas:
    """Write a channel atlas of `layers` (default: the CAM layer and three earlier) over a dataset into `out`.

    The dataset runs once through the engine (here, `workers=N` local processes or a Dask `client`);
    a run stopped and started again with the same `out` continues from its saved batches.
    """
    ins = inspector_for(model, preprocess, output=output)
    names = list(layers) if layers is not None else default_layers(ins)
    if not names:
        raise ConvVizError("No layers to map: pass layers=[...] with conv or pooling layers.")
    if client is not None or workers is not None or scheduler is not None:
        _distributed()  # a missing extra, or images the engine cannot read, are said before anything is written
    data = dataset(images, batch_size, recursive)
    out = claim_folder(out, MARKER, "convviz atlas")
    results, stats, data = dataset_examples(model, names, images, k=k, batch_size=batch_size,
                                            preprocess=preprocess, output=output, client=client, workers=workers,
                                            scheduler=scheduler, out=out, progress=progress, recursive=recursive,
                                            inspector=ins, data=data)
    wanted = {int(i) for r in results for i in r.indices.ravel()}
    prepared = {i: ins.prepare(item) for i, item in data.read(sorted(wanted)).items()}
    result = Atlas(out, {r.layer: r for r in results}, stats)
    for r in results:
        pats = _patterns(ins, r, pattern_steps) if patterns else None
        result.pages += _write_layer(ins, r, prepared, pats, out)
    _write_index(ins, result, data.total)
    return result


def _patterns(ins: Any, top: TopExamples, steps: int) -> np.ndarray | None:
    """Every channel's filter pattern, in one batched ascent (None where the layer has none)."""
    try:
        step = float(getattr(ins.model, "filter_step_size", 1.0))
        fp = ins.filter_patterns(top.layer, list(top.channels), size=PATTERN_SIZE, steps=steps, step_size=step)
    except ConvVizError:
        return None
    return fp.images


def _fed_classes(ins: Any, layer: str, channel: int) -> list[tuple[str, float]]:
    """At the CAM layer: the classes this channel adds to most, positive output weights only (a GAP + Dense head)."""
    if layer != ins.default_cam_layer or not ins.has_classes:
        return []
    channels = ins.layer(layer).channels
    for lyr in reversed(ins.model.layers):
        kernel = getattr(lyr, "kernel", None)
        if kernel is not None and len(kernel.shape) == 2 and int(kernel.shape[0]) == channels \
                and int(kernel.shape[1]) == ins.n_classes:
            w = np.asarray(kernel)[channel]
            # a negative weight argues against the class: it is not fed
            order = [i for i in np.argsort(-w, kind="stable")[:CLASSES_SHOWN] if w[i] > 0]
            return [(ins.class_names[i] if i < len(ins.class_names) else str(i), float(w[i])) for i in order]
    return []


def _page(title: str, body: list[str], up: str | None = None) -> str:
    """One page of the atlas, in the report's plain style."""
    esc = html.escape
    nav = f"<p><a href='{esc(up)}'>&larr; back</a></p>" if up else ""
    return "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'>", f"<title>{esc(title)}</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;color:#222}",
        "figure{display:inline-block;margin:0 1em 1.5em 0;vertical-align:top;text-align:center}",
        "img{image-rendering:pixelated;border:1px solid #ddd}a{color:#036}",
        "figcaption{font-size:.8em;color:#555;max-width:14em}th{text-align:left;padding-right:1em}",
        f"</style></head><body>{nav}<h1>{esc(title)}</h1>", *body, "</body></html>"])


def _save(path: Path, picture: np.ndarray) -> None:
    """A picture as PNG."""
    path.write_bytes(render.to_png(np.ascontiguousarray(picture), compress_level=6))


def _write_layer(ins: Any, top: TopExamples, prepared: dict[int, np.ndarray], pats: np.ndarray | None,
                 out: Path) -> list[Path]:
    """A layer's index of channel cards and one page per channel; the pages written."""
    esc = html.escape
    folder = out / render.slug(top.layer)
    (folder / "img").mkdir(parents=True, exist_ok=True)
    cards, pages = [], []
    for row, channel in enumerate(top.channels):
        figures = []
        for j in range(top.k):
            index = int(top.indices[row, j])
            rgb = prepared[index]
            crop = top.crop(row, j, rgb)
            r, c = (int(v) for v in top.positions[row, j])
            fld = top._field_for(rgb.shape[:2])
            box = fld.box(r, c, rgb.shape[:2])
            centre = (fld.start[0] + r * fld.stride[0], fld.start[1] + c * fld.stride[1])
            name = f"img/c{channel:04d}_{j}.png"
            _save(folder / name, fit(crop, THUMB))
            whole = f"img/c{channel:04d}_{j}_whole.png"
            _save(folder / whole, marked_thumbnail(rgb, box, centre, THUMB))
            caption = f"#{j + 1}: image {index}, max {float(top.values[row, j]):.3g} at ({r}, {c})"
            figures.append(f"<figure><img src='{name}' alt='{esc(caption)}'> <img src='{whole}' alt='in context'>"
                           f"<figcaption>{esc(caption)}</figcaption></figure>")
        pattern = ""
        if pats is not None:
            pname = f"img/c{channel:04d}_pattern.png"
            _save(folder / pname, fit(pats[row], THUMB))
            pattern = (f"<h2>Filter pattern</h2><figure><img src='{pname}' alt='filter pattern'>"
                       "<figcaption>the input that maximises the channel's mean activation</figcaption></figure>")
        fed = _fed_classes(ins, top.layer, channel)
        feeds = ("<h2>Classes it feeds most</h2><table>" + "".join(
            f"<tr><th>{esc(n)}</th><td>weight {w:+.3f}</td></tr>" for n, w in fed) + "</table>") if fed else ""
        page = folder / f"channel-{channel:04d}.html"
        page.write_text(_page(f"{top.layer}, channel {channel}", [
            f"<h2>Top {top.k} of {top.count} images</h2>", *figures, pattern, feeds], up="index.html"),
            encoding="utf-8")
        pages.append(page)
        thumb = f"img/c{channel:04d}_0.png"
        extra = f"<img src='img/c{channel:04d}_pattern.png' alt='pattern'>" if pats is not None else ""
        cards.append(f"<figure><a href='{page.name}'><img src='{thumb}' alt='best example'>{extra}</a>"
                     f"<figcaption>channel {channel}<br>max {float(top.values[row, 0]):.3g}</figcaption></figure>")
    _write_examples_json(top, folder / "examples.json", ins.model)
    rf = top.receptive_field
    field_text = (f"receptive field {rf.size[0]:.0f} x {rf.size[1]:.0f} px" if rf.size
                  else "receptive field: whole image")
    index = folder / "index.html"
    index.write_text(_page(f"{top.layer}: {len(top.channels)} channels", [
        f"<p>Each channel's best example (its receptive-field crop) and its filter pattern; {field_text}. "
        f"{top.count} images seen, {top.skipped} skipped.</p>", *cards], up="../index.html"), encoding="utf-8")
    return [index, *pages]


def _write_examples_json(top: TopExamples, path: Path, model: Any) -> None:
    """The layer's examples as data (for other tools and the panel): per channel, image, value and position;
    the model's name and fingerprint let the panel refuse an atlas made for another model."""
    import json

    channels = {str(c): [{"image": int(top.indices[row, j]), "value": float(top.values[row, j]),
                          "row": int(top.positions[row, j, 0]), "col": int(top.positions[row, j, 1])}
                         for j in range(top.k)] for row, c in enumerate(top.channels)}
    path.write_text(json.dumps({"model": str(model.name), "fingerprint": model_fingerprint(model),
                                "layer": top.layer, "k": top.k, "count": top.count, "skipped": top.skipped,
                                "channels": channels}), encoding="utf-8")


def _write_index(ins: Any, result: Atlas, total: int) -> None:
    """The front page: one link per layer."""
    esc = html.escape
    first = next(iter(result.examples.values()))
    rows = "".join(
        f"<tr><th><a href='{render.slug(name)}/index.html'>{esc(name)}</a></th>"
        f"<td>{len(top.channels)} channels</td><td>{esc(str(tuple(ins.layer(name).shape[1:])))}</td></tr>"
        for name, top in result.examples.items())
    skipped = f"; {first.skipped} could not be read and were skipped" if first.skipped else ""
    reasons = "".join(f"<li>{esc(r)}</li>" for r in first.skip_reasons)
    body = [f"<p>Top {first.k} examples of every channel over {first.count} of {total} images{skipped}.</p>",
            f"<table>{rows}</table>", f"<ul>{reasons}</ul>" if reasons else ""]
    result.index.write_text(_page(f"Channel atlas: {ins.model.name}", body), encoding="utf-8")
