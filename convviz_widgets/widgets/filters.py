"""The Filters tab: pictures that excite chosen filters, rendered in the background with progress and Cancel.

Two recipes: the book's plain gradient ascent in pixel space (with its step size), and the regularised one
(decorrelated Fourier image, random jitter/scale/rotation, Adam) whose pictures read as textures and parts.
"""

from __future__ import annotations

import html
from typing import Any

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, FilterPatterns
from ..core.cache import LRUCache
from ..core.checks import FILTERS, STEP_SIZE, STEPS
from ..core.checks import step_size as checked_step_size
from ..render import enlarge, filter_picture
from .activations import layer_label
from .base import View, control_value, guarded, picture_widget, show_picture
from .registry import register_view
from .runner import still_wanted

SIZES = (32, 48, 64, 96, 128, 160, 224)
PLAIN_STEP = 1.0  # the book's plain-ascent step: one pixel level
CACHE_SIZE = 32
DEFAULT_STEPS = 40
MODES = (("Plain (book)", "plain"), ("Regularised", "regularized"))

Key = tuple[str, tuple[int, ...], int, int, str, float | None]  # layer, filters, size, steps, mode, plain step


def default_step_size(inspector: Any) -> float:
    """The plain ascent's step: the model's own `filter_step_size` (the demo's: it sees x/255), else the book's."""
    return float(getattr(inspector.model, "filter_step_size", PLAIN_STEP))


def recipe_text(mode: str, step: float | None) -> str:
    """How the patterns were made, for the caption."""
    if mode == "plain":
        return f"the book's plain ascent, step {step:g}"
    return "regularised (Fourier image, decorrelated colour, jitter/scale/rotation, Adam)"


def default_size(inspector: Any) -> int:
    """The pattern size: the model's own input size when it is one of SIZES and at most 64, else 64."""
    fixed = inspector.input_size
    if fixed and fixed[0] == fixed[1] and fixed[0] in SIZES and fixed[0] <= 64:
        return fixed[0]
    return 64


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
        self.cache: LRUCache[Key, tuple[FilterPatterns, np.ndarray]] = LRUCache(CACHE_SIZE, collect=False)
        self._running: Key | None = None  # the settings of the render queued or running (the latest request)
        self._cancelling = False
        self._shown: Key | None = None
        self._shown_picture: np.ndarray | None = None
        self.layer = widgets.Dropdown(
            options=[(layer_label(self.inspector.layer(n).shape, n), n) for n in names], value=chosen,
            description="Layer", layout=widgets.Layout(width="max-content", min_width="320px"))
        self.first = widgets.BoundedIntText(first, min=0, max=channels - 1, description="First filter",
                                            layout=widgets.Layout(width="180px"))
        self.count = widgets.IntSlider(FILTERS.check(count, "count"), min=FILTERS.low, max=FILTERS.panel_high,
                                       description="Count", continuous_update=False)
        self.size = widgets.Dropdown(options=SIZES, value=size or self._default_size(), description="Size (px)",
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

    def _default_size(self) -> int:
        """The model's own input size when it is one of SIZES and at most 64, else 64."""
        return default_size(self.inspector)

    # ----- settings -----------------------------------------------------------------------------------
    def key(self) -> Key:
        """The cache key of the current settings: layer, filter indices, size, steps, recipe (and plain step)."""
        channels = self.inspector.layer(self.layer.value).channels
        first = min(self.first.value, channels - 1)
        filters = tuple(range(first, min(first + control_value(self.count, FILTERS), channels)))
        mode = self.mode.value
        step = checked_step_size(self.step_size.value, "Step size") if mode == "plain" else None
        return self.layer.value, filters, int(self.size.value), int(control_value(self.steps, STEPS)), mode, step

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
        elif self._running is None:
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
                self.runner.drop(self.slot)
                self._idle("success")
                self._show(key)
                return
            if self._running == key and not self._cancelling:
                self.status.value = "Already rendering these settings…"
                return
            layer, filters, size, steps, mode, step = key
            self._running, self._cancelling = key, False
            self.clear_error()
            self.cancel_button.disabled = False
            self.progress.bar_style = "info"
            self.progress.max, self.progress.value = max(1, steps), 0
            self.status.value = f"Rendering {len(filters)} filters of {layer}, {recipe_text(mode, step)}…"

            def work() -> FilterPatterns:
                return self.inspector.filter_patterns(layer, filters, size=size, steps=steps, seed=0,
                                                      progress=self._progress, mode=mode, step_size=step or 1.0)

            self.runner.submit(work, lambda patterns: self._finished(key, patterns), self._stopped, slot=self.slot)

    def cancel(self) -> None:
        """Ask the running render to stop after its current step (a Render pressed next is honoured)."""
        with self._lock:
            if self._running is not None and self.runner.cancel(self.slot):
                self._cancelling = True
                self.status.value = "Cancelling…"

    @property
    def running(self) -> bool:
        """True while a render is queued or in progress."""
        return self._running is not None

    def _progress(self, step: int, total: int) -> bool:
        """Progress callback (worker thread): move the bar; False stops the ascent (cancelled or replaced)."""
        if not still_wanted():
            return False
        self.progress.value = step
        return True

    def _finished(self, key: Key, patterns: FilterPatterns) -> None:
        """Cache the new patterns and show them if the settings still ask for them."""
        picture = filter_picture(patterns)
        self.cache[key] = (patterns, picture)
        self._idle("success")
        if key == self.key():
            self._show(key)
        else:
            self.status.value = "Done (cached); the settings have changed since: press Render."

    def _stopped(self, err: BaseException) -> None:
        """Cancelled or failed: report it and make the controls usable again."""
        self._idle("warning" if isinstance(err, Cancelled) else "danger")
        if isinstance(err, Cancelled):
            self.status.value = str(err)
        else:
            self.show_error(err)

    def _idle(self, style: str) -> None:
        """Back to the idle state after a render."""
        self._running, self._cancelling = None, False
        self.progress.bar_style = style
        self.cancel_button.disabled = True

    def _show(self, key: Key) -> None:
        """Display cached patterns and describe them."""
        patterns, picture = self.cache[key]
        show_picture(self.grid, enlarge(picture, 256, max(1024, picture.shape[1])))
        self._shown, self._shown_picture = key, picture
        layer, filters, size, steps, mode, step = key
        start, final = float(np.mean(patterns.start_activation)), float(np.mean(patterns.final_activation))
        self.caption.value = (
            f"<small>Layer <b>{html.escape(layer)}</b>, filters {filters[0]}–{filters[-1]}, {size} px, "
            f"{steps} steps (seed 0), {recipe_text(mode, step)}. "
            f"Each tile: the filter index and its mean activation after the ascent; "
            f"mean over tiles {start:.3g} → {final:.3g}.</small>"
        )
        self.status.value = ""
        self.clear_error()

    def pictures(self) -> dict[str, np.ndarray]:
        """The grid shown now, for saving."""
        if self._shown is None or self._shown_picture is None:
            return {}
        layer, filters, size, steps, mode, step = self._shown
        name = f"{layer}-{filters[0]}-{filters[-1]}-{size}px-{steps}steps"
        if mode != "plain":
            name += f"-{mode}"
        elif step != self.default_step:
            name += f"-step{step:g}"
        return {name: self._shown_picture}
