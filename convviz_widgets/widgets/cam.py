"""The Grad-CAM tab: where the model looks for a class, as an overlay and as the raw heatmap."""

from __future__ import annotations

import html
from typing import Any

import cv2
import ipywidgets as widgets
import numpy as np

from ..core import CAM
from ..render import heatmap_image, overlay
from .activations import layer_label
from .base import ImageView, enlarge, guarded, picture_widget, show_picture

METHODS = (("Grad-CAM", "gradcam"), ("Grad-CAM++", "gradcam++"))
CMAPS = ("jet", "turbo", "viridis", "magma", "inferno", "gray")
TOP = 5

Key = tuple[int, str, str]


def cam_layers(inspector: Any) -> list[str]:
    """Conv layers with a spatial grid, plus the default CAM layer (which may be a BN/activation after one)."""
    default = inspector.default_cam_layer
    return [n.name for n in inspector.graph.nodes
            if n.name == default or (n.kind == "conv" and n.is_spatial and (n.spatial_extent or 2) > 1)]


def side_by_side(left: np.ndarray, right: np.ndarray, gap: int = 8) -> np.ndarray:
    """Two RGB pictures of equal height next to each other on white."""
    spacer = np.full((left.shape[0], gap, 3), 255, np.uint8)
    return np.concatenate([left, spacer, right], axis=1)


