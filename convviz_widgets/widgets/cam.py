"""The Grad-CAM tab: where the model looks for a class, and whether to believe the picture.

Methods: every registered CAM method (Grad-CAM, Grad-CAM++, Score-CAM, HiResCAM, ... and the user's own).
The sanity check (Adebayo et al. 2018) shows the same map on a copy of the model whose top layers are
re-initialised, beside the real one, with their Spearman rank correlation. On a demo scene, whose object
masks are known, the pointing game says whether the map's maximum falls on the shown class's object.
Its controls, class choice and figures live in cam_parts.py, its words in text.py.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import ipywidgets as widgets
import numpy as np

from ..core import CAM, Cancelled
from ..core.cam import contributions
from ..metrics import Sanity, cascade_layers, class_map, default_depth, sanity_check
from ..render import heatmap_picture, side_by_side
from .base import guarded, output_problem, score_label
from .cam_parts import SCORECAM_CHANNELS, CamControls, CamFigures, ClassChoice, cam_arrays, uses_channels
from .image_view import ImageEvent, ImageView
from .registry import register_view
from .runner import still_wanted
from .services import ClassEvidence
from .text import (
    EVIDENCE_LATER,
    NO_CLASS_EVIDENCE,
    cam_busy,
    cam_shown,
    evidence_elsewhere,
    evidence_html,
    method_label,
    no_classes_text,
    sanity_html,
)

TOP = 5
Predictions = tuple[tuple[int, str, float], ...]


class MapKey(NamedTuple):
    """Which map: class, layer, method and a perturbation method's channels (0 = all; None for the others)."""

    class_index: int
    layer: str
    method: str
    channels: int | None


@dataclass(frozen=True, eq=False)
class MapRequest:
    """What the controls ask for, read in the caller's thread, with what the caches already hold for it."""

    choice: int | None  # the class picked; None: the image's top class
    layer: str
    method: str
    channels: int | None
    depth: int | None  # the sanity check's depth; None while it is off
    predictions: Predictions  # the current image's top classes (empty before the first map)
    cam: CAM | None = None  # the map, when only its sanity check is missing
    means: np.ndarray | None = None  # the layer's channel means, when known

    def key(self, predictions: Predictions | None = None) -> MapKey | None:
        """The map asked for: its class is the choice, else the top prediction; None while that is unknown."""
        predictions = self.predictions if predictions is None else predictions
        index = self.choice if self.choice is not None else (predictions[0][0] if predictions else None)
        return None if index is None else MapKey(int(index), self.layer, self.method, self.channels)


@dataclass(frozen=True, eq=False)
class MapResult:
    """A request's outcome: the top classes, the map, its sanity check (if on) and the layer's channel means."""

    predictions: Predictions
    key: MapKey
    cam: CAM
    sanity: Sanity | BaseException | None
    means: np.ndarray


