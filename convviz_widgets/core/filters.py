"""Filter patterns: gradient ascent in input space, all requested filters in one batch.

The book's recipe (grey + noise start, L2-normalised gradient, 40 steps of size 1), with less
work per step: the graph stops at the target layer, a Conv2D target computes for each image
only that image's own filter (a depthwise "diagonal" convolution, 1 output channel per image
instead of all of them), and only the input gradient is taken (`backend.value_and_grad`: TensorFlow
prunes the weight gradients from the compiled step, JAX and PyTorch differentiate the input alone).
All maths is keras.ops, compiled by `backend.function`, so every Keras backend runs the same recipe.
Measured in bench/bench_filters.py; see bench/README.md for what was tried and kept.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from ..errors import ConvVizError
from . import backend as bk
from .batching import Progress, report
from .checks import filter_indices
from .graph import FlatGraph, Node


@dataclass(frozen=True)
class FilterPatterns:
    """Pictures that maximise each filter's mean activation, ready to show."""

    images: np.ndarray  # uint8 (n, size, size, 3)
    start_activation: np.ndarray  # (n,) mean activation at the first step
    final_activation: np.ndarray  # (n,) after the last step
    layer: str
    filters: tuple[int, ...]


def check_filters(filters: int | Sequence[int], node: Node) -> tuple[int, ...]:
    """Validate filter indices against the layer's channel count."""
    idx = filter_indices(filters)
    if not idx:
        raise ConvVizError("filters is empty: give at least one filter index, e.g. range(16).")
    bad = [f for f in idx if not 0 <= f < node.channels]
    if bad:
        raise ConvVizError(
            f"Filter index {bad[0]} is out of range: layer {node.name!r} has {node.channels} "
            f"filters (0..{node.channels - 1})."
        )
    return idx


def _sliced_conv(node: Node) -> bool:
    """A plain channels-last Conv2D can compute just the requested output channels."""
    layer = node.layer
    return (
        type(layer) is keras.layers.Conv2D
        and getattr(layer, "groups", 1) == 1
        and layer.data_format == "channels_last"
        and len(node.inputs) == 1
    )


# Activations that act on each value alone, so they commute with computing one channel at a time.
_ELEMENTWISE_ACTIVATIONS = frozenset({
    "linear", "relu", "relu6", "leaky_relu", "elu", "selu", "gelu", "silu", "swish", "sigmoid",
    "hard_sigmoid", "hard_silu", "hard_swish", "tanh", "softplus", "softsign", "exponential", "mish",
    "celu", "squareplus", "sparse_plus", "log_sigmoid", "hard_tanh", "tanh_shrink", "soft_shrink",
    "hard_shrink", "threshold",
})


def _diagonal_conv(node: Node) -> bool:
    """A sliced Conv2D whose per-image filter can run as one depthwise convolution."""
    layer = node.layer
    if not _sliced_conv(node) or getattr(layer, "quantization_mode", None) is not None:
        return False
    sh, sw = layer.strides
    dh, dw = layer.dilation_rate
    return (
        getattr(layer.activation, "__name__", None) in _ELEMENTWISE_ACTIVATIONS
        and str(layer.padding).lower() in ("same", "valid")
        and sh == sw
        and dh == dw
        and (dh == 1 or sh == 1)
    )


def _diagonal_objective(trunk: keras.Model, layer: Any, preprocess: Callable[[Any], Any]) -> Callable:
    """Image i's mean activation of filter i, computing only that one output channel per image.

    A batched Conv2D with the requested filters would give every image every requested filter
    (n x n maps) and keep the diagonal; here the n feature maps are laid side by side as
    n * C channels of one image and convolved depthwise with the matching n kernels, then the
    C input channels are summed: n maps of work instead of n * n.
    """
    kh, kw, cin, _ = (int(d) for d in layer.kernel.shape)
    stride = int(layer.strides[0])
    rate = int(layer.dilation_rate[0])
    padding = str(layer.padding).lower()

    def objective(x: Any, filters: Any) -> tuple[Any, Any]:
        feats = trunk(preprocess(x), training=False)  # (n, h, w, C)
        n, h, w = (int(d) for d in feats.shape[:3])  # static: each input shape compiles once
        kernel = ops.transpose(ops.cast(layer.kernel, feats.dtype), (3, 0, 1, 2))
        kernel = ops.take(kernel, filters, axis=0)  # (n, kh, kw, C), rows contiguous
        side = ops.reshape(ops.transpose(feats, (1, 2, 0, 3)), (1, h, w, n * cin))
        depthwise = ops.reshape(ops.transpose(kernel, (1, 2, 0, 3)), (kh, kw, n * cin, 1))
        out = ops.depthwise_conv(side, depthwise, strides=stride, padding=padding, data_format="channels_last",
                                 dilation_rate=rate)  # (1, oh, ow, n * C)
        oh, ow = int(out.shape[1]), int(out.shape[2])
        out = ops.sum(ops.reshape(out, (oh, ow, n, cin)), axis=-1)
        if layer.use_bias:
            out = out + ops.take(ops.cast(layer.bias, out.dtype), filters, axis=0)
        return _gain_and_activation(out, layer.activation, axes=(0, 1))  # out: (oh, ow, n)

    return objective


