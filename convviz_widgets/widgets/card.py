"""The channel card: one channel seen four ways — its map on the image, the picture that excites it, the dataset
images that excite it most (each maximum marked), and its weight in the class evidence of the Grad-CAM tab.

Model work runs in two job slots of the Activations view: one for the filter pattern (cached per layer and
channel), one for the dataset examples (computed once per layer for every channel in one streaming pass,
with progress and Cancel, then cached).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import ConvVizError, Inspector, ReceptiveField, TopExamples
from ..core.atlas_folder import AtlasFolder
from ..core.cache import LRUCache
from ..core.facts import channel_note
from ..render import enlarge, map_pictures, marked_thumbnail, shown_patterns, thumbnail_grid
from ..render.cards import GAP, MAP_SIDE, THUMB
from .base import picture_widget, show_picture
from .recipe import pattern_recipe
from .runner import JobSlot, Runner, still_wanted
from .text import HOW_TO, card_title, error_text, examples_caption, pattern_caption, raw_map_caption, small

K = 9  # examples per channel
COLUMNS = 3
PATTERN_SIDE = 128
EXAMPLES_SIDE = COLUMNS * THUMB + (COLUMNS - 1) * GAP
PATTERN_CACHE = 64
LAYER_CACHE = 8

Evidence = Callable[[str, int], "str | None"]  # (layer, channel) -> HTML about the channel's class evidence


@dataclass(frozen=True)
class Pattern:
    """The card's filter pattern of one channel: the picture and the mean activation it reached."""

    image: np.ndarray
    final: float


@dataclass(frozen=True)
class Examples:
    """The card's examples job result: the layer's top examples (every channel) and one channel's picture."""

    top: TopExamples
    picture: np.ndarray


def resolve_dataset(dataset: Any) -> Any:
    """The images to search: a function is called (once) to make them; a one-shot iterator is refused."""
    if callable(dataset) and not hasattr(dataset, "element_spec"):
        dataset = dataset()
    if dataset is not None and iter_once(dataset):
        raise ConvVizError("The dataset is an iterator, which can be read only once, but the card reads it again for "
                           "the examples' pictures: pass a list, an array, a folder or a tf.data.Dataset.")
    return dataset


def iter_once(source: Any) -> bool:
    """True for an iterator or generator (iter(x) is x)."""
    if isinstance(source, (np.ndarray, str, bytes)) or hasattr(source, "element_spec"):
        return False
    try:
        return iter(source) is source
    except TypeError:
        return False


def figure(picture: widgets.Image, caption: widgets.HTML, width: int) -> widgets.VBox:
    """A picture with a caption under it, at most `width` pixels wide (the caption wraps under the picture)."""
    return widgets.VBox([picture, caption], layout=widgets.Layout(margin="0 12px 0 0", align_items="flex-start",
                                                                  width=f"{width}px"))


def examples_picture(top: TopExamples, row: int, source: Any) -> np.ndarray:
    """Row `row`'s examples as a 3-column grid of whole images, each maximum's field boxed and its cell crossed."""
    whole = ReceptiveField(None, (1.0, 1.0), (0.0, 0.0), exact=False)  # crops() then gives the whole images
    one = replace(top, indices=top.indices[row : row + 1], values=top.values[row : row + 1],
                  positions=top.positions[row : row + 1], channels=(top.channels[row],), receptive_field=whole,
                  _field_at=None)
    images = one.crops(source)[0]
    field_ = top.receptive_field
    thumbs = []
    for image, (r, c) in zip(images, top.positions[row]):
        hw = image.shape[:2]
        centre = (field_.start[0] + int(r) * field_.stride[0], field_.start[1] + int(c) * field_.stride[1])
        thumbs.append(marked_thumbnail(image, field_.box(int(r), int(c), hw), centre))
    return thumbnail_grid(thumbs, COLUMNS)


