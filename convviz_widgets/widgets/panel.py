"""ConvVizPanel: the image header above three tabs — Activations, Filters, Grad-CAM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from .activations import ActivationsView
from .base import View, as_inspector
from .cam import CamView
from .chooser import ImageChooser
from .filters import FiltersView
from .runner import Runner

TITLES = ("Activations", "Filters", "Grad-CAM")


class ConvVizPanel(widgets.VBox):
    """See what a convnet has learned: ``ConvVizPanel(model, image, preprocess="caffe")`` as a cell's last line.

    ``model`` is a keras.Model, a .keras/.h5 path or an Inspector; ``image`` is optional (a path, array,
    PIL image or bytes; demo scenes are offered when the demo is installed); ``output`` picks the class
    output of a model with several. Model work runs in a background thread, one job slot per view (the
    latest request wins); ``background=False`` runs it inline, and ``wait()`` blocks until it is done.
    """

    def __init__(self, model: Any, image: Any = None, *, preprocess: Any = None, class_names: Any = None,
                 output: Any = None, background: bool = True, save_dir: str | Path | None = None) -> None:
        super().__init__()
        self.inspector = as_inspector(model, preprocess, class_names, output)
        self.runner = Runner(background)
        shared = {"runner": self.runner, "save_dir": save_dir}
        self.chooser = ImageChooser(self.inspector, **shared)
        self.activations = ActivationsView(self.inspector, **shared)
        self.filters = FiltersView(self.inspector, **shared)
        self.cam = CamView(self.inspector, **shared)
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
