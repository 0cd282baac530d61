"""The Grad-CAM tab's parts: its controls, which class it explains across image changes, and its figures."""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import CAM, Inspector
from ..core.cam import top_contributors
from ..core.cams import get_method, method_for, method_names
from ..core.checks import ALPHA, CHANNELS
from ..images import resize_map
from ..metrics import Sanity, cascade_layers, default_depth
from ..render import enlarge_figure, heatmap_picture, overlay, side_by_side
from .base import control_value, head_reading, picture_widget, show_picture
from .image_view import ImageEvent
from .text import (
    channels_html,
    method_label,
    node_label,
    output_words,
    pointing_html,
    sanity_html,
    score_html,
    value_text,
)

CMAPS = ("jet", "turbo", "viridis", "magma", "inferno", "gray")
TOP_CHANNELS = 8  # channel buttons under the map: the largest positive contributions
SCORECAM_CHANNELS = 32  # perturbation methods' default (Score-CAM's measured one): one batch of masked images
# A regression head (one linear unit, read as (-z, z)): entry 1 is the output, entry 0 its negation
DIRECTIONS = [("what raises the output", 1), ("what lowers it", 0)]
DIRECTION_TIPS = ["The map of the output itself: where the evidence raises it",
                  "The map of minus the output (the gradients' sign turned): where the evidence lowers it"]


def uses_channels(name: str) -> bool:
    """True for a perturbation method (Score-CAM, Ablation-CAM, the user's own): channel count, progress, Cancel."""
    return bool(get_method(name).uses_channels)


def depth_options(inspector: Inspector) -> list[tuple[str, int]]:
    """Dropdown options: how many top layers with weights to randomise, named by the lowest one."""
    top_down = cascade_layers(inspector.model)
    return [(f"top {n}, down to {name}", n) for n, name in enumerate(top_down, start=1)]


def figure(picture: widgets.Image, caption: widgets.HTML) -> widgets.VBox:
    """A picture with a small caption under it."""
    return widgets.VBox([picture, caption], layout=widgets.Layout(margin="0 8px 0 0", align_items="flex-start"))


def cam_arrays(cam: CAM, display: np.ndarray, opacity: float, cmap: str) -> tuple[np.ndarray, np.ndarray]:
    """The overlay (enlarged) and the raw heatmap at its own resolution, upscaled to the same size."""
    blended = enlarge_figure(overlay(display, cam.heatmap, alpha=opacity, cmap=cmap))
    return blended, heatmap_picture(cam.heatmap, cmap, blended.shape)


class ClassChoice:
    """Which class the tab explains: the one the user picked, else the image's top class (None).

    A pick made while a new image loads is kept for that image; a refused image brings the previous pick back.
    """

    def __init__(self) -> None:
        self.choice: int | None = None
        self._saved: int | None = None  # the pick to go back to when a coming image is refused
        self._while_awaiting = False  # the pick was made while a new image was loading

    def pick(self, index: int, awaiting: bool) -> None:
        """The user picked class `index` (`awaiting`: while a new image loads)."""
        self.choice, self._while_awaiting = int(index), awaiting

    def image_event(self, event: ImageEvent, awaiting: bool) -> None:
        """Follow the image: a coming one starts from its top class; a refused one brings the old pick back."""
        if event == "coming":
            self._saved, self.choice = self.choice, None
        elif event == "arrives":
            if not (awaiting and self._while_awaiting):
                self.choice = None
        elif not self._while_awaiting:  # kept: the coming image was refused
            self.choice = self._saved
        self._while_awaiting = False