class CamView(ImageView):
    """Grad-CAM / Grad-CAM++ for a chosen class and layer, with opacity and colormap controls."""

    kind = "gradcam"
    busy_text = "Computing Grad-CAM…"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, method: str = "gradcam",
                 opacity: float = 0.4, cmap: str = "jet", **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        n = self.inspector.n_classes
        layers = cam_layers(self.inspector)
        chosen = self.inspector.layer(layer).name if layer else self.inspector.default_cam_layer
        self.predictions: list[tuple[int, str, float]] = []
        self.cams: dict[Key, CAM] = {}
        self.classes = widgets.ToggleButtons(options=[], description="Class", style={"button_width": "auto"},
                                             tooltips=[])
        self.classes.add_class("convviz-classes")
        self.class_index = widgets.BoundedIntText(0, min=0, max=n - 1, description="or index",
                                                  layout=widgets.Layout(width="160px"))
        self.class_name = widgets.Label()
        self.layer = widgets.Dropdown(
            options=[(layer_label(self.inspector.layer(name).shape, name), name) for name in layers], value=chosen,
            description="Layer", layout=widgets.Layout(width="max-content", min_width="320px"))
        self.method = widgets.ToggleButtons(options=METHODS, value=method, description="Method",
                                            style={"button_width": "auto"})
        self.opacity = widgets.FloatSlider(opacity, min=0.0, max=1.0, step=0.05, description="Opacity")
        self.cmap = widgets.Dropdown(options=CMAPS, value=cmap, description="Colormap",
                                     layout=widgets.Layout(width="220px"))
        self.overlay = picture_widget("convviz-overlay")
        self.heatmap = picture_widget("convviz-heatmap")
        self.overlay.layout.margin = "0 8px 0 0"
        self.score = widgets.HTML()
        self.score.add_class("convviz-score")
        self.on(self.classes, self._class_clicked)
        self.on(self.class_index, self._index_typed)
        self.on(self.layer, self.request)
        self.on(self.method, self.request)
        self.on(self.opacity, self._redraw)
        self.on(self.cmap, self._redraw)
        self.children = [
            self.classes,
            widgets.HBox([self.class_index, self.class_name]),
            self.layer,
            self.method,
            widgets.HBox([self.opacity, self.cmap, self.save_button, self.saved]),
            self.status, self.message,
            widgets.HBox([self.overlay, self.heatmap], layout=widgets.Layout(align_items="flex-start")),
            self.score,
        ]
        self._start_initial()

    # ----- model work -------------------------------------------------------------------------------
    def key(self) -> Key:
        """What the current controls ask for: (class index, layer, method)."""
        return int(self.class_index.value), self.layer.value, self.method.value

    def compute(self, rgb: np.ndarray) -> tuple[list[tuple[int, str, float]], CAM]:
        """For a new image: the top classes, and the map of the most probable one."""
        predictions = self.inspector.predict(rgb, top=TOP)
        cam = self.inspector.gradcam(rgb, class_index=predictions[0][0], layer=self.layer.value,
                                     method=self.method.value)
        return predictions, cam

    def apply(self, result: tuple[list[tuple[int, str, float]], CAM]) -> None:
        """New image: new class buttons (top-1 selected), a fresh CAM cache, and the picture."""
        predictions, cam = result
        self.predictions = predictions
        self.cams = {(cam.class_index, cam.layer, cam.method): cam}
        with self.quietly():
            self.classes.options = [(f"{name} {p:.1%}", i) for i, name, p in predictions]
            self.classes.tooltips = [f"class {i}: {name}, probability {p:.2%}" for i, name, p in predictions]
            self.classes.value = cam.class_index
            self.class_index.value = cam.class_index
        self.class_name.value = self.inspector.class_names[cam.class_index]
        self._draw(cam)

    @guarded
    def request(self) -> None:
        """Show the map for the current controls: from the cache, or computed through the runner."""
        if self.rgb is None:
            return
        key = self.key()
        if key in self.cams:
            with self._lock:
                self._draw(self.cams[key])
            self.clear_error()
            return
        token, rgb = self._token, self.rgb
        index, layer, method = key
        self.status.value = self.busy_text

        def work() -> CAM:
            return self.inspector.gradcam(rgb, class_index=index, layer=layer, method=method)

        self.runner.submit(work, lambda cam: self._computed(token, key, cam), lambda err: self._failed(token, err))

    def _computed(self, token: int, key: Key, cam: CAM) -> None:
        """Cache a finished map; draw it if the controls still ask for it."""
        with self._lock:
            if not self.current(token):
                return
            self.cams[key] = cam
            if key == self.key():
                self._draw(cam)
                self.status.value = ""
                self.clear_error()

    # ----- class chooser --------------------------------------------------------------------------------
    @guarded
    def _class_clicked(self) -> None:
        """A top-5 button: mirror it in the index box and compute."""
        if self.classes.value is None:
            return
        with self.quietly():
            self.class_index.value = self.classes.value
        self.class_name.value = self.inspector.class_names[self.classes.value]
        self.request()

    @guarded
    def _index_typed(self) -> None:
        """Any class index: select its button if it is in the top 5, then compute."""
        index = int(self.class_index.value)
        with self.quietly():
            self.classes.value = index if index in [i for i, _, _ in self.predictions] else None
        self.class_name.value = self.inspector.class_names[index]
        self.request()

    # ----- pictures (no model work) ----------------------------------------------------------------------
    def current_cam(self) -> CAM | None:
        """The map the controls show now, if computed."""
        return self.cams.get(self.key())

    @guarded
    def _redraw(self) -> None:
        """Opacity or colormap changed: redraw from the cached map."""
        with self._lock:
            cam = self.current_cam()
            if cam is not None:
                self._draw(cam)
                self.clear_error()

    def arrays(self, cam: CAM) -> tuple[np.ndarray, np.ndarray]:
        """The overlay (enlarged) and the raw heatmap at its own resolution, upscaled to the same size."""
        blended = enlarge(overlay(self.display, cam.heatmap, alpha=float(self.opacity.value), cmap=self.cmap.value),
                          256, 512)
        raw = heatmap_image(cam.heatmap, self.cmap.value)
        raw = cv2.resize(raw, (blended.shape[1], blended.shape[0]), interpolation=cv2.INTER_NEAREST)
        return blended, raw

    def _draw(self, cam: CAM) -> None:
        """Show the overlay, the heatmap and the class score."""
        blended, raw = self.arrays(cam)
        show_picture(self.overlay, blended)
        show_picture(self.heatmap, raw)
        label = dict((v, k) for k, v in METHODS)[cam.method]
        h, w = cam.heatmap.shape
        empty = ("<br><i>No positive evidence for this class at this layer: the map is empty.</i>"
                 if not cam.heatmap.any() else "")
        self.score.value = (
            f"{label} of <b>{html.escape(str(cam.class_name))}</b> (class {cam.class_index}) at "
            f"<code>{html.escape(cam.layer)}</code> ({h}×{w}): class score (logit) <b>{cam.score:.4g}</b>, "
            f"probability <b>{(cam.probability or 0.0):.1%}</b>. Left: overlay; right: the raw heatmap.{empty}"
        )

    def pictures(self) -> dict[str, np.ndarray]:
        """Overlay and heatmap side by side, for saving."""
        cam = self.current_cam()
        if cam is None or self.display is None:
            return {}
        return {f"{cam.layer}-class{cam.class_index}-{cam.method}": side_by_side(*self.arrays(cam))}
