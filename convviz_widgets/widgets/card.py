"""The channel card: one channel seen four ways — its map on the image, the picture that excites it, the dataset
images that excite it most (each maximum marked), and its weight in the class evidence of the Grad-CAM tab.

Model work runs in two job slots of the Activations view: one for the filter pattern (cached per layer and
channel), one for the dataset examples (computed once per layer for every channel in one streaming pass,
with progress and Cancel, then cached).
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, ConvVizError, Inspector, ReceptiveField, TopExamples
from ..core.cache import LRUCache
from ..core.facts import channel_note
from ..render import enlarge, map_pictures, marked_thumbnail, shown_patterns, thumbnail_grid
from ..render.cards import GAP, MAP_SIDE, THUMB
from .base import error_text, picture_widget, show_picture
from .runner import Runner, still_wanted

K = 9  # examples per channel
COLUMNS = 3
PATTERN_SIDE = 128
SMALL = "<div style='line-height:1.35;font-size:smaller'>"  # captions: small type, lines close together
EXAMPLES_SIDE = COLUMNS * THUMB + (COLUMNS - 1) * GAP
PATTERN_CACHE = 64
LAYER_CACHE = 8
HOW_TO = ("No dataset examples: give the panel images to search, e.g. "
          "<code>ConvVizPanel(model, image, dataset=images_or_folder)</code> (an array of images, a list of "
          "images or paths, a folder of image files or a tf.data.Dataset).")

Evidence = Callable[[str, int], str]  # (layer, channel) -> HTML about the channel's class evidence


def pattern_recipe(inspector: Inspector) -> tuple[int, int, float]:
    """The Filters tab's default plain recipe: (size, steps, step size)."""
    from .filters import DEFAULT_STEPS, default_size, default_step_size  # the Filters tab imports this room too

    return default_size(inspector), DEFAULT_STEPS, default_step_size(inspector)


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
                 evidence: Evidence | None = None) -> None:
        super().__init__()
        self.inspector, self.runner = inspector, runner
        self.pattern_slot, self.examples_slot = f"{slot}-pattern", f"{slot}-examples"
        self._dataset_given = dataset
        self._dataset: Any = None
        self._dataset_ready = False
        self.evidence = evidence
        self.layer: str | None = None
        self.channel = 0
        self.patterns: LRUCache[tuple[str, int], tuple[np.ndarray, float]] = LRUCache(PATTERN_CACHE, collect=False)
        self.examples: LRUCache[str, TopExamples] = LRUCache(LAYER_CACHE, collect=False)
        self.example_pictures: LRUCache[tuple[str, int], np.ndarray] = LRUCache(PATTERN_CACHE, collect=False)
        self._pattern_running: tuple[str, int] | None = None
        self._examples_running: str | None = None  # the layer whose examples are being found
        self._picture_running: tuple[str, int] | None = None
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
        self.message = widgets.HTML()
        self.message.add_class("convviz-card-message")
        self.children = [
            self.title,
            widgets.HBox([figure(self.overlay, self.overlay_caption, MAP_SIDE + 8),
                          figure(self.map, self.map_caption, MAP_SIDE + 8),
                          figure(self.pattern, self.pattern_caption, PATTERN_SIDE + 24),
                          figure(self.examples_image, self.examples_caption, EXAMPLES_SIDE)],
                         layout=widgets.Layout(align_items="flex-start", flex_flow="row wrap")),
            widgets.HBox([self.progress, self.cancel_button, self.find_button]),
            self.evidence_text, self.message,
        ]
        self.layout = widgets.Layout(border="1px solid #ddd", padding="4px 8px", margin="8px 0 0 0", display="none")
        self.add_class("convviz-card")
        self.opened = False  # the card appears once a channel is chosen (its model work is not free)

    @property
    def has_dataset(self) -> bool:
        """True when images to search were given (to the panel, or by the model, like the demo's scenes)."""
        return self._dataset_given is not None

    # ----- drawing ------------------------------------------------------------------------------------
    def show_channel(self, layer: str, channel: int, act: np.ndarray, display: np.ndarray, cmap: str) -> None:
        """Draw the card of a channel (under the view's lock): maps now, pattern and examples from caches or jobs."""
        if not self.opened:
            return
        self.layout.display = None
        self.layer, self.channel = layer, int(channel)
        self.message.value = ""
        kind = type(self.inspector.layer(layer).layer).__name__
        note = channel_note(act, int(channel))
        self.title.value = (f"<b>Channel {channel}</b> of <code>{html.escape(layer)}</code> ({kind})"
                            f"{f' — <b>{note}</b>' if note else ''}: its map on "
                            "this image, the picture that excites it, the dataset images that excite it most, "
                            "and its class evidence.")
        blended, raw = map_pictures(act, int(channel), display, cmap, MAP_SIDE)
        show_picture(self.overlay, blended)
        show_picture(self.map, raw)
        ch = act[..., int(channel)]
        self.overlay_caption.value = SMALL + "Map over the image (scaled by its maximum)</div>"
        self.map_caption.value = (SMALL + f"Raw map {ch.shape[0]}×{ch.shape[1]}: max {float(ch.max()):.3g}, "
                                  f"mean {float(ch.mean()):.3g}</div>")
        self.refresh_evidence()
        self._want_pattern()
        self._want_examples()

    def refresh_evidence(self) -> None:
        """Redraw the class-evidence line (the Grad-CAM tab calls this when its map changes)."""
        if self.layer is not None and self.evidence is not None:
            self.evidence_text.value = self.evidence(self.layer, self.channel)

    def _fail(self, err: BaseException) -> None:
        """Show a card job's error in the card."""
        self.message.value = (f'<div class="convviz-error" style="color:#b00020">'
                              f"<b>Error:</b> {html.escape(error_text(err))}</div>")

    # ----- the filter pattern --------------------------------------------------------------------------
    def _want_pattern(self) -> None:
        """Show the cached pattern of the current channel, or compute it (the Filters tab's default recipe)."""
        key = (self.layer, self.channel)
        if key in self.patterns:
            self._draw_pattern(key)
            return
        self.pattern.layout.display = "none"
        self.pattern_caption.value = SMALL + "Filter pattern: computing…</div>"
        if self._pattern_running == key:
            return
        self._pattern_running = key
        layer, channel = key
        size, steps, step = pattern_recipe(self.inspector)

        def work() -> tuple[np.ndarray, float]:
            patterns = self.inspector.filter_patterns(layer, [channel], size=size, steps=steps, seed=0,
                                                      progress=still_wanted, mode="plain", step_size=step)
            return patterns.images[0], float(patterns.final_activation[0])

        self.runner.submit(work, lambda result: self._pattern_done(key, result),
                           lambda err: self._pattern_failed(key, err), slot=self.pattern_slot)

    def _pattern_done(self, key: tuple[str, int], result: tuple[np.ndarray, float]) -> None:
        """Cache a pattern; draw it if its channel is still shown."""
        self._pattern_running = None
        self.patterns[key] = result
        if key == (self.layer, self.channel):
            self._draw_pattern(key)
        else:
            self._want_pattern()

    def _pattern_failed(self, key: tuple[str, int], err: BaseException) -> None:
        """The pattern could not be made: say why in its caption."""
        self._pattern_running = None
        if key == (self.layer, self.channel):
            self.pattern.layout.display = "none"
            self.pattern_caption.value = SMALL + f"Filter pattern: {html.escape(error_text(err))}</div>"

    def _draw_pattern(self, key: tuple[str, int]) -> None:
        """Show a cached pattern with how it was made."""
        image, final = self.patterns[key]
        show_picture(self.pattern, enlarge(shown_patterns(image[None], [final])[0], PATTERN_SIDE, 2 * PATTERN_SIDE))
        size, steps, step = pattern_recipe(self.inspector)
        result = f"mean activation {final:.3g}" if final > 0 else "it never fired: dead, no pattern to show"
        self.pattern_caption.value = (SMALL + f"Filter pattern ({size} px, {steps} steps of the book's "
                                      f"ascent, step {step:g}, seed 0): {result}</div>")

    # ----- the dataset examples -------------------------------------------------------------------------
    def _want_examples(self) -> None:
        """Show the current channel's examples: from the caches, by drawing them, or by searching the dataset."""
        self.find_button.layout.display = "none"
        if not self.has_dataset:
            self.examples_image.layout.display = "none"
            self.examples_caption.value = SMALL + f"{HOW_TO}</div>"
            return
        key = (self.layer, self.channel)
        if key in self.example_pictures:
            self._draw_examples(key)
            return
        self.examples_image.layout.display = "none"
        if self._examples_running == self.layer:
            self.examples_caption.value = SMALL + "Searching the dataset for this layer's examples…</div>"
            return
        if self.layer in self.examples:
            self._submit_examples(find=False)
        else:
            self._submit_examples(find=True)

    def _find_clicked(self) -> None:
        """Search again after a cancel."""
        with self.runner.lock:
            if self.layer is not None and self._examples_running is None:
                self._submit_examples(find=self.layer not in self.examples)

    def _submit_examples(self, find: bool) -> None:
        """Queue the search of the layer (all channels at once) and the current channel's picture."""
        layer, channel = self.layer, self.channel
        if find:
            self._examples_running = layer
            self.progress.value, self.progress.max, self.progress.bar_style = 0, 1, "info"
            self.progress.layout.display = None
            self.cancel_button.layout.display = None
            self.cancel_button.disabled = False
            self.examples_caption.value = SMALL + "Searching the dataset for this layer's examples…</div>"
        else:
            self._picture_running = (layer, channel)
            self.examples_caption.value = SMALL + "Drawing the examples…</div>"
        top = self.examples.get(layer)

        def work() -> tuple[TopExamples, np.ndarray]:
            source = self._source()
            found = top
            if found is None:
                found = self.inspector.top_examples(layer, source, k=K, progress=self._progress)
            return found, examples_picture(found, found.channels.index(channel), source)

        self.runner.submit(work, lambda result: self._examples_done(layer, channel, *result),
                           lambda err: self._examples_failed(layer, err), slot=self.examples_slot)

    def _source(self) -> Any:
        """The dataset, made once (worker thread): the model's factory is called the first time."""
        if not self._dataset_ready:
            self._dataset = resolve_dataset(self._dataset_given)
            self._dataset_ready = True
        return self._dataset

    def _progress(self, done: int, total: int | None) -> bool:
        """top_examples' progress (worker thread): move the bar; False stops it when cancelled or replaced."""
        if not still_wanted():
            return False
        self.progress.max = max(1, int(total or done))
        self.progress.value = int(done)
        return True

    def _examples_done(self, layer: str, channel: int, top: TopExamples, picture: np.ndarray) -> None:
        """Cache the layer's examples and the channel's picture; draw, or go on to the channel shown now."""
        if self._examples_running == layer:
            self._examples_running = None
            self.progress.bar_style = "success"
            self.progress.value = self.progress.max
            self.progress.layout.display = "none"  # the caption says how many images were searched
            self.cancel_button.layout.display = "none"
        self._picture_running = None
        self.examples[layer] = top
        self.example_pictures[(layer, channel)] = picture
        if self.layer is not None:
            self._want_examples()

    def _examples_failed(self, layer: str, err: BaseException) -> None:
        """Cancelled or failed: say so; 'Find examples' searches again."""
        self._picture_running = None
        if self._examples_running == layer:
            self._examples_running = None
        self.cancel_button.layout.display = "none"
        self.progress.bar_style = "warning" if isinstance(err, Cancelled) else "danger"
        if layer == self.layer:
            self.examples_image.layout.display = "none"
            self.examples_caption.value = SMALL + f"Examples: {html.escape(error_text(err))}</div>"
            self.find_button.layout.display = None

    def cancel(self) -> None:
        """Stop searching the dataset (what was found so far is dropped; 'Find examples' starts again)."""
        with self.runner.lock:
            if self._examples_running is not None:
                self.runner.cancel(self.examples_slot)

    @property
    def running(self) -> bool:
        """True while a pattern, a search or an examples picture is queued or running."""
        return any(x is not None for x in (self._pattern_running, self._examples_running, self._picture_running))

    def _draw_examples(self, key: tuple[str, int]) -> None:
        """Show a channel's examples and what the marks mean."""
        show_picture(self.examples_image, enlarge(self.example_pictures[key], EXAMPLES_SIDE, EXAMPLES_SIDE))
        top = self.examples[key[0]]
        values = top.values[top.channels.index(key[1])]
        field_ = top.receptive_field
        size = "" if field_.size is None else f" ({field_.size[0]:g}×{field_.size[1]:g} px)"
        skipped = f", {top.skipped} unreadable skipped" if top.skipped else ""
        never = (" <b>It is never positive in these images.</b>" if float(values.max(initial=0.0)) <= 0 else "")
        self.examples_caption.value = (
            SMALL + f"The {len(values)} of {top.count} dataset images{skipped} that excite it most (maxima "
            f"{float(values[0]):.3g} … {float(values[-1]):.3g}). Box: the receptive field{size} of each maximum; "
            f"+: its cell.{never}</div>")