def build_objective(graph: FlatGraph, node: Node, preprocess: Callable[[Any], Any]) -> Callable:
    """Return f(pixels, filters) -> (gain, activation), each (n,), for image i's own filter i.

    `activation` is the filter's mean activation; `gain` is what the ascent climbs (the same,
    except for silent ReLU units, see _gain_and_activation). Written in keras.ops: it runs inside
    a compiled function of any backend.
    """
    if _diagonal_conv(node):
        return _diagonal_objective(keras.Model(graph.input, node.inputs[0]), node.layer, preprocess)
    if _sliced_conv(node) and getattr(node.layer.activation, "__name__", None) in _ELEMENTWISE_ACTIVATIONS:
        layer = node.layer
        trunk = keras.Model(graph.input, node.inputs[0])

        def objective(x: Any, filters: Any) -> tuple[Any, Any]:
            feats = trunk(preprocess(x), training=False)
            kernel = ops.take(layer.kernel, filters, axis=3)
            out = ops.conv(feats, kernel, strides=layer.strides, padding=layer.padding,
                           data_format="channels_last", dilation_rate=layer.dilation_rate)
            if layer.use_bias:
                out = out + ops.take(layer.bias, filters, axis=0)
            own = _own_channel(out)  # (n, h, w)
            return _gain_and_activation(ops.transpose(own, (1, 2, 0)), layer.activation, axes=(0, 1))

        return objective

    model = keras.Model(graph.input, node.map)  # a token layer: its patch grid (the special tokens left out)

    def objective(x: Any, filters: Any) -> tuple[Any, Any]:
        out = model(preprocess(x), training=False)
        axes = tuple(range(1, len(out.shape) - 1))
        means = ops.mean(out, axis=axes) if axes else out
        act = ops.take_along_axis(means, ops.expand_dims(ops.cast(filters, "int32"), 1), axis=1)[:, 0]
        return act, act

    return objective


def _own_channel(out: Any) -> Any:
    """out[i, ..., i] for each image i of (n, h, w, n) maps: each picture's own filter."""
    n = int(out.shape[0])
    index = ops.reshape(ops.arange(n, dtype="int32"), (n, 1, 1, 1))
    return ops.take_along_axis(out, index, axis=3)[..., 0]


def _gain_and_activation(z: Any, activation: Callable, axes: tuple[int, ...]) -> tuple[Any, Any]:
    """(what the ascent climbs, the mean activation) of pre-activation maps z.

    The ascent climbs the mean activation, as the book does. A ReLU unit that is silent at every
    pixel has no gradient there, so it climbs its largest pre-activation instead (the place closest
    to firing) until it fires. Climbing the mean pre-activation would not do: for a unit whose
    weights sum below zero (a dark or edge detector) it darkens the whole picture, which never
    fires it inside the pixel range.
    """
    act = ops.mean(activation(z), axis=axes)
    if getattr(activation, "__name__", "") not in ("relu", "relu6"):
        return act, act
    return ops.where(act > 0.0, act, ops.max(z, axis=axes)), act


def divide_no_nan(a: Any, b: Any) -> Any:
    """a / b, and 0 where b is 0 (no NaN, no inf, and a safe gradient)."""
    zero = b == 0.0
    return ops.where(zero, 0.0, a / ops.where(zero, 1.0, b))