class ChannelCard(widgets.VBox):
    """Everything about one channel of one layer, drawn when the Activations tab's channel changes."""

    def __init__(self, inspector: Inspector, runner: Runner, slot: str, dataset: Any = None,
                 evidence: Evidence | None = None, atlas: AtlasFolder | None = None) -> None:
        super().__init__()
        self.inspector, self.runner = inspector, runner
        self._dataset_given = dataset
        self._dataset: Any = None
        self._dataset_ready = False
        self.evidence = evidence
        self.atlas = atlas  # an atlas folder's examples come first: no dataset pass for what it holds
        self.atlas_tops: dict[str, TopExamples] = {}
        self.layer: str | None = None
        self.channel = 0
        self.patterns: LRUCache[tuple[str, int], Pattern] = LRUCache(PATTERN_CACHE, collect=False)
        self.examples: LRUCache[str, TopExamples] = LRUCache(LAYER_CACHE, collect=False)
        self.example_pictures: LRUCache[tuple[str, int], np.ndarray] = LRUCache(PATTERN_CACHE, collect=False)
        self.title = widgets.HTML()
        self.title.add_class("convviz-card-title")
        self.overlay = picture_widget("convviz-card-overlay")
        self.map = picture_widget("convviz-card-map")
        self.pattern = picture_widget("convviz-card-pattern")
        self.examples_image = picture_widget("convviz-card-examples")
        self.overlay_caption, self.map_caption, self.pattern_caption, self.examples_caption = (
            widgets.HTML() for _ in range(4))
        self.progress = widgets.IntProgress(0, min=0, max=1, description="Examples",
                                            layout=widgets.Layout(display="none"))
        self.progress.add_class("convviz-card-progress")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop",
                                            layout=widgets.Layout(display="none"),
                                            tooltip="Stop searching the dataset for this layer's examples")
        self.cancel_button.add_class("convviz-card-cancel")
        self.find_button = widgets.Button(description="Find examples", icon="search",
                                          layout=widgets.Layout(display="none"),
                                          tooltip="Search the dataset for the images that excite each channel")
        self.find_button.add_class("convviz-card-find")
        self.cancel_button.on_click(lambda _: self.cancel())
        self.find_button.on_click(lambda _: self._find_clicked())
        self.evidence_text = widgets.HTML()
        self.evidence_text.add_class("convviz-card-evidence")
        self.pattern_job = JobSlot(runner, f"{slot}-pattern")  # key: (layer, channel)
        # key: ("find", layer) while searching the dataset, ("draw", layer, channel) while drawing one channel's
        self.examples_job = JobSlot(runner, f"{slot}-examples", self.progress, self.cancel_button)
        self.children = [
            self.title,
            widgets.HBox([figure(self.overlay, self.overlay_caption, MAP_SIDE + 8),
                          figure(self.map, self.map_caption, MAP_SIDE + 8),
                          figure(self.pattern, self.pattern_caption, PATTERN_SIDE + 24),
                          figure(self.examples_image, self.examples_caption, EXAMPLES_SIDE)],
                         layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap")),
            widgets.HBox([self.progress, self.cancel_button, self.find_button]),
            self.evidence_text,
        ]
        self.layout = widgets.Layout(border="1px solid #ddd", padding="4px 8px", margin="8px 0 0 0", display="none")
        self.add_class("convviz-card")
        self.opened = False  # the card appears once a channel is chosen (its model work is not free)

    @property
    def has_dataset(self) -> bool:
        """True when images to search were given (to the panel, or by the model, like the demo's scenes)."""
        return self._dataset_given is not None

    @property
    def searching(self) -> str | None:
        """The layer whose dataset examples are being searched, or None."""
        key = self.examples_job.key
        return key[1] if isinstance(key, tuple) and key[0] == "find" else None

    @property
    def running(self) -> bool:
        """True while a pattern, a search or an examples picture is queued or running."""
        return self.pattern_job.running or self.examples_job.running

    # ----- drawing ------------------------------------------------------------------------------------
    def show_channel(self, layer: str, channel: int, act: np.ndarray, display: np.ndarray, cmap: str) -> None:
        """Draw the card of a channel (under the view's lock): maps now, pattern and examples from caches or jobs."""
        if not self.opened:
            return
        self.layout.display = None
        self.layer, self.channel = layer, int(channel)
        self.title.value = card_title(self.channel, layer, type(self.inspector.layer(layer).layer).__name__,
                                      channel_note(act, self.channel))
        blended, raw = map_pictures(act, self.channel, display, cmap, MAP_SIDE)
        show_picture(self.overlay, blended)
        show_picture(self.map, raw)
        self.overlay_caption.value = small("Map over the image (scaled by its maximum)")
        self.map_caption.value = raw_map_caption(act[..., self.channel])
        self.refresh_evidence()
        self._want_pattern()
        self._want_examples()

    def refresh_evidence(self) -> None:
        """Redraw the class-evidence line (the panel's class evidence says when its map changes)."""
        if self.layer is not None and self.evidence is not None:
            self.evidence_text.value = self.evidence(self.layer, self.channel) or ""

    # ----- the filter pattern --------------------------------------------------------------------------
    def _want_pattern(self) -> None:
        """Show the cached pattern of the current channel, or compute it (the Filters tab's default recipe)."""
        key = (self.layer, self.channel)
        if key in self.patterns:
            self._draw_pattern(key)
            return
        self.pattern.layout.display = "none"
        self.pattern_caption.value = small("Filter pattern: computing…")
        if self.pattern_job.key == key:
            return
        layer, channel = key
        size, steps, step = pattern_recipe(self.inspector)

        def work() -> Pattern:
            patterns = self.inspector.filter_patterns(layer, [channel], size=size, steps=steps, seed=0,
                                                      progress=still_wanted, mode="plain", step_size=step)
            return Pattern(patterns.images[0], float(patterns.final_activation[0]))

        self.pattern_job.submit(key, work, lambda result: self._pattern_done(key, result),
                                lambda err: self._pattern_failed(key, err))

    def _pattern_done(self, key: tuple[str, int], result: Pattern) -> None:
        """Cache a pattern; draw it if its channel is still shown."""
        self.patterns[key] = result
        if key == (self.layer, self.channel):
            self._draw_pattern(key)
        else:
            self._want_pattern()

    def _pattern_failed(self, key: tuple[str, int], err: BaseException) -> None:
        """The pattern could not be made: say why in its caption."""
        if key == (self.layer, self.channel):
            self.pattern.layout.display = "none"
            self.pattern_caption.value = small(f"Filter pattern: {html.escape(error_text(err))}")

    def _draw_pattern(self, key: tuple[str, int]) -> None:
        """Show a cached pattern with how it was made."""
        pattern = self.patterns[key]
        picture = shown_patterns(pattern.image[None], [pattern.final])[0]  # a dead channel's is shown as such
        show_picture(self.pattern, enlarge(picture, PATTERN_SIDE, 2 * PATTERN_SIDE))
        self.pattern_caption.value = pattern_caption(*pattern_recipe(self.inspector), pattern.final)

    # ----- the dataset examples -------------------------------------------------------------------------
    def _want_examples(self) -> None:
        """Show the current channel's examples: from the caches, by drawing them, or by searching the dataset."""
        self.find_button.layout.display = "none"
        if self._from_atlas():
            return
        if not self.has_dataset:
            self.examples_image.layout.display = "none"
            lacks = "" if self.atlas is None else "The atlas holds no examples of this channel. "
            self.examples_caption.value = small(lacks + HOW_TO)
            return
        key = (self.layer, self.channel)
        if key in self.example_pictures:
            self._draw_examples(key)
            return
        self.examples_image.layout.display = "none"
        if self.searching == self.layer:
            self.examples_caption.value = small("Searching the dataset for this layer's examples…")
            return
        self._submit_examples(find=self.layer not in self.examples)

    def _from_atlas(self) -> bool:
        """Show the current channel's examples from the panel's atlas at once; False when it holds none of them."""
        part = None if self.atlas is None or self.layer is None else self.atlas.layer(self.layer)
        if part is None or self.channel not in part.channels:
            return False
        try:
            top = self.atlas_tops.get(part.layer)
            if top is None:
                top = self.atlas_tops[part.layer] = part.top(self.inspector)
            picture = thumbnail_grid(part.pictures(self.channel), COLUMNS)
        except ConvVizError as err:
            self.examples_image.layout.display = "none"
            self.examples_caption.value = small(f"Examples from the atlas: {html.escape(error_text(err))}")
            return True
        show_picture(self.examples_image, enlarge(picture, EXAMPLES_SIDE, EXAMPLES_SIDE))
        self.examples_caption.value = examples_caption(top, self.channel) + small(" (From the atlas.)")
        return True

    def _find_clicked(self) -> None:
        """Search again after a cancel."""
        with self.runner.lock:
            if self.layer is not None and self.searching is None:
                self._submit_examples(find=self.layer not in self.examples)

    def _submit_examples(self, find: bool) -> None:
        """Queue the search of the layer (all channels at once) and the current channel's picture."""
        layer, channel = self.layer, self.channel
        top = self.examples.get(layer)
        if find:
            self.progress.max = 1
            self.progress.layout.display = self.cancel_button.layout.display = None
            self.examples_caption.value = small("Searching the dataset for this layer's examples…")
        else:
            self.examples_caption.value = small("Drawing the examples…")

        def work() -> Examples:
            source = self._source()
            found = top
            if found is None:
                found = self.inspector.top_examples(layer, source, k=K, progress=self.examples_job.report)
            return Examples(found, examples_picture(found, found.channels.index(channel), source))

        key = ("find", layer) if find else ("draw", layer, channel)
        self.examples_job.submit(key, work, lambda result: self._examples_done(layer, channel, result, find),
                                 lambda err: self._examples_failed(layer, err), cancellable=find)

    def _source(self) -> Any:
        """The dataset, made once (worker thread): the model's factory is called the first time."""
        if not self._dataset_ready:
            self._dataset = resolve_dataset(self._dataset_given)
            self._dataset_ready = True
        return self._dataset

    def _examples_done(self, layer: str, channel: int, result: Examples, searched: bool) -> None:
        """Cache the layer's examples and the channel's picture; draw, or go on to the channel shown now."""
        if searched:
            self.progress.value = self.progress.max
            self.progress.layout.display = "none"  # the caption says how many images were searched
            self.cancel_button.layout.display = "none"
        self.examples[layer] = result.top
        self.example_pictures[(layer, channel)] = result.picture
        if self.layer is not None:
            self._want_examples()

    def _examples_failed(self, layer: str, err: BaseException) -> None:
        """Cancelled or failed: say so; 'Find examples' searches again."""
        self.cancel_button.layout.display = "none"
        if layer == self.layer:
            self.examples_image.layout.display = "none"
            self.examples_caption.value = small(f"Examples: {html.escape(error_text(err))}")
            self.find_button.layout.display = None

    def cancel(self) -> None:
        """Stop searching the dataset (what was found so far is dropped; 'Find examples' starts again)."""
        with self.runner.lock:
            if self.searching is not None:
                self.examples_job.cancel()

    def _draw_examples(self, key: tuple[str, int]) -> None:
        """Show a channel's examples and what the marks mean."""
        show_picture(self.examples_image, enlarge(self.example_pictures[key], EXAMPLES_SIDE, EXAMPLES_SIDE))
        self.examples_caption.value = examples_caption(self.examples[key[0]], key[1])
