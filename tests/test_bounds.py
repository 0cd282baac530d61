"""Every number the API or a panel control takes has an upper bound, defined once (core/checks.py), documented
in docs/limits.md, and refused in words: the API names the argument, the value and the bound; the panel shows a
message, never an exception's name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import ActivationsView, CamView, ConvVizError, FiltersView
from convviz_widgets.core import checks
from convviz_widgets.metrics import baseline_image, deletion_curve

LIMITS_PAGE = Path(__file__).parents[1] / "docs" / "limits.md"


@pytest.fixture(scope="module")
def model():
    """A 32 px three-class convnet with random weights."""
    return small_convnet(size=32)


def api_calls(model) -> dict[str, tuple]:
    """One call past each bound: (the call, the argument's name, the value, the bound it breaks)."""
    image = rng_image(seed=1)
    ins = cv.Inspector(model, preprocess="rescale")
    return {
        "steps": (lambda: cv.filter_patterns(model, "conv2", range(2), steps=10_001), "steps", 10_001, 10_000),
        "filters": (lambda: cv.filter_patterns(model, "conv2", range(5000)), "filters", "5,000", 4096),
        "size": (lambda: cv.filter_patterns(model, "conv2", [0], size=4097), "size", 4097, 4096),
        "step_size": (lambda: cv.filter_patterns(model, "conv2", [0], step_size=1e4), "step_size", 10000.0, 1000),
        "seed": (lambda: cv.filter_patterns(model, "conv2", [0], seed=2**31), "seed", 2**31, 2**31 - 1),
        "max_channels": (lambda: cv.gradcam(model, image, method="scorecam", max_channels=20_000), "max_channels",
                         20_000, 16_384),
        "gradcam batch_size": (lambda: cv.gradcam(model, [image], batch_size=5000), "batch_size", 5000, 4096),
        "activations batch_size": (lambda: ins.activations([image], batch_size=5000), "batch_size", 5000, 4096),
        "top": (lambda: cv.predict(model, image, top=1001), "top", 1001, 1000),
        "k": (lambda: cv.top_examples(model, "conv2", [image], k=1001), "k", 1001, 1000),
        "examples batch_size": (lambda: cv.top_examples(model, "conv2", [image], batch_size=5000), "batch_size",
                                5000, 4096),
        "images_per_row": (lambda: cv.activation_grid(np.ones((4, 4, 8), np.float32), images_per_row=257),
                           "images_per_row", 257, 256),
        "images_per_row 0": (lambda: cv.activation_grid(np.ones((4, 4, 8), np.float32), images_per_row=0),
                             "images_per_row", 0, 1),
        "margin": (lambda: cv.activation_grid(np.ones((4, 4, 8), np.float32), margin=65), "margin", 65, 64),
        "cols": (lambda: cv.filter_grid(np.zeros((2, 8, 8, 3), np.uint8), cols=257), "cols", 257, 256),
        "alpha": (lambda: cv.overlay(image, np.ones((4, 4), np.float32), alpha=1.5), "alpha", 1.5, 1),
        "blur_sigma": (lambda: baseline_image(image, blur_sigma=1e6), "blur_sigma", 1000000.0, 1),
        "jitter": (lambda: cv.Regularization(jitter=100), "jitter", 100, 64),
        "rotation": (lambda: cv.Regularization(rotation=720.0), "rotation", 720.0, 180),
        "learning_rate": (lambda: cv.Regularization(learning_rate=1e3), "learning_rate", 1000.0, 10),
        "deletion steps": (lambda: deletion_curve(ins, image, np.ones((4, 4), np.float32), 0, steps=1001), "steps",
                           1001, 1000),
    }


CASES = ["steps", "filters", "size", "step_size", "seed", "max_channels", "gradcam batch_size",
         "activations batch_size", "top", "k", "examples batch_size", "images_per_row", "images_per_row 0", "margin",
         "cols", "deletion steps", "alpha", "blur_sigma", "jitter", "rotation", "learning_rate"]


@pytest.mark.parametrize("case", CASES)
def test_the_api_refuses_a_number_past_its_bound_naming_the_argument_the_value_and_the_bound(model, case) -> None:
    call, name, value, bound = api_calls(model)[case]
    with pytest.raises(ConvVizError) as info:
        call()
    text = str(info.value)
    assert name in text and str(value) in text, text
    assert (f"{bound:,}" in text or str(bound) in text), text


def test_the_bounds_themselves_are_accepted(model) -> None:
    assert cv.activation_grid(np.ones((2, 2, 300), np.float32), images_per_row=256, margin=64).shape[1] == 255 * 66 + 2
    assert len(cv.predict(model, rng_image(seed=1), top=1000)) == 3
    assert cv.filter_grid(np.zeros((2, 8, 8, 3), np.uint8), cols=256).shape == (8, 21, 3)
    assert checks.max_channels(16_384) == 16_384 and checks.max_channels(0) is None


def shown(value: float) -> str:
    """A bound as docs/limits.md writes it: 10,000 or 0.5."""
    return f"{value:,}" if isinstance(value, int) else f"{value:,g}"


def test_every_bound_is_one_constant_listed_in_the_limits_page() -> None:
    text = LIMITS_PAGE.read_text(encoding="utf-8")
    rows = [line for line in text.splitlines() if line.startswith("| `")]
    for name, bound in checks.BOUNDS.items():
        row = next((r for r in rows if r.startswith(f"| `{name}`")), None)
        assert row is not None, f"docs/limits.md's bounds table has no row for {name}"
        assert f"| {shown(bound.low)} | {shown(bound.high)} |" in row, row
    assert len(set(map(id, checks.BOUNDS.values()))) == len(checks.BOUNDS)


def shown_in_words(view) -> str:
    """The view's error message, checked to be words rather than an exception's name."""
    text = view.error
    assert text and not re.search(r"\b[A-Z][a-zA-Z]+Error\b", text), text
    return text


def test_per_row_refuses_values_past_its_bound_in_words_and_recovers() -> None:
    view = ActivationsView(small_convnet(size=32), rng_image(seed=2), background=False)
    assert (view.per_row.min, view.per_row.max) == (checks.PER_ROW.low, checks.PER_ROW.panel_high)
    assert view.per_row.max <= checks.PER_ROW.high
    view.per_row.min = 0  # what a visitor's browser can send: the control's own limits are not a guarantee
    view.per_row.value = 0
    assert "Per row = 0" in shown_in_words(view) and "1 to 256" in view.error
    view.per_row.max = 10_000
    view.per_row.value = 5000
    assert "Per row = 5000" in shown_in_words(view)
    view.per_row.value = 4
    assert view.error == "" and "4 per row" in view.grid_caption.value


def test_filters_controls_refuse_values_past_their_bounds_and_start_nothing() -> None:
    view = FiltersView(small_convnet(size=32), layer="conv2", count=2, steps=1, size=32, background=False)
    assert (view.steps.min, view.steps.max) == (checks.STEPS.low, checks.STEPS.panel_high)
    assert (view.count.min, view.count.max) == (checks.FILTERS.low, checks.FILTERS.panel_high)
    assert view.step_size.max == checks.STEP_SIZE.panel_high
    for control, value, words in ((view.steps, 10**9, "Steps = 1000000000"), (view.count, 5000, "Count = 5000"),
                                  (view.step_size, 1e6, "Step size = 1000000.0"), (view.step_size, 0.0, "Step size")):
        control.max, control.min = max(control.max, value), min(control.min, value)
        control.value = value
        view.render()
        assert words in shown_in_words(view) and not view.running and len(view.cache) == 0
        control.value = 1 if control is not view.step_size else 1.0
    view.render()
    assert view.error == "" and len(view.cache) == 1


def test_cam_channels_refuse_values_past_their_bound_in_words() -> None:
    view = CamView(small_convnet(size=32), rng_image(seed=2), method="scorecam", background=False)
    assert (view.channels.min, view.channels.max) == (checks.CHANNELS.low, checks.CHANNELS.high)
    view.channels.max = 10**6
    view.channels.value = 20_000
    assert "Channels = 20000" in shown_in_words(view) and "16,384" in view.error
    view.channels.value = 4
    assert view.error == ""
    assert (view.opacity.min, view.opacity.max) == (checks.ALPHA.low, checks.ALPHA.high)
    view.opacity.max = 5.0
    view.opacity.value = 2.5
    assert "Opacity = 2.5" in shown_in_words(view)


@pytest.mark.parametrize("kwargs", [{"images_per_row": 0}, {"images_per_row": 257}])
def test_a_view_built_with_a_number_past_its_bound_is_refused(kwargs) -> None:
    with pytest.raises(ConvVizError, match="images_per_row"):
        ActivationsView(small_convnet(size=32), **kwargs)


@pytest.mark.parametrize("kwargs", [{"steps": 10_001}, {"count": 0}, {"count": 4097}, {"step_size": 5000.0}])
def test_a_filters_view_built_with_a_number_past_its_bound_is_refused(kwargs) -> None:
    with pytest.raises(ConvVizError, match=next(iter(kwargs))):
        FiltersView(small_convnet(size=32), **kwargs)
