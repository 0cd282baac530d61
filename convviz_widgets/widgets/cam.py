"""The Grad-CAM tab: where the model looks for a class, and whether to believe the picture.

Methods: Grad-CAM, Grad-CAM++ and Score-CAM (gradient-free: one masked forward pass per channel, slower).
The sanity check (Adebayo et al. 2018) shows the same map on a copy of the model whose top layers are
re-initialised, beside the real one, with their Spearman rank correlation. On a demo scene, whose object
masks are known, the pointing game says whether the map's maximum falls on the shown class's object.
"""

from __future__ import annotations

import html
import threading
import weakref
from typing import Any

import cv2
import ipywidgets as widgets
import numpy as np

from ..core import CAM, Inspector
from ..metrics import TOLERANCE, SanityStage, cascade_layers, compare_cams, energy, pointing_game, randomized_copy
from ..render import heatmap_image, overlay
from .activations import layer_label
from .base import ImageView, enlarge, error_text, guarded, picture_widget, show_picture

METHODS = (("Grad-CAM", "gradcam"), ("Grad-CAM++", "gradcam++"), ("Score-CAM", "scorecam"))
METHOD_LABELS = {value: label for label, value in METHODS}
CMAPS = ("jet", "turbo", "viridis", "magma", "inferno", "gray")
TOP = 5
SANITY_SEED = 0  # the randomised copies are seeded: the same check gives the same picture
SIMILAR = 0.5  # a rank correlation at least this high after randomisation is a warning sign
MAX_COPIES = 3  # randomised model copies kept per Inspector (each is a full copy of the weights)
HIT, MISS, NOTE = "#1b7f3b", "#b00020", "#666"

Key = tuple[int, str, str]  # class index, layer, method
SanityKey = tuple[int, str, str, int]  # ... and how many top layers are randomised
Sanity = tuple[CAM, SanityStage] | BaseException  # the randomised map and its comparison, or why it failed

_RANDOMISED: weakref.WeakKeyDictionary[Inspector, dict[int, Inspector]] = weakref.WeakKeyDictionary()
_RANDOMISED_LOCK = threading.Lock()


# ----- layers and the randomised copies ------------------------------------------------------------------
def cam_layers(inspector: Any) -> list[str]:
    """Conv layers with a spatial grid, plus the default CAM layer (which may be a BN/activation after one)."""
    default = inspector.default_cam_layer
    return [n.name for n in inspector.graph.nodes
            if n.name == default or (n.kind == "conv" and n.is_spatial and (n.spatial_extent or 2) > 1)]


def default_depth(inspector: Inspector, layer: str) -> int:
    """Top layers with weights to randomise so the CAM layer's block (down to the conv feeding it) is included."""
    top_down = cascade_layers(inspector.model)
    nodes = list(inspector.graph.nodes)
    at = [n.name for n in nodes].index(inspector.layer(layer).name)
    convs = [n.name for n in nodes[: at + 1] if n.kind == "conv"]
    target = convs[-1] if convs else nodes[at].name
    return top_down.index(target) + 1 if target in top_down else len(top_down)


def layer_span(names: list[str]) -> str:
    """Layer names for a sentence, the middle elided when there are many."""
    shown = names if len(names) <= 4 else [names[0], names[1], "…", names[-1]]
    return ", ".join(shown)


def depth_options(inspector: Inspector) -> list[tuple[str, int]]:
    """Dropdown options: how many top layers with weights to randomise, named by the lowest one."""
    top_down = cascade_layers(inspector.model)
    return [(f"top {n}, down to {name}", n) for n, name in enumerate(top_down, start=1)]