@register_view("cam", "Grad-CAM", order=30)
class CamView(ImageView):
    """Grad-CAM / Grad-CAM++ / Score-CAM for a chosen class and layer, with a sanity check and the pointing game."""

    kind = "gradcam"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, method: str = "gradcam",
                 opacity: float = 0.4, cmap: str = "jet", sanity: bool = False, depth: int | None = None,
                 channels: int = SCORECAM_CHANNELS, evidence: ClassEvidence | None = None,
                 open_channel: Callable[[str, int], None] | None = None, **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        ins = self.inspector
        self.label = score_label(ins)
        self.predictions: Predictions = ()
        self.cams: dict[MapKey, CAM] = {}
        self.means: dict[str, np.ndarray] = {}  # per layer: each channel's mean activation on this image
        self.sanity_cams: dict[tuple[MapKey, int], Sanity | BaseException] = {}
        self.choice = ClassChoice()
        self.evidence_service = evidence
        self._depth_auto = depth is None  # the depth follows the layer until the user picks one
        chosen = ins.layer(layer).name if layer else ins.default_cam_layer
        self.controls = c = CamControls(ins, chosen, method, opacity, cmap, sanity, depth, channels)
        self.figures = f = CamFigures(self._open_channel)
        self._opener = open_channel
        # the parts' widgets are the view's too: view.classes, view.overlay, ...
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
        if not ins.has_classes:  # nothing to explain: one line says why and what to do
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
        """A model without a class output has nothing to explain here."""
        return bool(self.inspector.has_classes)

    # ----- what the controls ask for -------------------------------------------------------------------
    def channel_count(self, layer: str | None = None) -> int | None:
        """A perturbation method's channel count for the layer (0 = all), or None for the other methods."""
        return self.controls.channel_count(layer or self.layer.value)

    def sanity_depth(self) -> int | None:
        """How many top layers the sanity check randomises, or None while it is off."""
        return self.controls.sanity_depth()

    def wanted(self) -> MapRequest:
        """A snapshot of the request: class choice, layer, method, channels, sanity depth, and the caches' part."""
        layer = self.layer.value
        want = MapRequest(self.choice.choice, layer, self.method.value, self.channel_count(), self.sanity_depth(),
                          self.predictions)
        key = want.key()
        return MapRequest(want.choice, layer, want.method, want.channels, want.depth, want.predictions,
                          None if key is None else self.cams.get(key), self.means.get(layer))

    def key(self) -> MapKey:
        """The map the current controls show: (class index, layer, method, channels)."""
        return MapKey(int(self.class_index.value), self.layer.value, self.method.value, self.channel_count())

    def busy(self, want: MapRequest) -> str:
        """Busy states (a perturbation method's bar and Cancel, the sanity check's placeholder) and the status."""
        perturbs = self.controls.method_shown(want.method)
        if want.cam is None or self._pending is not None:  # the map itself is computed, not only its check
            self.progress.value, self.progress.bar_style = 0, "info"
            self.progress.description = method_label(want.method)
        self.job.cancellable = perturbs
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
    def cached(self, want: MapRequest) -> bool:
        """True when the map (and the sanity check, if on) of the request are computed for this image."""
        key = want.key()
        return key in self.cams and (want.depth is None or (key, want.depth) in self.sanity_cams)

    def show(self, want: MapRequest) -> None:
        """Draw a request from the caches."""
        key = want.key()
        self._select(key.class_index)
        self._draw(self.cams[key])

    def compute(self, rgb: np.ndarray, want: MapRequest, fresh: bool) -> MapResult:
        """The top classes (for a new image), the map the request asks for, and its sanity check if on."""
        predictions = want.predictions
        if fresh or not predictions:
            predictions = tuple(self.inspector.predict(rgb, top=TOP))
            problem = output_problem(self.inspector, rgb)
            if problem is not None:
                raise problem
        key = want.key(predictions)
        cam = None if fresh else want.cam
        if cam is None:
            cam = class_map(self.inspector, rgb, key.class_index, key.layer, key.method, key.channels,
                            self.job.report)
        sanity = None
        if want.depth is not None:
            sanity = sanity_check(self.inspector, rgb, cam, want.depth, key.channels, still_wanted)
        means = None if fresh else want.means
        if means is None:
            means = self.inspector.activations(rgb, layers=[key.layer])[key.layer].mean(axis=(0, 1))
        return MapResult(predictions, key, cam, sanity, means)

    def apply(self, result: MapResult, want: MapRequest, fresh: bool) -> None:
        """Keep the map (and check), new class buttons for a new image, and draw."""
        key = result.key
        if fresh or result.predictions != self.predictions:
            self.predictions = result.predictions
            self.cams, self.sanity_cams, self.means = {}, {}, {}
            with self.quietly():
                self.controls.set_predictions(list(result.predictions), self.label)
        self.cams[key] = result.cam
        self.means[key.layer] = result.means
        cancelled = isinstance(result.sanity, Cancelled)
        if want.depth is not None and result.sanity is not None and not cancelled:
            self.sanity_cams[(key, want.depth)] = result.sanity  # a cancelled check is asked again next time
        self._select(key.class_index)
        self._draw(result.cam)
        if cancelled:
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
            self.status.value = f"{err} The picture shows {cam_shown(cam)}."

    def clear_pictures(self) -> None:
        """Hide the pictures and texts (their request failed)."""
        self.figures.clear()

    # ----- class, layer, method and sanity controls -------------------------------------------------------
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

    # ----- what it offers the other tabs ---------------------------------------------------------------------
    @guarded
    def _open_channel(self, layer: str, channel: int) -> None:
        """A channel button: the panel opens its card."""
        if self._opener is not None:
            self._opener(layer, channel)

    def evidence(self, rgb: np.ndarray | None, layer: str, channel: int) -> str:
        """HTML: a channel's weight and contribution in the map shown now, for the image `rgb` (a card's line)."""
        if not self.inspector.has_classes:
            return NO_CLASS_EVIDENCE
        if self.inspector.layer(layer).name != self.layer.value:
            return evidence_elsewhere(self.layer.value)
        cam, shares = self.current_cam(), self.current_contributions()
        if cam is None or shares is None or self.rgb is None or rgb is None or not np.array_equal(self.rgb, rgb):
            return EVIDENCE_LATER
        weight = float(cam.weights[int(channel)])
        mean = float(shares[int(channel)]) / weight if weight else float(self.means[cam.layer][int(channel)])
        return evidence_html(cam, channel, shares, mean)

    # ----- pictures (no model work) ----------------------------------------------------------------------
    def current_cam(self) -> CAM | None:
        """The map the controls show now, if computed."""
        return self.cams.get(self.key())

    def current_sanity(self) -> Sanity | BaseException | None:
        """The sanity check the controls ask for, if it is on and computed."""
        depth = self.sanity_depth()
        return None if depth is None else self.sanity_cams.get((self.key(), depth))

    def current_contributions(self) -> np.ndarray | None:
        """Weight × mean activation of every channel of the map shown now (None before it is computed)."""
        cam = self.current_cam()
        return None if cam is None else contributions(cam, self.means.get(cam.layer))

    @guarded
    def _redraw(self) -> None:
        """Opacity or colormap changed: redraw from the cached maps."""
        with self._lock:
            cam = self.current_cam()
            if cam is not None and self.figures.shown:
                self._draw(cam)

    def _draw(self, cam: CAM) -> None:
        """Show the overlay, the heatmap, the class score, the pointing game, the sanity check and the channels."""
        f = self.figures
        _, raw = f.draw(cam, self.display, float(self.opacity.value), self.cmap.value)
        channels = self.channel_count(cam.layer) if uses_channels(cam.method) else None
        f.describe(cam, self.label, channels, self.scene, self.inspector.class_names)
        depth = self.sanity_depth()
        names = cascade_layers(self.inspector.model, depth) if depth is not None else []
        f.draw_sanity(self.current_sanity(), depth, cam.method, names, self.cmap.value, raw.shape)
        f.draw_channels(cam, contributions(cam, self.means.get(cam.layer)), self.means.get(cam.layer))
        if self.evidence_service is not None:
            self.evidence_service.changed()

    def pictures(self) -> dict[str, np.ndarray]:
        """Overlay and heatmap (and the randomised model's heatmap while the check is on) side by side."""
        cam = self.current_cam()
        if cam is None or self.display is None:
            return {}
        parts = list(cam_arrays(cam, self.display, float(self.opacity.value), self.cmap.value))
        name = f"{cam.layer}-class{cam.class_index}-{cam.method}"
        if self.channel_count(cam.layer):
            name += f"-top{self.channel_count(cam.layer)}"
        sanity = self.current_sanity()
        if isinstance(sanity, tuple):
            parts.append(heatmap_picture(sanity[0].heatmap, self.cmap.value, parts[1].shape))
            name += f"-sanity-top{self.sanity_depth()}"
        return {name: side_by_side(*parts)}
