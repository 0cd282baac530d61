"""The dataset-examples engine: a compiled per-batch readout and an exact running top-k per channel.

Images stream through the model truncated at the layer in batches padded to a few compiled sizes. One
compiled function (keras.ops, every backend) returns, per image and channel, only the spatial maximum
and its (first) position, and whether the map is finite, so nothing of size H x W x C leaves the
backend; a running top-k merge per batch keeps memory independent of how many images are seen. The
engine reads the Inspector only through its public members (`model`, `graph`, `layer`, `prepare`,
`input_batch`, `in_graph_input`, `bytes_per_image`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from .. import limits
from ..errors import ConvVizError
from . import backend as bk
from . import checks
from .batching import bucket, bucket_below, pad_batch, report
from .cache import LRUCache
from .graph import Node
from .receptive_field import ReceptiveField, receptive_field
from .sources import Batches, reader

READOUT_CACHE_SIZE = 4  # compiled layer readouts kept per Inspector (least recently used dropped first)
SLOT_BYTES = 40.0  # the running top-k: key, index, value, position and width per kept example

Progress = Callable[[int, "int | None"], Any]
Readout = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]


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
        for index, item in reader(source, self._recursive).items():
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


# ----- checking the arguments ---------------------------------------------------------------------------
def check_layer(inspector: Any, layer: Any) -> Node:
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


def check_channels(channels: Any, node: Node) -> tuple[int, ...]:
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


def check_counts(k: Any, batch_size: Any) -> tuple[int, int]:
    """k (examples per channel) and batch_size, each a whole number within its shared bound."""
    return checks.bounded(k, "k", checks.EXAMPLES), checks.bounded(batch_size, "batch_size", checks.BATCH_SIZE)


def check_progress(progress: Any) -> None:
    """progress is a callable progress(done, total) or None."""
    if progress is not None and not callable(progress):
        raise ConvVizError(f"progress must be a function progress(done, total) or None; got {type(progress).__name__}.")


# ----- the compiled readout ------------------------------------------------------------------------------
def _readout_step(model: keras.Model, prepare: Callable[[Any], Any] | None) -> Callable[[Any], tuple]:
    """f(input batch) -> every channel's spatial max (B, C), its flat position (B, C), the map's (H, W), finite (B,).

    argmax keeps the first of equal maxima on every backend, so a flat or dead channel reports cell
    (0, 0), as numpy's argmax does. A max can hide a NaN: finiteness is read from the map's sum.
    """

    def readout(x: Any) -> tuple[Any, Any, Any, Any]:
        if prepare is not None:
            x = prepare(x)
        feats = ops.cast(model(x, training=False), "float32")
        h, w, c = (int(d) for d in feats.shape[1:])  # static: each input shape compiles once
        flat = ops.reshape(feats, (-1, h * w, c))
        finite = ops.all(ops.isfinite(ops.sum(flat, axis=1)), axis=1)
        grid = ops.convert_to_tensor(np.array([h, w], np.int32))
        return ops.max(flat, axis=1), ops.cast(ops.argmax(flat, axis=1), "int32"), grid, finite

    return readout


class ExamplesEngine:
    """Dataset examples of one Inspector: its compiled per-layer readouts (bounded) and the streaming pass."""

    def __init__(self, inspector: Any) -> None:
        self.inspector = inspector
        self._readouts: LRUCache = LRUCache(READOUT_CACHE_SIZE, collect=True)  # layer name -> compiled readout

    def readout(self, node: Node) -> Readout:
        """f(uint8 images (B, H, W, 3)) -> numpy (peak (B, C), flat argmax (B, C), grid (2,), finite (B,)).

        The batch is padded to a compiled size (`batching.bucket`) and the padding dropped.
        """
        compiled = self._readouts.get_or_create(node.name, lambda: self._build(node))
        ins = self.inspector

        def run(images: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
            n = int(images.shape[0])
            padded = pad_batch(images, bucket(n))
            peak, where, grid, finite = bk.to_numpy(compiled(ins.input_batch(padded)))
            return np.asarray(peak)[:n], np.asarray(where)[:n], np.asarray(grid), np.asarray(finite)[:n]

        return run

    def _build(self, node: Node) -> Any:
        """Compile the readout of one layer (see `readout`)."""
        ins = self.inspector
        model = keras.Model(ins.graph.input, node.map)  # a token layer: its patch grid
        prepare = ins.in_graph_input if ins.preprocess_in_graph else None
        return bk.function(_readout_step(model, prepare), ins.model.weights)

    def batch_size(self, node: Node, requested: int, fixed: float) -> int:
        """The largest compiled batch size up to `requested` whose forward pass to `node` fits the budget."""
        per_image = self.inspector.bytes_per_image(keep={node.name})
        fitted = limits.fit_batch(per_image, requested, fixed=fixed, what="images in a batch", lower="batch_size")
        return bucket_below(fitted)

    def top_examples(self, layer: str, images: Any, *, k: int = 9, channels: Any = None, batch_size: int = 64,
                     progress: Progress | None = None, recursive: bool = False) -> TopExamples:
        """For each channel of `layer`, the k streamed images that excite it most: every argument checked,
        then one streaming pass."""
        ins = self.inspector
        node = check_layer(ins, layer)
        k, batch_size = check_counts(k, batch_size)
        chosen = check_channels(channels, node)
        check_progress(progress)
        ins.check_channels()
        source = reader(images, bool(recursive))
        keep = k if source.total is None else max(1, min(k, source.total))  # slots that can ever be filled
        fixed = len(chosen) * keep * SLOT_BYTES
        limits.check_fits(fixed, what=f"Keeping k={k} examples for each of {len(chosen)} channels",
                          lower="k or the number of channels")
        batches = Batches(ins, self.batch_size(node, batch_size, fixed))
        readout = self.readout(node)
        columns = np.array(chosen, np.int64)
        top = TopK(len(chosen), keep)
        count = 0
        for index, batch in batches(source):
            top.merge(index, *batch_peaks(readout, node, index, batch, columns))
            count += index.size
            report(progress, batches.consumed, source.total, "Dataset examples", "images")
        check_seen(count, batches.skipped, batches.reasons)
        indices, values, positions = top.result(count)
        return TopExamples(indices, values, positions, node.name, chosen, count, batches.skipped, batches.reasons,
                           receptive_field(ins.graph, node), ins.prepare, bool(recursive), field_at(ins, node))


def field_at(inspector: Any, node: Node) -> Callable[[tuple[int, int]], ReceptiveField] | None:
    """Per image size, the field of `node` (a model that takes any size); None for a fixed-size model."""
    if inspector.input_size is not None:
        return None
    return functools.lru_cache(maxsize=64)(lambda hw: receptive_field(inspector.graph, node, hw))


def check_seen(count: int, skipped: int, reasons: list[str]) -> None:
    """A stream must have given at least one readable image."""
    if count == 0 and skipped == 0:
        raise ConvVizError("The image stream held no images, so there are no examples.")
    if count == 0:
        raise ConvVizError(
            f"None of the {skipped} images could be read, so there are no examples. "
            f"First reasons: {'; '.join(reasons[:3])}.")


# ----- the running top-k --------------------------------------------------------------------------------
def batch_peaks(readout: Readout, node: Node, index: np.ndarray, images: np.ndarray,
                columns: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """One batch's peak value and position per chosen channel, and the grid's width; NaN/inf is an error."""
    peak, where, grid, finite = readout(images)
    if not finite.all():
        bad = int(index[np.argmin(finite)])
        raise ConvVizError(
            f"Layer {node.name!r} gave a NaN or infinite activation for image {bad}: the model's weights or "
            "preprocessing are broken (check preprocess= and that the model loads correctly).")
    return peak[:, columns], where[:, columns], int(grid[1])


def _order_keys(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """uint64 keys that sort like (value, then earlier image first): unique, so selection is deterministic."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 becomes +0.0
    ordered = np.where(bits & np.uint32(0x80000000), ~bits, bits | np.uint32(0x80000000)).astype(np.uint64)
    return (ordered << np.uint64(32)) | (np.uint64(0xFFFFFFFF) - index.astype(np.uint64))


