"""Filter patterns: gradient ascent in input space, all requested filters in one batch.

The book's recipe (grey + noise start, L2-normalised gradient, 40 steps of size 1), with less
work per step: the graph stops at the target layer, a Conv2D target computes for each image
only that image's own filter (a depthwise "diagonal" convolution, 1 output channel per image
instead of all of them), and only the input gradient is taken (TensorFlow prunes the weight
gradients from the compiled step). Grappler already fuses conv + bias + ReLU in the trunk.
Measured in bench/bench_filters.py; see bench/README.md for what was tried and kept.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ..errors import Cancelled, ConvVizError
from .checks import filter_indices
from .graph import FlatGraph, Node

Progress = Callable[[int, int], Any]


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
    padding = str(layer.padding).upper()

    def objective(x: tf.Tensor, filters: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        feats = trunk(preprocess(x), training=False)  # (n, h, w, C)
        filters = tf.cast(filters, tf.int32)
        kernel = tf.cast(tf.convert_to_tensor(layer.kernel), feats.dtype)
        kernel = tf.gather(tf.transpose(kernel, [3, 0, 1, 2]), filters)  # (n, kh, kw, C), rows contiguous
        shape = tf.shape(feats)
        n, h, w = shape[0], shape[1], shape[2]
        side = tf.reshape(tf.transpose(feats, [1, 2, 0, 3]), tf.stack([1, h, w, n * cin]))
        depthwise = tf.reshape(tf.transpose(kernel, [1, 2, 0, 3]), [kh, kw, -1, 1])
        out = tf.nn.depthwise_conv2d(side, depthwise, strides=[1, stride, stride, 1], padding=padding,
                                     dilations=[rate, rate])  # (1, oh, ow, n * C)
        out_shape = tf.shape(out)
        out = tf.reduce_sum(tf.reshape(out, tf.stack([out_shape[1], out_shape[2], n, cin])), axis=-1)
        if layer.use_bias:
            out = out + tf.gather(tf.cast(tf.convert_to_tensor(layer.bias), out.dtype), filters)
        return _gain_and_activation(out, layer.activation, axes=[0, 1])  # out: (oh, ow, n)

    return objective


def build_objective(graph: FlatGraph, node: Node, preprocess: Callable[[Any], Any]) -> Callable:
    """Return f(pixels, filters) -> (gain, activation), each (n,), for image i's own filter i.

    `activation` is the filter's mean activation; `gain` is what the ascent climbs (the same,
    except for silent ReLU units, see _gain_and_activation).
    """
    if _diagonal_conv(node):
        return _diagonal_objective(keras.Model(graph.input, node.inputs[0]), node.layer, preprocess)
    if _sliced_conv(node) and getattr(node.layer.activation, "__name__", None) in _ELEMENTWISE_ACTIVATIONS:
        layer = node.layer
        trunk = keras.Model(graph.input, node.inputs[0])

        def objective(x: tf.Tensor, filters: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            feats = trunk(preprocess(x), training=False)
            kernel = keras.ops.take(layer.kernel, filters, axis=3)
            out = keras.ops.conv(feats, kernel, strides=layer.strides, padding=layer.padding,
                                 data_format="channels_last", dilation_rate=layer.dilation_rate)
            if layer.use_bias:
                out = out + keras.ops.take(layer.bias, filters, axis=0)
            n = tf.shape(out)[0]
            own = tf.transpose(tf.gather(out, tf.range(n), axis=3, batch_dims=1), [1, 2, 0])  # (h, w, n)
            return _gain_and_activation(own, layer.activation, axes=[0, 1])

        return objective

    model = keras.Model(graph.input, node.map)  # a token layer: its patch grid (the special tokens left out)

    def objective(x: tf.Tensor, filters: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        out = model(preprocess(x), training=False)
        axes = list(range(1, len(out.shape) - 1))
        means = tf.reduce_mean(out, axis=axes) if axes else out
        act = tf.gather(means, filters[:, None], batch_dims=1)[:, 0]
        return act, act

    return objective


def _gain_and_activation(z: tf.Tensor, activation: Callable, axes: list[int]) -> tuple[tf.Tensor, tf.Tensor]:
    """(what the ascent climbs, the mean activation) of pre-activation maps z.

    The ascent climbs the mean activation, as the book does. A ReLU unit that is silent at every
    pixel has no gradient there, so it climbs its largest pre-activation instead (the place closest
    to firing) until it fires. Climbing the mean pre-activation would not do: for a unit whose
    weights sum below zero (a dark or edge detector) it darkens the whole picture, which never
    fires it inside the pixel range.
    """
    act = tf.reduce_mean(activation(z), axis=axes)
    if getattr(activation, "__name__", "") not in ("relu", "relu6"):
        return act, act
    return tf.where(act > 0.0, act, tf.reduce_max(z, axis=axes)), act


def unit_rms(grads: tf.Tensor) -> tf.Tensor:
    """Each image's gradient scaled to RMS 1, whatever its magnitude; an all-zero gradient stays zero.

    The book divides by RMS + 1e-5, which assumes gradients far above 1e-5. A mean over every
    position of an early layer, behind an x/255 preprocessing, gives per-pixel gradients near 1e-7:
    the 1e-5 then swamps them and a step of 3 pixel levels moves 0.07. Scaling by the largest
    magnitude first keeps the squares away from float32 underflow.
    """
    peak = tf.reduce_max(tf.abs(grads), axis=[1, 2, 3], keepdims=True)
    scaled = tf.math.divide_no_nan(grads, peak)
    rms = tf.sqrt(tf.reduce_mean(tf.square(scaled), axis=[1, 2, 3], keepdims=True))
    return tf.math.divide_no_nan(scaled, rms)


def make_step(objective: Callable, count: int, size: int, channels: int) -> tuple[Callable, Callable]:
    """Compile one ascent step and the activation read-out for exactly `count` images of size x size.

    Each is traced once for that exact signature (the depthwise target needs a static filter
    count) and called as a concrete function: no retracing, no per-call signature matching.
    The caller keeps them in a bounded cache, so dropped ones free their graphs.
    """
    images = tf.TensorSpec([count, size, size, channels], tf.float32)
    filters = tf.TensorSpec([count], tf.int32)

    def step(x: tf.Tensor, filters: tf.Tensor, step_size: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            tape.watch(x)
            gain, act = objective(x, filters)
            loss = tf.reduce_sum(gain)
        return x + step_size * unit_rms(tape.gradient(loss, x)), act

    def measure(x: tf.Tensor, filters: tf.Tensor) -> tf.Tensor:
        return objective(x, filters)[1]

    return (tf.function(step).get_concrete_function(images, filters, tf.TensorSpec([], tf.float32)),
            tf.function(measure).get_concrete_function(images, filters))


def bucket(n: int) -> int:
    """The batch n pictures are padded to: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, ... (< 1.5x n).

    Each batch size is one compiled graph; a few sizes serve every filter count.
    """
    size = 1
    while True:
        for b in (size, size * 3 // 2):
            if b >= n:
                return b
        size *= 2


def bucket_below(n: int) -> int:
    """The largest compiled batch size (see `bucket`) that is at most n (n >= 1)."""
    best = 1
    while bucket(best + 1) <= n:
        best = bucket(best + 1)
    return best


def pad_batch(a: np.ndarray, size: int) -> np.ndarray:
    """`a` with copies of its first row appended up to `size` rows (their results are dropped)."""
    extra = size - len(a)
    return a if extra <= 0 else np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


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
    """Run the ascent loop; returns (pixels, start activation, final activation)."""
    x = tf.constant(x0)
    f = tf.constant(list(filters), tf.int32)
    size = tf.constant(step_size, tf.float32)
    start = None
    for i in range(steps):
        x, act = step(x, f, size)
        if start is None:
            start = act.numpy()
        if progress is not None and progress(i + 1, steps) is False:
            raise Cancelled(f"Filter patterns cancelled after {i + 1} of {steps} steps.")
    final = measure(x, f).numpy()
    if start is None:
        start = final
    return x.numpy(), start, final


def deprocess(x: np.ndarray) -> np.ndarray:
    """The book's display transform, per image: standardise, std 0.1 around 0.5, to uint8."""
    x = x.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = x.std(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) / (std + 1e-5) * 0.1 + 0.5
    out = (np.clip(x, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out
