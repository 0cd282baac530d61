"""ConvVizPanel: the image header above one tab per registered view (Activations, Filters, Grad-CAM, ...)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core.atlas_folder import AtlasFolder
from ..errors import ConvVizError
from .base import View, as_inspector
from .chooser import ImageChooser
from .image_view import ImageView
from .registry import view_entries
from .runner import Runner
from .services import PanelServices


class ConvVizPanel(widgets.VBox):
    """See what a convnet has learned: ``ConvVizPanel(model, image, preprocess="caffe")`` as a cell's last line.

    One tab per registered view (``register_view``), each reachable by its key: ``panel.activations``,
    ``panel.filters``, ``panel.cam``.

    ``model`` is a keras.Model, a .keras/.h5 path or an Inspector; ``image`` is optional (a path, array,
    PIL image or bytes; demo scenes are offered when the demo is installed); ``output`` picks the class
    output of a model with several; ``dataset`` (an array of images, a list of images or paths, a folder or a
    tf.data.Dataset) is searched for each channel's top examples (a model may bring its own as a function in
    ``model.example_images``, as the demo model does); ``atlas`` (a folder written by ``cv.atlas`` or ``convviz
    atlas`` for this model) gives the cards the examples it holds at once, with no pass over a dataset. Model work
    runs in a background thread, one job slot per view (the latest request wins); ``background=False`` runs it
    inline, and ``wait()`` blocks until it is done.
    """

    def __init__(self, model: Any, image: Any = None, *, preprocess: Any = None, class_names: Any = None,
                 output: Any = None, background: bool = True, save_dir: str | Path | None = None,
                 dataset: Any = None, atlas: Any = None) -> None:
        super().__init__()
        self.inspector = as_inspector(model, preprocess, class_names, output)
        self.runner = Runner(background)
        self.save_dir = save_dir
        if dataset is None:
            dataset = getattr(self.inspector.model, "example_images", None)
        if atlas is not None:  # a missing, malformed or other model's atlas is refused before any tab is built
            atlas = AtlasFolder(atlas, self.inspector.model)
        self.services = PanelServices(dataset, open_channel=self.open_channel, atlas=atlas)  # what the tabs share
        self.chooser = ImageChooser(self.inspector, runner=self.runner, save_dir=save_dir)
        entries = view_entries()
        self._tabs = {entry.key: entry.view.for_panel(self) for entry in entries}
        self.titles = tuple(entry.title for entry in entries)
        for view in self._tabs.values():
            view.connect(self)
        self.tabs = widgets.Tab(children=list(self._tabs.values()), titles=self.titles)
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
            self.chooser.choose(self.chooser.first_sample)
        else:
            self.chooser.status.value = "Upload an image, or pass one: ConvVizPanel(model, image)."

    def __getattr__(self, name: str) -> Any:
        """A tab's view by its registry key: ``panel.activations``, ``panel.filters``, ``panel.cam``, ..."""
        tabs = self.__dict__.get("_tabs")
        if tabs is not None and name in tabs:
            return tabs[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    @property
    def dataset(self) -> Any:
        """The images the channel cards search (given, or the model's own examples), or None."""
        return self.services.dataset

    def tab(self, key: str) -> View | None:
        """The view registered under `key`, or None when this panel has no such tab."""
        return self._tabs.get(key)

    @property
    def views(self) -> tuple[View, ...]:
        """The tabs' views, in order."""
        return tuple(self._tabs.values())

    @property
    def image_views(self) -> tuple[ImageView, ...]:
        """The tabs that explain the header's image: each gets it, and its coming and refusal, the same way."""
        return tuple(view for view in self._tabs.values() if isinstance(view, ImageView))

    def __repr__(self) -> str:
        """A one-line text form (shown where widgets cannot render, e.g. a static notebook view)."""
        ins = self.inspector
        return (f"ConvVizPanel(model={ins.model.name!r}, preprocess={ins.preprocess_name!r}, "
                f"{len(ins.layers)} conv/pool layers, {ins.n_classes or 'no'} classes)")

    def set_image(self, image: Any) -> None:
        """Explain another image (path, array, PIL image or bytes)."""
        self.chooser.set_image(image)

    def select(self, title: str) -> View:
        """Show the tab with this title (e.g. 'Activations', 'Filters', 'Grad-CAM') and return its view."""
        if title not in self.titles:
            raise ConvVizError(f"No tab is titled {title!r}; the tabs are: {', '.join(self.titles)}.")
        self.tabs.selected_index = self.titles.index(title)
        return self.views[self.tabs.selected_index]

    def open_channel(self, layer: str, channel: int) -> None:
        """Show a channel's card: the tab that opens channels (Activations), that layer and that channel."""
        for title, view in zip(self.titles, self.views):
            if callable(getattr(view, "open_channel", None)):
                self.select(title)
                view.open_channel(layer, channel)
                return

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until background work is done (for tests and scripts); False on timeout."""
        return self.runner.wait(timeout)

    def _image_ready(self, rgb: np.ndarray, display: np.ndarray) -> None:
        """The header ran the model on a new image: every image tab follows (hidden ones when shown)."""
        for view in self.image_views:
            view.set_image(rgb, display, scene=self.chooser.scene)  # a demo scene's masks: the pointing game

    def _image_coming(self) -> None:
        """The header is loading a new image: the tabs' requests made meanwhile are for it."""
        for view in self.image_views:
            view.expect_image()

    def _image_refused(self) -> None:
        """The header refused the new image: the tabs carry on with the previous one."""
        for view in self.image_views:
            view.image_refused()

    def _tab_changed(self) -> None:
        """Only the visible tab does model work; the others catch up when shown."""
        for index, view in enumerate(self.views):
            view.set_active(index == self.tabs.selected_index)
