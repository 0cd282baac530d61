"""What differs between Keras's backends, behind one small interface; the backend is Keras's own.

Every maths step of the core is written once with `keras.ops`. What cannot be written that way lives in
one module per backend (`_tensorflow`, `_jax`, `_torch`), chosen by `keras.config.backend()` (the
`KERAS_BACKEND` setting) and nothing else:

- `function(fn, variables)`: `fn` compiled for the backend (`tf.function`, `jax.jit` with the Keras
  variables passed in as arguments, PyTorch eager without autograd). Arguments are arrays (numpy or the
  backend's); settings that change the maths are closed over. Each new input shape is compiled once, so
  callers pad batches to a few sizes (`core.batching.bucket`).
- `value_and_grad(fn)`: inside a compiled function, `fn(x, *rest) -> (scalar, aux)` becomes
  `g(x, *rest) -> (scalar, aux, d scalar / d x)`.
- `to_numpy(t)`, device facts (`gpu_names`, `gpu_name`, `gpu_memory`, `cpu_threads`).
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterable
from types import ModuleType
from typing import Any

import keras
import numpy as np

_MODULES = {"tensorflow": "_tensorflow", "jax": "_jax", "torch": "_torch"}


def name() -> str:
    """The Keras backend computing: "tensorflow", "jax" or "torch"."""
    return keras.config.backend()


@functools.cache
def _module(backend: str) -> ModuleType:
    """The module that holds one backend's differences (imported on first use)."""
    if backend not in _MODULES:
        from ...errors import ConvVizError

        raise ConvVizError(f"Keras runs on the {backend!r} backend; convviz_widgets supports "
                           f"{', '.join(sorted(_MODULES))} (set KERAS_BACKEND before importing keras).")
    return importlib.import_module(f"{__name__}.{_MODULES[backend]}")


def current() -> ModuleType:
    """The module of the backend Keras runs on."""
    return _module(name())


def function(fn: Callable[..., Any], variables: Iterable[Any] = ()) -> Callable[..., Any]:
    """`fn` compiled for the backend; `variables`: every Keras variable it reads (the model's weights)."""
    return current().function(fn, _unique(variables))


def value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
    """g(x, *rest) -> (value, aux, gradient of value with respect to x), for use inside `function`."""
    return current().value_and_grad(fn)


def to_numpy(value: Any) -> np.ndarray:
    """A backend tensor (or nested list/tuple of them) as numpy, without a copy where the backend allows."""
    if isinstance(value, (list, tuple)):
        return type(value)(to_numpy(v) for v in value)
    return current().to_numpy(value)


def gpu_names() -> list[str]:
    """Names of the GPUs the backend computes on (empty on CPU)."""
    return current().gpu_names()


def gpu_name() -> str | None:
    """The first GPU's product name (with how many there are), or None on CPU."""
    return current().gpu_name()


def gpu_memory() -> tuple[int, int] | None:
    """(bytes the backend holds, total bytes) on the GPU that computes, or None on CPU or when unknown."""
    return current().gpu_memory()


def cpu_threads() -> int:
    """Threads the backend computes with on the CPU."""
    return current().cpu_threads()


def _unique(variables: Iterable[Any]) -> list[Any]:
    """Variables in order, each once (sub-models of one graph share the user's variables)."""
    seen: dict[int, Any] = {}
    for v in variables:
        seen.setdefault(id(v), v)
    return list(seen.values())
