"""Dataset examples: for every channel of a layer, the k images that excite it most, and where.

Images stream through the model truncated at the layer in batches. One compiled function
returns, per image and channel, only the spatial maximum and its (first) position, so nothing
of size H x W x C leaves TensorFlow; a running top-k merge per batch keeps memory independent
of how many images are seen. Each example's receptive field, computed from the traced graph's
kernel sizes, strides, dilations and paddings, gives the crop of the input that the maximum
depends on.
"""

from __future__ import annotations

import functools
import math
import os
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from .. import limits
from ..errors import Cancelled, ConvVizError
from . import checks
from .graph import CONV_TYPES, POOL_TYPES, FlatGraph, Node
from .inspector import MAX_FREE_SIDE, Inspector

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MAX_REASONS = 20  # skipped images whose reason is kept (the count has them all)
_FNS_PER_INSPECTOR = 4  # compiled layer functions kept per Inspector (oldest dropped first)
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

Progress = Callable[[int, "int | None"], Any]


# ----- receptive field ----------------------------------------------------------------------------
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


# ----- the result -----------------------------------------------------------------------------------
@dataclass
class TopExamples:
    """For each channel (row), the k images (stream indices) with the highest maximum activation.

    `values` are descending per row; ties go to the earlier image. `positions` are the (row, col)
    of each maximum in the feature map. Rows hold min(k, count) examples. For a model that takes
    any size, `receptive_field` assumes sizes divisible by the strides; `crop` uses each image's own.
    """

    indices: np.ndarray  # int64 (channels, k): position of the image in the input stream
    values: np.ndarray  # float32 (channels, k): the image's maximum activation in the channel
    positions: np.ndarray  # int32 (channels, k, 2): where that maximum is, feature-map (row, col)
    layer: str
    channels: tuple[int, ...]
    count: int  # images seen (read and run through the model)
    skipped: int  # images that could not be read and were left out
    skip_reasons: list[str]  # the first few, "image 17: why"
    receptive_field: ReceptiveField
    _prepare: Callable[[Any], np.ndarray] = field(repr=False, compare=False, default=np.asarray)
    _recursive: bool = field(repr=False, compare=False, default=False)
    _field_at: Callable[[tuple[int, int]], ReceptiveField] | None = field(repr=False, compare=False, default=None)

    def _field_for(self, hw: tuple[int, int]) -> ReceptiveField:
        """The field for an image of this size (it differs by size only for a model that takes any size)."""
        return self.receptive_field if self._field_at is None else self._field_at(tuple(int(v) for v in hw))

    @property
    def k(self) -> int:
        """Examples kept per channel."""
        return int(self.indices.shape[1])

    def crop(self, i: int, j: int, image: Any) -> np.ndarray:
        """The receptive-field crop (uint8 RGB) of row i's j-th example, cut from that example's image.

        `image` is the stream's item at `indices[i, j]` (array, path, PIL image or bytes); it is
        prepared as the model saw it, and the crop is clamped to the image.
        """
        self._check_example(i, j)
        rgb = self._prepare(image)
        row, col = (int(v) for v in self.positions[i, j])
        top, left, bottom, right = self._field_for(rgb.shape[:2]).box(row, col, rgb.shape[:2])
        return rgb[top:bottom, left:right].copy()

    def crops(self, source: Any) -> list[list[np.ndarray]]:
        """Every example's crop, row by row, reading only the needed images of `source`.

        `source` is the same kind of input given to top_examples, in the same order (a generator
        must be a fresh one).
        """
        wanted = {int(v) for v in self.indices.ravel()}
        found: dict[int, np.ndarray] = {}
        for index, item in _reader(source, self._recursive).items():
            if index in wanted:
                found[index] = self._prepare(item)
                if len(found) == len(wanted):
                    break
        missing = sorted(wanted - set(found))
        if missing:
            raise ConvVizError(
                f"The source given to crops() does not hold images {missing[:10]} that top_examples saw: "
                "pass the same images in the same order (a fresh generator, not a used one)."
            )
        return [[self.crop(i, j, found[int(self.indices[i, j])]) for j in range(self.k)]
                for i in range(len(self.channels))]

    def _check_example(self, i: int, j: int) -> None:
        """Row and rank must exist."""
        if not 0 <= int(i) < len(self.channels) or not 0 <= int(j) < self.k:
            raise ConvVizError(
                f"No example ({i}, {j}): rows 0..{len(self.channels) - 1} (one per channel), ranks 0..{self.k - 1}."
            )


