"""The TensorFlow backend: `tf.function`, `tf.GradientTape`, TensorFlow's device list."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np
import tensorflow as tf


def function(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """`fn` as a `tf.function` traced once per input shape; variables are read as they are.

    Each shape's concrete function is kept and called directly: a `tf.function` matches every call's
    arguments (and hashes every captured weight) again, a few tenths of a millisecond on a small model.
    """
    compiled = tf.function(fn, autograph=False)
    concrete: dict[tuple, Any] = {}

    def call(*args: Any) -> Any:
        tensors = [tf.convert_to_tensor(a) for a in args]
        key = tuple((tuple(t.shape), t.dtype) for t in tensors)
        f = concrete.get(key)
        if f is None:
            f = concrete[key] = compiled.get_concrete_function(*tensors)
        return f(*tensors)

    return call


def value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
    """A tape over `fn`; a value that does not depend on x has a zero gradient."""

    def g(x: Any, *rest: Any) -> tuple[Any, Any, Any]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            value, aux = fn(x, *rest)
        grad = tape.gradient(value, x)
        return value, aux, tf.zeros_like(x) if grad is None else grad

    return g


def to_numpy(value: Any) -> np.ndarray:
    """An eager tensor's numpy view (no copy on the CPU)."""
    return np.asarray(value)


def gpu_names() -> list[str]:
    """Logical GPUs TensorFlow computes on."""
    return [d.name for d in tf.config.list_logical_devices("GPU")]


def gpu_name() -> str | None:
    """The first GPU's product name, with how many there are."""
    physical = tf.config.list_physical_devices("GPU")
    if not physical:
        return None
    try:
        name = tf.config.experimental.get_device_details(physical[0]).get("device_name") or physical[0].name
    except (RuntimeError, ValueError):
        name = physical[0].name
    return name + (f" (1 of {len(physical)} GPUs)" if len(physical) > 1 else "")


def gpu_memory() -> tuple[int, int] | None:
    """(bytes TensorFlow holds, total) on the first GPU; the total comes from the caller when unknown (0)."""
    names = gpu_names()
    if not names:
        return None
    try:
        used = int(tf.config.experimental.get_memory_info(names[0].split("device:", 1)[-1])["current"])
    except (ValueError, RuntimeError, KeyError):
        used = 0
    return used, 0


def cpu_threads() -> int:
    """TensorFlow's own thread setting, else the CPUs this process may run on."""
    configured = max(tf.config.threading.get_intra_op_parallelism_threads(), 0)
    if configured:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))  # a container's CPU set, not the host's
    except (AttributeError, OSError):
        return os.cpu_count() or 1
