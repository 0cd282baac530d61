"""The Grad-CAM tab: where the model looks for a class, and whether to believe the picture.

Methods: every registered CAM method (Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM, ... and the user's own).
The sanity check (Adebayo et al. 2018) shows the same map on a copy of the model whose top layers are
re-initialised, beside the real one, with their Spearman rank correlation. On a demo scene, whose object
masks are known, the pointing game says whether the map's maximum falls on the shown class's object.
A multi-label head's entries are labels (each explained by `LabelTarget`); a regression head (one linear unit)
has no classes: the tab explains its output (`OutputTarget`) or what lowers it (`OutputTarget(negate=True)`).
Its request, result and kept maps live in cam_maps.py, its controls and figures in cam_parts.py, its words
in text.py.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import CAM, Cancelled
from ..core.cam import contributions
from ..metrics import Sanity, cascade_layers, class_map, default_depth, sanity_check
from .base import guarded, head_noun, output_problem, score_label
from .cam_maps import MapKey, MapRequest, MapResult, Maps, Predictions
from .cam_parts import SCORECAM_CHANNELS, CamControls, CamFigures, ClassChoice, uses_channels
from .image_view import ImageEvent, ImageView
from .registry import register_view
from .runner import still_wanted
from .services import ClassEvidence
from .text import cam_busy, cam_shown, method_label, no_classes_text, sanity_html

TOP = 5


@register_view("cam", "Grad-CAM", order=30)
class CamView(ImageView):
    """Grad-CAM / Grad-CAM++ / Score-CAM for a chosen class and layer, with a sanity check and the pointing game.

    Its controls (``view.classes``, ``view.layer``, ``view.method``, ...) and figures (``view.overlay``,
    ``view.score``, ...) are attributes of the view, from ``view.controls`` and ``view.figures``.
    """

    kind = "gradcam"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, method: str = "gradcam",
                 opacity: float = 0.4, cmap: str = "jet", sanity: bool = False, depth: int | None = None,
                 channels: int = SCORECAM_CHANNELS, evidence: ClassEvidence | None = None,
                 open_channel: Callable[[str, int], None] | None = None, **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        ins = self.inspector
        self.segmentation = getattr(ins, "output_kind", "") == "segmentation"  # classes over their regions
        self.label = "probability" if self.segmentation else score_label(ins)  # a region's share: a percentage
        self.noun = head_noun(ins)  # "class", "label" (a multi-label head) or "output" (a regression head)
        self.maps = Maps()
        self.choice = ClassChoice()
        self.evidence_service = evidence
        self._depth_auto = depth is None  # the depth follows the layer until the user picks one
        chosen = ins.layer(layer).name if layer else ins.default_cam_layer
        self.controls = c = CamControls(ins, chosen, method, opacity, cmap, sanity, depth, channels)
        self._open_channel = open_channel  # the panel's: a channel button opens that channel's card
        self.figures = f = CamFigures(self._channel_clicked)
        (self.classes, self.class_index, self.class_name, self.layer, self.method, self.channels, self.progress,
         self.cancel_button, self.progress_row, self.sanity, self.depth, self.opacity, self.cmap) = (
            c.classes, c.class_index, c.class_name, c.layer, c.method, c.channels, c.progress, c.cancel_button,
            c.progress_row, c.sanity, c.depth, c.opacity, c.cmap)
        (self.overlay, self.heatmap, self.sanity_heatmap, self.sanity_caption, self.sanity_figure, self.score,
         self.pointing, self.sanity_text, self.channels_text, self.channel_buttons) = (
            f.overlay, f.heatmap, f.sanity_heatmap, f.sanity_caption, f.sanity_figure, f.score, f.pointing,
            f.sanity_text, f.channels_text, f.channel_buttons)
        self.job.progress, self.job.cancel_button, self.job.restart_bar = c.progress, c.cancel_button, False
        self.on(c.classes, self._class_clicked, pass_value=True)
        self.on(c.class_index, self._index_typed, pass_value=True)
        self.on(c.layer, self._layer_changed)
        self.on(c.method, self._method_changed)
        self.on(c.channels, self.request)
        self.on(c.sanity, self._sanity_toggled)
        self.on(c.depth, self._depth_chosen)
        self.on(c.opacity, self._redraw)
        self.on(c.cmap, self._redraw)
        c.cancel_button.on_click(lambda _: self.cancel())
        self.notice = widgets.HTML()
        self.notice.add_class("convviz-no-classes")
        if evidence is not None:
            evidence.provide(self.evidence)
        if not self.enabled:  # nothing to explain: one line says why and what to do
            self.notice.value = f"<div style='padding:4px 0'>{html.escape(no_classes_text(ins))}</div>"
            self.children = [self.notice]
            return
        self.children = [*c.rows(self.save_button, self.saved), self.status, self.message, *f.rows()]
        self._start_initial()

    @classmethod
    def for_panel(cls, panel: Any) -> CamView:
        """As a tab: it provides the panel's class evidence, and its channel buttons open the panel's cards."""
        services = panel.services
        return cls(panel.inspector, runner=panel.runner, save_dir=panel.save_dir, evidence=services.evidence,
                   open_channel=services.open_channel)

    @property
    def enabled(self) -> bool:
        """A model without a class output (nor a segmentation map) has nothing to explain here."""
        return bool(self.inspector.has_classes) or self.segmentation

    @property
    def predictions(self) -> Predictions:
        """The current image's top classes (index, name, probability or score)."""
        return self.maps.predictions

    # ----- the request ----------------------------------------------------------------------------------
    def channel_count(self, layer: str | None = None) -> int | None:
        """A perturbation method's channel count for the layer (0 = all), or None for the other methods."""
        return self.controls.channel_count(layer or self.layer.value)

    def sanity_depth(self) -> int | None:
        """How many top layers the sanity check randomises, or None while it is off."""
        return self.controls.sanity_depth()

    def wanted(self) -> MapRequest:
        """A snapshot of the request: class choice, layer, method, channels, sanity depth, and the kept part."""
        return self.maps.request(self.choice.choice, self.layer.value, self.method.value, self.channel_count(),
                                 self.sanity_depth())

    def key(self) -> MapKey:
        """The map the current controls show: (class index, layer, method, channels)."""
        return MapKey(int(self.class_index.value), self.layer.value, self.method.value, self.channel_count())

    def busy(self, want: MapRequest) -> str:
        """Busy states (a perturbation method's bar and Cancel, the sanity check's placeholder) and the status."""
        self.job.cancellable = self.controls.method_shown(want.method)
        if want.cam is None or self._pending is not None:  # the map itself is computed, not only its check
            self.progress.value, self.progress.bar_style = 0, "info"
            self.progress.description = method_label(want.method)
        if want.depth is not None:
            self.figures.sanity_pending(want.depth, want.method)
        return self._busy_text(want)

    def _busy_text(self, want: MapRequest) -> str:
        """What the status line says while `want` is computed."""
        used = want.channels if uses_channels(want.method) else None
        return cam_busy(want.method, want.layer, self.inspector.layer(want.layer).channels, used,
                        want.depth is not None)

    @property
    def busy_text(self) -> str:
        """What the status line says while the current controls' work runs."""
        return self._busy_text(self.wanted())

    # ----- model work -------------------------------------------------------------------------------
    def show(self, want: MapRequest) -> bool:
        """Draw a request from the kept maps, if they hold it (and its sanity check, if on)."""
        if not self.maps.holds(want):
            return False
        key = want.key()
        self._select(key.class_index)
        self._draw(self.maps.cams[key])
        return True

    def compute(self, rgb: np.ndarray, want: MapRequest, fresh: bool) -> MapResult:
        """The top classes (for a new image), the map the request asks for, and its sanity check if on."""
        predictions = want.predictions
        if fresh or not predictions:
            predictions = tuple(self.inspector.predicted_regions(rgb, top=TOP) if self.segmentation
                                else self.inspector.predict(rgb, top=TOP))
            if self.noun == "output":  # the output (entry 1 of (-z, z)) is explained first, whatever its sign
                predictions = tuple(p for p in predictions if p[0] == 1)
            problem = output_problem(self.inspector, rgb)
            if problem is not None:
                raise problem
        key = want.key(predictions)
        cam = None if fresh else want.cam
        if cam is None:
            cam = class_map(self.inspector, rgb, *key, self.job.report)
        sanity = None
        if want.depth is not None:
            sanity = sanity_check(self.inspector, rgb, cam, want.depth, key.channels, still_wanted)
        means = None if fresh else want.means
        if means is None:
            means = self.inspector.activations(rgb, layers=[key.layer])[key.layer].mean(axis=(0, 1))
        return MapResult(predictions, key, cam, sanity, means)

    def apply(self, result: MapResult, want: MapRequest, fresh: bool) -> None:
        """Keep the map (and check), new class buttons for new top classes, and draw."""
        if self.maps.keep(result, want.depth, fresh):
            with self.quietly():
                self.controls.set_predictions(list(result.predictions), self.label)
        self._select(result.key.class_index)
        self._draw(result.cam)
        if isinstance(result.sanity, Cancelled):
            self.sanity_figure.layout.display = "none"
            self.sanity_text.value = sanity_html(result.sanity, want.depth, [], want.method)

    def _select(self, index: int) -> None:
        """Show a class in the controls (its button if it is in the top 5, the index box, its name)."""
        with self.quietly():
            self.controls.select(index, list(self.predictions))

    def cancel(self) -> None:
        """Stop the map being computed (the picture shown before stays)."""
        if self.job.cancel():
            self.status.value = "Cancelling…"

    def stopped(self, err: BaseException) -> None:
        """Cancelled: say what the picture shows now."""
        cam = self.figures.cam
        if isinstance(err, Cancelled) and cam is not None and self.figures.shown:
            self.status.value = f"{err} The picture shows {cam_shown(cam, self.noun)}."

    def clear_pictures(self) -> None:
        """Hide the pictures and texts (their request failed)."""
        self.figures.clear()

    # ----- the controls ---------------------------------------------------------------------------------------
    def image_event(self, event: ImageEvent) -> None:
        """A new image shows its top class unless one is picked meanwhile; a refused one brings the old pick back."""
        self.choice.image_event(event, self._awaiting)

    @property
    def requested_class(self) -> int | None:
        """The class asked for, or None while the image's top class is shown."""
        return self.choice.choice

    def choose(self, index: int) -> None:
        """Explain class `index` (any class, not only the top 5)."""
        with self._lock:
            self.inspector.check_class(index)
            self.choice.pick(int(index), self._awaiting)
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
    def _channel_clicked(self, layer: str, channel: int) -> None:
        """A channel button under the map: the panel opens the channel's card."""
        if self._open_channel is not None:
            self._open_channel(layer, channel)

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
        self.controls.method_shown(self.method.value)
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

    # ----- what it offers, and pictures (no model work) -----------------------------------------------------
    def evidence(self, rgb: np.ndarray | None, layer: str, channel: int) -> str:
        """HTML: a channel's weight and contribution in the map shown now, for the image `rgb` (a card's line)."""
        same = self.rgb is not None and rgb is not None and np.array_equal(self.rgb, rgb)
        return self.maps.evidence(self.key(), self.inspector.has_classes, self.inspector.layer(layer).name,
                                  channel, same, self.noun)

    def current_cam(self) -> CAM | None:
        """The map the controls show now, if computed."""
        return self.maps.cams.get(self.key())

    def current_sanity(self) -> Sanity | BaseException | None:
        """The sanity check the controls ask for, if it is on and computed."""
        depth = self.sanity_depth()
        return None if depth is None else self.maps.sanity.get((self.key(), depth))

    @guarded
    def _redraw(self) -> None:
        """Opacity or colormap changed: redraw from the kept maps."""
        with self._lock:
            cam = self.current_cam()
            if cam is not None and self.figures.shown:
                self._draw(cam)

    def _draw(self, cam: CAM) -> None:
        """Show the overlay, the heatmap, the class score, the pointing game, the sanity check and the channels."""
        f, depth, means = self.figures, self.sanity_depth(), self.maps.means.get(cam.layer)
        _, raw = f.draw(cam, self.display, self.controls.alpha(), self.cmap.value)
        channels = self.channel_count(cam.layer) if uses_channels(cam.method) else None
        scene = None if self.segmentation or self.noun == "output" else self.scene  # no class object to point at
        f.describe(cam, self.label, channels, scene, self.inspector.class_names, self.noun)
        f.draw_region(cam, self.display)
        names = cascade_layers(self.inspector.model, depth) if depth is not None else []
        f.draw_sanity(self.current_sanity(), depth, cam.method, names, self.cmap.value, raw.shape)
        f.draw_channels(cam, contributions(cam, means), means)
        if self.evidence_service is not None:
            self.evidence_service.changed()

    def pictures(self) -> dict[str, np.ndarray]:
        """Overlay and heatmap (and the randomised model's heatmap while the check is on) side by side."""
        cam = self.current_cam()
        if cam is None or self.display is None:
            return {}
        return self.figures.saved(cam, self.display, self.controls.alpha(), self.cmap.value,
                                  self.channel_count(cam.layer), self.current_sanity(), self.sanity_depth(),
                                  self.noun)
