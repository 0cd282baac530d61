"""The Filters tab: pictures that excite chosen filters, rendered in the background with progress and Cancel.

Two recipes: the book's plain gradient ascent in pixel space (with its step size), and the regularised one
(decorrelated Fourier image, random jitter/scale/rotation, Adam) whose pictures read as textures and parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, FilterPatterns
from ..core.cache import LRUCache
from ..core.checks import FILTERS, STEP_SIZE, STEPS
from ..core.checks import step_size as checked_step_size
from ..render import enlarge, filter_picture
from .base import View, control_value, guarded, picture_widget, show_picture
from .recipe import DEFAULT_STEPS, SIZES, default_size, default_step_size
from .registry import register_view
from .runner import JobSlot
from .text import node_label, patterns_caption, recipe_text

CACHE_SIZE = 32
MODES = (("Plain (book)", "plain"), ("Regularised", "regularized"))


@dataclass(frozen=True)
class PatternRequest:
    """What the Filters tab's settings ask for (its cache key): layer, filters, size, steps, recipe, plain step."""

    layer: str
    filters: tuple[int, ...]
    size: int
    steps: int
    mode: str
    step: float | None  # the plain recipe's step; None for the regularised one


@dataclass(frozen=True)
class RenderedPatterns:
    """The Filters tab's result: the patterns and their labelled grid."""

    patterns: FilterPatterns
    picture: np.ndarray