# ----- reading the images -----------------------------------------------------------------------------
class _Reader:
    """Items of an image source with their stream index; `total` is their number when known."""

    total: int | None = None

    def items(self) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError


class _ArrayReader(_Reader):
    """An (N, H, W, C) array: each image is one item."""

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.total = int(array.shape[0])

    def items(self) -> Iterator[tuple[int, Any]]:
        for i in range(self.total):
            yield i, self.array[i]


class _IterReader(_Reader):
    """Any iterable of images (arrays, paths, PIL images, bytes)."""

    def __init__(self, iterable: Iterable) -> None:
        self.iterable = iterable
        try:
            self.total = len(iterable)  # type: ignore[arg-type]
        except TypeError:
            self.total = None

    def items(self) -> Iterator[tuple[int, Any]]:
        yield from enumerate(self.iterable)


class _FolderReader(_Reader):
    """Image files of a folder (and its sub-folders when recursive), in sorted path order."""

    def __init__(self, folder: Path, recursive: bool) -> None:
        pattern = "**/*" if recursive else "*"
        self.files = sorted((p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                            key=lambda p: p.relative_to(folder).as_posix())
        if not self.files:
            raise ConvVizError(
                f"The folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)})"
                f"{'' if recursive else '; pass recursive=True to look in its sub-folders'}."
            )
        self.total = len(self.files)

    def items(self) -> Iterator[tuple[int, Any]]:
        yield from enumerate(self.files)


class _DatasetReader(_Reader):
    """A tf.data.Dataset of images or (image, label) pairs, batched or not."""

    def __init__(self, dataset: tf.data.Dataset) -> None:
        self.dataset = dataset
        spec = dataset.element_spec
        image_spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if not isinstance(image_spec, tf.TensorSpec):
            raise ConvVizError(
                f"A dataset's elements must be images or (image, label) pairs; got elements {spec}. "
                "Map it to images first, e.g. dataset.map(lambda d: d['image'])."
            )
        rank = image_spec.shape.rank
        if rank not in (2, 3, 4):
            raise ConvVizError(
                f"A dataset's images must be (H, W[, C]) or batches (B, H, W, C); got shape {image_spec.shape}."
            )
        self.batched = rank == 4
        cardinality = int(dataset.cardinality())
        self.total = cardinality if cardinality >= 0 and not self.batched else None

    def items(self) -> Iterator[tuple[int, Any]]:
        index = 0
        elements = iter(self.dataset)
        while True:
            try:
                element = next(elements)
            except StopIteration:
                return
            except tf.errors.OpError as err:  # the pipeline itself failed (a file it could not decode)
                raise ConvVizError(
                    f"The dataset failed after {index} images: {_first_line(err)} Skip bad elements inside the "
                    "pipeline with dataset.ignore_errors(), or pass the files as a folder (bad ones are skipped)."
                ) from err
            image = element[0] if isinstance(element, (tuple, list)) else element
            array = image.numpy()
            for one in (array if self.batched else (array,)):
                yield index, one
                index += 1


def _reader(images: Any, recursive: bool) -> _Reader:
    """Recognise the kind of image source, refusing what cannot be streamed."""
    if images is None:
        raise ConvVizError("images is None: pass an (N, H, W, 3) array, an iterable of images, "
                           "a tf.data.Dataset or a folder of image files.")
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise ConvVizError(
                f"{folder} is not a folder. Pass a folder of image files, or a list of image paths "
                "(a single image goes in a list: [path])."
            )
        return _FolderReader(folder, recursive)
    if isinstance(images, tf.data.Dataset):
        return _DatasetReader(images)
    if isinstance(images, tf.Tensor):
        images = images.numpy()
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise ConvVizError(
                f"An image array must be a stack (N, H, W, C); got shape {images.shape}. "
                "A single image goes in a list: [image]."
            )
        if images.shape[0] == 0:
            raise ConvVizError("The image array holds no images (N = 0).")
        return _ArrayReader(images)
    if isinstance(images, (bytes, bytearray, dict)) or not isinstance(images, Iterable):
        raise ConvVizError(
            f"Cannot stream images from a {type(images).__name__}: pass an (N, H, W, 3) array, an iterable "
            "of images (arrays, paths, PIL images, bytes), a tf.data.Dataset or a folder of image files."
        )
    return _IterReader(images)


# ----- checking the arguments ---------------------------------------------------------------------------
def _check_int(name: str, value: Any, low: int = 1) -> int:
    """An integral argument >= low (bools and floats with fractions refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer, float, np.floating)) \
            or not float(value).is_integer() or int(value) < low:
        raise ConvVizError(f"{name} must be an integer >= {low}; got {value!r}.")
    return int(value)


def _check_channels(channels: Any, node: Node) -> tuple[int, ...]:
    """None (every channel) or distinct channel indices of the layer."""
    total = node.channels
    if channels is None:
        return tuple(range(total))
    if isinstance(channels, (int, np.integer)) and not isinstance(channels, bool):
        channels = [channels]
    try:
        chosen = list(channels)
    except TypeError:
        raise ConvVizError(f"channels must be None, an index or a list of indices; got {channels!r}.") from None
    if not chosen:
        raise ConvVizError("channels is empty: give at least one channel index, or None for all.")
    bad = [c for c in chosen if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or not 0 <= c < total]
    if bad:
        raise ConvVizError(
            f"Channel indices {bad[:10]} are not channels of layer {node.name!r}, which has {total} (0..{total - 1})."
        )
    if len(set(int(c) for c in chosen)) != len(chosen):
        raise ConvVizError(f"channels lists a channel twice: {chosen[:20]}. Give each channel once.")
    return tuple(int(c) for c in chosen)


def _check_layer(inspector: Inspector, layer: Any) -> Node:
    """The layer must exist and have a spatial feature map (H, W, C)."""
    if not isinstance(layer, str):
        raise ConvVizError(f"layer must be a layer name (str); got {type(layer).__name__}. "
                           f"Conv/pool layers: {', '.join(inspector.layers[:20])}.")
    node = inspector.layer(layer)
    if not node.is_spatial:
        raise ConvVizError(
            f"Layer {node.name!r} ({type(node.layer).__name__}, output {node.shape}) has no spatial feature "
            f"map, so it has no position to find: {node.why_not_a_map()}. Choose a conv or pooling layer such as "
            f"{inspector.layers[-1]!r}."
        )
    return node


def _per_image_bytes(inspector: Inspector, node: Node) -> float:
    """Memory one image takes in a batch: uint8 + float input copies and every activation up to the layer."""
    hw = inspector.input_size or (MAX_FREE_SIDE, MAX_FREE_SIDE)
    pixels = hw[0] * hw[1]
    total = pixels * 3 * (1 + 4 + 4)  # uint8 buffer, float cast, preprocessed copy
    for dims in _shapes_up_to(inspector, node, hw):
        if None in dims:
            dims = (*hw, dims[-1] or 1) if len(dims) == 3 else tuple(d or 1 for d in dims)  # an upper bound
        total += 4 * math.prod(int(d) for d in dims)
    return float(total)


def _shapes_up_to(inspector: Inspector, node: Node, hw: tuple[int, int]) -> list[tuple]:
    """Output shapes (batch left out) of every layer up to `node`; a free-size model is traced at the largest size."""
    nodes = inspector.graph.nodes[: node.index + 1]
    if inspector.input_size is None:
        try:
            nodes = inspector.traced(tuple(hw), node.name).nodes
        except Exception:  # noqa: BLE001 - only an estimate: fall back to full-resolution maps
            pass
    return [tuple(n.shape[1:]) for n in nodes]


# ----- the compiled readout ------------------------------------------------------------------------------
def _readout_fn(inspector: Inspector, node: Node) -> Any:
    """f(uint8 batch) -> every channel's spatial max (B, C), its flat position (B, C), the map's (H, W), finite (B,).

    TensorFlow's ArgMax keeps the first of equal maxima (the Eigen reducer breaks ties by index),
    so a flat or dead channel reports cell (0, 0), as numpy's argmax does.
    """
    with inspector._lock:  # two threads asking at once build it once
        per = _COMPILED.setdefault(inspector, {})
        if node.name not in per:
            if len(per) >= _FNS_PER_INSPECTOR:
                per.pop(next(iter(per)))
            per[node.name] = _build_readout(inspector, node)
        return per[node.name]


def _build_readout(inspector: Inspector, node: Node) -> Any:
    """Compile the readout of one layer (see _readout_fn)."""
    model = keras.Model(inspector.graph.input, node.map)
    preprocess = inspector.preprocess_fn
    gray = inspector.channels == 1
    hw = inspector.input_size or (None, None)

    @tf.function(input_signature=[tf.TensorSpec([None, *hw, 3], tf.uint8)])
    def readout(x: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor, tf.Tensor]:
        xf = tf.cast(x, tf.float32)
        if gray:
            xf = tf.tensordot(xf, tf.constant([0.299, 0.587, 0.114], tf.float32), axes=[[3], [0]])[..., None]
        feats = model(preprocess(xf), training=False)
        shape = tf.shape(feats)
        flat = tf.reshape(feats, [shape[0], shape[1] * shape[2], shape[3]])
        finite = tf.reduce_all(tf.math.is_finite(tf.reduce_sum(flat, axis=1)), axis=1)  # max may hide a NaN
        return tf.reduce_max(flat, axis=1), tf.argmax(flat, axis=1, output_type=tf.int32), shape[1:3], finite

    return readout


# ----- the running top-k --------------------------------------------------------------------------------
def batch_peaks(readout: Any, node: Node, index: np.ndarray, images: np.ndarray,
                columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One batch's peak value and position per chosen channel, and the grid's width; NaN/inf is an error."""
    peak, where, grid, finite = readout(tf.constant(images))
    peak, where, finite = peak.numpy()[:, columns], where.numpy()[:, columns], finite.numpy()
    if not finite.all():
        bad = int(index[np.argmin(finite)])
        raise ConvVizError(
            f"Layer {node.name!r} gave a NaN or infinite activation for image {bad}: the model's weights or "
            "preprocessing are broken (check preprocess= and that the model loads correctly).")
    return peak, where, int(grid[1])


def _order_keys(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """uint64 keys that sort like (value, then earlier image first): unique, so selection is deterministic."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 becomes +0.0
    ordered = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    return (ordered << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - index.astype(np.uint64))


class _TopK:
    """The k best (key, image, value, position) per channel, merged batch by batch."""

    def __init__(self, channels: int, k: int) -> None:
        self.k = k
        self.keys = np.zeros((channels, k), np.uint64)  # 0 sorts below every real key: an empty slot
        self.index = np.full((channels, k), -1, np.int64)
        self.values = np.full((channels, k), -np.inf, np.float32)
        self.flat = np.zeros((channels, k), np.int64)
        self.cols = np.ones((channels, k), np.int64)  # feature-map width of each example (free-size models)

    def merge(self, index: np.ndarray, peak: np.ndarray, where: np.ndarray, width: int) -> None:
        """Merge one batch: `index` (B,) stream indices, `peak`/`where` (B, C) maxima and flat argmaxes."""
        n_ch = peak.shape[1]
        idx = np.broadcast_to(index[None, :], (n_ch, index.size))
        keys = np.concatenate([self.keys, _order_keys(peak.T, idx)], axis=1)
        cand = keys.shape[1]
        pick = np.argpartition(keys, cand - self.k, axis=1)[:, cand - self.k:]
        take = lambda old, new: np.take_along_axis(np.concatenate([old, new], axis=1), pick, axis=1)  # noqa: E731
        self.keys = np.take_along_axis(keys, pick, axis=1)
        self.index = take(self.index, idx)
        self.values = take(self.values, peak.T.astype(np.float32))
        self.flat = take(self.flat, where.T.astype(np.int64))
        self.cols = take(self.cols, np.full(idx.shape, width, np.int64))

    def result(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices, values, positions), best first, min(k, count) per channel."""
        order = np.argsort(self.keys, axis=1)[:, ::-1]  # keys are unique: a full order
        keep = order[:, : min(self.k, count)]
        pick = lambda a: np.take_along_axis(a, keep, axis=1)  # noqa: E731
        flat, cols = pick(self.flat), pick(self.cols)
        positions = np.stack([flat // cols, flat % cols], axis=-1).astype(np.int32)
        return pick(self.index), pick(self.values), positions


# ----- streaming -----------------------------------------------------------------------------------------
class _Batches:
    """Prepared uint8 images grouped into batches of one size (a free-size model may get several sizes)."""

    def __init__(self, inspector: Inspector, batch_size: int) -> None:
        self.inspector = inspector
        self.batch_size = batch_size
        self.skipped = 0
        self.reasons: list[str] = []
        self.consumed = 0

    def _prepare(self, index: int, item: Any) -> np.ndarray | None:
        """The image as the model sees it, or None (counted, with the reason) when it cannot be read."""
        try:
            rgb = self.inspector.prepare(item)
            if rgb.ndim != 3 or rgb.shape[-1] != 3:
                raise ConvVizError(f"prepared image has shape {rgb.shape}")
            return rgb
        except MemoryError:
            raise
        except Exception as err:  # noqa: BLE001 - one bad image must not stop a stream of thousands
            self.skipped += 1
            if len(self.reasons) < MAX_REASONS:
                self.reasons.append(f"image {index}: {type(err).__name__}: {_first_line(err)}")
            return None

    def __call__(self, reader: _Reader) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (stream indices, uint8 batch) until the source ends."""
        if isinstance(reader, _ArrayReader) and self._ready(reader.array):
            yield from self._slices(reader.array)
            return
        images: list[np.ndarray] = []
        index: list[int] = []
        for i, item in reader.items():
            self.consumed = i + 1
            rgb = self._prepare(i, item)
            if rgb is None:
                continue
            if images and rgb.shape != images[0].shape:
                yield np.array(index, np.int64), np.stack(images)
                images, index = [], []
            images.append(rgb)
            index.append(i)
            if len(images) == self.batch_size:
                yield np.array(index, np.int64), np.stack(images)
                images, index = [], []
        if images:
            yield np.array(index, np.int64), np.stack(images)

    def _ready(self, array: np.ndarray) -> bool:
        """An array already as the model sees it (uint8 RGB at its size) needs no per-image work."""
        size = self.inspector.input_size
        return array.dtype == np.uint8 and array.shape[-1] == 3 and size is not None and array.shape[1:3] == size

    def _slices(self, array: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Batches cut straight from a ready array."""
        for start in range(0, array.shape[0], self.batch_size):
            stop = min(start + self.batch_size, array.shape[0])
            self.consumed = stop
            yield np.arange(start, stop, dtype=np.int64), np.ascontiguousarray(array[start:stop])


def _first_line(err: BaseException) -> str:
    """An exception's message, first line, shortened."""
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return text if len(text) <= 160 else text[:157] + "..."


def examples_for(inspector: Inspector, layer: str, images: Any, *, k: int = 9, channels: Any = None,
                 batch_size: int = 64, progress: Progress | None = None, recursive: bool = False) -> TopExamples:
    """top_examples on a bound Inspector: every argument checked, then one streaming pass."""
    node = _check_layer(inspector, layer)
    k = checks.EXAMPLES.check(_check_int("k", k), "k")
    chosen = _check_channels(channels, node)
    batch_size = checks.BATCH_SIZE.check(_check_int("batch_size", batch_size), "batch_size")
    if progress is not None and not callable(progress):
        raise ConvVizError(f"progress must be a function progress(done, total) or None; got {type(progress).__name__}.")
    if inspector.channels not in (1, 3):
        raise ConvVizError(
            f"The model takes {inspector.channels} channels; only RGB (3) or grayscale (1) images are supported.")
    reader = _reader(images, bool(recursive))
    keep = k if reader.total is None else max(1, min(k, reader.total))  # slots that can ever be filled
    fixed = len(chosen) * keep * 40.0  # the running top-k: key, index, value, position, width per slot
    limits.check_fits(fixed, what=f"Keeping k={k} examples for each of {len(chosen)} channels",
                      lower="k or the number of channels")
    batch_size = limits.fit_batch(_per_image_bytes(inspector, node), batch_size, fixed=fixed,
                                  what="images in a batch", lower="batch_size")
    field_ = receptive_field(inspector.graph, node)
    readout = _readout_fn(inspector, node)
    columns = np.array(chosen, np.int64)
    top = _TopK(len(chosen), keep)
    batches = _Batches(inspector, batch_size)
    count = 0
    for index, batch in batches(reader):
        top.merge(index, *batch_peaks(readout, node, index, batch, columns))
        count += index.size
        _report(progress, batches.consumed, reader.total)
    if count == 0 and batches.skipped == 0:
        raise ConvVizError("The image stream held no images, so there are no examples.")
    if count == 0:
        raise ConvVizError(
            f"None of the {batches.skipped} images could be read, so there are no examples. "
            f"First reasons: {'; '.join(batches.reasons[:3])}.")
    indices, values, positions = top.result(count)
    field_at = None
    if inspector.input_size is None:
        field_at = functools.lru_cache(maxsize=64)(lambda hw: receptive_field(inspector.graph, node, hw))
    return TopExamples(indices, values, positions, node.name, chosen, count, batches.skipped,
                       batches.reasons, field_, inspector.prepare, bool(recursive), field_at)


def _report(progress: Progress | None, done: int, total: int | None) -> None:
    """Tell the caller how far we are; False from the callback (or Cancelled raised there) stops the pass."""
    if progress is not None and progress(done, total) is False:
        raise Cancelled(f"Dataset examples cancelled after {done} images.")


def top_examples(model: Any, layer: str, images: Any, k: int = 9, channels: Sequence[int] | int | None = None,
                 batch_size: int = 64, progress: Progress | None = None, preprocess: Any = None,
                 output: Any = None, recursive: bool = False, grid: tuple[int, int] | None = None) -> TopExamples:
    """For every channel of `layer`, the k images of `images` with the highest maximum activation, and where.

    `images`: an (N, H, W, C) array, an iterable of images (arrays, paths, PIL images, bytes), a
    tf.data.Dataset (images or (image, label), batched or not) or a folder of image files
    (`recursive=True` includes sub-folders). Unreadable images are skipped and counted.
    `progress(done, total or None)` is called after each batch; False (or raising Cancelled) stops.
    `output` names the model output to bind, for models with several; `grid=(h, w)` the patch grid of a
    vision transformer's token layers (default: found from the model).
    """
    from .api import inspector_for

    kwargs = {} if output is None else {"output": output}
    inspector = inspector_for(model, preprocess, grid=grid, **kwargs)
    return examples_for(inspector, layer, images, k=k, channels=channels, batch_size=batch_size,
                        progress=progress, recursive=recursive)
