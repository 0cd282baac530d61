"""The panel's words: every caption, line and message a tab shows, built from values (no widgets, no model work).

Each builder takes what it describes (a CAM, a sanity check, a layer's facts, ...) and returns an HTML string, so
a view only decides *which* text to show and where; the texts themselves can be read and tested on their own.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from ..core import CAM, Cancelled, ConvVizError, TopExamples
from ..core.cams import get_method
from ..metrics import TOLERANCE, Sanity, energy, pointing_game

SIMILAR = 0.5  # a rank correlation at least this high after randomisation is a warning sign
HIT, MISS, NOTE = "#1b7f3b", "#b00020", "#666"
SMALL = "<div style='line-height:1.35;font-size:smaller'>"  # captions: small type, lines close together
HOW_TO = ("No dataset examples: give the panel images to search, e.g. "
          "<code>ConvVizPanel(model, image, dataset=images_or_folder)</code> (an array of images, a list of "
          "images or paths, a folder of image files or a tf.data.Dataset).")
NO_PREDICTIONS = ("<div class='convviz-predictions'><i>No predictions: this model has no class output "
                  "(it ends in a feature map).</i></div>")


# ----- shared -----------------------------------------------------------------------------------------------
def error_text(err: BaseException) -> str:
    """A readable one-paragraph message for an error raised in a callback."""
    if isinstance(err, (ConvVizError, Cancelled)):
        return str(err)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def error_html(text: str) -> str:
    """An error message as a red box."""
    return ('<div class="convviz-error" style="color:#b00020;border-left:3px solid #b00020;padding:2px 8px">'
            f"<b>Error:</b> {html.escape(text)}</div>")


def small(text: str) -> str:
    """A caption in small type (`text` is HTML)."""
    return f"{SMALL}{text}</div>"


def coloured(text: str, colour: str) -> str:
    """Bold coloured HTML text."""
    return f'<b style="color:{colour}">{html.escape(text)}</b>'


def no_classes_text(inspector: Any) -> str:
    """One line: the model has no class output, and how to give it one."""
    shape = tuple(inspector.graph.head.logits.shape)
    return (f"This model has no class output (it ends in a feature map {shape}), so there is no class to "
            "explain: add a classifier head, or pass the full model (e.g. include_top=True).")


def layer_label(shape: tuple, name: str, tokens: Any = None) -> str:
    """Dropdown text: the layer name and its output size; a token layer's as the patch grid it is shown as.

    `tokens`: the layer's token grid (`Node.tokens`: h, w and the leading special tokens), or None.
    """
    if tokens is not None and len(shape) == 3:
        lead = f", {tokens.lead} special token{'s' if tokens.lead != 1 else ''} dropped" if tokens.lead else ""
        return f"{name}  ({tokens.h}×{tokens.w}×{shape[-1]} tokens{lead})"
    dims = "×".join("?" if d is None else str(d) for d in shape[1:])
    return f"{name}  ({dims})"


def node_label(node: Any) -> str:
    """Dropdown text of a layer's node (`Inspector.layer`): its name and the size it is shown at."""
    return layer_label(node.shape, node.name, node.tokens)


def value_text(p: float, label: str, digits: int = 1) -> str:
    """A prediction as text: a percentage for probabilities, a number for a linear head's scores."""
    return f"{p:.{digits}%}" if label == "probability" else f"{p:.4g}"


