"""The device that computes: its name, and the memory batches are sized against when it is a GPU."""

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


def describe_device() -> str:
    """The device TensorFlow computes on: the GPU's name, or "CPU (N threads)"."""
    physical = tf.config.list_physical_devices("GPU")
    if physical:
        details = tf.config.experimental.get_device_details(physical[0])
        name = details.get("device_name") or physical[0].name
        return name if len(physical) == 1 else f"{name} (x{len(physical)})"
    threads = tf.config.threading.get_intra_op_parallelism_threads() or os.cpu_count() or 1
    return f"CPU ({threads} threads)"


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
