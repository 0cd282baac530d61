"""The Grad-CAM tab: where the model looks for a class, and whether to believe the picture.

Methods: every registered CAM method (Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM, ... and the user's own).
The sanity check (Adebayo et al. 2018) shows the same map on a copy of the model whose top layers are
re-initialised, beside the real one, with their Spearman rank correlation. On a demo scene, whose object
masks are known, the pointing game says whether the map's maximum falls on the shown class's object.
"""

from __future__ import annotations

import html
import re
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import CAM, Cancelled, Inspector
from ..core.cam import contributions, top_contributors
from ..core.cams import get_method, method_names
from ..core.checks import ALPHA, CHANNELS
from ..metrics import (
    TOLERANCE,
    Sanity,
    cascade_layers,
    class_map,
    default_depth,
    energy,
    pointing_game,
    sanity_check,
)
from ..render import enlarge_figure, heatmap_picture, overlay, side_by_side
from .activations import layer_label
from .base import (
    ImageView,
    control_value,
    error_text,
    guarded,
    no_classes_text,
    output_problem,
    picture_widget,
    score_label,
    show_picture,
)
from .registry import register_view
from .runner import still_wanted

CMAPS = ("jet", "turbo", "viridis", "magma", "inferno", "gray")
TOP = 5
SIMILAR = 0.5  # a rank correlation at least this high after randomisation is a warning sign
HIT, MISS, NOTE = "#1b7f3b", "#b00020", "#666"

TOP_CHANNELS = 8  # channel buttons under the map: the largest positive contributions
SCORECAM_CHANNELS = 32  # perturbation methods' default (Score-CAM's measured one): one batch of masked images
Key = tuple[int, str, str, int | None]  # class index, layer, method, its channels (0 = all; None: not a perturbation)
SanityKey = tuple[int, str, str, int | None, int]  # ... and how many top layers are randomised


def method_label(name: str) -> str:
    """A registered CAM method's button label."""
    return get_method(name).label


def uses_channels(name: str) -> bool:
    """True for a perturbation method (Score-CAM, Ablation-CAM, the user's own): channel count, progress, Cancel."""
    return bool(get_method(name).uses_channels)


# ----- the randomisation depth control ------------------------------------------------------------------
def layer_span(names: list[str]) -> str:
    """Layer names for a sentence, the middle elided when there are many."""
    shown = names if len(names) <= 4 else [names[0], names[1], "…", names[-1]]
    return ", ".join(shown)


def depth_options(inspector: Inspector) -> list[tuple[str, int]]:
    """Dropdown options: how many top layers with weights to randomise, named by the lowest one."""
    top_down = cascade_layers(inspector.model)
    return [(f"top {n}, down to {name}", n) for n, name in enumerate(top_down, start=1)]


# ----- texts and pictures (no model work) -----------------------------------------------------------------
def coloured(text: str, colour: str) -> str:
    """Bold coloured HTML text."""
    return f'<b style="color:{colour}">{html.escape(text)}</b>'


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


def sanity_html(sanity: Sanity | None, depth: int, names: list[str], method: str) -> str:
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


def figure(picture: widgets.Image, caption: widgets.HTML) -> widgets.VBox:
    """A picture with a small caption under it."""
    return widgets.VBox([picture, caption], layout=widgets.Layout(margin="0 8px 0 0", align_items="flex-start"))


