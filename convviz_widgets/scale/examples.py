"""Top dataset examples per channel over a whole dataset, on the engine, merged exactly.

Each task runs core/examples' per-batch readout and running top-k on its batch and sends back
only the k best (key, image, value, position) per channel. The keys order by value and then by
earlier image, and are unique, so merging partials in any order keeps exactly the k that one
pass in one process keeps: the result equals `core.examples.top_examples`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..core import examples as ex
from ..core.api import inspector_for
from ..errors import ConvVizError
from . import engine
from .engine import Batch, ModelSpec, Progress, RunStats

REASONS_KEPT = ex.MAX_REASONS


def examples_task(batch: Batch, spec: ModelSpec, layers: tuple[str, ...], k: int, channels: tuple[tuple[int, ...], ...],
                  batch_size: int, payload: bytes | None = None, inspector: Any = None) -> dict[str, np.ndarray]:
    """One batch on a worker: every layer's k best per channel, and the images seen and skipped."""
    ins = inspector if inspector is not None else engine.worker_inspector(spec, payload)
    batches = ex.Batches(ins, batch_size)
    tops = {}
    nodes = [ins.layer(name) for name in layers]
    readouts = {node.name: ins.examples.readout(node) for node in nodes}
    for node, chosen in zip(nodes, channels):
        tops[node.name] = ex.TopK(len(chosen), k)
    count = 0
    for index, images in _stream(batch, batches):
        for node, chosen in zip(nodes, channels):
            peaks = ex.batch_peaks(readouts[node.name], node, index, images, np.array(chosen, np.int64))
            tops[node.name].merge(index, *peaks)
        count += index.size
    part = {"count": np.array(count, np.int64), "skipped": np.array(batches.skipped, np.int64),
            "reasons": np.array(batches.reasons, dtype=np.str_)}
    for i, node in enumerate(nodes):
        for name, values in tops[node.name].table().items():
            part[f"{i}.{name}"] = values
    return part


def _stream(batch: Batch, batches: ex.Batches) -> Any:
    """(stream indices, uint8 images) of a batch; an array already at the model's size skips per-image work."""
    array = batch.as_array() if batch.paths is None else None
    if array is not None and batches.ready(array):
        for lo in range(0, array.shape[0], batches.batch_size):
            chunk = np.ascontiguousarray(array[lo:lo + batches.batch_size])
            yield batch.start + lo + np.arange(chunk.shape[0], dtype=np.int64), chunk
        return
    yield from batches(_BatchReader(batch))


class _BatchReader(ex.Reader):
    """A batch as core's readers give images: (stream index, item)."""

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.total = batch.size

    def items(self) -> Any:
        return self.batch.items()


class Merged:
    """Partials merged per layer: the k best per channel (exact, order-free), images seen and skipped."""

    def __init__(self, layers: Sequence[str], channels: Sequence[Sequence[int]], k: int) -> None:
        self.tops = [ex.TopK(len(c), k) for c in channels]
        self.k = k
        self.count = 0
        self.skipped = 0
        self.reasons: list[str] = []

    def __call__(self, part: dict[str, np.ndarray]) -> None:
        """Merge one batch's partial."""
        self.count += int(part["count"])
        self.skipped += int(part["skipped"])
        self.reasons.extend(str(r) for r in part["reasons"])
        for i, top in enumerate(self.tops):
            merge_top(top, {name: part[f"{i}.{name}"] for name in ex.TopK.FIELDS})


def merge_top(top: ex.TopK, part: dict[str, np.ndarray]) -> None:
    """Keep the k largest keys of two top-k tables (keys are unique: the same k in any merge order)."""
    top.merge_table(part)


def _first_reasons(reasons: list[str]) -> list[str]:
    """The first skipped images' reasons, in image order."""
    def image_number(text: str) -> int:
        try:
            return int(text.split(":", 1)[0].split()[-1])
        except (ValueError, IndexError):
            return 1 << 62
    return sorted(reasons, key=image_number)[:REASONS_KEPT]


def dataset_examples(model: Any, layers: Sequence[str], images: Any, *, k: int = 9,
                     channels: Sequence[Any] | None = None, batch_size: int = 64, preprocess: Any = None,
                     output: Any = None, client: Any = None, workers: int | None = None,
                     scheduler: str | None = None, out: Any = None, progress: Progress | None = None,
                     recursive: bool = False, inspector: Any = None, data: engine.Dataset | None = None
                     ) -> tuple[list[ex.TopExamples], RunStats, engine.Dataset]:
    """Top examples of several layers in one pass over a dataset (here, or on Dask workers)."""
    ins = inspector if inspector is not None else inspector_for(model, preprocess, output=output)
    nodes = [ex.check_layer(ins, name) for name in layers]
    k, batch_size = ex.check_counts(k, batch_size)
    chosen = [ex.check_channels(None if channels is None else channels[i], n) for i, n in enumerate(nodes)]
    ex.check_progress(progress)
    data = data if data is not None else engine.dataset(images, batch_size, recursive)
    keep = max(1, min(k, data.total))
    names = tuple(n.name for n in nodes)
    args_sig = (names, keep, tuple(chosen), batch_size)
    merged = Merged(names, chosen, keep)
    with engine.dask_client(client, workers, scheduler) as dask:
        spec, payload, digest, task = engine.placed_task(examples_task, model, ins, preprocess, output, dask)
        job = engine.job_id("examples", digest, repr(preprocess), repr(output), data.fingerprint, args_sig)
        partials = engine.Partials(None if out is None else out, job)
        stats = engine.run(task, data, (spec, names, keep, tuple(chosen), batch_size), client=dask,
                           partials=partials, progress=progress, payload=payload, merge=merged)
    if merged.count == 0:
        raise ConvVizError(f"None of the {merged.skipped} images could be read, so there are no examples. "
                           f"First reasons: {'; '.join(_first_reasons(merged.reasons)[:3])}.")
    results = []
    for node, top, cols in zip(nodes, merged.tops, chosen):
        indices, values, positions = top.result(merged.count)
        results.append(ex.TopExamples(indices, values, positions, node.name, cols, merged.count, merged.skipped,
                                      _first_reasons(merged.reasons), ex.receptive_field(ins.graph, node),
                                      ins.prepare, bool(recursive), ex.field_at(ins, node)))
    return results, stats, data


def top_examples(model: Any, layer: str, images: Any, k: int = 9, channels: Sequence[int] | int | None = None,
                 batch_size: int = 64, progress: Progress | None = None, preprocess: Any = None,
                 output: Any = None, recursive: bool = False, client: Any = None,
                 workers: int | None = None) -> ex.TopExamples:
    """For every channel of `layer`, the k images of `images` with the highest maximum activation, and where.

    Without `client` and `workers` this is `core.examples.top_examples` (any stream of images, one
    process). `workers=N` runs the batches on a local Dask cluster of N processes, `client=` on an
    existing `distributed.Client`; then `images` is a folder, a list of image paths, an array or a
    list of .npy shards, and the result is exactly the one-process result.
    """
    if client is None and workers is None:
        return ex.top_examples(model, layer, images, k=k, channels=channels, batch_size=batch_size,
                               progress=progress, preprocess=preprocess, output=output, recursive=recursive)
    results, _, _ = dataset_examples(model, [layer], images, k=k, channels=[channels], batch_size=batch_size,
                                     preprocess=preprocess, output=output, client=client, workers=workers,
                                     progress=progress, recursive=recursive)
    return results[0]
