"""Memory estimates from a traced graph's layer shapes, so requests are sized before work starts.

Each estimate counts float32 tensors: the input batch, the layer outputs a forward pass keeps
(all of them up to the target when a gradient is taken, since the backward pass needs them),
the gradients flowing back, and working copies. The factors below were set from peak resident
memory measured on the demo model (bench/bench_budget.py prints estimate and
measurement side by side) and err on the high side.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from .graph import FlatGraph, trace

FLOAT = 4  # bytes per float32
REFERENCE_SIDE = 128  # a free-size model is traced at this side to learn its layers' shapes
KEPT_FACTOR = 2.0  # per kept layer output with a gradient: the output and its gradient
FORWARD_FACTOR = 3.0  # forward only: the largest layer output, its input and a temporary
INPUT_FACTOR = 6.0  # pixels, preprocessed pixels, their gradient, the next step, norms


@dataclass(frozen=True)
class Shape:
    """One layer's output elements per image at the reference size, and whether it scales with the image."""

    name: str
    elements: float
    spatial: bool


class Footprint:
    """Per-image element counts of every layer, scaled to any image size."""

    def __init__(self, graph: FlatGraph, model: object, output: int) -> None:
        h, w = graph.input.shape[1:3]
        self.channels = int(graph.input.shape[-1])
        if h is None or w is None:
            h = w = REFERENCE_SIDE
            # A layer that needs other sizes keeps the free graph: unknown maps count as the reference area.
            with contextlib.suppress(Exception):
                graph = trace(model, spatial=(REFERENCE_SIDE, REFERENCE_SIDE), output=output)
        self.area = float(h) * float(w)
        self.shapes = [Shape(n.name, _elements(n.shape, self.area), n.is_spatial) for n in graph.nodes]

    def _scaled(self, shape: Shape, hw: tuple[int, int]) -> float:
        """Elements of one layer's output for an image of (h, w)."""
        return shape.elements * (hw[0] * hw[1] / self.area if shape.spatial else 1.0)

    def _upto(self, name: str | None) -> list[Shape]:
        """Layers in model order up to and including `name` (all when None)."""
        if name is None:
            return self.shapes
        out = []
        for s in self.shapes:
            out.append(s)
            if s.name == name:
                break
        return out

    def input_bytes(self, hw: tuple[int, int]) -> float:
        """One float32 image of (h, w)."""
        return FLOAT * hw[0] * hw[1] * self.channels

    def with_gradient(self, hw: tuple[int, int], upto: str | None = None) -> float:
        """Bytes per image of a forward + backward pass through the layers up to `upto`."""
        kept = sum(self._scaled(s, hw) for s in self._upto(upto))
        return FLOAT * KEPT_FACTOR * kept + INPUT_FACTOR * self.input_bytes(hw)

    def forward(self, hw: tuple[int, int], keep: set[str] | None = None) -> float:
        """Bytes per image of a forward pass that keeps the outputs of `keep` (and frees the rest)."""
        sizes = [self._scaled(s, hw) for s in self.shapes] or [0.0]
        kept = sum(self._scaled(s, hw) for s in self.shapes if keep and s.name in keep)
        return FLOAT * (FORWARD_FACTOR * max(sizes) + 2.0 * kept) + 2.0 * self.input_bytes(hw)


def _elements(shape: tuple, area: float) -> float:
    """Elements per image of a symbolic shape (unknown spatial sides count as the reference area)."""
    dims = list(shape[1:])
    n = 1.0
    if len(dims) == 3 and (dims[0] is None or dims[1] is None):
        return area * float(dims[2] or 1)
    for d in dims:
        n *= float(d or 1)
    return n
