"""ConvVizPanel: the image header above three tabs — Activations, Filters, Grad-CAM."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from .activations import ActivationsView
from .base import View, as_inspector
from .cam import CamView, method_label
from .chooser import ImageChooser
from .filters import FiltersView
from .runner import Runner

TITLES = ("Activations", "Filters", "Grad-CAM")


class ConvVizPanel(widgets.VBox):
    """See what a convnet has learned: ``ConvVizPanel(model, image, preprocess="caffe")`` as a cell's last line.

    ``model`` is a keras.Model, a .keras/.h5 path or an Inspector; ``image`` is optional (a path, array,
    PIL image or bytes; demo scenes are offered when the demo is installed); ``output`` picks the class
    output of a model with several; ``dataset`` (an array of images, a list of images or paths, a folder or a
    tf.data.Dataset) is searched for each channel's top examples (a model may bring its own as a function in
    ``model.example_images``, as the demo model does). Model work runs in a background thread, one job slot per
    view (the latest request wins); ``background=False`` runs it inline, and ``wait()`` blocks until it is done.
    """

    def __init__(self, model: Any, image: Any = None, *, preprocess: Any = None, class_names: Any = None,
                 output: Any = None, background: bool = True, save_dir: str | Path | None = None,
                 dataset: Any = None) -> None:
        super().__init__()
        self.inspector = as_inspector(model, preprocess, class_names, output)
        self.runner = Runner(background)
        shared = {"runner": self.runner, "save_dir": save_dir}
        if dataset is None:
            dataset = getattr(self.inspector.model, "example_images", None)
        self.chooser = ImageChooser(self.inspector, **shared)
        self.activations = ActivationsView(self.inspector, dataset=dataset, evidence=self._evidence, **shared)
        self.filters = FiltersView(self.inspector, **shared)
        self.cam = CamView(self.inspector, **shared)
        self.cam.drawn.append(self.activations.card.refresh_evidence)
        self.cam.channel_listeners.append(self.open_channel)
        self.tabs = widgets.Tab(children=[self.activations, self.filters, self.cam], titles=TITLES)
        self.tabs.observe(lambda _: self._tab_changed(), names="selected_index")
        self.chooser.listeners.append(self._image_ready)
        self.chooser.coming.append(self._image_coming)
        self.chooser.refused.append(self._image_refused)
        self.children = [self.chooser, self.tabs]
        self.add_class("convviz-panel")
        self._tab_changed()
        if image is not None:
            self.chooser.set_image(image)
        elif self.chooser.samples:
            self.chooser.choose("sample:0")
        else:
            self.chooser.status.value = "Upload an image, or pass one: ConvVizPanel(model, image)."

    @property
    def views(self) -> tuple[View, ...]:
        """The three tabs, in order."""
        return self.activations, self.filters, self.cam

    def __repr__(self) -> str:
        """A one-line text form (shown where widgets cannot render, e.g. a static notebook view)."""
        ins = self.inspector
        return (f"ConvVizPanel(model={ins.model.name!r}, preprocess={ins.preprocess_name!r}, "
                f"{len(ins.layers)} conv/pool layers, {ins.n_classes or 'no'} classes)")

    def set_image(self, image: Any) -> None:
        """Explain another image (path, array, PIL image or bytes)."""
        self.chooser.set_image(image)

    def select(self, title: str) -> View:
        """Show the tab with this title ('Activations', 'Filters' or 'Grad-CAM') and return its view."""
        self.tabs.selected_index = TITLES.index(title)
        return self.views[self.tabs.selected_index]

    def open_channel(self, layer: str, channel: int) -> None:
        """Show a channel's card: the Activations tab, that layer and that channel."""
        self.select("Activations")
        self.activations.open_channel(layer, channel)

    def _evidence(self, layer: str, channel: int) -> str:
        """The card's class-evidence line: the channel's weight and contribution in the Grad-CAM tab's map."""
        ins, cam_view = self.inspector, self.cam
        head = "<b>Class evidence:</b> "
        if not ins.has_classes:
            return head + "this model has no class output, so no channel has a weight for a class."
        cam_layer = cam_view.layer.value
        if ins.layer(layer).name != cam_layer:
            return (head + f"the Grad-CAM tab explains layer <code>{html.escape(cam_layer)}</code>; choose that "
                    "layer here (or a channel button under its map) to see a channel's weight for the class.")
        cam, shares = cam_view.current_cam(), cam_view.current_contributions()
        same = (cam_view.rgb is not None and self.activations.rgb is not None
                and np.array_equal(cam_view.rgb, self.activations.rgb))
        if cam is None or shares is None or not same:
            return head + ("open the Grad-CAM tab to compute the map of a class; this channel's weight and "
                           "contribution then appear here.")
        k = int(channel)
        weight, share = float(cam.weights[k]), float(shares[k])
        mean = share / weight if weight else float(cam_view.means[cam.layer][k])
        rank = 1 + int(np.sum(shares > shares[k]))
        how = "the spatial mean of the class score's gradient" if cam.method == "gradcam" else "its weight"
        return (f"<b>Class evidence</b> for <b>{html.escape(str(cam.class_name))}</b> (class {cam.class_index}, "
                f"{method_label(cam.method)} at <code>{html.escape(cam.layer)}</code>): weight <b>{weight:+.3g}</b> "
                f"({how}) × mean activation {mean:.3g} = contribution <b>{share:+.3g}</b>, rank {rank} of "
                f"{len(shares)} channels.")

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until background work is done (for tests and scripts); False on timeout."""
        return self.runner.wait(timeout)

    def _image_ready(self, rgb: np.ndarray, display: np.ndarray) -> None:
        """The header ran the model on a new image: the image tabs follow (hidden ones when shown)."""
        self.activations.set_image(rgb, display)
        self.cam.set_image(rgb, display, scene=self.chooser.scene)  # a demo scene's masks: the pointing game

    def _image_coming(self) -> None:
        """The header is loading a new image: the tabs' requests made meanwhile are for it."""
        self.activations.expect_image()
        self.cam.expect_image()

    def _image_refused(self) -> None:
        """The header refused the new image: the tabs carry on with the previous one."""
        self.activations.image_refused()
        self.cam.image_refused()

    def _tab_changed(self) -> None:
        """Only the visible tab does model work; the others catch up when shown."""
        for index, view in enumerate(self.views):
            view.set_active(index == self.tabs.selected_index)