# ----- the header -------------------------------------------------------------------------------------------
def predictions_html(predictions: list[tuple[int, str, float]], label: str = "probability",
                     regions: bool = False, labels: bool = False) -> str:
    """The top classes as a small table: probabilities with bars, or a linear head's scores as numbers.

    `regions`: a segmentation model's classes with the share of the pixels it predicts as each (with bars).
    `labels`: a multi-label head's top labels, each with its own sigmoid probability (they need not sum to 1).
    """
    def value(p: float) -> str:
        if label != "probability" and not regions:
            return f"<td style='text-align:right'>{p:.4g}</td>"
        return (f"<td style='text-align:right'>{p:.1%}</td><td><div style='background:#4c72b0;height:10px;"
                f"width:{max(1, round(120 * p))}px'></div></td>")

    rows = "".join(
        f"<tr><td>{rank}.</td><td><b>{html.escape(name)}</b></td><td style='color:#666'>#{index}</td>{value(p)}</tr>"
        for rank, (index, name, p) in enumerate(predictions, start=1)
    )
    title = "Predicted regions</b> (share of the pixels)" if regions else \
        f"Top {len(predictions)} predictions</b> ({html.escape(label)})"
    if labels:
        title = f"Top {len(predictions)} labels</b> (each label's own sigmoid probability)"
    return f"<div class='convviz-predictions'><b>{title}<table>{rows}</table></div>"


def output_html(value: float) -> str:
    """A regression head's header: the output's value, not predictions of classes."""
    return (f"<div class='convviz-predictions'><b>Output</b> <b style='font-size:larger'>{value:.4g}</b> "
            "<span style='color:#666'>(the raw value of a one-unit linear head)</span></div>")


def preprocess_html(name: str, reason: str) -> str:
    """How the pixels go into the model, and why: one short line, the whole reason also as its tooltip."""
    short = reason.split("; ", 1)[0]  # the choice's reason; what else was read stays in the tooltip
    return (f"<small title='{html.escape(reason, quote=True)}'>Pixels in: <b>{html.escape(name)}</b> — "
            f"{html.escape(short)}</small>")


# ----- the Activations tab ----------------------------------------------------------------------------------
def facts_html(name: str, kind: str, shape: tuple[int, int, int], facts: dict[str, Any]) -> str:
    """A layer's shape, dead channels and sparsity, in one line."""
    h, w, c = shape
    rule = facts.get("dead_rule", "never positive for this image")
    return (f"<b>{html.escape(name)}</b> ({kind}) · output <b>{h} × {w} × {c}</b> · "
            f"dead channels: <b>{facts['dead']} of {c}</b> ({facts['dead'] / c:.1%}, {rule}) · "
            f"sparsity: <b>{facts['sparsity']:.1%}</b> of activations are zero")


def grid_caption(shape: tuple[int, int, int], per_row: int, factor: int) -> str:
    """What the channel grid shows, and at which resolution."""
    h, w, c = shape
    note = f"; tiles shown at 1/{factor} resolution (saved files are full size)" if factor > 1 else ""
    return f"<small>All {c} channels of {h}×{w}, {per_row} per row{note}.</small>"


def heads_caption(shape: tuple[int, int, int], per_row: int, factor: int, readout: str) -> str:
    """What the grid of attention heads shows."""
    h, w, n = shape
    note = f"; tiles shown at 1/{factor} resolution (saved files are full size)" if factor > 1 else ""
    return (f"<small>All {n} heads: each tile is one head's attention weights from {html.escape(readout)} to the "
            f"{h}×{w} patches (special tokens left out), {per_row} per row, each tile scaled on its own{note}.</small>")


def head_caption(k: int, weights: np.ndarray) -> str:
    """One head's weights under its enlarged picture."""
    return (f"<small>Head {k}: weights to the patches from {weights.min():.3g} to {weights.max():.3g}, "
            f"{weights.sum():.1%} of the row on the patches (the rest on special tokens).</small>")


def heads_facts_html(name: str, shape: tuple[int, int, int], readout: str) -> str:
    """An attention layer's heads, in one line."""
    h, w, n = shape
    return (f"<b>{html.escape(name)}</b> (attention) · <b>{n} heads</b> over <b>{h} × {w}</b> patches · "
            f"the row read: {html.escape(readout)}")


def channel_caption(k: int, ch: np.ndarray, note: str = "") -> str:
    """One channel's statistics under its picture (`note`: e.g. that it is dead for this image)."""
    return (f"<small>Channel {k}{f' ({note})' if note else ''}: min {ch.min():.3g}, max {ch.max():.3g}, "
            f"mean {ch.mean():.3g}, {np.mean(ch == 0.0):.0%} zeros.</small>")


