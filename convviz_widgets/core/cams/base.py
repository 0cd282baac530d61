"""What a CAM method is, and the registry every method (built in or the user's) joins on import.

A method declares its name, label and tooltip, whether it needs gradients, and either its channel
weights or its whole map as maths on batched tensors, so it runs inside the compiled CAM function.
The tensors are the Keras backend's own (TensorFlow, JAX or PyTorch): written with `keras.ops`, a
method runs on every backend; written with TensorFlow ops, on the TensorFlow backend only.
Perturbation methods (Score-CAM, Ablation-CAM) instead weigh channels with extra forward passes,
run by the engine in batches that fit the memory budget.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from ...errors import ConvVizError, suggest


class CamMethod:
    """One CAM method: override `weights` (per channel) or `raw_map` (the whole map), with `keras.ops`.

    Tensors are batched backend tensors: feature maps and gradients (B, h, w, C) float32 (gradients
    None for a method with `needs_gradients = False`); `weights` returns (B, C), `raw_map` returns
    (B, h, w). The code runs inside a compiled function, once per input shape: use `keras.ops` (shapes
    are static there) and no numpy on the tensors. The map is then ReLU'd and scaled to [0, 1].
    """

    name: str = ""
    label: str = ""
    tooltip: str = ""
    needs_gradients: bool = True
    batchable: bool = True  # its compiled function takes several images at once
    uses_channels: bool = False  # takes max_channels and reports progress (one extra pass per channel)
    order: int = 100  # place in the method list (built-ins come first)

    def weights(self, feats: Any, grads: Any | None) -> Any:
        """Channel weights (B, C) from feature maps and gradients."""
        raise NotImplementedError

    def raw_map(self, feats: Any, grads: Any | None) -> Any:
        """The map before ReLU and scaling (B, h, w); by default the weighted channel sum."""
        return ops.sum(feats * self.weights(feats, grads)[:, None, None, :], axis=-1)


@dataclass
class CamRequest:
    """What a perturbation method needs: the inspector, layer, preprocessed input, feature map, class.

    `engine` (the Inspector's `CamEngine`, `inspector.cam_engine` when None) runs the built-in methods'
    compiled forward passes (`masked_head_values`, `ablated_scores`); `progress(done, total)` is reported through
    `core.batching.report`, which raises `Cancelled` when it answers False.
    """

    inspector: Any
    node: Any
    x: Any  # the preprocessed image, (1, H, W, C), a backend tensor
    feats: np.ndarray  # the layer's output for it, (h, w, C)
    class_index: int
    batch_size: int
    max_channels: int | None
    progress: Any
    engine: Any = None


class PerturbationMethod(CamMethod):
    """A gradient-free method that weighs channels by extra forward passes (`channel_weights`)."""

    needs_gradients = False
    batchable = False
    uses_channels = True

    def channel_weights(self, request: CamRequest) -> np.ndarray:
        """Channel weights (C,) for one image, computed outside the compiled CAM function."""
        raise NotImplementedError


METHODS: dict[str, CamMethod] = {}


def register_cam_method(method: CamMethod | type[CamMethod]) -> CamMethod:
    """Add a CAM method (an instance or a class) so every view offers it; returns the instance.

    Registering the same class again replaces it; another class under a taken name is refused.
    """
    if isinstance(method, type) and issubclass(method, CamMethod):
        method = method()
    if not isinstance(method, CamMethod):
        raise ConvVizError(f"register_cam_method takes a CamMethod (instance or class); got {method!r}.")
    name = method.name
    if not isinstance(name, str) or not name.strip() or name != name.strip():
        raise ConvVizError(f"A CAM method needs a non-empty name without surrounding spaces; got {name!r}.")
    old = METHODS.get(name)
    if old is not None and type(old).__qualname__ != type(method).__qualname__:
        raise ConvVizError(f"A CAM method named {name!r} is already registered ({type(old).__name__}); "
                           "choose another name.")
    cls = type(method)
    if not isinstance(method, PerturbationMethod) and cls.weights is CamMethod.weights \
            and cls.raw_map is CamMethod.raw_map:
        raise ConvVizError(f"CAM method {name!r} must define weights(feats, grads) or raw_map(feats, grads).")
    if isinstance(method, PerturbationMethod) and cls.channel_weights is PerturbationMethod.channel_weights:
        raise ConvVizError(f"Perturbation method {name!r} must define channel_weights(request).")
    method.label = method.label or name
    METHODS[name] = method
    return method


@contextmanager
def registered_cam_method(method: CamMethod | type[CamMethod]) -> Iterator[CamMethod]:
    """Register a CAM method for one `with` block (a test, a demo); afterwards the registry is as it was."""
    before = dict(METHODS)
    try:
        yield register_cam_method(method)
    finally:
        METHODS.clear()
        METHODS.update(before)


def method_names() -> list[str]:
    """Registered method names in list order (built-ins first, then in registration order)."""
    ranked = sorted(enumerate(METHODS.values()), key=lambda p: (p[1].order, p[0]))
    return [m.name for _, m in ranked]


def get_method(name: Any) -> CamMethod:
    """The registered method called `name`, or a ConvVizError listing the choices."""
    if isinstance(name, CamMethod):
        name = name.name
    if isinstance(name, str):
        for key in (name, name.lower()):
            if key in METHODS:
                return METHODS[key]
    names = method_names()
    raise ConvVizError(f"Unknown CAM method {name!r}.{suggest(str(name), names)} "
                       f"Choose one of: {', '.join(names)} (or add one with register_cam_method).")
