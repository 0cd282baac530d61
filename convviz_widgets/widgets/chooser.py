"""The panel's header: which image to explain (samples, an upload, your array) and the model's top-5."""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import describe_device
from ..images import load_image
from ..render import at_side
from .base import (
    View,
    display_image,
    guarded,
    head_reading,
    is_scene,
    output_problem,
    picture_widget,
    score_label,
    show_picture,
)
from .text import NO_PREDICTIONS, output_html, predictions_html, preprocess_html

GIVEN = "given"
TOP = 5

Listener = Callable[[np.ndarray, np.ndarray], None]
SampleSource = Any  # .options() -> [(label, key)], .scene(key, seed, size) -> a Scene, .size (its own size)
_DEFAULT_SAMPLES: list[Callable[[], SampleSource | None]] = []


def set_default_samples(finder: Callable[[], SampleSource | None]) -> None:
    """Where the chooser finds samples for a model that brings none (the package sets the demo's scenes)."""
    _DEFAULT_SAMPLES[:] = [finder]


def sample_source(model: Any) -> SampleSource | None:
    """The model's own sample scenes (`model.sample_scenes`), else the default ones; None: no samples."""
    own = getattr(model, "sample_scenes", None)
    if own is not None:
        return own
    return _DEFAULT_SAMPLES[0]() if _DEFAULT_SAMPLES else None


@dataclass(frozen=True)
class Chosen:
    """The header's result: the source, the image as the model and a person see it, its top classes, a problem
    of its class output (None when fine) and its demo scene (None for other images)."""

    source: Any
    rgb: np.ndarray
    display: np.ndarray
    predictions: list[tuple[int, str, float]]
    problem: Exception | None
    scene: Any


