"""Argument checks run before any work: each gives a ConvVizError saying what was wrong and what to pass."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConvVizError


def _is_integral(value: Any) -> bool:
    """Python ints and numpy integers count; bools, floats, strings and None do not."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def integer(value: Any, name: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integral argument within [minimum, maximum], as a Python int."""
    if not _is_integral(value):
        raise ConvVizError(f"{name} must be a whole number (an int); got {value!r} ({type(value).__name__}).")
    n = int(value)
    if minimum is not None and n < minimum:
        raise ConvVizError(f"{name} must be >= {minimum}; got {n}.")
    if maximum is not None and n > maximum:
        raise ConvVizError(f"{name} must be <= {maximum}; got {n}.")
    return n


@dataclass(frozen=True)
class Bound:
    """The allowed range of one numeric argument, the same in the API, the CLI and the panel's controls.

    `panel` is where a panel slider ends when the whole range would make it too coarse (None: at `high`).
    """

    low: int | float
    high: int | float
    what: str
    panel: int | float | None = None

    @property
    def panel_high(self) -> int | float:
        """The end of a panel control's range: `panel`, else `high`."""
        return self.high if self.panel is None else self.panel

    def check(self, value: Any, name: str) -> Any:
        """`value` when it lies in [low, high]; a ConvVizError naming the argument, the value and the bound."""
        for side, outside, limit in (("below its lower", value < self.low, self.low),
                                     ("above its upper", value > self.high, self.high)):
            if outside:
                raise ConvVizError(f"{name} = {value!r} is {side} bound {limit:,} ({self.what}); "
                                   f"choose a value from {self.low:,} to {self.high:,}.")
        return value


# Every number the API or a panel control takes has one of these bounds (listed in docs/limits.md).
STEPS = Bound(0, 10_000, "gradient-ascent steps of filter patterns", panel=500)
FILTERS = Bound(1, 4096, "filters rendered in one request", panel=64)
PATTERN_SIZE = Bound(8, 4096, "side of a filter-pattern picture in pixels")
STEP_SIZE = Bound(0.0, 1000.0, "plain ascent step in pixel levels, above 0", panel=100.0)
SEED = Bound(0, 2**31 - 1, "random seed")
CHANNELS = Bound(0, 16_384, "channels a perturbation CAM masks, such as Score-CAM's max_channels; 0 = all")
PER_ROW = Bound(1, 256, "tiles per row of a grid", panel=64)
MARGIN = Bound(0, 64, "pixels between the tiles of a grid")
TOP = Bound(1, 1000, "top classes listed")
EXAMPLES = Bound(1, 1000, "dataset examples kept per channel (k)")
BATCH_SIZE = Bound(1, 4096, "images per compiled pass")
CURVE_STEPS = Bound(1, 1000, "steps of a deletion or insertion curve")
ALPHA = Bound(0.0, 1.0, "opacity of a heatmap over its image")
BLUR = Bound(0.0, 1.0, "blur sigma of a baseline image as a share of its shorter side")
LEARNING_RATE = Bound(0.0, 10.0, "Adam's learning rate in the regularised recipe, above 0")
JITTER = Bound(0, 64, "random translation of the regularised recipe in pixels")
SCALE = Bound(0.0, 0.9, "random zoom of the regularised recipe: 1 - scale to 1 + scale")
ROTATION = Bound(0.0, 180.0, "random rotation of the regularised recipe in degrees")
DECAY_POWER = Bound(0.0, 4.0, "the regularised recipe's spectrum decay, 1 / frequency ** decay_power")
INIT_STD = Bound(0.0, 1.0, "spread of the regularised recipe's initial spectrum")

BOUNDS: dict[str, Bound] = {
    "steps": STEPS, "filters": FILTERS, "size": PATTERN_SIZE, "step_size": STEP_SIZE, "seed": SEED,
    "max_channels": CHANNELS, "images_per_row": PER_ROW, "margin": MARGIN, "top": TOP, "k": EXAMPLES,
    "batch_size": BATCH_SIZE, "deletion steps": CURVE_STEPS, "alpha": ALPHA, "blur_sigma": BLUR,
    "learning_rate": LEARNING_RATE, "jitter": JITTER, "scale": SCALE, "rotation": ROTATION,
    "decay_power": DECAY_POWER, "init_std": INIT_STD,
}