# ----- the Filters tab --------------------------------------------------------------------------------------
def recipe_text(mode: str, step: float | None) -> str:
    """How the patterns were made, for the caption."""
    if mode == "plain":
        return f"the book's plain ascent, step {step:g}"
    return "regularised (Fourier image, decorrelated colour, jitter/scale/rotation, Adam)"


def patterns_caption(layer: str, filters: tuple[int, ...], size: int, steps: int, recipe: str,
                     start: float, final: float) -> str:
    """What a grid of filter patterns shows and how far the ascent moved it."""
    return (f"<small>Layer <b>{html.escape(layer)}</b>, filters {filters[0]}–{filters[-1]}, {size} px, "
            f"{steps} steps (seed 0), {recipe}. Each tile: the filter index and its mean activation after the "
            f"ascent; mean over tiles {start:.3g} → {final:.3g}.</small>")


# ----- the channel card -------------------------------------------------------------------------------------
def card_title(channel: int, layer: str, kind: str, note: str = "") -> str:
    """The card's heading (`note`: e.g. that the channel is dead for this image)."""
    return (f"<b>Channel {channel}</b> of <code>{html.escape(layer)}</code> ({kind})"
            f"{f' — <b>{note}</b>' if note else ''}: its map on "
            "this image, the picture that excites it, the dataset images that excite it most, "
            "and its class evidence.")


def raw_map_caption(ch: np.ndarray) -> str:
    """The raw map's size and range."""
    return small(f"Raw map {ch.shape[0]}×{ch.shape[1]}: max {float(ch.max()):.3g}, mean {float(ch.mean()):.3g}")


def pattern_caption(size: int, steps: int, step: float, final: float) -> str:
    """How the card's filter pattern was made, and the activation it reached (or that it never fired)."""
    result = f"mean activation {final:.3g}" if final > 0 else "it never fired: dead, no pattern to show"
    return small(f"Filter pattern ({size} px, {steps} steps of the book's ascent, step {step:g}, seed 0): {result}")


def examples_caption(top: TopExamples, channel: int) -> str:
    """What the examples show: how many images were searched, the maxima, and what the marks mean."""
    values = top.values[top.channels.index(channel)]
    field_ = top.receptive_field
    size = "" if field_.size is None else f" ({field_.size[0]:g}×{field_.size[1]:g} px)"
    skipped = f", {top.skipped} unreadable skipped" if top.skipped else ""
    never = " <b>It is never positive in these images.</b>" if float(values.max(initial=0.0)) <= 0 else ""
    return small(f"The {len(values)} of {top.count} dataset images{skipped} that excite it most (maxima "
                 f"{float(values[0]):.3g} … {float(values[-1]):.3g}). Box: the receptive field{size} of each "
                 f"maximum; +: its cell.{never}")


# ----- the Grad-CAM tab -------------------------------------------------------------------------------------
def method_label(name: str) -> str:
    """A registered CAM method's button label."""
    return get_method(name).label


def layer_span(names: list[str]) -> str:
    """Layer names for a sentence, the middle elided when there are many."""
    shown = names if len(names) <= 4 else [names[0], names[1], "…", names[-1]]
    return ", ".join(shown)


def cam_busy(method: str, layer: str, total: int, used: int | None, sanity: bool) -> str:
    """The status line while a map is computed (`used`: a perturbation method's channels, 0 = all)."""
    text = f"Computing {method_label(method)}"
    if used is not None:
        used = used or total
        which = "all channels" if used == total else f"the {used} of {total} channels with the largest variance"
        text += f" ({used} masked forward passes, one per channel: {which} of {layer})"
    if sanity:
        text += " and the randomised model's map"
    return "⏳ " + text + "…"


def output_words(index: int) -> str:
    """A regression head's entry as the Grad-CAM tab explains it: 1 the output, 0 its negation."""
    return "the output" if index == 1 else "the output, negated (what lowers it)"


