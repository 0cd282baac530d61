"""The PyTorch backend: eager calls without autograd, `torch.autograd.grad` where a gradient is asked for."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import torch


def _tensor(value: Any) -> Any:
    """Numpy arrays and scalars as tensors on Keras's device; tensors as they are."""
    return value if isinstance(value, torch.Tensor) else keras.ops.convert_to_tensor(value)


def function(fn: Callable[..., Any], variables: list[Any]) -> Callable[..., Any]:
    """`fn` run eagerly with autograd off (a gradient inside turns it on for its own part)."""

    def call(*args: Any) -> Any:
        with torch.no_grad():
            return fn(*(_tensor(a) for a in args))

    return call


def _detach(value: Any) -> Any:
    """Results without their autograd history (nested lists and tuples too)."""
    if isinstance(value, (list, tuple)):
        return type(value)(_detach(v) for v in value)
    return value.detach() if isinstance(value, torch.Tensor) else value


def value_and_grad(fn: Callable[..., tuple[Any, Any]]) -> Callable[..., tuple[Any, Any, Any]]:
    """`torch.autograd.grad` of `fn`'s value with respect to x only (no weight gradients are kept)."""

    def g(x: Any, *rest: Any) -> tuple[Any, Any, Any]:
        with torch.enable_grad():
            x = x.detach().requires_grad_(True)
            value, aux = fn(x, *rest)
            (grad,) = torch.autograd.grad(value, x, allow_unused=True)
        grad = torch.zeros_like(x) if grad is None else grad
        return value.detach(), _detach(aux), grad.detach()

    return g


def to_numpy(value: Any) -> np.ndarray:
    """A tensor as numpy (a view for a CPU tensor); bfloat16, which numpy cannot hold, as float32."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bfloat16:  # a mixed_bfloat16 model's values
            value = value.float()
        return value.detach().cpu().numpy()
    return np.asarray(value)


def gpu_names() -> list[str]:
    """CUDA devices PyTorch computes on (Keras places tensors on the first)."""
    if not torch.cuda.is_available():
        return []
    return [f"cuda:{i}" for i in range(torch.cuda.device_count())]


def gpu_name() -> str | None:
    """The first GPU's product name, with how many there are."""
    if not torch.cuda.is_available():
        return None
    count = torch.cuda.device_count()
    return torch.cuda.get_device_name(0) + (f" (1 of {count} GPUs)" if count > 1 else "")


def gpu_memory() -> tuple[int, int] | None:
    """(bytes in use on the first GPU, its total), from the driver."""
    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info(0)
    return int(total - free), int(total)


def cpu_threads() -> int:
    """Threads PyTorch computes with on the CPU."""
    return int(torch.get_num_threads())
