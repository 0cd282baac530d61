"""The Activations tab: every channel of a layer's output as a grid, one channel enlarged, layer facts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core.atlas_folder import AtlasFolder
from ..core.checks import PER_ROW
from ..core.facts import channel_note, layer_facts, most_active_channel
from ..render import GRID_WIDTH, activation_picture, channel_image, enlarge_figure
from .base import control_value, guarded, output_problem, picture_widget, show_picture
from .card import ChannelCard
from .image_view import ImageView
from .registry import register_view
from .services import ClassEvidence
from .text import channel_caption, facts_html, grid_caption, head_caption, heads_caption, heads_facts_html, node_label

CMAPS = ("viridis", "magma", "inferno", "plasma", "cividis", "gray", "jet")


def extra_layers(inspector: Any) -> list[str]:
    """The Grad-CAM layer when it is not a conv/pool layer (e.g. the ReLU after the last conv): shown too."""
    if not inspector.has_classes:
        return []
    try:
        cam = inspector.default_cam_layer
    except Exception:  # noqa: BLE001 - a model without a spatial map has no CAM layer to add
        return []
    return [] if cam in inspector.layers else [cam]


@dataclass(frozen=True)
class LayerOutputs:
    """The Activations tab's result: every layer's output for the image, and a problem they show (NaN/inf)."""

    acts: dict[str, np.ndarray] = field(default_factory=dict)
    problem: Exception | None = None
    heads: dict[str, np.ndarray] = field(default_factory=dict)  # attention layers: (h, w, heads) per layer


@register_view("activations", "Activations", order=10)
class ActivationsView(ImageView):
    """Feature maps of one image: a layer's channels in a grid, one channel large, and its statistics."""

    kind = "activations"
    busy_text = "Computing activations (one forward pass)…"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, images_per_row: int = 16,
                 cmap: str = "viridis", grid_width: int = GRID_WIDTH, dataset: Any = None,
                 evidence: ClassEvidence | None = None, atlas: Any = None, **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        self.grid_width = grid_width
        self._acts: dict[str, np.ndarray] = {}
        self._facts: dict[str, dict[str, float]] = {}
        self._heads: dict[str, np.ndarray] = {}
        self.extra_layers = extra_layers(self.inspector)
        self.attention = self.inspector.attention_layers  # their heads can be shown instead of their channels
        names = self.inspector.layers + self.extra_layers
        inner = [n for n in self.attention if n not in names]  # inside a block (KerasHub): heads only
        options = [(node_label(self.inspector.layer(n)), n) for n in names]
        options += [(f"{n}  (attention heads)", n) for n in inner]
        first = layer if layer in inner else self.inspector.layer(layer).name if layer else names[0]
        channels = self.inspector.layer(first).channels if first not in inner else 1
        self.layer = widgets.Dropdown(options=options, value=first, description="Layer",
                                      layout=widgets.Layout(width="max-content", min_width="320px"))
        self.show_what = widgets.ToggleButtons(
            options=[("Channels", "channels"), ("Heads", "heads")], value="heads" if first in inner else "channels",
            description="Show", style={"button_width": "auto"},
            tooltips=["the layer's output channels on the patch grid",
                      "each attention head's weights from the class token (or the mean over tokens) to every patch"])
        self.show_what.add_class("convviz-attention-heads")
        self.show_what.layout.display = None if first in self.attention else "none"
        self.per_row = widgets.IntSlider(PER_ROW.check(images_per_row, "images_per_row"), min=PER_ROW.low,
                                         max=PER_ROW.panel_high, description="Per row", continuous_update=False)
        self.cmap = widgets.Dropdown(options=CMAPS, value=cmap, description="Colormap",
                                     layout=widgets.Layout(width="220px"))
        self.channel = widgets.IntSlider(0, min=0, max=channels - 1, description="Channel")
        self.channel_index = widgets.BoundedIntText(0, min=0, max=channels - 1, description="Index",
                                                    layout=widgets.Layout(width="160px"))
        widgets.link((self.channel, "max"), (self.channel_index, "max"))
        widgets.link((self.channel, "value"), (self.channel_index, "value"))
        self.facts = widgets.HTML()
        self.facts.add_class("convviz-facts")
        self.grid = picture_widget("convviz-grid")
        self.grid_caption = widgets.HTML()
        self.channel_picture = picture_widget("convviz-channel")
        self.channel_caption = widgets.HTML()
        self.card_open = widgets.Button(description="Open its card", icon="id-card",
                                        tooltip="The channel's map on the image, its filter pattern, its dataset "
                                                "examples and its class evidence")
        self.card_open.add_class("convviz-card-open")
        self.card_open.on_click(lambda _: self._channel_changed())
        self.card_hint = widgets.HBox([self.card_open, widgets.HTML(
            "<small>or choose a channel: its map over the image, its filter pattern, the dataset images that "
            "excite it most and its class evidence.</small>")], layout=widgets.Layout(align_items="center"))
        self.card_hint.add_class("convviz-card-hint")
        if atlas is not None and not isinstance(atlas, AtlasFolder):
            atlas = AtlasFolder(atlas, self.inspector.model)  # a folder: refused now if it is another model's
        self.card = ChannelCard(self.inspector, self.runner, self.slot, dataset,
                                None if evidence is None else lambda layer, k: evidence.text(self.rgb, layer, k),
                                atlas)
        if evidence is not None:
            evidence.subscribe(self.card.refresh_evidence)
        self._auto_channel = True  # the slider follows the layer's most active channel until one is chosen
        self.on(self.layer, self._layer_changed)
        self.on(self.show_what, self._layer_changed)
        self.on(self.per_row, self._grid_changed)
        self.on(self.cmap, self._cmap_changed)
        self.on(self.channel, self._channel_changed)
        self.children = [
            widgets.HBox([self.layer, self.cmap]),
            self.show_what,
            self.facts,
            widgets.HBox([self.per_row, self.save_button, self.saved]),
            self.status, self.message,
            self.grid, self.grid_caption,
            widgets.HBox([self.channel, self.channel_index]),
            self.channel_picture, self.channel_caption,
            self.card_hint, self.card,
        ]
        self._start_initial()

    @classmethod
    def for_panel(cls, panel: Any) -> ActivationsView:
        """As a tab: the panel's dataset feeds the channel cards, and its class evidence their last line."""
        services = panel.services
        return cls(panel.inspector, runner=panel.runner, save_dir=panel.save_dir, dataset=services.dataset,
                   evidence=services.evidence, atlas=services.atlas)

    # ----- model work -------------------------------------------------------------------------------
    def show(self, wanted: None) -> bool:
        """Redraw from the kept activations: every layer of the image is kept, so controls need no model work."""
        if not self._acts:
            return False
        self._layer_changed()
        return True

    def compute(self, rgb: np.ndarray, wanted: None, fresh: bool) -> LayerOutputs:
        """One forward pass gives every layer's output (cached by the Inspector), and whether it is finite."""
        acts = self.inspector.activations(rgb)
        if self.extra_layers:
            acts = {**acts, **self.inspector.activations(rgb, layers=self.extra_layers)}
        heads = self.inspector.attention_heads(rgb) if self.attention else {}
        return LayerOutputs(acts, output_problem(self.inspector, rgb, acts), heads)

    def apply(self, result: LayerOutputs, wanted: None, fresh: bool) -> None:
        """Keep the activations of the new image and redraw from them (a NaN/inf output stays in view as an error)."""
        self._acts, self.standing, self._heads = result.acts, result.problem, result.heads
        self._facts = {}
        self._layer_changed()

    def clear_pictures(self) -> None:
        """No activations to show (the image's work failed)."""
        self._acts, self._facts, self._heads = {}, {}, {}
        for picture in (self.grid, self.channel_picture):
            picture.layout.display = "none"
        for text in (self.grid_caption, self.channel_caption, self.facts):
            text.value = ""

    # ----- reading the cache ------------------------------------------------------------------------
    def showing_heads(self) -> bool:
        """Whether the grid shows the selected attention layer's heads rather than its channels."""
        name = self.layer.value
        return name in self.attention and (self.show_what.value == "heads" or self._heads_only(name))

    def _heads_only(self, name: str) -> bool:
        """An attention layer inside a block (KerasHub's ViT encoder): its heads are all there is to show."""
        return name in self.attention and name not in self.inspector.layers + self.extra_layers

    def activation(self) -> np.ndarray | None:
        """The selected layer's output (H, W, C) for the current image (its heads (h, w, heads) when they are shown),
        or None before one is set."""
        if self.showing_heads():
            return self._heads.get(self.layer.value)
        return self._acts.get(self.layer.value)

    def grid_array(self, full: bool = False) -> np.ndarray | None:
        """The channel grid as uint8 RGB: as displayed, or at full resolution."""
        act = self.activation()
        if act is None:
            return None
        return activation_picture(act, control_value(self.per_row, PER_ROW), self.cmap.value, self.grid_width, full)[0]

    def channel_array(self) -> np.ndarray | None:
        """The selected channel, enlarged, as uint8 RGB."""
        act = self.activation()
        if act is None:
            return None
        return enlarge_figure(channel_image(act, min(self.channel.value, act.shape[-1] - 1), self.cmap.value))

    def pictures(self) -> dict[str, np.ndarray]:
        """The full-resolution grid and the enlarged channel, for saving."""
        if self.activation() is None:
            return {}
        name, what = self.layer.value, "head" if self.showing_heads() else "channel"
        name = f"{name}-heads" if what == "head" else name
        return {name: self.grid_array(full=True), f"{name}-{what}{self.channel.value}": self.channel_array()}

    # ----- redraws from the cache (no model work) -----------------------------------------------------
    @guarded
    def _layer_changed(self) -> None:
        """A new layer: adjust the channel range, then redraw everything."""
        with self._lock:
            name = self.layer.value
            with self.quietly():
                self.show_what.layout.display = None if name in self.attention else "none"
                self.show_what.disabled = heads_only = self._heads_only(name)
                if heads_only:
                    self.show_what.value = "heads"
            act = self.activation()
            if act is None:
                return
            with self.quietly():
                self.channel.max = act.shape[-1] - 1
                self.channel.description = "Head" if self.showing_heads() else "Channel"
                if self._auto_channel:
                    self.channel.value = most_active_channel(act)
            self._draw_grid(act)
            self._draw_channel(act)
            self._draw_facts(act)
            self.clear_error()

    @guarded
    def _grid_changed(self) -> None:
        """Images per row changed."""
        with self._lock:
            act = self.activation()
            if act is not None:
                self._draw_grid(act)
                self.clear_error()

    @guarded
    def _cmap_changed(self) -> None:
        """The colormap changed: both pictures use it."""
        with self._lock:
            act = self.activation()
            if act is not None:
                self._draw_grid(act)
                self._draw_channel(act)
                self.clear_error()

    @guarded
    def _channel_changed(self) -> None:
        """Another channel to enlarge (choosing one opens its card)."""
        with self._lock:
            self.card.opened = True
            self._auto_channel = False
            act = self.activation()
            if act is not None:
                self._draw_channel(act)
                self.clear_error()

    def _draw_grid(self, act: np.ndarray) -> None:
        """Render the grid picture and its caption."""
        per_row = min(control_value(self.per_row, PER_ROW), act.shape[-1])
        picture, f = activation_picture(act, per_row, self.cmap.value, self.grid_width)
        show_picture(self.grid, picture)
        if self.showing_heads():
            self.grid_caption.value = heads_caption(act.shape, per_row, f, self.inspector.attention_readout[1])
        else:
            self.grid_caption.value = grid_caption(act.shape, per_row, f)

    def open_channel(self, layer: str, channel: int) -> None:
        """Show a layer's channel and its card (the Grad-CAM tab's channel buttons call this)."""
        with self._lock:
            name = self.inspector.layer(layer).name
            act = self._acts.get(name)
            with self.quietly():
                self.show_what.value = "channels"
                self.channel.max = act.shape[-1] - 1 if act is not None else max(self.channel.max, int(channel))
                self.channel.value = int(channel)
                self.layer.value = name
            self.card.opened = True
            self._auto_channel = False
            self._layer_changed()  # draws everything once, for the new channel

    def _draw_channel(self, act: np.ndarray) -> None:
        """Render the enlarged channel, its statistics and its card."""
        k = min(self.channel.value, act.shape[-1] - 1)
        show_picture(self.channel_picture, self.channel_array())
        if self.showing_heads():  # a head is no channel: no card
            self.channel_caption.value = head_caption(k, act[..., k])
            self.card_hint.layout.display = self.card.layout.display = "none"
            return
        self.channel_caption.value = channel_caption(k, act[..., k], channel_note(act, k))
        self.card_hint.layout.display = "none" if self.card.opened else None
        if self.display is not None:
            self.card.show_channel(self.layer.value, k, act, self.display, self.cmap.value)

    def _draw_facts(self, act: np.ndarray) -> None:
        """Shape, dead channels and sparsity of the selected layer (computed once per image and layer)."""
        name = self.layer.value
        if self.showing_heads():
            self.facts.value = heads_facts_html(name, act.shape, self.inspector.attention_readout[1])
            return
        if name not in self._facts:
            self._facts[name] = layer_facts(act)
        kind = type(self.inspector.layer(name).layer).__name__
        self.facts.value = facts_html(name, kind, act.shape, self._facts[name])
