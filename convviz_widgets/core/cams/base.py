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
    class_agnostic: bool = False  # the map is the same whatever the target (it explains no class)

    def applies_to(self, inspector: Any) -> str | None:
        """None when the method can explain this model (an `Inspector`), else why not in one line.

        Lists of methods (the panel, the gallery) show only those that apply; asking for one that does not
        is a ConvVizError with this reason. By default a method applies to every model.
        """
        return None

    def read_at(self, inspector: Any, layer: Any) -> Any:
        """The node whose grid the map is drawn on; None: the layer asked for (or the default CAM layer).

        A method that reads its own layers (attention rollout) returns its own node and does not use `layer`.
        """
        return None

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
    compiled forward passes (`masked_values`, `ablated_values`: the explained target's value, whatever the
    target; `masked_head_values`, `ablated_scores`: every class's); `progress(done, total)` is reported through
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
    scoring: Any = None  # the checked target (`core.targets.Scoring`); None: the class `class_index`
    region: np.ndarray | None = None  # a region target's mask (h, w) on the output's grid


class GraphMethod(CamMethod):
    """A method whose map is made of other tensors of the traced model than one layer's map (attention weights).

    `graph_map` builds the raw map (B, h, w) symbolically from the traced graph with `keras.ops`, once per compiled
    function; the engine computes it in the same compiled pass as the class scores.
    """

    needs_gradients = False

    def graph_map(self, inspector: Any, graph: Any, node: Any) -> Any:
        """The raw map (B, h, w) as a symbolic tensor of `graph` (computed from `graph.input`), on `node`'s grid."""
        raise NotImplementedError


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
    if isinstance(method, GraphMethod):
        if cls.graph_map is GraphMethod.graph_map:
            raise ConvVizError(f"Graph method {name!r} must define graph_map(inspector, graph, node).")
    elif not isinstance(method, PerturbationMethod) and cls.weights is CamMethod.weights \
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


def method_names(inspector: Any = None) -> list[str]:
    """Registered method names in list order (built-ins first, then in registration order).

    With an `Inspector`: only the methods that apply to its model (`CamMethod.applies_to`).
    """
    ranked = sorted(enumerate(METHODS.values()), key=lambda p: (p[1].order, p[0]))
    return [m.name for _, m in ranked if inspector is None or m.applies_to(inspector) is None]


def not_applying(inspector: Any) -> dict[str, str]:
    """The registered methods that do not apply to the inspector's model, each with its reason, in list order."""
    reasons = {name: METHODS[name].applies_to(inspector) for name in method_names()}
    return {name: why for name, why in reasons.items() if why is not None}


def method_for(name: Any, inspector: Any) -> CamMethod:
    """The registered method called `name`, refused with its reason (a ConvVizError) if it does not apply."""
    method = get_method(name)
    why = method.applies_to(inspector)
    if why is not None:
        usable = ", ".join(method_names(inspector)) or "none"
        raise ConvVizError(f"CAM method {method.name!r} does not apply to this model: {why}. "
                           f"Methods that do: {usable}.")
    return method


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
