"""Which device computes: the GPU TensorFlow uses, or the CPU and its threads (for the panel's header)."""

from __future__ import annotations

import os

import tensorflow as tf


def _cpu_threads() -> int:
    """Threads TensorFlow may use: its own setting, else the CPUs this process may run on."""
    configured = max(tf.config.threading.get_intra_op_parallelism_threads(), 0)
    if configured:
        return int(configured)
    try:
        return len(os.sched_getaffinity(0))  # a container's CPU set, not the host's
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_device() -> str:
    """'GPU: NAME' (the first visible GPU, with how many there are) or 'CPU, N threads'."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        try:
            name = tf.config.experimental.get_device_details(gpus[0]).get("device_name") or gpus[0].name
        except (RuntimeError, ValueError):
            name = gpus[0].name
        more = f" (1 of {len(gpus)} GPUs)" if len(gpus) > 1 else ""
        return f"GPU: {name}{more}"
    threads = _cpu_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"