def randomised_inspector(inspector: Inspector, depth: int) -> Inspector:
    """An Inspector on a copy of the model with its top `depth` weighted layers re-initialised (made once, cached)."""
    with _RANDOMISED_LOCK:
        copies = _RANDOMISED.setdefault(inspector, {})
        if depth not in copies:
            copies[depth] = randomized_copy(inspector, depth, SANITY_SEED)  # the user's model is never changed
            while len(copies) > MAX_COPIES:
                copies.pop(next(iter(copies)))  # the oldest depth goes first
        return copies[depth]


def sanity_check(inspector: Inspector, rgb: np.ndarray, cam: CAM, depth: int) -> Sanity:
    """The same map on the randomised copy and how alike the two are; an error is returned, not raised."""
    try:
        other = randomised_inspector(inspector, depth).gradcam(rgb, class_index=cam.class_index, layer=cam.layer,
                                                               method=cam.method)
        return other, compare_cams(cam, other, f"top {depth}", rgb.shape[:2])
    except Exception as err:  # noqa: BLE001 - the real map stays useful when the check cannot run
        return err


# ----- texts and pictures (no model work) -----------------------------------------------------------------
def side_by_side(*pictures: np.ndarray, gap: int = 8) -> np.ndarray:
    """RGB pictures of equal height next to each other on white."""
    spacer = np.full((pictures[0].shape[0], gap, 3), 255, np.uint8)
    parts: list[np.ndarray] = []
    for picture in pictures:
        parts += [spacer, picture] if parts else [picture]
    return np.concatenate(parts, axis=1)