@register_view("cam", "Grad-CAM", order=30)
class CamView(ImageView):
    """Grad-CAM / Grad-CAM++ / Score-CAM for a chosen class and layer, with a sanity check and the pointing game."""

    kind = "gradcam"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, method: str = "gradcam",
                 opacity: float = 0.4, cmap: str = "jet", sanity: bool = False, depth: int | None = None,
                 channels: int = SCORECAM_CHANNELS, **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        ins = self.inspector
        n = ins.n_classes
        self.label = score_label(ins)
        self.predictions: list[tuple[int, str, float]] = []
        self.cams: dict[Key, CAM] = {}
        self.means: dict[str, np.ndarray] = {}  # per layer: each channel's mean activation on this image
        self.drawn: list[Any] = []  # told (no arguments) when a map is drawn
        self.channel_listeners: list[Any] = []  # told (layer, channel) when a channel button is clicked
        self.sanity_cams: dict[SanityKey, Sanity] = {}
        self._choice: int | None = None  # the class asked for; None: the image's top class
        self._saved_choice: int | None = None  # the choice to go back to when a coming image is refused
        self._chosen_while_awaiting = False
        self._depth_auto = depth is None  # the depth follows the layer until the user picks one
        layers = ins.cam_layers
        chosen = ins.layer(layer).name if layer else ins.default_cam_layer
        self.notice = widgets.HTML()
        self.notice.add_class("convviz-no-classes")
        self.classes = widgets.ToggleButtons(options=[], description="Class", style={"button_width": "auto"},
                                             tooltips=[])
        self.classes.add_class("convviz-classes")
        self.class_index = widgets.BoundedIntText(0, min=0, max=max(0, n - 1), description="or index",
                                                  layout=widgets.Layout(width="160px"))
        self.class_name = widgets.Label()
        self.layer = widgets.Dropdown(
            options=[(layer_label(ins.layer(name).shape, name), name) for name in layers], value=chosen,
            description="Layer", layout=widgets.Layout(width="max-content", min_width="320px"))
        names = method_names()  # read at build time: methods registered since import get a button too
        self.method = widgets.ToggleButtons(options=[(method_label(m), m) for m in names], value=method,
                                            description="Method", style={"button_width": "auto"},
                                            tooltips=[get_method(m).tooltip for m in names])
        self.channels = widgets.BoundedIntText(
            CHANNELS.check(channels, "channels"), min=CHANNELS.low, max=CHANNELS.high, description="Channels",
            disabled=not uses_channels(method),
            tooltip="Score-CAM, Ablation-CAM: use the N channels of largest activation variance (0 = all channels; "
                    "more is slower: one masked forward pass each)", layout=widgets.Layout(width="170px"))
        self.channels.add_class("convviz-scorecam-channels")
        self.method.add_class("convviz-cam-method")
        self.progress = widgets.IntProgress(0, min=0, max=1, description=method_label(method))
        self.progress.add_class("convviz-cam-progress")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop", disabled=True,
                                            tooltip="Stop the map being computed")
        self.progress_row = widgets.HBox([self.progress, self.cancel_button],
                                         layout=widgets.Layout(display=None if uses_channels(method) else "none"))
        self.sanity = widgets.ToggleButton(
            sanity, description="Sanity check", icon="random",
            tooltip="Also show the map of a copy of the model whose top layers are re-initialised")
        self.sanity.add_class("convviz-sanity-toggle")
        options = depth_options(ins) if ins.has_classes else []
        self.depth = widgets.Dropdown(
            options=options, value=(depth or default_depth(ins, chosen)) if options else None,
            description="Randomise", disabled=not sanity, layout=widgets.Layout(width="max-content", min_width="300px"))
        self.opacity = widgets.FloatSlider(ALPHA.check(opacity, "opacity"), min=ALPHA.low, max=ALPHA.high, step=0.05,
                                           description="Opacity")
        self.cmap = widgets.Dropdown(options=CMAPS, value=cmap, description="Colormap",
                                     layout=widgets.Layout(width="220px"))
        self.overlay = picture_widget("convviz-overlay")
        self.heatmap = picture_widget("convviz-heatmap")
        self.sanity_heatmap = picture_widget("convviz-sanity-heatmap")
        self.overlay_caption, self.heatmap_caption, self.sanity_caption = (widgets.HTML() for _ in range(3))
        self.sanity_figure = figure(self.sanity_heatmap, self.sanity_caption)
        self.sanity_figure.layout.display = "none"
        self.score = widgets.HTML()
        self.score.add_class("convviz-score")
        self.pointing = widgets.HTML()
        self.pointing.add_class("convviz-pointing")
        self.sanity_text = widgets.HTML()
        self.sanity_text.add_class("convviz-sanity")
        self.channels_text = widgets.HTML()
        self.channels_text.add_class("convviz-cam-channels-text")
        self.channel_buttons = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self._channel_pool: list[widgets.Button] = []  # made once, reused by every map (widgets live until closed)
        self._channel_targets: list[tuple[str, int]] = []  # (layer, channel) of each pooled button
        self.channel_buttons.add_class("convviz-cam-channels")
        self.on(self.classes, self._class_clicked, pass_value=True)
        self.on(self.class_index, self._index_typed, pass_value=True)
        self.on(self.layer, self._layer_changed)
        self.on(self.method, self._method_changed)
        self.on(self.channels, self.request)
        self.on(self.sanity, self._sanity_toggled)
        self.on(self.depth, self._depth_chosen)
        self.on(self.opacity, self._redraw)
        self.on(self.cmap, self._redraw)
        self.cancel_button.on_click(lambda _: self.cancel())
        if not ins.has_classes:  # nothing to explain: one line says why and what to do
            self.notice.value = f"<div style='padding:4px 0'>{html.escape(no_classes_text(ins))}</div>"
            self.children = [self.notice]
            return
        self.children = [
            self.classes,
            widgets.HBox([self.class_index, self.class_name]),
            self.layer,
            widgets.HBox([self.method, self.channels]),
            self.progress_row,
            widgets.HBox([self.sanity, self.depth]),
            widgets.HBox([self.opacity, self.cmap, self.save_button, self.saved]),
            self.status, self.message,
            widgets.HBox([figure(self.overlay, self.overlay_caption), figure(self.heatmap, self.heatmap_caption),
                          self.sanity_figure], layout=widgets.Layout(align_items="flex-start")),
            self.score, self.channels_text, self.channel_buttons, self.pointing, self.sanity_text,
        ]
        self._start_initial()

    @property
    def enabled(self) -> bool:
        """A model without a class output has nothing to explain here."""
        return bool(self.inspector.has_classes)

    # ----- what the controls ask for -------------------------------------------------------------------
    def channel_count(self, layer: str | None = None) -> int | None:
        """A perturbation method's channel count for the layer (0 = all), or None for the other methods."""
        if not uses_channels(self.method.value):
            return None
        total = self.inspector.layer(layer or self.layer.value).channels
        n = int(control_value(self.channels, CHANNELS))
        return 0 if n <= 0 or n >= total else n

    def wanted(self) -> dict[str, Any]:
        """A snapshot of the request: class choice, layer, method, Score-CAM channels, sanity depth, caches."""
        want = {"choice": self._choice, "layer": self.layer.value, "method": self.method.value,
                "channels": self.channel_count(), "depth": self.sanity_depth(),
                "predictions": list(self.predictions)}
        key = self.resolve(want)
        want["cam"] = None if key is None else self.cams.get(key)
        want["means"] = self.means.get(want["layer"])
        return want

    @staticmethod
    def resolve(want: dict[str, Any], predictions: list[tuple[int, str, float]] | None = None) -> Key | None:
        """The cache key a request asks for (its class: the choice, else the top prediction); None if unknown."""
        predictions = want["predictions"] if predictions is None else predictions
        index = want["choice"] if want["choice"] is not None else (predictions[0][0] if predictions else None)
        return None if index is None else (int(index), want["layer"], want["method"], want["channels"])

    def key(self) -> Key:
        """What the current controls ask for: (class index, layer, method, Score-CAM channels)."""
        return int(self.class_index.value), self.layer.value, self.method.value, self.channel_count()

    def sanity_depth(self) -> int | None:
        """How many top layers the sanity check randomises, or None while it is off."""
        return int(self.depth.value) if self.sanity.value and self.depth.value is not None else None

    def sanity_key(self) -> SanityKey | None:
        """The current controls' sanity-check key, or None while the check is off."""
        depth = self.sanity_depth()
        return None if depth is None else (*self.key(), depth)

    def busy(self, want: dict[str, Any]) -> str:
        """What the status line says while a request is computed."""
        method, layer = want["method"], want["layer"]
        text = f"Computing {method_label(method)}"
        if uses_channels(method):
            total = self.inspector.layer(layer).channels
            used = want["channels"] or total
            which = "all channels" if used == total else f"the {used} of {total} channels with the largest variance"
            text += f" ({used} masked forward passes, one per channel: {which} of {layer})"
        if want["depth"] is not None:
            text += " and the randomised model's map"
        return "⏳ " + text + "…"

    @property
    def busy_text(self) -> str:
        """What the status line says while the current controls' work runs."""
        return self.busy(self.wanted())

    # ----- model work -------------------------------------------------------------------------------
    def cached(self, want: dict[str, Any]) -> bool:
        """True when the map (and the sanity check, if on) of the request are computed for this image."""
        key = self.resolve(want)
        return key in self.cams and (want["depth"] is None or (*key, want["depth"]) in self.sanity_cams)

    def show(self, want: dict[str, Any]) -> None:
        """Draw a request from the caches."""
        key = self.resolve(want)
        self._select(key[0])
        self._idle("success")
        self._draw(self.cams[key])

    def before_submit(self, want: dict[str, Any]) -> None:
        """Busy states: the progress bar of a perturbation method, a placeholder for the sanity check."""
        perturbs = uses_channels(want["method"])
        self.progress_row.layout.display = None if perturbs else "none"
        if want["cam"] is None or self._pending is not None:  # the map itself is computed, not only its check
            self.progress.value, self.progress.bar_style = 0, "info"
            self.progress.description = method_label(want["method"])
        self.cancel_button.disabled = not perturbs
        if want["depth"] is not None:
            self._sanity_pending(want["depth"], want["method"])

    def compute(self, rgb: np.ndarray, want: dict[str, Any], fresh: bool
                ) -> tuple[list[tuple[int, str, float]], Key, CAM, Sanity | None, np.ndarray]:
        """The top classes (for a new image), the map the request asks for, and its sanity check if on."""
        predictions = want["predictions"]
        if fresh or not predictions:
            predictions = self.inspector.predict(rgb, top=TOP)
            problem = output_problem(self.inspector, rgb)
            if problem is not None:
                raise problem
        key = self.resolve(want, predictions)
        index, layer, method, channels = key
        cam = None if fresh else want["cam"]
        if cam is None:
            cam = class_map(self.inspector, rgb, index, layer, method, channels, self._progress)
        depth = want["depth"]
        sanity = None if depth is None else sanity_check(self.inspector, rgb, cam, depth, channels, still_wanted)
        means = None if fresh else want["means"]
        if means is None:
            means = self.inspector.activations(rgb, layers=[layer])[layer].mean(axis=(0, 1))
        return predictions, key, cam, sanity, means

    def _progress(self, done: int, total: int) -> bool:
        """A perturbation method's progress (worker thread): move the bar; False stops a stale or cancelled request."""
        if not still_wanted():
            return False
        self.progress.max = max(1, int(total))
        self.progress.value = int(done)
        return True

    def apply(self, result: tuple[list[tuple[int, str, float]], Key, CAM, Sanity | None, np.ndarray],
              want: dict[str, Any], fresh: bool) -> None:
        """Keep the map (and check), new class buttons for a new image, and draw."""
        predictions, key, cam, sanity, means = result
        if fresh or predictions != self.predictions:
            self.predictions = predictions
            self.cams, self.sanity_cams, self.means = {}, {}, {}
            with self.quietly():
                self.classes.options = [(f"{name} {self._value(p)}", i) for i, name, p in predictions]
                self.classes.tooltips = [f"class {i}: {name}, {self.label} {self._value(p, 2)}"
                                         for i, name, p in predictions]
        self.cams[key] = cam
        self.means[key[1]] = means
        if want["depth"] is not None and sanity is not None and not isinstance(sanity, Cancelled):
            self.sanity_cams[(*key, want["depth"])] = sanity  # a cancelled check is asked again next time
        self._select(key[0])
        self._idle("success")
        self._draw(cam)
        if isinstance(sanity, Cancelled):
            self.sanity_figure.layout.display = "none"
            self.sanity_text.value = sanity_html(sanity, want["depth"], [], want["method"])

    def _value(self, p: float, digits: int = 1) -> str:
        """A prediction as text: a percentage for probabilities, a number for a linear head's scores."""
        return f"{p:.{digits}%}" if self.label == "probability" else f"{p:.4g}"

    def _select(self, index: int) -> None:
        """Show a class in the controls (its button if it is in the top 5, the index box, its name)."""
        with self.quietly():
            self.classes.value = index if index in [i for i, _, _ in self.predictions] else None
            self.class_index.value = index
        self.class_name.value = str(self.inspector.class_names[index])

    def cancel(self) -> None:
        """Stop the Score-CAM being computed (the picture shown before stays)."""
        if self.runner.cancel(self.slot):
            self.status.value = "Cancelling…"

    def stopped(self, err: BaseException) -> None:
        """Cancelled or failed: say so and make the controls usable again."""
        self._idle("warning" if isinstance(err, Cancelled) else "danger")
        if isinstance(err, Cancelled):
            shown = self.current_shown()
            self.status.value = f"{err}" + (f" The picture shows {shown}." if shown else "")
        else:
            self.show_error(err)

    def current_shown(self) -> str:
        """What the pictures show now, in words ('' when nothing)."""
        text = self.score.value.split(" at ", 1)[0]
        return re.sub(r"<[^>]+>", "", text) if self.overlay.layout.display is None and text else ""

    def _idle(self, style: str) -> None:
        """No Score-CAM running: the bar keeps its last state, Cancel is off."""
        self.progress.bar_style = style
        self.cancel_button.disabled = True

    def clear_pictures(self) -> None:
        """Hide the pictures and texts (their request failed)."""
        for picture in (self.overlay, self.heatmap):
            picture.layout.display = "none"
        self.sanity_figure.layout.display = "none"
        for text in (self.overlay_caption, self.heatmap_caption, self.score, self.pointing, self.sanity_text,
                     self.channels_text):
            text.value = ""
        self.channel_buttons.children = ()

    # ----- class, layer, method and sanity controls -------------------------------------------------------
    def _image_coming(self) -> None:
        """A new image is coming: its top class is shown unless the user picks one meanwhile."""
        self._saved_choice, self._choice, self._chosen_while_awaiting = self._choice, None, False

    def _image_arrives(self) -> None:
        """A new image: its top class, unless one was picked while it was coming."""
        if not (self._awaiting and self._chosen_while_awaiting):
            self._choice = None
        self._chosen_while_awaiting = False

    def _image_kept(self) -> None:
        """The coming image was refused: back to the class asked for before (unless one was picked meanwhile)."""
        if not self._chosen_while_awaiting:
            self._choice = self._saved_choice
        self._chosen_while_awaiting = False

    @property
    def requested_class(self) -> int | None:
        """The class asked for, or None while the image's top class is shown."""
        return self._choice

    def choose(self, index: int) -> None:
        """Explain class `index` (any class, not only the top 5)."""
        with self._lock:
            self.inspector.check_class(index)
            self._choice = int(index)
            self._chosen_while_awaiting = self._awaiting
            self._select(int(index))
            self.request()

    @guarded
    def _class_clicked(self, value: int | None) -> None:
        """A top-5 button."""
        if value is not None:
            self.choose(int(value))

    @guarded
    def _index_typed(self, value: int) -> None:
        """Any class index."""
        self.choose(int(value))

    @guarded
    def _layer_changed(self) -> None:
        """Another layer: the sanity depth follows it (down to its block) unless the user picked one."""
        if self._depth_auto:
            with self.quietly():
                self.depth.value = default_depth(self.inspector, self.layer.value)
        self.request()

    @guarded
    def _method_changed(self) -> None:
        """The channel count and the progress bar belong to the perturbation methods."""
        perturbs = uses_channels(self.method.value)
        self.channels.disabled = not perturbs
        self.progress_row.layout.display = None if perturbs else "none"
        self.request()

    @guarded
    def _depth_chosen(self) -> None:
        """The user picked how many top layers to randomise: keep it, and check again."""
        self._depth_auto = False
        self.request()

    @guarded
    def _sanity_toggled(self) -> None:
        """Sanity check on: compute (or show) the randomised map; off: hide it."""
        self.depth.disabled = not self.sanity.value
        self.request()

    # ----- with the other tabs ------------------------------------------------------------------------------
    def connect(self, panel: Any) -> None:
        """In a panel: a channel button opens that channel's card, whose class-evidence line reads this map."""
        self.channel_listeners.append(panel.open_channel)
        acts = panel.tab("activations")
        card = getattr(acts, "card", None)
        if card is not None:
            card.evidence = lambda layer, channel: self.evidence(acts.rgb, layer, channel)
            self.drawn.append(card.refresh_evidence)

    def evidence(self, rgb: np.ndarray | None, layer: str, channel: int) -> str:
        """HTML: a channel's weight and contribution in the map shown now, for the image `rgb` (a card's line)."""
        ins = self.inspector
        head = "<b>Class evidence:</b> "
        if not ins.has_classes:
            return head + "this model has no class output, so no channel has a weight for a class."
        cam_layer = self.layer.value
        if ins.layer(layer).name != cam_layer:
            return (head + f"the Grad-CAM tab explains layer <code>{html.escape(cam_layer)}</code>; choose that "
                    "layer here (or a channel button under its map) to see a channel's weight for the class.")
        cam, shares = self.current_cam(), self.current_contributions()
        same = self.rgb is not None and rgb is not None and np.array_equal(self.rgb, rgb)
        if cam is None or shares is None or not same:
            return head + ("open the Grad-CAM tab to compute the map of a class; this channel's weight and "
                           "contribution then appear here.")
        k = int(channel)
        weight, share = float(cam.weights[k]), float(shares[k])
        mean = share / weight if weight else float(self.means[cam.layer][k])
        rank = 1 + int(np.sum(shares > shares[k]))
        how = "the spatial mean of the class score's gradient" if cam.method == "gradcam" else "its weight"
        return (f"<b>Class evidence</b> for <b>{html.escape(str(cam.class_name))}</b> (class {cam.class_index}, "
                f"{method_label(cam.method)} at <code>{html.escape(cam.layer)}</code>): weight <b>{weight:+.3g}</b> "
                f"({how}) × mean activation {mean:.3g} = contribution <b>{share:+.3g}</b>, rank {rank} of "
                f"{len(shares)} channels.")

    # ----- pictures (no model work) ----------------------------------------------------------------------
    def current_cam(self) -> CAM | None:
        """The map the controls show now, if computed."""
        return self.cams.get(self.key())

    def current_sanity(self) -> Sanity | None:
        """The sanity check the controls ask for, if it is on and computed."""
        skey = self.sanity_key()
        return None if skey is None else self.sanity_cams.get(skey)

    @guarded
    def _redraw(self) -> None:
        """Opacity or colormap changed: redraw from the cached maps."""
        with self._lock:
            cam = self.current_cam()
            if cam is not None and self.overlay.layout.display is None:
                self._draw(cam)

    def arrays(self, cam: CAM) -> tuple[np.ndarray, np.ndarray]:
        """The overlay (enlarged) and the raw heatmap at its own resolution, upscaled to the same size."""
        alpha, cmap = float(control_value(self.opacity, ALPHA)), self.cmap.value
        blended = enlarge_figure(overlay(self.display, cam.heatmap, alpha=alpha, cmap=cmap))
        return blended, heatmap_picture(cam.heatmap, self.cmap.value, blended.shape)

    def _draw(self, cam: CAM) -> None:
        """Show the overlay, the heatmap, the class score, the pointing game and the sanity check."""
        blended, raw = self.arrays(cam)
        show_picture(self.overlay, blended)
        show_picture(self.heatmap, raw)
        h, w = cam.heatmap.shape
        self.overlay_caption.value = "<small>Overlay on the image</small>"
        self.heatmap_caption.value = f"<small>Heatmap ({h}×{w} grid)</small>"
        empty = ("<br><i>No positive evidence for this class at this layer: the map is empty.</i>"
                 if not cam.heatmap.any() else "")
        probability = (f", probability <b>{(cam.probability or 0.0):.1%}</b>" if self.label == "probability"
                       else " (a linear head: scores, not probabilities)")
        channels = self.channel_count(cam.layer) if uses_channels(cam.method) else None
        used = f" from the {channels} channels of largest variance" if channels else ""
        self.score.value = (
            f"{method_label(cam.method)} of <b>{html.escape(str(cam.class_name))}</b> (class {cam.class_index}) at "
            f"<code>{html.escape(cam.layer)}</code> ({h}×{w}){used}: class score (logit) <b>{cam.score:.4g}</b>"
            f"{probability}.{empty}"
        )
        self.pointing.value = pointing_html(self.scene, cam, self.inspector.class_names)
        self._draw_sanity(cam, raw.shape)
        self._draw_channels(cam)
        for listener in self.drawn:
            listener()

    def current_contributions(self) -> np.ndarray | None:
        """Weight × mean activation of every channel of the map shown now (None before it is computed)."""
        key = self.key()
        cam = self.cams.get(key)
        return None if cam is None else contributions(cam, self.means.get(cam.layer))

    def _draw_channels(self, cam: CAM) -> None:
        """Buttons for the channels that contribute most to the map; a click opens the channel's card."""
        shares = contributions(cam, self.means.get(cam.layer))
        if shares is None:
            self.channels_text.value, self.channel_buttons.children = "", ()
            return
        top = top_contributors(shares, TOP_CHANNELS)
        label = method_label(cam.method)
        self.channels_text.value = (
            f"<b>Channels behind this map</b> at <code>{html.escape(cam.layer)}</code>: {label} weight × mean "
            f"activation (all {len(shares)} sum to the map's mean before ReLU, {float(shares.sum()):.3g}). "
            + ("Click one to see its card in the Activations tab." if top else
               "<i>No channel contributes positively.</i>"))
        buttons = []
        for slot, k in enumerate(top):
            button = self._channel_button(slot)
            self._channel_targets[slot] = (cam.layer, int(k))
            button.description = f"#{k}  {float(shares[k]):+.3g}"
            button.tooltip = (f"channel {k}: weight {float(cam.weights[k]):.3g} × mean activation "
                              f"{float(self.means[cam.layer][k]):.3g}")
            buttons.append(button)
        self.channel_buttons.children = buttons

    def _channel_button(self, slot: int) -> widgets.Button:
        """The channel button of one slot, made on first use and then reused.

        A widget lives in the kernel (and the page) until it is closed: new buttons for every map drawn
        piled up, three widgets each (the button, its layout and its style).
        """
        while len(self._channel_pool) <= slot:
            index = len(self._channel_pool)
            button = widgets.Button(layout=widgets.Layout(width="auto"))
            button.add_class("convviz-cam-channel")
            button.on_click(lambda _, index=index: self._channel_clicked(*self._channel_targets[index]))
            self._channel_pool.append(button)
            self._channel_targets.append(("", 0))
        return self._channel_pool[slot]

    @guarded
    def _channel_clicked(self, layer: str, channel: int) -> None:
        """A channel button: the listeners (the panel) open its card."""
        for listener in self.channel_listeners:
            listener(layer, channel)

    def _draw_sanity(self, cam: CAM, shape: tuple[int, ...]) -> None:
        """The randomised model's heatmap beside the real one, with the correlation; hidden while off."""
        depth = self.sanity_depth()
        if depth is None:
            self.sanity_figure.layout.display = "none"
            self.sanity_text.value = ""
            return
        sanity = self.current_sanity()
        if sanity is None:
            self._sanity_pending(depth, cam.method)
            return
        names = cascade_layers(self.inspector.model, depth)
        self.sanity_text.value = sanity_html(sanity, depth, names, cam.method)
        if isinstance(sanity, BaseException):
            self.sanity_figure.layout.display = "none"
            return
        self.sanity_figure.layout.display = None
        show_picture(self.sanity_heatmap, heatmap_picture(sanity[0].heatmap, self.cmap.value, shape))
        self.sanity_caption.value = f"<small>Randomised top {depth} layers: ρ = {sanity[1].spearman:+.2f}</small>"

    def _sanity_pending(self, depth: int, method: str) -> None:
        """The busy state of the sanity check: a caption and a note where its picture will be."""
        self.sanity_figure.layout.display = None
        self.sanity_heatmap.layout.display = "none"
        self.sanity_caption.value = "<small>Randomised model: computing…</small>"
        self.sanity_text.value = sanity_html(None, depth, [], method)

    def pictures(self) -> dict[str, np.ndarray]:
        """Overlay and heatmap (and the randomised model's heatmap while the check is on) side by side."""
        cam = self.current_cam()
        if cam is None or self.display is None:
            return {}
        parts = list(self.arrays(cam))
        name = f"{cam.layer}-class{cam.class_index}-{cam.method}"
        if self.channel_count(cam.layer):
            name += f"-top{self.channel_count(cam.layer)}"
        sanity = self.current_sanity()
        if isinstance(sanity, tuple):
            parts.append(heatmap_picture(sanity[0].heatmap, self.cmap.value, parts[1].shape))
            name += f"-sanity-top{self.sanity_depth()}"
        return {name: side_by_side(*parts)}