class TopK:
    """The k best (key, image, value, position) per channel, merged batch by batch."""

    FIELDS = ("keys", "index", "values", "flat", "cols")

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
        self.merge_table({"keys": _order_keys(peak.T, idx), "index": idx, "values": peak.T.astype(np.float32),
                          "flat": where.T.astype(np.int64), "cols": np.full(idx.shape, width, np.int64)})

    def merge_table(self, part: dict[str, np.ndarray]) -> None:
        """Keep the k largest keys of this table and another's (keys are unique: the same k in any order)."""
        keys = np.concatenate([self.keys, part["keys"]], axis=1)
        cand = keys.shape[1]
        pick = np.argpartition(keys, cand - self.k, axis=1)[:, cand - self.k:]
        for name in self.FIELDS:
            both = np.concatenate([getattr(self, name), part[name]], axis=1)
            setattr(self, name, np.take_along_axis(both, pick, axis=1))

    def table(self) -> dict[str, np.ndarray]:
        """The kept slots as arrays by field name (what a worker sends back)."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def result(self, count: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(indices, values, positions), best first, min(k, count) per channel."""
        order = np.argsort(self.keys, axis=1)[:, ::-1]  # keys are unique: a full order
        keep = order[:, : min(self.k, count)]
        pick = lambda a: np.take_along_axis(a, keep, axis=1)  # noqa: E731
        flat, cols = pick(self.flat), pick(self.cols)
        positions = np.stack([flat // cols, flat % cols], axis=-1).astype(np.int32)
        return pick(self.index), pick(self.values), positions
