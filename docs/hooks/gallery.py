"""MkDocs hook: draw the gallery's pictures with the package itself, on the demo model, when the site is built.

Nothing here is a committed screenshot: every picture and every number that a gallery page shows
(written there as ``{{ gallery:NAME }}``) comes from this build's run of the package, so the pages
follow the package as it changes. The notebooks (``notebooks/*.ipynb``, stored executed) join the
site's files here too, before mkdocs-jupyter renders them without executing them.
"""

from __future__ import annotations

import io
import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from mkdocs.plugins import event_priority  # noqa: E402
from mkdocs.structure.files import File, Files  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PLACEHOLDER = re.compile(r"\{\{ gallery:([a-z0-9_]+) \}\}")
log = logging.getLogger("mkdocs.hooks.gallery")


@dataclass
class Gallery:
    """What one build drew: pictures by site path, and the values the pages quote."""

    pictures: dict[str, bytes] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, picture: np.ndarray) -> str:
        """Keep a picture as gallery/NAME.png; return its path in the site."""
        from convviz_widgets import to_png

        path = f"gallery/{name}.png"
        self.pictures[path] = to_png(picture, compress_level=6)
        return path


def two_shapes(seed: int = 3) -> Any:
    """A demo scene with two shapes, the case where a map must choose."""
    from convviz_widgets import demo

    return demo.scene(seed=demo.EVAL_SEED + seed, objects=2)


def draw_activations(g: Gallery, ins: Any, scene: Any) -> None:
    """The input and three depths of activation grids, drawn as the panel saves them and the report shows them."""
    from convviz_widgets.render import activation_picture, enlarge

    g.add("activations_input", enlarge(scene.image, 192))
    acts = ins.activations(scene.image)
    for layer in ("conv1", "conv3", "conv5"):
        act = acts[layer]
        g.add(f"activations_{layer}", activation_picture(act, images_per_row=16, full=True)[0])  # as the report saves
        dead = int((act.reshape(-1, act.shape[-1]).max(axis=0) <= 0).sum())
        g.values[f"act_{layer}_shape"] = "×".join(str(s) for s in act.shape)
        g.values[f"act_{layer}_dead"] = str(dead)
        g.values[f"act_{layer}_zeros"] = f"{100 * float((act <= 0).mean()):.0f} %"


def draw_filters(g: Gallery, ins: Any) -> None:
    """Sixteen conv4 filters, the book's plain ascent and the regularised recipe."""
    from convviz_widgets import demo
    from convviz_widgets.render import filter_picture

    for mode in ("plain", "regularized"):
        fp = ins.filter_patterns("conv4", range(16), size=64, steps=40, seed=0, mode=mode,
                                 step_size=demo.FILTER_STEP_SIZE)
        g.add(f"filters_{mode}", filter_picture(fp))
        g.values[f"filters_{mode}_median"] = f"{float(np.median(fp.final_activation)):.3g}"


def draw_cams(g: Gallery, ins: Any, scene: Any) -> None:
    """Every registered CAM method on one two-shape scene, for each shape's class, in a table the page shows."""
    import convviz_widgets as cv
    from convviz_widgets import demo
    from convviz_widgets.render import enlarge, heatmap_picture, side_by_side

    names = [demo.CLASS_NAMES[k] for k in scene.labels]
    rows = ["| method | " + " | ".join(f"explaining *{n}*" for n in names) + " |", "|---|" + "---|" * len(names)]
    skipped = ins.cam_methods_skipped
    for method in cv.cam_methods():
        if method in skipped:  # a method for other kinds of model (attention rollout): its row says why
            cells = [f"not drawn: it does not apply to the demo convnet ({skipped[method]})"] + ["—"] * (len(names) - 1)
            rows.append(f"| `{method}` | " + " | ".join(cells) + " |")
            continue
        cams = [ins.gradcam(scene.image, class_index=k, method=method) for k in scene.labels]
        cells = []
        for k, cam in zip(scene.labels, cams):
            picture = side_by_side(enlarge(cv.overlay(scene.image, cam.heatmap), 160),
                                   enlarge(heatmap_picture(cam.heatmap, "jet", scene.image.shape), 160))
            path = g.add(f"cam_{method.replace('+', 'p')}_{k}", picture)
            cells.append(f"![{method}, class {demo.CLASS_NAMES[k]}](../{path})")
        rows.append(f"| `{method}` | " + " | ".join(cells) + " |")
    g.add("cam_input", enlarge(scene.image, 160))
    g.values["cam_table"] = "\n".join(rows)
    g.values["cam_classes"] = " and ".join(f"*{n}*" for n in names)


