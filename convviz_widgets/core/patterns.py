"""The filter-pattern engine: compiled ascent steps per (mode, layer, size, count), chunks, padding.

Requests are split into chunks that fit the memory budget; each chunk is padded to a compiled batch
size so a handful of compiled steps serve every filter count. The engine owns its bounded caches of
objectives and compiled steps, and reads its Inspector only through public members (`layer`, `channels`,
`input_size`, `traced`, `footprint`, `preprocess_fn`, `model`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from keras import ops

from ..errors import ConvVizError
from ..limits import fit_batch
from . import backend as bk
from . import checks
from . import feature_viz as fv
from . import filters as fp
from .batching import Progress, bucket, bucket_below, chunks, pad_batch
from .cache import LRUCache
from .checks import finite
from .graph import FlatGraph, Node

PATTERN_MODES = ("plain", "regularized")
PATTERN_CACHE_SIZE = 4  # compiled steps per (mode, layer, size, filter count), and objectives per layer
MAX_PATTERN_SIZE = checks.PATTERN_SIZE.high  # filter-pattern side; the memory budget usually refuses far smaller first


@dataclass(frozen=True)
class PatternChunk:
    """One chunk's results: uint8 pictures, and each filter's activation at the start and the end."""

    images: np.ndarray
    start: np.ndarray
    final: np.ndarray


class PatternEngine:
    """Filter patterns for one Inspector: its objectives and compiled steps, in bounded caches of its own."""

    def __init__(self, inspector: Any, cache_size: int = PATTERN_CACHE_SIZE) -> None:
        self.ins = inspector
        self.objectives = LRUCache(cache_size)  # (layer, the model's own size?) -> objective
        self.steps = LRUCache(cache_size)  # (mode, layer, size, count, ...) -> (compiled step, read-out)

    def filter_patterns(self, layer: str, filters: int | Sequence[int], *, size: int = 64, steps: int = 40,
                        step_size: float = 1.0, seed: int = 0, progress: Progress | None = None,
                        mode: str = "plain", regularization: fv.Regularization | None = None
                        ) -> fp.FilterPatterns:
        """Pictures that maximise each requested filter's mean activation, computed as one batch.

        mode="plain" is the book's L2-normalised gradient ascent in pixel space (`step_size` pixels
        a step); mode="regularized" optimises a decorrelated Fourier image with Adam under random
        jitter/scale/rotation (`regularization` holds its settings) and reads as textures and parts.
        """
        node = self.ins.layer(layer)
        idx = fp.check_filters(filters, node)
        mode = checks.choice(mode, "mode", PATTERN_MODES)
        size = checks.integer(size, "size", minimum=16 if mode == "regularized" else 8, maximum=MAX_PATTERN_SIZE)
        steps = checks.bounded(steps, "steps", checks.STEPS)
        step_size = checks.step_size(step_size)
        seed = checks.bounded(seed, "seed", checks.SEED)
        if regularization is not None and not isinstance(regularization, fv.Regularization):
            raise ConvVizError("regularization must be a convviz_widgets.Regularization(...) or None.")
        if progress is not None and not callable(progress):
            raise ConvVizError(f"progress must be a function progress(done, total) or None; got {progress!r}.")
        chunk = self._pattern_chunk(node, len(idx), size, mode)
        count = -(-len(idx) // chunk)
        if mode == "regularized":
            reg = regularization or fv.Regularization()
            init = fv.init_params(len(idx), size, reg, seed)  # one draw, sliced: chunks keep the pictures
            parts = [self._regularized_chunk(node.name, idx[lo:hi], size, steps, seed, reg, init[lo:hi],
                                             _chunk_progress(progress, lo // chunk, count, steps))
                     for lo, hi in chunks(len(idx), chunk)]
        else:
            x0 = fp.start_images(len(idx), size, self.ins.channels, seed, step_size)  # one draw, sliced per chunk
            parts = [self._ascend_chunk(node.name, x0[lo:hi], idx[lo:hi], steps, step_size,
                                        _chunk_progress(progress, lo // chunk, count, steps))
                     for lo, hi in chunks(len(idx), chunk)]
        images = np.concatenate([p.images for p in parts])
        start = np.concatenate([p.start for p in parts])
        final = np.concatenate([p.final for p in parts])
        finite(final, f"the filter activations of layer {node.name!r}", "these filter patterns")
        return fp.FilterPatterns(images, start, final, node.name, idx)

    def _regularized_chunk(self, name: str, idx: Sequence[int], size: int, steps: int, seed: int,
                           reg: fv.Regularization, init: np.ndarray, progress: Progress | None
                           ) -> PatternChunk:
        """One chunk of the regularised mode, padded to a compiled batch size (the padding is dropped)."""
        padded = bucket(len(idx))
        step, measure = self._regularized_fns(name, size, padded, reg)
        return PatternChunk(*fv.run(step, measure, idx, size, steps, seed, reg, progress, padded, init=init))

    def _ascend_chunk(self, name: str, x0: np.ndarray, idx: Sequence[int], steps: int, step_size: float,
                      progress: Progress | None) -> PatternChunk:
        """One chunk's plain ascent, padded to a compiled batch size, turned into uint8 pictures at once."""
        n, padded = len(idx), bucket(len(idx))  # extra pictures repeat the first; their results are dropped
        step, measure = self._plain_fns(name, int(x0.shape[1]), padded)
        x, start, final = fp.ascend(step, measure, pad_batch(x0, padded), pad_batch(np.array(idx), padded),
                                    steps, step_size, progress)
        x, start, final = x[:n], start[:n], final[:n]
        finite(x, "the filter-pattern pixels", "these filter patterns")
        return PatternChunk(fp.deprocess(x), start, final)

    def pattern_memory(self, layer: Any, n: int, size: int, mode: str = "plain") -> tuple[float, float]:
        """Estimated bytes of a filter-pattern request: (per filter in a batch, once for the whole request)."""
        node = self.ins.layer(layer)
        per_filter = self.ins.footprint().with_gradient((size, size), upto=node.name)
        whole = 2.0 * n * size * size * max(3, self.ins.channels) * 4  # start pixels and pictures, with room
        if mode == "regularized":
            spectrum = 3.0 * size * (size // 2 + 1) * 2 * 4
            per_filter += 6.0 * spectrum + 6.0 * size * size * 3 * 4  # params, Adam moments, gradient; pixels
            whole += n * spectrum
        return per_filter, whole

    def _pattern_chunk(self, node: Node, n: int, size: int, mode: str) -> int:
        """Filters per batch that fit the memory budget, a compiled batch size when split (padding never overflows)."""
        per_filter, whole = self.pattern_memory(node.name, n, size, mode)
        chunk = fit_batch(per_filter, n, fixed=whole, what=f"filters of layer {node.name!r} at size {size}",
                          lower="size (or the number of filters)")
        return chunk if chunk >= n else bucket_below(chunk)

    def pattern_objective(self, layer: str, size: int) -> Any:
        """f(pixels (n, s, s, C) in 0..255, filters (n,)) -> each picture's own filter's mean activation (numpy)."""
        objective = self._objective_for(self.ins.layer(layer).name, int(size))

        def measure(x: Any, filters: Any) -> np.ndarray:
            pixels = ops.convert_to_tensor(np.asarray(x, np.float32))
            return bk.to_numpy(objective(pixels, ops.convert_to_tensor(np.asarray(filters, np.int32)))[1])

        return measure

    def _objective_for(self, name: str, size: int) -> Any:
        """The filter-pattern objective of a layer, on a graph traced only up to it (cached)."""
        own_size = self.ins.input_size is not None and self.ins.input_size == (size, size)
        return self.objectives.get_or_create((name, own_size), lambda: self._build_objective(name, size))

    def _build_objective(self, name: str, size: int) -> Any:
        """Trace up to the layer and build its objective."""
        graph = self._graph_up_to(name, size)
        return fp.build_objective(graph, graph.node(name), self.ins.preprocess_fn)

    def _plain_fns(self, name: str, size: int, count: int) -> tuple[Any, Any]:
        """(compiled ascent step, read-out) for exactly `count` pictures of size x size, cached."""
        return self.steps.get_or_create(
            ("plain", name, size, count),
            lambda: fp.make_step(self._objective_for(name, size), count, size, self.ins.channels,
                                 self.ins.model.weights))

    def _regularized_fns(self, name: str, size: int, count: int, reg: fv.Regularization) -> tuple[Any, Any]:
        """(compiled Adam step, read-out) of the regularised mode, cached by layer, size, count, settings."""
        return self.steps.get_or_create(
            ("regularized", name, size, count, reg),
            lambda: fv.make_step(self._objective_for(name, size), count, size, reg, self.ins.model.weights))

    def _graph_up_to(self, name: str, size: int) -> FlatGraph:
        """Trace up to `name` at any image size; fall back to the model's own size."""
        fixed = self.ins.input_size
        if fixed is None or fixed == (size, size):
            return self.ins.traced(None if fixed else (None, None), self.ins.layer(name).name)
        try:
            return self.ins.traced((None, None), self.ins.layer(name).name)
        except Exception as err:  # noqa: BLE001 - a layer before the target needs the fixed size
            raise ConvVizError(
                f"Layer {name!r} can only be reached at the model's input size {fixed[0]}x{fixed[1]}; "
                f"use size={fixed[0]}."
            ) from err


def _chunk_progress(progress: Progress | None, index: int, count: int, steps: int) -> Progress | None:
    """Report a chunk's steps as part of the whole request's (chunk `index` of `count`)."""
    if progress is None or count == 1:
        return progress
    return lambda done, _total: progress(index * steps + done, count * steps)