def explained_html(cam: CAM, noun: str = "class") -> str:
    """What a map explains: "<b>star</b> (class 3)", "<b>cat</b> (label 2)" or "<b>the output</b>"."""
    if noun == "output":
        return f"<b>{html.escape(output_words(cam.class_index))}</b>"
    return f"<b>{html.escape(str(cam.class_name))}</b> ({noun} {cam.class_index})"


def cam_shown(cam: CAM, noun: str = "class") -> str:
    """What a map shows, in words (for the status line after a cancel)."""
    if noun == "output":
        return f"{method_label(cam.method)} of {output_words(cam.class_index)}"
    return f"{method_label(cam.method)} of {cam.class_name} ({noun} {cam.class_index})"


def _score_words(cam: CAM, label: str, noun: str) -> tuple[str, str]:
    """(what the score is, the probability part) of the line under the map, for a class, a label or an output."""
    if noun == "output":
        what = "the output's value" if cam.class_index == 1 else "the explained score (minus the output)"
        return what, " (a linear head's raw value, not a probability)"
    if label != "probability":
        return f"{noun} score (logit)", " (a linear head: scores, not probabilities)"
    own = " (the label's own sigmoid)" if noun == "label" else ""
    return f"{noun} score (logit)", f", probability <b>{(cam.probability or 0.0):.1%}</b>{own}"


def score_html(cam: CAM, label: str, channels: int | None, noun: str = "class") -> str:
    """The line under the map: method, what it explains, layer, score (and probability) and an empty map's note.

    `noun`: what the head's entries are: "class", "label" (a multi-label head) or "output" (a regression head).
    """
    h, w = cam.heatmap.shape
    this = f"this {noun}" if noun != "output" else "the output" if cam.class_index == 1 else "lowering the output"
    empty = (f"<br><i>No positive evidence for {this} at this layer: the map is empty.</i>"
             if not cam.heatmap.any() else "")
    what, probability = _score_words(cam, label, noun)
    used = f" from the {channels} channels of largest variance" if channels else ""
    if cam.region is not None:
        what = f"the class's logits summed over its region ({int((cam.region > 0.5).sum())} cells)"
        probability = (f", mean probability there <b>{(cam.probability or 0.0):.1%}</b>" if label == "probability"
                       else "")
    if get_method(cam.method).class_agnostic:  # the map explains no class: say so, the score only as a fact
        empty = empty.replace(f" for {this}", "")
        picked = "whatever is picked" if noun == "output" else f"whatever {noun} is picked"
        return (f"{method_label(cam.method)} at <code>{html.escape(cam.layer)}</code> ({h}×{w}): <i>class-agnostic, "
                f"the same map {picked}</i>. {explained_html(cam, noun)}: {what} <b>{cam.score:.4g}</b>"
                f"{probability}.{empty}")
    return (f"{method_label(cam.method)} of {explained_html(cam, noun)} at "
            f"<code>{html.escape(cam.layer)}</code> ({h}×{w}){used}: {what} <b>{cam.score:.4g}</b>"
            f"{probability}.{empty}")


def pointing_html(scene: Any, cam: CAM, class_names: list[str]) -> str:
    """The pointing game and energy of a map on a demo scene's object mask; '' for images without masks."""
    if scene is None:
        return ""
    name = html.escape(str(class_names[cam.class_index]))
    labels = [int(label) for label in scene.labels]
    if cam.class_index not in labels:
        present = ", ".join(html.escape(str(class_names[label])) for label in labels)
        return (f"<b>Pointing game:</b> <span style='color:{NOTE}'>no <b>{name}</b> in this scene</span> "
                f"(it shows {present}), so the map has no object to point at.")
    mask = np.asarray(scene.masks[labels.index(cam.class_index)], bool)
    hit = pointing_game(cam.heatmap, mask, TOLERANCE)
    where = "within" if hit else "more than"
    return (f"<b>Pointing game:</b> {coloured('hit' if hit else 'miss', HIT if hit else MISS)} — the map's "
            f"maximum lies {where} {TOLERANCE} px from the {name}. <b>Energy:</b> {energy(cam.heatmap, mask):.0%} of "
            f"the map's mass lies on the {name}, which covers {mask.mean():.0%} of the image.")


