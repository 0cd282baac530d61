"""The device that computes: its name (for the panel's header), and the memory batches are sized against on a GPU."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess

import tensorflow as tf

from .. import limits


def gpus() -> list[str]:
    """Logical GPU names TensorFlow computes on (empty on CPU)."""
    return [d.name for d in tf.config.list_logical_devices("GPU")]


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
    physical = tf.config.list_physical_devices("GPU")
    if physical:
        try:
            name = tf.config.experimental.get_device_details(physical[0]).get("device_name") or physical[0].name
        except (RuntimeError, ValueError):
            name = physical[0].name
        more = f" (1 of {len(physical)} GPUs)" if len(physical) > 1 else ""
        return f"GPU: {name}{more}"
    threads = _cpu_threads()
    return f"CPU, {threads} thread{'s' if threads != 1 else ''}"


@functools.lru_cache(maxsize=1)
def _gpu_total_bytes() -> int | None:
    """The first GPU's total memory from nvidia-smi (None when it is not there)."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run([exe, "--query-gpu=memory.total", "--format=csv,noheader,nounits"],
                             capture_output=True, text=True, timeout=10, check=True).stdout
        return int(out.split()[0]) * 2**20
    except (OSError, subprocess.SubprocessError, ValueError, IndexError):
        return None


def device_free_bytes() -> int | None:
    """Free memory of the GPU that computes (total minus what TensorFlow holds), or None on CPU."""
    names = gpus()
    if not names:
        return None
    total = _gpu_total_bytes()
    if total is None:
        return None
    try:
        used = int(tf.config.experimental.get_memory_info(names[0].split("device:", 1)[-1])["current"])
    except (ValueError, RuntimeError, KeyError):
        used = 0
    return max(0, total - used)


def install() -> None:
    """Make every batch size follow the GPU's free memory too when a GPU computes."""
    limits.device_memory = device_free_bytes


install()