class CamControls:
    """The tab's controls: class, layer, method (and a perturbation method's channels, progress and Cancel),
    the sanity check's switch and depth, opacity and colormap.

    A multi-label head's entries are labels; a regression head has no classes: the choice is whether to explain
    what raises its output or what lowers it.
    """

    def __init__(self, ins: Inspector, layer: str, method: str, opacity: float, cmap: str, sanity: bool,
                 depth: int | None, channels: int) -> None:
        self.inspector = ins
        self.reading = head_reading(ins)
        self.classes = widgets.ToggleButtons(options=[], description="Class", style={"button_width": "auto"},
                                             tooltips=[])
        self.classes.add_class("convviz-classes")
        self.class_index = widgets.BoundedIntText(0, min=0, max=max(0, ins.n_classes - 1), description="or index",
                                                  layout=widgets.Layout(width="160px"))
        self.class_name = widgets.Label()
        if self.reading == "labels":
            self.classes.description, self.class_index.description = "Label", "or label"
        if self.reading == "regression":  # no classes: the output, or its negation
            self.classes.description = "Explain"
            self.classes.options, self.classes.tooltips = DIRECTIONS, DIRECTION_TIPS
            self.class_index.layout.display = self.class_name.layout.display = "none"
        self.layer = widgets.Dropdown(
            options=[(node_label(ins.layer(name)), name) for name in ins.cam_layers], value=layer,
            description="Layer", layout=widgets.Layout(width="max-content", min_width="320px"))
        method = method_for(method, ins).name  # one that does not apply to this model is refused with the reason
        names = method_names(ins)  # read at build time (methods registered since import get a button too), and
        # only those that apply to this model (attention rollout needs attention layers)
        self.method = widgets.ToggleButtons(options=[(method_label(m), m) for m in names], value=method,
                                            description="Method", style={"button_width": "auto"},
                                            tooltips=[get_method(m).tooltip for m in names])
        self.method.add_class("convviz-cam-method")
        self.channels = widgets.BoundedIntText(
            CHANNELS.check(channels, "channels"), min=CHANNELS.low, max=CHANNELS.high, description="Channels",
            disabled=not uses_channels(method),
            tooltip="Score-CAM, Ablation-CAM: use the N channels of largest activation variance (0 = all channels; "
                    "more is slower: one masked forward pass each)", layout=widgets.Layout(width="170px"))
        self.channels.add_class("convviz-scorecam-channels")
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
            options=options, value=(depth or default_depth(ins, layer)) if options else None,
            description="Randomise", disabled=not sanity, layout=widgets.Layout(width="max-content", min_width="300px"))
        if not options:  # the check compares class maps: a model without a class output (segmentation) has none
            self.sanity.value, self.sanity.disabled = False, True
            self.sanity.tooltip = "The randomisation check needs a class output (a classifier's head)"
            self.depth.layout.display = "none"
        self.opacity = widgets.FloatSlider(ALPHA.check(opacity, "opacity"), min=ALPHA.low, max=ALPHA.high, step=0.05,
                                           description="Opacity")
        self.cmap = widgets.Dropdown(options=CMAPS, value=cmap, description="Colormap",
                                     layout=widgets.Layout(width="220px"))

    def rows(self, *after_colours: widgets.Widget) -> list[widgets.Widget]:
        """The controls in rows, with `after_colours` (the save button) beside opacity and colormap."""
        return [self.classes, widgets.HBox([self.class_index, self.class_name]), self.layer,
                widgets.HBox([self.method, self.channels]), self.progress_row, widgets.HBox([self.sanity, self.depth]),
                widgets.HBox([self.opacity, self.cmap, *after_colours])]

    def channel_count(self, layer: str) -> int | None:
        """A perturbation method's channel count for the layer (0 = all), or None for the other methods."""
        if not uses_channels(self.method.value):
            return None
        total = self.inspector.layer(layer).channels
        n = int(control_value(self.channels, CHANNELS))
        return 0 if n <= 0 or n >= total else n

    def alpha(self) -> float:
        """The overlay's opacity, within its bound (a ConvVizError in words otherwise)."""
        return float(control_value(self.opacity, ALPHA))

    def sanity_depth(self) -> int | None:
        """How many top layers the sanity check randomises, or None while it is off."""
        return int(self.depth.value) if self.sanity.value and self.depth.value is not None else None

    def method_shown(self, method: str) -> bool:
        """Show the channel count and progress row of a perturbation method; True for one."""
        perturbs = uses_channels(method)
        self.channels.disabled = not perturbs
        self.progress_row.layout.display = None if perturbs else "none"
        return perturbs

    def set_predictions(self, predictions: list[tuple[int, str, float]], label: str) -> None:
        """One button per top class (or label), with its probability (or score); a regression head keeps its two."""
        if self.reading == "regression":
            return
        if self.reading == "labels":
            self.classes.options = [(f"{name} {value_text(p, label)}", i) for i, name, p in predictions]
            self.classes.tooltips = [f"label {i}: {name}, probability {value_text(p, label, 2)} (its own sigmoid)"
                                     for i, name, p in predictions]
            return
        self.classes.options = [(f"{name} {value_text(p, label)}", i) for i, name, p in predictions]
        self.classes.tooltips = [f"class {i}: {name}, {label} {value_text(p, label, 2)}" for i, name, p in predictions]

    def select(self, index: int, predictions: list[tuple[int, str, float]]) -> None:
        """Show a class (its button if it is in the top 5, the index box, its name); call it quietly."""
        if self.reading == "regression":
            self.classes.value = self.class_index.value = index
            self.class_name.value = output_words(index)
            return
        self.classes.value = index if index in [i for i, _, _ in predictions] else None
        self.class_index.value = index
        self.class_name.value = str(self.inspector.class_names[index])


