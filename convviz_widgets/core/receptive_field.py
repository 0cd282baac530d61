"""The receptive field of a feature-map cell: the input pixels it can see, followed through the traced graph.

Kernel sizes, strides, dilations and paddings of every conv and pooling layer on the way give, per
axis, the field's size, its stride in input pixels and the centre of cell 0, so a dataset example's
crop is the part of the image that its maximum depends on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from .graph import CONV_TYPES, POOL_TYPES, FlatGraph, Node


@dataclass(frozen=True)
class ReceptiveField:
    """Per axis (rows, cols): size and stride in input pixels, and the centre of feature-map cell 0.

    `exact` is False when a layer on the way could not be followed (then the field is the whole
    image where the input size is known, `size` None where it is not).
    """

    size: tuple[float, float] | None
    stride: tuple[float, float]
    start: tuple[float, float]
    exact: bool = True

    def box(self, row: int, col: int, image_hw: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, bottom, right), bottom/right exclusive, of a cell's field, clamped to the image."""
        h, w = int(image_hw[0]), int(image_hw[1])
        if self.size is None:
            return 0, 0, h, w
        top, bottom = _span(self.start[0] + row * self.stride[0], self.size[0], h)
        left, right = _span(self.start[1] + col * self.stride[1], self.size[1], w)
        return top, left, bottom, right


def _span(centre: float, size: float, limit: int) -> tuple[int, int]:
    """[lo, hi) of `size` pixels centred on `centre` (pixel centres are integers), clamped to [0, limit)."""
    n = max(1, int(round(size)))
    lo = int(math.floor(centre - (n - 1) / 2.0 + 0.5))
    return min(max(lo, 0), limit), min(max(lo + n, 0), limit)


@dataclass
class _Axis:
    """Field of one tensor along one axis: size r, jump j (input pixels per cell), centre s of cell 0."""

    r: float = 1.0
    j: float = 1.0
    s: float = 0.0


def _pair(value: Any) -> tuple[int, int]:
    """An int or a pair of ints as a pair."""
    if isinstance(value, (int, np.integer)):
        return int(value), int(value)
    return int(value[0]), int(value[1])


def _window(layer: Any) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], str]:
    """(kernel, stride, dilation, padding) of a conv or pooling layer."""
    kernel = _pair(getattr(layer, "kernel_size", None) or layer.pool_size)
    return kernel, _pair(layer.strides or kernel), _pair(getattr(layer, "dilation_rate", 1)), str(layer.padding).lower()


def _windowed(axis: _Axis, size_in: int | None, kernel: int, stride: int, dilation: int,
              padding: str) -> tuple[_Axis, int | None]:
    """A conv or pooling window along one axis, and the output length (TensorFlow's 'same' pads the odd pixel after)."""
    k_eff = dilation * (kernel - 1) + 1
    if padding != "same":
        before = 0
        out = None if size_in is None else max(0, -(-(size_in - k_eff + 1) // stride))
    elif size_in is None:
        before, out = max(k_eff - stride, 0) // 2, None
    else:
        out = -(-size_in // stride)
        before = max((out - 1) * stride + k_eff - size_in, 0) // 2
    field_ = _Axis(axis.r + (k_eff - 1) * axis.j, axis.j * stride, axis.s + ((k_eff - 1) / 2.0 - before) * axis.j)
    return field_, out


_Step = tuple[tuple[_Axis, _Axis], bool, tuple]


def _layer_step(layer: Any, axes: tuple[_Axis, _Axis], in_hw: tuple, out_hw: tuple) -> _Step:
    """How one layer changes the field and the grid size on both axes; False when it could not be followed."""
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return axes, False, out_hw
    if isinstance(layer, CONV_TYPES) or isinstance(layer, POOL_TYPES):
        kernel, stride, dilation, padding = _window(layer)
        steps = [_windowed(axes[a], in_hw[a], kernel[a], stride[a], dilation[a], padding) for a in (0, 1)]
        return (steps[0][0], steps[1][0]), True, (steps[0][1], steps[1][1])
    if isinstance(layer, (keras.layers.ZeroPadding2D, keras.layers.Cropping2D)):
        sign = -1 if isinstance(layer, keras.layers.ZeroPadding2D) else 1
        edges = layer.padding if sign < 0 else layer.cropping
        moved = tuple(_Axis(axes[a].r, axes[a].j, axes[a].s + sign * int(edges[a][0]) * axes[a].j) for a in (0, 1))
        grid = tuple(None if in_hw[a] is None else in_hw[a] - sign * (int(edges[a][0]) + int(edges[a][1]))
                     for a in (0, 1))
        return moved, True, grid
    if tuple(in_hw) == tuple(out_hw) or None in out_hw:
        return axes, True, in_hw  # elementwise or channel mixing only: the grid is unchanged
    return axes, False, out_hw


def receptive_field(graph: FlatGraph, node: Node, input_hw: tuple[int, int] | None = None) -> ReceptiveField:
    """The input pixels one cell of `node`'s feature map can see, followed through the traced graph.

    `input_hw` gives the image size for a model that takes any size ('same' padding depends on it).
    """
    base = tuple(input_hw) if input_hw is not None else tuple(graph.input.shape[1:3])
    fields: dict[int, _Step] = {id(graph.input): ((_Axis(), _Axis()), True, base)}
    for n in graph.nodes[: node.index + 1]:
        spatial_in = [t for t in n.inputs if len(t.shape) == 4]
        if not spatial_in or not n.is_spatial:
            continue
        known = [fields[id(t)] for t in spatial_in if id(t) in fields]
        if not known:  # produced by an operation that is not a layer: take the widest field seen so far
            known = [max(fields.values(), key=lambda f: f[0][0].r)]
        axes, exact, in_hw = max(known, key=lambda f: f[0][0].r * f[0][1].r)
        exact = exact and len(known) == len(spatial_in) and len({(f[0][0].j, f[0][1].j) for f in known}) == 1
        out_hw = tuple(n.grid)
        axes, followed, grid = _layer_step(n.layer, axes, in_hw, out_hw)
        grid = tuple(o if o is not None else g for o, g in zip(out_hw, grid))
        fields[id(n.output)] = (axes, exact and followed, grid)
    axes, exact, _ = fields.get(id(node.output), ((_Axis(), _Axis()), False, base))
    if exact:
        return ReceptiveField((axes[0].r, axes[1].r), (axes[0].j, axes[1].j), (axes[0].s, axes[1].s))
    return _whole_image(graph, node)


def _whole_image(graph: FlatGraph, node: Node) -> ReceptiveField:
    """The fallback field: every cell sees the whole input (known size) or the size is unknown."""
    in_hw = graph.input.shape[1:3]
    out_hw = node.grid or (None, None)
    if None in (*in_hw, *out_hw):
        return ReceptiveField(None, (1.0, 1.0), (0.0, 0.0), exact=False)
    size = (float(2 * in_hw[0]), float(2 * in_hw[1]))  # centred anywhere, it still covers the image
    stride = (in_hw[0] / out_hw[0], in_hw[1] / out_hw[1])
    return ReceptiveField(size, stride, ((stride[0] - 1) / 2.0, (stride[1] - 1) / 2.0), exact=False)