def sanity_html(sanity: Sanity | BaseException | None, depth: int, names: list[str], method: str) -> str:
    """What the sanity check found: the correlation, and whether it is a warning sign."""
    if sanity is None:
        return (f"<i>Sanity check: computing {method_label(method)} on a copy of the model with the top {depth} "
                "layers re-initialised…</i>")
    if isinstance(sanity, BaseException):
        return f"<b>Sanity check:</b> {coloured('could not run', MISS)}: {html.escape(error_text(sanity))}"
    _, stage = sanity
    verdict = (coloured(f"the map barely changed (ρ ≥ {SIMILAR:g}): it may show the image more than what the "
                        "model learned", MISS) if stage.spearman >= SIMILAR
               else "the map changed: it depends on the learned weights, as an explanation should.")
    blank = " The randomised model's map is blank (no ranking: ρ counts as 0)." if stage.blank else ""
    return (f"<b>Sanity check</b> (Adebayo et al. 2018): the same {method_label(method)} on a copy of the model "
            f"whose top {depth} layers with weights ({html.escape(layer_span(names))}) are re-initialised. "
            f"Rank correlation (Spearman) with the real heatmap: <b>ρ = {stage.spearman:+.2f}</b> "
            f"(SSIM {stage.ssim:.2f}); {verdict}{blank}")


def channels_html(cam: CAM, shares: np.ndarray, any_top: bool) -> str:
    """The line above the channel buttons: what a contribution is, and what a click does."""
    return (f"<b>Channels behind this map</b> at <code>{html.escape(cam.layer)}</code>: {method_label(cam.method)} "
            f"weight × mean activation (all {len(shares)} sum to the map's mean before ReLU, "
            f"{float(shares.sum()):.3g}). "
            + ("Click one to see its card in the Activations tab." if any_top else
               "<i>No channel contributes positively.</i>"))


EVIDENCE = "<b>Class evidence:</b> "


def evidence_html(cam: CAM, channel: int, shares: np.ndarray, mean: float, noun: str = "class") -> str:
    """A channel's weight and contribution in a map (the card's class-evidence line; `noun` as in `score_html`)."""
    k = int(channel)
    weight, share = float(cam.weights[k]), float(shares[k])
    rank = 1 + int(np.sum(shares > shares[k]))
    score = "the output's" if noun == "output" else f"the {noun} score's"
    how = f"the spatial mean of {score} gradient" if cam.method == "gradcam" else "its weight"
    what = explained_html(cam, noun)
    what = what[:-1] + ", " if what.endswith(")") else what + " ("
    return (f"<b>{'Evidence' if noun == 'output' else noun.capitalize() + ' evidence'}</b> for {what}"
            f"{method_label(cam.method)} at <code>{html.escape(cam.layer)}</code>): weight <b>{weight:+.3g}</b> "
            f"({how}) × mean activation {mean:.3g} = contribution <b>{share:+.3g}</b>, rank {rank} of "
            f"{len(shares)} channels.")


NO_CLASS_EVIDENCE = EVIDENCE + "this model has no class output, so no channel has a weight for a class."
EVIDENCE_LATER = EVIDENCE + ("open the Grad-CAM tab to compute the map of a class; this channel's weight and "
                             "contribution then appear here.")


def evidence_elsewhere(cam_layer: str) -> str:
    """The card's evidence line when its layer is not the one the Grad-CAM tab explains."""
    return (EVIDENCE + f"the Grad-CAM tab explains layer <code>{html.escape(cam_layer)}</code>; choose that "
            "layer here (or a channel button under its map) to see a channel's weight for the class.")
