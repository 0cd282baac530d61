"""The device that computes: its name (for the panel's header), and the memory batches are sized against on a GPU.

Both come from the Keras backend that computes (`core.backend`: TensorFlow, JAX or PyTorch); when the
backend does not say how much memory its GPU has, nvidia-smi does.
"""

from __future__ import annotations

import functools
import shutil
import subprocess

from .. import limits
from . import backend as bk


def gpus() -> list[str]:
    """Names of the GPUs the backend computes on (empty on CPU)."""
    return bk.gpu_names()


def describe_device() -> str:
    """'GPU: NAME' (the first visible GPU, with how many there are) or 'CPU, N threads', on every backend."""
    name = bk.gpu_name()
    if name:
        return f"GPU: {name}"
    threads = bk.cpu_threads()
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
    """Free memory of the GPU that computes (its total minus what is in use), or None on CPU or when unknown."""
    memory = bk.gpu_memory()
    if memory is None:
        return None
    used, total = memory
    total = total or _gpu_total_bytes()  # TensorFlow does not say its GPU's total
    if not total:
        return None
    return max(0, int(total) - int(used))


def install() -> None:
    """Make every batch size follow the GPU's free memory too when a GPU computes."""
    limits.device_memory = device_free_bytes


install()