def bounded(value: Any, name: str, bound: Bound) -> int:
    """A whole-number argument within its bound, as a Python int."""
    return bound.check(integer(value, name), name)


def positive_number(value: Any, name: str) -> float:
    """A finite real number > 0 (e.g. a step size), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConvVizError(f"{name} must be a number; got {value!r} ({type(value).__name__}).")
    x = float(value)
    if not math.isfinite(x) or x <= 0.0:
        raise ConvVizError(f"{name} must be finite and > 0; got {value!r}.")
    return x


def real(value: Any, name: str, bound: Bound) -> float:
    """A finite real number within its bound, as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConvVizError(f"{name} must be a finite number; got {value!r} ({type(value).__name__}).")
    return float(bound.check(float(value), name))


def step_size(value: Any, name: str = "step_size") -> float:
    """A plain-ascent step: finite, above 0 and within STEP_SIZE, as a float."""
    return STEP_SIZE.check(positive_number(value, name), name)


def choice(value: Any, name: str, options: Sequence[str]) -> str:
    """One of a few strings (case-insensitive), returned in lower case."""
    if not isinstance(value, str):
        raise ConvVizError(f"{name} must be a string, one of {', '.join(options)}; got {value!r}.")
    lowered = value.lower()
    if lowered not in options:
        raise ConvVizError(f"Unknown {name} {value!r}: use one of {', '.join(options)}.")
    return lowered


def layer_name(layer: Any, name: str = "layer") -> str:
    """A layer given by name, or a Keras layer object (its name is used)."""
    if isinstance(layer, str):
        return layer
    inner = getattr(layer, "name", None)
    if isinstance(inner, str) and hasattr(layer, "get_config"):
        return inner
    raise ConvVizError(f"{name} must be a layer name (a string) or a Keras layer; got {type(layer).__name__}.")


def filter_indices(filters: Any) -> tuple[int, ...]:
    """Filter indices: one int or a sequence of ints (range, list, numpy array); no bools or floats; FILTERS of them."""
    if _is_integral(filters):
        return (int(filters),)
    if isinstance(filters, (str, bytes)) or not isinstance(filters, (Sequence, np.ndarray, range)):
        raise ConvVizError(f"filters must be an int or a sequence of ints such as range(16); got {filters!r}.")
    count = int(np.asarray(filters).size) if isinstance(filters, np.ndarray) else len(filters)
    if count > FILTERS.high:
        raise ConvVizError(f"filters holds {count:,} indices, above its upper bound {FILTERS.high:,} "
                           f"({FILTERS.what}); render them in several requests.")
    values = list(np.asarray(filters).ravel()) if isinstance(filters, np.ndarray) else list(filters)
    bad = [f for f in values if not _is_integral(f)]
    if bad:
        raise ConvVizError(f"filters must be whole numbers; got {bad[0]!r} ({type(bad[0]).__name__}).")
    return tuple(int(f) for f in values)


def max_channels(value: Any) -> int | None:
    """`max_channels`: None or <= 0 (all channels), else a whole number up to CHANNELS."""
    if value is None:
        return None
    n = integer(value, "max_channels")
    return None if n <= 0 else CHANNELS.check(n, "max_channels")


def output_selector(output: Any) -> str | int | None:
    """`output=`: None, an output's name, or its index."""
    if output is None or isinstance(output, str):
        return output
    return integer(output, "output", minimum=0)


def finite(values: Any, what: str, subject: str = "this image") -> np.ndarray:
    """Refuse NaN/inf results (an overflow, a preprocessing that divides by zero, a NaN input)."""
    values = np.asarray(values)
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        bad = "NaN" if np.isnan(values).any() else "inf"
        raise ConvVizError(
            f"The model's output for {subject} is NaN/inf: {what} contains {bad}. Check the model's "
            "weights (very large values overflow), the preprocessing and the input."
        )
    return values