def default_layer(conv_layers: list[str], layers: list[str]) -> str:
    """A middle conv layer: its patterns are neither plain colours nor noise."""
    return conv_layers[len(conv_layers) // 2] if conv_layers else layers[0]


@register_view("filters", "Filters", order=20)
class FiltersView(View):
    """Filter patterns of one layer: settings, a Render button, a progress bar, Cancel, and a cached grid."""

    kind = "filters"

    def __init__(self, model: Any, *, layer: str | None = None, first: int = 0, count: int = 16,
                 size: int | None = None, steps: int = DEFAULT_STEPS, mode: str = "plain",
                 step_size: float | None = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        names = self.inspector.layers
        chosen = self.inspector.layer(layer).name if layer else default_layer(self.inspector.conv_layers, names)
        channels = self.inspector.layer(chosen).channels
        self.cache: LRUCache[PatternRequest, RenderedPatterns] = LRUCache(CACHE_SIZE, collect=False)
        self._shown: PatternRequest | None = None  # the settings of the grid shown now
        self._shown_picture: np.ndarray | None = None
        self.layer = widgets.Dropdown(
            options=[(node_label(self.inspector.layer(n)), n) for n in names], value=chosen,
            description="Layer", layout=widgets.Layout(width="max-content", min_width="320px"))
        self.first = widgets.BoundedIntText(first, min=0, max=channels - 1, description="First filter",
                                            layout=widgets.Layout(width="180px"))
        self.count = widgets.IntSlider(FILTERS.check(count, "count"), min=FILTERS.low, max=FILTERS.panel_high,
                                       description="Count", continuous_update=False)
        self.size = widgets.Dropdown(options=SIZES, value=size or default_size(self.inspector), description="Size (px)",
                                     layout=widgets.Layout(width="180px"))
        self.steps = widgets.IntSlider(STEPS.check(steps, "steps"), min=STEPS.low, max=STEPS.panel_high,
                                       description="Steps", continuous_update=False)
        self.mode = widgets.ToggleButtons(
            options=MODES, value=mode, description="Recipe", style={"button_width": "auto"},
            tooltips=["the book's gradient ascent in pixel space",
                      "Fourier image, decorrelated colour, random jitter/scale/rotation, Adam"])
        self.mode.add_class("convviz-mode")
        self.default_step = default_step_size(self.inspector)
        self.step_size = widgets.BoundedFloatText(
            STEP_SIZE.check(step_size or self.default_step, "step_size"), min=0.01, max=STEP_SIZE.panel_high, step=0.5,
            description="Step size",
            disabled=mode != "plain", tooltip="plain ascent: pixel levels per step (the gradient is L2-normalised)",
            layout=widgets.Layout(width="180px"))
        self.render_button = widgets.Button(description="Render", button_style="primary", icon="play")
        self.cancel_button = widgets.Button(description="Cancel", button_style="warning", icon="stop", disabled=True)
        self.progress = widgets.IntProgress(0, min=0, max=max(1, steps), description="Progress")
        self.progress.add_class("convviz-progress")
        self.grid = picture_widget("convviz-filter-grid")
        self.job = JobSlot(self.runner, self.slot, self.progress, self.cancel_button)
        self.caption = widgets.HTML()
        self.render_button.on_click(lambda _: self.render())
        self.cancel_button.on_click(lambda _: self.cancel())
        self.on(self.layer, self._layer_changed)
        self.on(self.mode, self._mode_changed)
        for control in (self.first, self.count, self.size, self.steps, self.step_size):
            self.on(control, self._settings_changed)
        self.children = [
            widgets.HBox([self.layer, self.first]),
            widgets.HBox([self.count, self.steps, self.size]),
            widgets.HBox([self.mode, self.step_size]),
            widgets.HBox([self.render_button, self.cancel_button, self.progress, self.status]),
            self.message,
            self.grid, self.caption,
            widgets.HBox([self.save_button, self.saved]),
        ]

    # ----- settings -----------------------------------------------------------------------------------
    def key(self) -> PatternRequest:
        """What the current settings ask for (the cache key)."""
        channels = self.inspector.layer(self.layer.value).channels
        first = min(self.first.value, channels - 1)
        filters = tuple(range(first, min(first + control_value(self.count, FILTERS), channels)))
        mode = self.mode.value
        step = checked_step_size(self.step_size.value, "Step size") if mode == "plain" else None
        steps = int(control_value(self.steps, STEPS))
        return PatternRequest(self.layer.value, filters, int(self.size.value), steps, mode, step)

    @guarded
    def _layer_changed(self) -> None:
        """Bound the first-filter box by the new layer's channels, then look in the cache."""
        with self.quietly():
            self.first.max = self.inspector.layer(self.layer.value).channels - 1
        self._settings_changed()

    @guarded
    def _mode_changed(self) -> None:
        """The step size belongs to the plain recipe only; then look in the cache."""
        self.step_size.disabled = self.mode.value != "plain"
        self._settings_changed()

    @guarded
    def _settings_changed(self) -> None:
        """Show cached patterns at once; otherwise say that Render will compute them."""
        key = self.key()
        if key in self.cache:
            self._show(key)
        elif not self.job.running:
            self.status.value = "Press Render for these settings." if self._shown else ""

    # ----- rendering ------------------------------------------------------------------------------------
    @guarded
    def render(self) -> None:
        """Show the patterns for the current settings: from the cache, or computed in the background.

        A new render replaces the one queued or running (which stops at its next step), so the last
        Render pressed is the one drawn, also right after Cancel.
        """
        with self._lock:
            key = self.key()
            if key in self.cache:
                self.job.drop("success")
                self._show(key)
                return
            if self.job.key == key and not self.job.cancelling:
                self.status.value = "Already rendering these settings…"
                return
            self.clear_error()
            self.status.value = (f"Rendering {len(key.filters)} filters of {key.layer}, "
                                 f"{recipe_text(key.mode, key.step)}…")

            def work() -> RenderedPatterns:
                patterns = self.inspector.filter_patterns(key.layer, key.filters, size=key.size, steps=key.steps,
                                                          seed=0, progress=self.job.report, mode=key.mode,
                                                          step_size=key.step or 1.0)
                return RenderedPatterns(patterns, filter_picture(patterns))

            self.progress.max = max(1, key.steps)
            self.job.submit(key, work, lambda result: self._finished(key, result), self._stopped)

    def cancel(self) -> None:
        """Ask the running render to stop after its current step (a Render pressed next is honoured)."""
        with self._lock:
            if self.job.running and self.job.cancel():
                self.status.value = "Cancelling…"

    @property
    def running(self) -> bool:
        """True while a render is queued or in progress."""
        return self.job.running

    def _finished(self, key: PatternRequest, result: RenderedPatterns) -> None:
        """Cache the new patterns and show them if the settings still ask for them."""
        self.cache[key] = result
        if key == self.key():
            self._show(key)
        else:
            self.status.value = "Done (cached); the settings have changed since: press Render."

    def _stopped(self, err: BaseException) -> None:
        """Cancelled or failed: report it (the controls are usable again)."""
        if isinstance(err, Cancelled):
            self.status.value = str(err)
        else:
            self.show_error(err)

    def _show(self, key: PatternRequest) -> None:
        """Display cached patterns and describe them."""
        rendered = self.cache[key]
        picture, patterns = rendered.picture, rendered.patterns
        show_picture(self.grid, enlarge(picture, 256, max(1024, picture.shape[1])))
        self._shown = key
        self._shown_picture = picture
        start, final = float(np.mean(patterns.start_activation)), float(np.mean(patterns.final_activation))
        self.caption.value = patterns_caption(key.layer, key.filters, key.size, key.steps,
                                              recipe_text(key.mode, key.step), start, final)
        self.status.value = ""
        self.clear_error()

    def pictures(self) -> dict[str, np.ndarray]:
        """The grid shown now, for saving."""
        key = self._shown
        if key is None:
            return {}
        name = f"{key.layer}-{key.filters[0]}-{key.filters[-1]}-{key.size}px-{key.steps}steps"
        if key.mode != "plain":
            name += f"-{key.mode}"
        elif key.step != self.default_step:
            name += f"-step{key.step:g}"
        return {name: self._shown_picture}