class ImageChooser(View):
    """Choose the image (demo scenes, an upload, or the array passed in) and see the top-5 predictions."""

    kind = "image"

    def __init__(self, model: Any, image: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.listeners: list[Listener] = []  # told when a new image is shown
        self.coming: list[Callable[[], None]] = []  # told when a new image starts loading
        self.refused: list[Callable[[], None]] = []  # told when that image was refused (the previous one stays)
        self.predictions: list[tuple[int, str, float]] = []
        self.rgb: np.ndarray | None = None
        self.display: np.ndarray | None = None
        self.scene: Any = None  # the demo Scene shown now (labels and object masks); None for other images
        self.seed = 0
        self._sources: dict[str, Any] = {}
        self._shown: tuple[str, Any] | None = None  # the key and source of the image shown now
        self._samples = sample_source(self.inspector.model)
        options = []
        if self._samples is not None:
            options = [(f"Sample: {label}", f"sample:{key}") for label, key in self._samples.options()]
        self.source = widgets.Dropdown(options=options, value=None, description="Image",
                                       layout=widgets.Layout(width="300px"))
        self.shuffle = widgets.Button(description="Another sample", icon="random", disabled=self._samples is None,
                                      tooltip="Draw the sample scene again with the next seed")
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="Upload")
        self.picture = picture_widget("convviz-input")
        self.table = widgets.HTML()
        self.device = widgets.HTML(f"<small>Computing on: <b>{html.escape(describe_device())}</b></small>")
        self.device.add_class("convviz-device")
        self.preprocessing = widgets.HTML(preprocess_html(self.inspector.preprocess_name,
                                                          self.inspector.preprocess_reason),
                                          layout=widgets.Layout(max_width="420px"))
        self.preprocessing.add_class("convviz-preprocess")
        self.on(self.source, self._source_changed)
        self.on(self.upload, self._uploaded)
        self.shuffle.on_click(lambda _: self._next_sample())
        self.picture.layout.margin = "0 16px 0 0"
        controls = widgets.VBox([self.source, widgets.HBox([self.shuffle, self.upload]), self.device,
                                 self.preprocessing, self.status,
                                 self.message],
                                layout=widgets.Layout(min_width="320px", margin="0 16px 0 0"))
        self.children = [widgets.HBox([self.picture, controls, self.table],
                                      layout=widgets.Layout(align_items="flex-start"))]
        if image is not None:
            self.set_image(image)

    @property
    def samples(self) -> bool:
        """True when sample scenes are offered (the model's own, or the demo's)."""
        return self._samples is not None

    @property
    def first_sample(self) -> str | None:
        """The key of the first sample offered ('sample:0' for the demo's), or None without samples."""
        return None if self._samples is None else f"sample:{self._samples.options()[0][1]}"

    # ----- choosing --------------------------------------------------------------------------------------
    def set_image(self, image: Any, label: str = "Your image") -> None:
        """Explain an image passed from code (path, array, PIL image, bytes or a demo Scene)."""
        self._add_source(GIVEN, label, image)

    def choose(self, key: str) -> None:
        """Select a source by key: 'given', 'sample:0'.. or 'sample:pair', 'upload:NAME'."""
        self.source.value = key  # the observer loads it

    def _add_source(self, key: str, label: str, image: Any) -> None:
        """Offer a new source first in the list and select it."""
        self._sources[key] = image
        others = [(text, value) for text, value in self.source.options if value != key]
        with self.quietly():
            self.source.options = [(label, key), *others]
            self.source.value = key
        self.load(key)

    @guarded
    def _source_changed(self) -> None:
        """The user picked another entry."""
        if self.source.value is not None:
            self.load(self.source.value)

    @guarded
    def _uploaded(self) -> None:
        """Read an uploaded file and make it the current image."""
        if not self.upload.value:
            return
        item = self.upload.value[-1]  # kept: the button counts the files in its value ("Upload (1)")
        content, name = bytes(item["content"]), str(item["name"])
        self._add_source(f"upload:{name}", f"Upload: {name}", content)

    @guarded
    def _next_sample(self) -> None:
        """Draw the current sample again with the next seed (or the first sample)."""
        self.seed += 1
        key = self.source.value if str(self.source.value).startswith("sample:") else self.first_sample
        if self.source.value == key:
            self.load(key)
        else:
            self.choose(key)

    def sample_scene(self, key: str) -> Any:
        """A sample Scene (pixels, labels, object masks) at the model's input size (or the samples' own size)."""
        fixed = self.inspector.input_size
        size = fixed[0] if fixed and fixed[0] == fixed[1] and 32 <= fixed[0] <= 512 else self._samples.size
        return self._samples.scene(key.split(":", 1)[1], seed=self.seed, size=size)

    # ----- running the model ----------------------------------------------------------------------------
    def load(self, key: str) -> None:
        """Run the model on a source in the background, then tell the listeners (the tabs)."""
        with self._lock:
            self.status.value = "Running the model on the new image…"
            for listener in self.coming:
                listener()
            self.job.submit(key, lambda: self._work(key), lambda chosen: self._loaded(key, chosen),
                            lambda err: self._failed(key, err))

    @property
    def segmentation(self) -> bool:
        """True for a segmentation model: the header lists its classes by the area predicted for each."""
        return getattr(self.inspector, "output_kind", "") == "segmentation"

    def _work(self, key: str) -> Chosen:
        """Worker thread: decode the source (errors here refuse it), then the top classes and their problems."""
        source = self.sample_scene(key) if key.startswith("sample:") else self._sources[key]
        scene = source if is_scene(source) else None  # a demo Scene brings its labels and masks
        full = load_image(scene.image if scene is not None else source)
        rgb = self.inspector.prepare(full)
        predictions: list[tuple[int, str, float]] = []
        problem: Exception | None = None
        if self.inspector.has_classes:
            try:  # the same forward pass as the activations
                predictions = self.inspector.predict(rgb, top=TOP)
                problem = output_problem(self.inspector, rgb)
            except Exception as err:  # noqa: BLE001 - a model without a usable head still has activations
                problem = err
        elif self.segmentation:
            try:  # its classes by the area it predicts for each
                predictions = self.inspector.predicted_regions(rgb, top=TOP)
            except Exception as err:  # noqa: BLE001 - as above: the activations still show
                problem = err
        if problem is not None:
            predictions = []
        return Chosen(source, rgb, display_image(full), predictions, problem, scene)

    def _loaded(self, key: str, chosen: Chosen) -> None:
        """Show the image and predictions, then hand the image to the tabs (even when predicting failed)."""
        self._shown = (key, chosen.source)
        rgb, shown, predictions = chosen.rgb, chosen.display, chosen.predictions
        self.rgb, self.display, self.predictions, self.scene = rgb, shown, predictions, chosen.scene
        show_picture(self.picture, at_side(shown))  # one size for every image: the top-5 keeps its room
        reading = head_reading(self.inspector)
        if predictions and reading == "regression":  # one linear unit: its value, not two "classes" (-z, z)
            self.table.value = output_html(next(p for i, _, p in predictions if i == 1))
        elif predictions:
            self.table.value = predictions_html(predictions, score_label(self.inspector), regions=self.segmentation,
                                                labels=reading == "labels")
        else:
            self.table.value = "" if self.inspector.has_classes or self.segmentation else NO_PREDICTIONS
        self.status.value = ""
        self.standing = chosen.problem
        self.clear_error()
        for listener in self.listeners:
            listener(rgb, shown)

    def _failed(self, key: str, err: BaseException) -> None:
        """The image was refused: say why, and stay on the previous image (in the list too)."""
        shown_key = self._shown[0] if self._shown is not None else None
        if key == shown_key:
            self._sources[key] = self._shown[1]
        elif not key.startswith("sample:"):
            self._sources.pop(key, None)
            with self.quietly():
                self.source.options = [(text, value) for text, value in self.source.options if value != key]
        with self.quietly():
            self.source.value = shown_key
        self.status.value = ""
        self.show_error(err)
        for listener in self.refused:
            listener()

    def pictures(self) -> dict[str, np.ndarray]:
        """The input image as shown, for saving."""
        return {} if self.display is None else {"input": self.display}