def heatmap_picture(cam: CAM, cmap: str, shape: tuple[int, ...]) -> np.ndarray:
    """The raw heatmap at its own resolution, colour-mapped and enlarged (nearest) to (h, w) = shape[:2]."""
    raw = heatmap_image(cam.heatmap, cmap)
    return cv2.resize(raw, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


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
        return (f"<i>Sanity check: computing {METHOD_LABELS[method]} on a copy of the model with the top {depth} "
                "layers re-initialised…</i>")
    if isinstance(sanity, BaseException):
        return f"<b>Sanity check:</b> {coloured('could not run', MISS)}: {html.escape(error_text(sanity))}"
    _, stage = sanity
    verdict = (coloured(f"the map barely changed (ρ ≥ {SIMILAR:g}): it may show the image more than what the "
                        "model learned", MISS) if stage.spearman >= SIMILAR
               else "the map changed: it depends on the learned weights, as an explanation should.")
    blank = " The randomised model's map is blank (no ranking: ρ counts as 0)." if stage.blank else ""
    return (f"<b>Sanity check</b> (Adebayo et al. 2018): the same {METHOD_LABELS[method]} on a copy of the model "
            f"whose top {depth} layers with weights ({html.escape(layer_span(names))}) are re-initialised. "
            f"Rank correlation (Spearman) with the real heatmap: <b>ρ = {stage.spearman:+.2f}</b> "
            f"(SSIM {stage.ssim:.2f}); {verdict}{blank}")


def figure(picture: widgets.Image, caption: widgets.HTML) -> widgets.VBox:
    """A picture with a small caption under it."""
    return widgets.VBox([picture, caption], layout=widgets.Layout(margin="0 8px 0 0", align_items="flex-start"))


class CamView(ImageView):
    """Grad-CAM / Grad-CAM++ / Score-CAM for a chosen class and layer, with a sanity check and the pointing game."""

    kind = "gradcam"

    def __init__(self, model: Any, image: Any = None, *, layer: str | None = None, method: str = "gradcam",
                 opacity: float = 0.4, cmap: str = "jet", sanity: bool = False, depth: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(model, image, **kwargs)
        n = self.inspector.n_classes
        layers = cam_layers(self.inspector)
        chosen = self.inspector.layer(layer).name if layer else self.inspector.default_cam_layer
        self.predictions: list[tuple[int, str, float]] = []
        self.cams: dict[Key, CAM] = {}
        self.sanity_cams: dict[SanityKey, Sanity] = {}
        self._depth_auto = depth is None  # the depth follows the layer until the user picks one
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
                                            style={"button_width": "auto"},
                                            tooltips=["gradients, averaged per channel",
                                                      "positive gradients, weighted per position",
                                                      "no gradients: one masked forward pass per channel (slower)"])
        self.sanity = widgets.ToggleButton(
            sanity, description="Sanity check", icon="random",
            tooltip="Also show the map of a copy of the model whose top layers are re-initialised")
        self.sanity.add_class("convviz-sanity-toggle")
        self.depth = widgets.Dropdown(
            options=depth_options(self.inspector), value=depth or default_depth(self.inspector, chosen),
            description="Randomise", disabled=not sanity, layout=widgets.Layout(width="max-content", min_width="300px"))
        self.opacity = widgets.FloatSlider(opacity, min=0.0, max=1.0, step=0.05, description="Opacity")
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
        self.on(self.classes, self._class_clicked)
        self.on(self.class_index, self._index_typed)
        self.on(self.layer, self._layer_changed)
        self.on(self.method, self.request)
        self.on(self.sanity, self._sanity_toggled)
        self.on(self.depth, self._depth_chosen)
        self.on(self.opacity, self._redraw)
        self.on(self.cmap, self._redraw)
        self.children = [
            self.classes,
            widgets.HBox([self.class_index, self.class_name]),
            self.layer,
            self.method,
            widgets.HBox([self.sanity, self.depth]),
            widgets.HBox([self.opacity, self.cmap, self.save_button, self.saved]),
            self.status, self.message,
            widgets.HBox([figure(self.overlay, self.overlay_caption), figure(self.heatmap, self.heatmap_caption),
                          self.sanity_figure], layout=widgets.Layout(align_items="flex-start")),
            self.score, self.pointing, self.sanity_text,
        ]
        self._start_initial()

    # ----- what the controls ask for -------------------------------------------------------------------
    def key(self) -> Key:
        """What the current controls ask for: (class index, layer, method)."""
        return int(self.class_index.value), self.layer.value, self.method.value

    def sanity_depth(self) -> int | None:
        """How many top layers the sanity check randomises, or None while it is off."""
        return int(self.depth.value) if self.sanity.value else None

    def sanity_key(self) -> SanityKey | None:
        """The current controls' sanity-check key, or None while the check is off."""
        depth = self.sanity_depth()
        return None if depth is None else (*self.key(), depth)

    @property
    def busy_text(self) -> str:
        """What the status line says while the current controls' work runs."""
        method, layer = self.method.value, self.layer.value
        text = f"Computing {METHOD_LABELS[method]}"
        if method == "scorecam":
            channels = self.inspector.layer(layer).channels
            text += f" ({channels} masked forward passes, one per channel of {layer})"
        if self.sanity.value:
            text += " and the randomised model's map"
        return "⏳ " + text + "…"

    # ----- model work -------------------------------------------------------------------------------
    def compute(self, rgb: np.ndarray) -> tuple[list[tuple[int, str, float]], CAM, int | None, Sanity | None]:
        """For a new image: the top classes, the map of the most probable one, and its sanity check if on."""
        predictions = self.inspector.predict(rgb, top=TOP)
        depth = self.sanity_depth()
        cam = self.inspector.gradcam(rgb, class_index=predictions[0][0], layer=self.layer.value,
                                     method=self.method.value)
        return predictions, cam, depth, None if depth is None else sanity_check(self.inspector, rgb, cam, depth)

    def apply(self, result: tuple[list[tuple[int, str, float]], CAM, int | None, Sanity | None]) -> None:
        """New image: new class buttons (top-1 selected), fresh caches, and the pictures."""
        predictions, cam, depth, sanity = result
        self.predictions = predictions
        key = (cam.class_index, cam.layer, cam.method)
        self.cams = {key: cam}
        self.sanity_cams = {} if depth is None or sanity is None else {(*key, depth): sanity}
        with self.quietly():
            self.classes.options = [(f"{name} {p:.1%}", i) for i, name, p in predictions]
            self.classes.tooltips = [f"class {i}: {name}, probability {p:.2%}" for i, name, p in predictions]
            self.classes.value = cam.class_index
            self.class_index.value = cam.class_index
        self.class_name.value = self.inspector.class_names[cam.class_index]
        self._draw(cam)

    @guarded
    def request(self) -> None:
        """Show the map (and sanity check) for the current controls: from the caches, or computed in the runner."""
        if self.rgb is None:
            return
        key, depth = self.key(), self.sanity_depth()
        need_cam = key not in self.cams
        need_sanity = depth is not None and (*key, depth) not in self.sanity_cams
        if not need_cam:
            with self._lock:
                self._draw(self.cams[key])
            self.clear_error()
        if not (need_cam or need_sanity):
            return
        token, rgb, cached = self._token, self.rgb, self.cams.get(key)
        index, layer, method = key
        self.status.value = self.busy_text
        if need_sanity:
            self._sanity_pending(depth, method)

        def work() -> tuple[CAM, Sanity | None]:
            cam = cached or self.inspector.gradcam(rgb, class_index=index, layer=layer, method=method)
            return cam, sanity_check(self.inspector, rgb, cam, depth) if need_sanity else None

        self.runner.submit(work, lambda result: self._computed(token, key, depth, *result),
                           lambda err: self._failed(token, err))

    def _computed(self, token: int, key: Key, depth: int | None, cam: CAM, sanity: Sanity | None) -> None:
        """Cache a finished map (and check); draw them if the controls still ask for them."""
        with self._lock:
            if not self.current(token):
                return
            self.cams[key] = cam
            if depth is not None and sanity is not None:
                self.sanity_cams[(*key, depth)] = sanity
            if key == self.key():
                self._draw(cam)
                self.clear_error()
            if self.ready():
                self.status.value = ""

    def ready(self) -> bool:
        """True when everything the controls ask for is computed."""
        skey = self.sanity_key()
        return self.current_cam() is not None and (skey is None or skey in self.sanity_cams)

    # ----- class, layer and sanity controls -----------------------------------------------------------------
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

    @guarded
    def _layer_changed(self) -> None:
        """Another layer: the sanity depth follows it (down to its block) unless the user picked one."""
        if self._depth_auto:
            with self.quietly():
                self.depth.value = default_depth(self.inspector, self.layer.value)
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
            if cam is not None:
                self._draw(cam)
                self.clear_error()

    def arrays(self, cam: CAM) -> tuple[np.ndarray, np.ndarray]:
        """The overlay (enlarged) and the raw heatmap at its own resolution, upscaled to the same size."""
        blended = enlarge(overlay(self.display, cam.heatmap, alpha=float(self.opacity.value), cmap=self.cmap.value),
                          256, 512)
        return blended, heatmap_picture(cam, self.cmap.value, blended.shape)

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
        self.score.value = (
            f"{METHOD_LABELS[cam.method]} of <b>{html.escape(str(cam.class_name))}</b> (class {cam.class_index}) at "
            f"<code>{html.escape(cam.layer)}</code> ({h}×{w}): class score (logit) <b>{cam.score:.4g}</b>, "
            f"probability <b>{(cam.probability or 0.0):.1%}</b>.{empty}"
        )
        self.pointing.value = pointing_html(self.scene, cam, self.inspector.class_names)
        self._draw_sanity(cam, raw.shape)

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
        show_picture(self.sanity_heatmap, heatmap_picture(sanity[0], self.cmap.value, shape))
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
        sanity = self.current_sanity()
        if isinstance(sanity, tuple):
            parts.append(heatmap_picture(sanity[0], self.cmap.value, parts[1].shape))
            name += f"-sanity-top{self.sanity_depth()}"
        return {name: side_by_side(*parts)}