def region_picture(display: np.ndarray, region: np.ndarray) -> np.ndarray:
    """The image dimmed outside a region mask (any grid, resized to the image) and tinted inside it."""
    mask = np.clip(resize_map(np.asarray(region, np.float32), display.shape[:2]), 0.0, 1.0)[..., None]
    tint = np.array([255.0, 40.0, 40.0], np.float32)
    rgb = display.astype(np.float32)
    out = rgb * (0.35 + 0.35 * mask) + tint * 0.3 * mask
    return np.clip(out, 0, 255).astype(np.uint8)


class CamFigures:
    """The tab's pictures and lines: overlay, heatmap, the sanity check's map, the class score, the pointing game
    and the buttons of the channels behind the map."""

    def __init__(self, open_channel: Callable[[str, int], None]) -> None:
        self.open_channel = open_channel
        self.cam: CAM | None = None  # the map on screen (None while none is)
        self.overlay = picture_widget("convviz-overlay")
        self.heatmap = picture_widget("convviz-heatmap")
        self.sanity_heatmap = picture_widget("convviz-sanity-heatmap")
        self.overlay_caption, self.heatmap_caption, self.sanity_caption = (widgets.HTML() for _ in range(3))
        self.sanity_figure = figure(self.sanity_heatmap, self.sanity_caption)
        self.sanity_figure.layout.display = "none"
        self.region = picture_widget("convviz-region")  # a segmentation model's predicted region of the class
        self.region_caption = widgets.HTML()
        self.region_figure = figure(self.region, self.region_caption)
        self.region_figure.layout.display = "none"
        self.score = widgets.HTML()
        self.score.add_class("convviz-score")
        self.pointing = widgets.HTML()
        self.pointing.add_class("convviz-pointing")
        self.sanity_text = widgets.HTML()
        self.sanity_text.add_class("convviz-sanity")
        self.channels_text = widgets.HTML()
        self.channels_text.add_class("convviz-cam-channels-text")
        self.channel_buttons = widgets.HBox(layout=widgets.Layout(flex_flow="row wrap"))
        self.channel_buttons.add_class("convviz-cam-channels")
        self._channel_pool: list[widgets.Button] = []  # made once, reused by every map (widgets live until closed)
        self._channel_targets: list[tuple[str, int]] = []  # (layer, channel) of each pooled button

    def rows(self) -> list[widgets.Widget]:
        """The figures side by side, then the lines under them."""
        return [widgets.HBox([figure(self.overlay, self.overlay_caption), figure(self.heatmap, self.heatmap_caption),
                              self.region_figure, self.sanity_figure], layout=widgets.Layout(align_items="flex-start")),
                self.score, self.channels_text, self.channel_buttons, self.pointing, self.sanity_text]

    @property
    def shown(self) -> bool:
        """True while a map is on screen."""
        return self.cam is not None

    def draw(self, cam: CAM, display: np.ndarray, opacity: float, cmap: str) -> tuple[np.ndarray, np.ndarray]:
        """Show the overlay and the heatmap (returned too, for saving)."""
        blended, raw = cam_arrays(cam, display, opacity, cmap)
        self.cam = cam
        show_picture(self.overlay, blended)
        show_picture(self.heatmap, raw)
        h, w = cam.heatmap.shape
        self.overlay_caption.value = "<small>Overlay on the image</small>"
        self.heatmap_caption.value = f"<small>Heatmap ({h}×{w} grid)</small>"
        return blended, raw

    def draw_region(self, cam: CAM, display: np.ndarray | None) -> None:
        """A region target's mask (the pixels the model predicts as the class) over the image, else nothing."""
        if cam.region is None or display is None:
            self.region_figure.layout.display = "none"
            return
        show_picture(self.region, enlarge_figure(region_picture(display, cam.region)))
        share = float(np.mean(cam.region > 0.5))
        self.region_caption.value = (f"<small>Explained region: {html.escape(cam.target)} "
                                     f"({share:.0%} of the pixels)</small>")
        self.region_figure.layout.display = None

    def describe(self, cam: CAM, label: str, channels: int | None, scene: Any, class_names: list[str],
                 noun: str = "class") -> None:
        """The score line (of a class, a label or the output: `noun`) and the pointing game."""
        self.score.value = score_html(cam, label, channels, noun)
        self.pointing.value = pointing_html(scene, cam, class_names)

    @staticmethod
    def saved(cam: CAM, display: np.ndarray, opacity: float, cmap: str, channels: int | None,
              sanity: Any, depth: int | None, noun: str = "class") -> dict[str, np.ndarray]:
        """Overlay and heatmap (and the randomised model's heatmap, when checked) side by side, named for saving."""
        parts = list(cam_arrays(cam, display, opacity, cmap))
        what = f"{noun}{cam.class_index}" if noun != "output" else \
            "output" if cam.class_index == 1 else "output-negated"
        name = f"{cam.layer}-{what}-{cam.method}" + (f"-top{channels}" if channels else "")
        if isinstance(sanity, tuple):
            parts.append(heatmap_picture(sanity[0].heatmap, cmap, parts[1].shape))
            name += f"-sanity-top{depth}"
        return {name: side_by_side(*parts)}

    def draw_channels(self, cam: CAM, shares: np.ndarray | None, means: np.ndarray | None) -> None:
        """Buttons for the channels that contribute most to the map; a click opens the channel's card."""
        if shares is None or means is None:
            self.channels_text.value, self.channel_buttons.children = "", ()
            return
        top = top_contributors(shares, TOP_CHANNELS)
        self.channels_text.value = channels_html(cam, shares, bool(top))
        buttons = []
        for slot, k in enumerate(top):
            button = self._channel_button(slot)
            self._channel_targets[slot] = (cam.layer, int(k))
            button.description = f"#{k}  {float(shares[k]):+.3g}"
            button.tooltip = (f"channel {k}: weight {float(cam.weights[k]):.3g} × mean activation "
                              f"{float(means[k]):.3g}")
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
            button.on_click(lambda _, index=index: self.open_channel(*self._channel_targets[index]))
            self._channel_pool.append(button)
            self._channel_targets.append(("", 0))
        return self._channel_pool[slot]

    def draw_sanity(self, sanity: Sanity | BaseException | None, depth: int | None, method: str,
                    names: list[str], cmap: str, shape: tuple[int, ...]) -> None:
        """The randomised model's heatmap beside the real one, with the correlation; hidden while the check is off."""
        if depth is None:
            self.sanity_figure.layout.display = "none"
            self.sanity_text.value = ""
            return
        if sanity is None:
            self.sanity_pending(depth, method)
            return
        self.sanity_text.value = sanity_html(sanity, depth, names, method)
        if isinstance(sanity, BaseException):
            self.sanity_figure.layout.display = "none"
            return
        self.sanity_figure.layout.display = None
        show_picture(self.sanity_heatmap, heatmap_picture(sanity[0].heatmap, cmap, shape))
        self.sanity_caption.value = f"<small>Randomised top {depth} layers: ρ = {sanity[1].spearman:+.2f}</small>"

    def sanity_pending(self, depth: int, method: str) -> None:
        """The busy state of the sanity check: a caption and a note where its picture will be."""
        self.sanity_figure.layout.display = None
        self.sanity_heatmap.layout.display = "none"
        self.sanity_caption.value = "<small>Randomised model: computing…</small>"
        self.sanity_text.value = sanity_html(None, depth, [], method)

    def clear(self) -> None:
        """Hide the pictures and texts (their request failed)."""
        self.cam = None
        for picture in (self.overlay, self.heatmap):
            picture.layout.display = "none"
        self.sanity_figure.layout.display = "none"
        self.region_figure.layout.display = "none"
        for text in (self.overlay_caption, self.heatmap_caption, self.score, self.pointing, self.sanity_text,
                     self.channels_text):
            text.value = ""
        self.channel_buttons.children = ()
