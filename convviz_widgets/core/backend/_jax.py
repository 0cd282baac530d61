"""The JAX backend: `jax.jit` with the Keras variables as arguments, `jax.value_and_grad`."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import jax
import keras
import numpy as np


def function(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """`fn` under `jax.jit`; the variables' current values go in as arguments, never as baked constants.

    Inside, a `StatelessScope` maps each variable to its traced value, so `model(x)` and `layer.kernel`
    read the weights passed in: a compiled function stays small and sees later weight changes.
    """

    @jax.jit
    def inner(values: list[Any], *args: Any) -> Any:
        with keras.StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    def call(*args: Any) -> Any:
        return inner([v.value for v in variables], *args)

    return call


def value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
    """`jax.value_and_grad` with the auxiliary results carried along."""
    vg = jax.value_and_grad(fn, argnums=0, has_aux=True)

    def g(x: Any, *rest: Any) -> tuple[Any, Any, Any]:
        (value, aux), grad = vg(x, *rest)
        return value, aux, grad

    return g


def to_numpy(value: Any) -> np.ndarray:
    """A JAX array as numpy (a view on the CPU)."""
    return np.asarray(value)


def _gpus() -> list[Any]:
    """JAX's GPU devices (empty on CPU)."""
    try:
        return [d for d in jax.devices() if d.platform in ("gpu", "cuda", "rocm")]
    except RuntimeError:
        return []


def gpu_names() -> list[str]:
    """GPUs JAX computes on."""
    return [str(d) for d in _gpus()]


def gpu_name() -> str | None:
    """The first GPU's product name, with how many there are."""
    gpus = _gpus()
    if not gpus:
        return None
    name = getattr(gpus[0], "device_kind", "") or str(gpus[0])
    return name + (f" (1 of {len(gpus)} GPUs)" if len(gpus) > 1 else "")


def gpu_memory() -> tuple[int, int] | None:
    """(bytes JAX holds, its limit) on the first GPU."""
    gpus = _gpus()
    if not gpus:
        return None
    try:
        stats = gpus[0].memory_stats() or {}
    except (RuntimeError, NotImplementedError):
        return None
    return int(stats.get("bytes_in_use", 0)), int(stats.get("bytes_limit", 0))


def cpu_threads() -> int:
    """The CPUs this process may run on (XLA's CPU client uses them all)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1