def draw_card(g: Gallery, ins: Any, scene: Any) -> None:
    """The channel card of the channel that contributes most to the first shape's Grad-CAM at conv5."""
    from convviz_widgets import demo
    from convviz_widgets.core.cam import contributions, top_contributors
    from convviz_widgets.render import enlarge, map_pictures
    from convviz_widgets.widgets.card import examples_picture

    layer, k = "conv5", scene.labels[0]
    cam = ins.gradcam(scene.image, class_index=k, layer=layer)
    act = ins.activations(scene.image)[layer]
    shares = contributions(cam, act.reshape(-1, act.shape[-1]).mean(axis=0))
    channel = top_contributors(shares, 1)[0]
    blended, raw = map_pictures(act, channel, scene.image, "viridis")
    g.add("card_map", blended)
    g.add("card_raw", raw)
    fp = ins.filter_patterns(layer, [channel], size=64, steps=40, seed=0, mode="plain",
                             step_size=demo.FILTER_STEP_SIZE)
    g.add("card_pattern", enlarge(fp.images[0], 160))
    images = demo.example_images()
    top = ins.top_examples(layer, images, k=9, channels=[channel])
    g.add("card_examples", examples_picture(top, 0, images))
    g.values.update(card_layer=layer, card_channel=str(channel), card_class=demo.CLASS_NAMES[k],
                    card_weight=f"{float(cam.weights[channel]):.3g}", card_share=f"{float(shares[channel]):.3g}",
                    card_examples=str(top.count),
                    card_labels=", ".join(sorted({demo.CLASS_NAMES[lab] for i in top.indices[0]
                                                  for lab in demo_labels(int(i))})))


def demo_labels(index: int) -> list[int]:
    """The classes in the demo's example scene `index` (`demo.example_images` draws scenes of seeds 0, 1, ...)."""
    from convviz_widgets import demo

    return demo.scene(seed=index).labels


def draw_faithfulness(g: Gallery, ins: Any, scene: Any) -> None:
    """Pointing game, deletion/insertion against a random order, and the cascading randomisation check."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import convviz_widgets as cv
    from convviz_widgets import demo, metrics
    from convviz_widgets.render import enlarge, side_by_side

    k = scene.labels[0]
    cam = ins.gradcam(scene.image, class_index=k)
    g.values["faith_class"] = demo.CLASS_NAMES[k]
    g.values["faith_pointing"] = "hit" if metrics.pointing_game(cam, scene.masks[0]) else "miss"
    g.values["faith_energy"] = f"{metrics.energy(cam, scene.masks[0]):.2f}"
    mask_picture = np.where(scene.masks[0][..., None], scene.image, scene.image // 4)
    g.add("faith_pointing", side_by_side(enlarge(cv.overlay(scene.image, cam.heatmap), 160),
                                         enlarge(mask_picture.astype(np.uint8), 160)))
    fig, axes = plt.subplots(1, 2, figsize=(8, 3), dpi=100)
    for ax, mode in zip(axes, ("deletion", "insertion")):
        for order, style in (("heatmap", "-"), ("random", "--")):
            curve = metrics.deletion_curve(ins, scene.image, cam, k, order=order, mode=mode)
            ax.plot(curve.fractions, curve.probabilities, style, label=f"{order} order, AUC {curve.auc:.2f}")
            g.values[f"faith_{mode}_{order}"] = f"{curve.auc:.2f}"
        ax.set(title=mode, xlabel=f"share of pixels {'deleted' if mode == 'deletion' else 'inserted'}",
               ylabel=f"p({demo.CLASS_NAMES[k]})", ylim=(0, 1.02))
        ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    g.pictures["gallery/faith_curves.png"] = buf.getvalue()
    stages = metrics.randomization_check(ins, scene.image, class_index=k)
    maps = [enlarge(cv.overlay(scene.image, cam.heatmap), 128)]
    for depth in range(1, min(3, len(stages)) + 1):
        copy = metrics.randomized_copy(ins, depth)
        maps.append(enlarge(cv.overlay(scene.image, copy.gradcam(scene.image, class_index=k).heatmap), 128))
    g.add("faith_sanity", side_by_side(*maps))
    g.values["faith_sanity_rows"] = "\n".join(f"| {i} | `{s.layer}` | {s.spearman:.2f} | {s.ssim:.2f} |"
                                              for i, s in enumerate(stages, start=1))


def draw_all() -> Gallery:
    """Every gallery picture, on the demo model."""
    import convviz_widgets as cv
    from convviz_widgets import demo

    start = time.perf_counter()
    g = Gallery()
    model = demo.load_model()
    ins = cv.Inspector(model)
    single, pair = demo.scene(label=4, seed=demo.EVAL_SEED + 1), two_shapes()
    draw_activations(g, ins, single)
    draw_filters(g, ins)
    draw_cams(g, ins, pair)
    draw_card(g, ins, pair)
    draw_faithfulness(g, ins, pair)
    g.values["scene_classes"] = ", ".join(demo.CLASS_NAMES[k] for k in pair.labels)
    g.values["version"] = cv.__version__
    log.info("gallery: %d pictures drawn in %.1f s", len(g.pictures), time.perf_counter() - start)
    return g


_gallery: Gallery | None = None


@event_priority(100)  # before mkdocs-jupyter looks at the files
def on_files(files: Files, config: Any) -> Files:
    """Add the notebooks and the gallery's pictures to the site's files."""
    global _gallery
    for path in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        files.append(File(f"notebooks/{path.name}", str(ROOT), config["site_dir"], config["use_directory_urls"]))
    _gallery = draw_all()
    for path, content in _gallery.pictures.items():
        files.append(File.generated(config, path, content=content))
    return files


def on_page_markdown(markdown: str, page: Any, config: Any, files: Files) -> str:
    """Put this build's values where a page says ``{{ gallery:NAME }}``; an unknown name stops the build."""
    assert _gallery is not None

    def value(match: re.Match) -> str:
        name = match[1]
        if name not in _gallery.values:
            raise KeyError(f"{page.file.src_uri} asks for gallery value {name!r}, which the gallery hook does not make")
        return _gallery.values[name]

    return PLACEHOLDER.sub(value, markdown)
