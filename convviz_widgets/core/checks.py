"""Argument checks run before any work: each gives a ConvVizError saying what was wrong and what to pass."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
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


def positive_number(value: Any, name: str) -> float:
    """A finite real number > 0 (e.g. a step size), as a float."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise ConvVizError(f"{name} must be a number; got {value!r} ({type(value).__name__}).")
    x = float(value)
    if not math.isfinite(x) or x <= 0.0:
        raise ConvVizError(f"{name} must be finite and > 0; got {value!r}.")
    return x


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
    """Filter indices: one int or a sequence of ints (range, list, numpy array); no bools or floats."""
    if _is_integral(filters):
        return (int(filters),)
    if isinstance(filters, (str, bytes)) or not isinstance(filters, (Sequence, np.ndarray, range)):
        raise ConvVizError(f"filters must be an int or a sequence of ints such as range(16); got {filters!r}.")
    values = list(np.asarray(filters).ravel()) if isinstance(filters, np.ndarray) else list(filters)
    bad = [f for f in values if not _is_integral(f)]
    if bad:
        raise ConvVizError(f"filters must be whole numbers; got {bad[0]!r} ({type(bad[0]).__name__}).")
    return tuple(int(f) for f in values)


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
