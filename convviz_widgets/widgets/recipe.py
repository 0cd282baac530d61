"""The plain filter-pattern recipe the Filters tab starts from and the channel card uses: size, steps, step."""

from __future__ import annotations

from typing import Any

SIZES = (32, 48, 64, 96, 128, 160, 224)
PLAIN_STEP = 1.0  # the book's plain-ascent step: one pixel level
DEFAULT_STEPS = 40


def default_step_size(inspector: Any) -> float:
    """The plain ascent's step: the model's own `filter_step_size` (the demo's: it sees x/255), else the book's."""
    return float(getattr(inspector.model, "filter_step_size", PLAIN_STEP))


def default_size(inspector: Any) -> int:
    """The pattern size: the model's own input size when it is one of SIZES and at most 64, else 64."""
    fixed = inspector.input_size
    if fixed and fixed[0] == fixed[1] and fixed[0] in SIZES and fixed[0] <= 64:
        return fixed[0]
    return 64


def pattern_recipe(inspector: Any) -> tuple[int, int, float]:
    """The default plain recipe: (size, steps, step size)."""
    return default_size(inspector), DEFAULT_STEPS, default_step_size(inspector)