def unit_rms(grads: Any) -> Any:
    """Each image's gradient scaled to RMS 1, whatever its magnitude; an all-zero gradient stays zero.

    The book divides by RMS + 1e-5, which assumes gradients far above 1e-5. A mean over every
    position of an early layer, behind an x/255 preprocessing, gives per-pixel gradients near 1e-7:
    the 1e-5 then swamps them and a step of 3 pixel levels moves 0.07. Scaling by the largest
    magnitude first keeps the squares away from float32 underflow.
    """
    axes = tuple(range(1, len(grads.shape)))
    peak = ops.max(ops.abs(grads), axis=axes, keepdims=True)
    scaled = divide_no_nan(grads, peak)
    rms = ops.sqrt(ops.mean(ops.square(scaled), axis=axes, keepdims=True))
    return divide_no_nan(scaled, rms)


def make_step(objective: Callable, count: int, size: int, channels: int,
              variables: Sequence[Any] = ()) -> tuple[Callable, Callable]:
    """Compile one ascent step and the activation read-out for `count` images of size x size.

    `variables`: every Keras variable the objective reads (the model's weights), passed to
    `backend.function`. The functions compile once for this shape (the depthwise target needs a
    static filter count); the caller keeps them in a bounded cache, so dropped ones free their graphs.
    step(x, filters, step_size) -> (x + step_size * unit-RMS gradient, activation);
    measure(x, filters) -> activation.
    """

    def gain(x: Any, filters: Any) -> tuple[Any, Any]:
        g, act = objective(x, filters)
        return ops.sum(g), act

    grad = bk.value_and_grad(gain)

    def step(x: Any, filters: Any, step_size: Any) -> tuple[Any, Any]:
        _, act, g = grad(x, filters)
        return x + step_size * unit_rms(g), act

    def measure(x: Any, filters: Any) -> Any:
        return objective(x, filters)[1]

    return compiled(step, variables), compiled(measure, variables)


def compiled(fn: Callable, variables: Sequence[Any]) -> Callable:
    """`backend.function(fn)`, given a fresh wrapper: TensorFlow counts retracing per code object and would
    warn the user after a few new steps (each compiled step is a new closure of the same code, traced once).

    The result keeps `fn` as `.python_function` (bench/bench_filters.py counts the FLOPs of its graph).
    """
    function = bk.function(functools.partial(fn), variables)
    function.python_function = fn
    return function


NOISE_PER_STEP = 20.0  # the book's start noise (20 levels) for its step of 1 level
NOISE_MAX = 127.0  # and never more than keeps the start inside the pixel range (128 + 127 = 255)


def start_images(n: int, size: int, channels: int, seed: int, step_size: float = 1.0) -> np.ndarray:
    """The book's start, per filter: grey (128) plus uniform noise of 20 levels per level of step.

    With the book's step of 1 this is its start exactly. A model given a larger step because one level
    is small to it (the demo sees x/255) gets its noise scaled alike: with 20 levels of noise and 3-level
    steps, a first layer's ReLU units all stay on one side of zero, the ascent only shifts the mean colour
    and an edge detector never shows its edge. The noise never leaves the pixel range.
    """
    rng = np.random.default_rng(seed)
    amplitude = np.float32(min(NOISE_PER_STEP * step_size, NOISE_MAX))
    noise = rng.random((n, size, size, channels), dtype=np.float32) * amplitude
    return (noise + 128.0).astype(np.float32)


def ascend(step: Callable, measure: Callable, x0: np.ndarray, filters: Sequence[int], steps: int,
           step_size: float, progress: Progress | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the ascent loop; returns (pixels, start activation, final activation) as numpy."""
    x = ops.convert_to_tensor(np.asarray(x0, np.float32))
    f = ops.convert_to_tensor(np.asarray(list(filters), np.int32))
    size = ops.convert_to_tensor(np.float32(step_size))
    start = None
    for i in range(steps):
        x, act = step(x, f, size)
        if start is None or progress is not None:
            act = bk.to_numpy(act)  # the step has run: progress tells the truth on asynchronous backends
            start = act if start is None else start
        report(progress, i + 1, steps, "Filter patterns", "steps")
    final = bk.to_numpy(measure(x, f))
    if start is None:
        start = final
    return bk.to_numpy(x), start, final


def deprocess(x: np.ndarray) -> np.ndarray:
    """The book's display transform, per image: standardise, std 0.1 around 0.5, to uint8."""
    x = x.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / (std + 1e-5) * 0.1 + 0.5
    out = (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out
