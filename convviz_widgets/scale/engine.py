"""The dataset engine: batches of a dataset run as tasks, in this process or on Dask workers.

A job is a list of batches (each names its images: file paths, an array slice or a slice of a
`.npy` shard) and one task function that turns a batch into a small partial result. Without a
client or workers the tasks run here, one after the other; with `workers=N` on a local Dask
cluster of N processes; with `client=` on any Dask cluster. The task code is the same in all
three. Each worker loads the model once from its file and reads its batches' images itself.
Finished partials can be saved in a folder, so a stopped job continues where it stopped.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ..core.batching import CTRL_C
from ..core.examples import IMAGE_SUFFIXES
from ..errors import Cancelled, ConvVizError

EXTRA = 'pip install "convviz_widgets[dask]"'
Progress = Callable[[int, "int | None"], Any]


# ----- Dask, optional -------------------------------------------------------------------------------
def _distributed() -> Any:
    """The `distributed` package, or a ConvVizError naming the extra that brings it."""
    try:
        import distributed
    except ImportError as err:
        raise ConvVizError(
            f"Running on Dask workers (client= or workers=) needs Dask's distributed scheduler: {EXTRA}. "
            f"({err})") from None
    return distributed


@contextlib.contextmanager
def dask_client(client: Any = None, workers: int | None = None, scheduler: str | None = None) -> Iterator[Any]:
    """The client to run on: the one given, one connected to `scheduler`, a new LocalCluster, or None (here)."""
    if client is None and workers is None and scheduler is None:
        yield None
        return
    distributed = _distributed()
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise ConvVizError(f"client must be a distributed.Client; got {type(client).__name__}.")
        yield client
        return
    if scheduler is not None:
        with distributed.Client(scheduler) as connected:
            yield connected
        return
    if isinstance(workers, bool) or not isinstance(workers, (int, np.integer)) or workers < 1:
        raise ConvVizError(f"workers must be a whole number >= 1; got {workers!r}.")
    with distributed.LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster, distributed.Client(cluster) as local:
        yield local


# ----- the model, as the workers get it -----------------------------------------------------------------
@dataclass(frozen=True)
class ModelSpec:
    """How a worker builds its Inspector: a model file (path or bytes with their digest) and the options."""

    path: str | None
    digest: str
    preprocess: Any = None
    output: Any = None
    safe_mode: bool = True


_WORKER_INSPECTORS: dict[tuple, Any] = {}
_WORKER_LOCK = threading.Lock()


def worker_inspector(spec: ModelSpec, payload: bytes | None = None) -> Any:
    """The Inspector of this process for `spec`, loaded once (from the file, or from the shipped bytes)."""
    from ..core.inspector import Inspector

    key = (spec.digest, spec.preprocess if isinstance(spec.preprocess, (str, type(None))) else id(spec.preprocess),
           spec.output)
    with _WORKER_LOCK:
        if key not in _WORKER_INSPECTORS:
            path = spec.path
            if payload is not None:
                path = os.path.join(tempfile.gettempdir(), f"convviz-model-{spec.digest[:16]}.keras")
                if not os.path.exists(path):
                    part = f"{path}.{os.getpid()}.part"
                    Path(part).write_bytes(payload)
                    os.replace(part, path)
            model = _keras_load(path, spec.safe_mode)
            _WORKER_INSPECTORS[key] = Inspector(model, preprocess=spec.preprocess, output=spec.output)
        return _WORKER_INSPECTORS[key]


def _keras_load(path: str | None, safe_mode: bool) -> Any:
    """Keras's own loader: the layers keep their saved initialisers, which the randomisation check draws from.

    The file was already opened and sized by `load_model` in the client (or written by it from a model).
    """
    import keras

    if path is None or not os.path.isfile(path):
        raise ConvVizError(f"The model file {path} is not on this worker: every worker needs the model file.")
    try:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as err:  # noqa: BLE001 - one clear message from the worker
        raise ConvVizError(f"A worker could not load the model {path}: {type(err).__name__}: {err}") from None


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass
class ModelFile:
    """A model as the workers load it: its spec, and its bytes when it exists only in this process."""

    spec: ModelSpec
    payload: bytes | None


def model_file(model: Any, preprocess: Any, output: Any, safe_mode: bool = True) -> ModelFile:
    """A path is loaded by each worker itself; a model object is saved once to a .keras file and shipped."""
    import keras

    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        return ModelFile(ModelSpec(os.path.abspath(path), file_digest(path), preprocess, output, safe_mode), None)
    if not isinstance(model, keras.Model):
        raise ConvVizError(f"model must be a keras.Model or a model file; got {type(model).__name__}.")
    with tempfile.TemporaryDirectory(prefix="convviz-model-") as folder:
        path = os.path.join(folder, "model.keras")
        model.save(path)  # saving reads the model; it does not change it
        payload = Path(path).read_bytes()
    digest = hashlib.sha256(payload).hexdigest()
    return ModelFile(ModelSpec(None, digest, preprocess, output, safe_mode), payload)


def here_digest(model: Any) -> str:
    """What identifies the model of an in-process run for resuming: its file's digest, or its weights' digest."""
    from ..core.atlas_folder import model_fingerprint

    if isinstance(model, (str, os.PathLike)):
        return file_digest(model)
    return model_fingerprint(model)


def placed_task(task: Task, model: Any, inspector: Any, preprocess: Any, output: Any,
                dask: Any) -> tuple[ModelSpec, bytes | None, str, Task]:
    """The task, the model's spec, its bytes and its digest: the Inspector itself in this process, a file on workers."""
    if dask is None:
        here = functools.partial(task, inspector=inspector)
        here.__name__ = task.__name__  # type: ignore[attr-defined]
        return ModelSpec(None, "here", preprocess, output), None, here_digest(model), here
    mf = model_file(model, preprocess, output)
    return mf.spec, mf.payload, mf.spec.digest, task


# ----- the dataset, cut into batches ---------------------------------------------------------------------
@dataclass(frozen=True)
class Batch:
    """One task's images: stream indices start..start+len, as paths, an array slice or a .npy shard slice."""

    start: int
    paths: tuple[str, ...] | None = None
    array: np.ndarray | None = None
    shard: tuple[str, int, int] | None = None  # (.npy file, first row, end row)
    extra: Any = None  # what goes with these images (e.g. their masks), sliced like them

    @property
    def size(self) -> int:
        """Images in the batch."""
        if self.paths is not None:
            return len(self.paths)
        if self.array is not None:
            return int(self.array.shape[0])
        assert self.shard is not None
        return self.shard[2] - self.shard[1]

    def as_array(self) -> np.ndarray | None:
        """The batch's images as one array (an array or a shard slice, read here), None for image files."""
        if self.array is not None:
            return self.array
        if self.shard is not None:
            path, lo, hi = self.shard
            return np.asarray(np.load(path, mmap_mode="r")[lo:hi])
        return None

    def items(self) -> Iterator[tuple[int, Any]]:
        """(stream index, image) pairs; read here, on the worker."""
        if self.paths is not None:
            yield from ((self.start + i, p) for i, p in enumerate(self.paths))
        elif self.array is not None:
            yield from ((self.start + i, self.array[i]) for i in range(self.array.shape[0]))
        else:
            assert self.shard is not None
            path, lo, hi = self.shard
            rows = np.load(path, mmap_mode="r")
            yield from ((self.start + i, np.asarray(rows[lo + i])) for i in range(hi - lo))


@dataclass(frozen=True)
class Dataset:
    """The images of a job cut into batches, and a fingerprint of what they are (for resuming)."""

    batches: tuple[Batch, ...]
    total: int
    fingerprint: str
    kind: str  # "paths", "array" or "shards"

    def read(self, indices: Sequence[int]) -> dict[int, Any]:
        """Read only the images at these stream indices (for crops)."""
        wanted = sorted({int(i) for i in indices})
        found: dict[int, Any] = {}
        for b in self.batches:
            if not wanted or b.start > wanted[-1]:
                break
            if any(b.start <= i < b.start + b.size for i in wanted):
                for i, item in b.items():
                    if i in wanted:
                        found[i] = item
        return found


def with_extra(data: Dataset, values: Any, what: str) -> Dataset:
    """The dataset with `values` (one per image, in image order) cut like its batches and travelling with them."""
    try:
        n = len(values)
    except TypeError:
        raise ConvVizError(
            f"{what} must be a sequence with one entry per image; got {type(values).__name__}.") from None
    if n != data.total:
        raise ConvVizError(f"{what} holds {n} entries but the dataset holds {data.total} images: give one per image.")
    batches = tuple(replace(b, extra=values[b.start:b.start + b.size]) for b in data.batches)
    h = hashlib.sha256(data.fingerprint.encode())
    for v in values:
        _feed(h, v)
    return Dataset(batches, data.total, h.hexdigest(), data.kind)


def _feed(h: Any, value: Any) -> None:
    """Add a value (None, a number, an array or a tuple of these) to a hash."""
    if isinstance(value, (tuple, list)):
        h.update(b"(")
        for v in value:
            _feed(h, v)
        h.update(b")")
    elif value is None:
        h.update(b"-")
    else:
        a = np.ascontiguousarray(np.asarray(value))
        h.update(f"{a.dtype}{a.shape}".encode() + a.tobytes())


def _is_npy(item: Any) -> bool:
    """A path to a .npy file (an array shard)."""
    return isinstance(item, (str, os.PathLike)) and str(item).lower().endswith(".npy")


def dataset(images: Any, batch_size: int = 64, recursive: bool = False) -> Dataset:
    """Cut a folder, a list of image paths, an (N, H, W, C) array or a list of .npy shards into batches."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ConvVizError(f"batch_size must be a whole number >= 1; got {batch_size!r}.")
    if isinstance(images, (str, os.PathLike)):
        folder = Path(images)
        if not folder.is_dir():
            raise ConvVizError(f"{folder} is not a folder of images.")
        pattern = "**/*" if recursive else "*"
        files = sorted((p for p in folder.glob(pattern) if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()),
                       key=lambda p: p.relative_to(folder).as_posix())
        if not files:
            raise ConvVizError(f"The folder {folder} holds no image files ({', '.join(IMAGE_SUFFIXES)}).")
        return _path_batches([str(p.resolve()) for p in files], batch_size)
    if isinstance(images, np.ndarray):
        if images.ndim != 4 or images.shape[0] == 0:
            raise ConvVizError(f"An image array must be a non-empty stack (N, H, W, C); got shape {images.shape}.")
        batches = tuple(Batch(s, array=images[s:s + batch_size]) for s in range(0, images.shape[0], batch_size))
        h = hashlib.sha256(str(images.shape).encode() + str(images.dtype).encode())
        h.update(np.ascontiguousarray(images).view(np.uint8).ravel()[:: max(1, images.nbytes // (1 << 24))].tobytes())
        return Dataset(batches, int(images.shape[0]), h.hexdigest(), "array")
    if isinstance(images, (list, tuple)) and images and all(_is_npy(i) for i in images):
        return _shard_batches([os.path.abspath(os.fspath(i)) for i in images], batch_size)
    if isinstance(images, (list, tuple)) and images and all(isinstance(i, (str, os.PathLike)) for i in images):
        return _path_batches([os.path.abspath(os.fspath(i)) for i in images], batch_size)
    raise ConvVizError(
        f"The dataset engine reads a folder of images, a list of image paths, an (N, H, W, 3) array or a list of "
        f".npy shards (each (n, H, W, 3)); got {type(images).__name__}. Other streams (generators, tf.data) only "
        "go to top_examples in one process (client= and workers= unset).")


def _path_batches(paths: list[str], batch_size: int) -> Dataset:
    """Batches of image files; the fingerprint is their paths, sizes and modification times."""
    h = hashlib.sha256()
    for p in paths:
        try:
            st = os.stat(p)
            h.update(f"{p}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{p}\0missing\n".encode())
    batches = tuple(Batch(s, paths=tuple(paths[s:s + batch_size])) for s in range(0, len(paths), batch_size))
    return Dataset(batches, len(paths), h.hexdigest(), "paths")


def _shard_batches(files: list[str], batch_size: int) -> Dataset:
    """Batches cut from .npy shards, each read (memory-mapped) by the worker that runs it."""
    h = hashlib.sha256()
    batches, start = [], 0
    for f in files:
        try:
            rows = np.load(f, mmap_mode="r")
        except (OSError, ValueError) as err:
            raise ConvVizError(f"Cannot read the array shard {f}: {err}") from None
        if rows.ndim != 4:
            raise ConvVizError(f"The array shard {f} has shape {rows.shape}; shards must be (n, H, W, C).")
        st = os.stat(f)
        h.update(f"{f}\0{rows.shape}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        for lo in range(0, rows.shape[0], batch_size):
            hi = min(lo + batch_size, rows.shape[0])
            batches.append(Batch(start + lo, shard=(f, lo, hi)))
        start += int(rows.shape[0])
    if start == 0:
        raise ConvVizError("The array shards hold no images.")
    return Dataset(tuple(batches), start, h.hexdigest(), "shards")


# ----- the output folder --------------------------------------------------------------------------------
def claim_folder(out: Any, marker: str, what: str) -> Path:
    """An output folder that is new, empty, or marked as written by this package before (never a foreign one)."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ConvVizError(f"{out} exists and is not a folder; choose another output folder.")
    if out.is_dir() and not (out / marker).is_file() and any(p.name != ".convviz-partials" for p in out.iterdir()):
        raise ConvVizError(f"{out} holds files this package did not write; choose an empty or new folder.")
    out.mkdir(parents=True, exist_ok=True)
    (out / marker).write_text(f"written by {what}\n", encoding="utf-8")
    return out


# ----- saved partial results --------------------------------------------------------------------------------
class Partials:
    """Finished batches' partial results in a folder (one .npz each), named by the job's fingerprint."""

    def __init__(self, folder: Path | None, job: str) -> None:
        self.folder = None if folder is None else Path(folder) / ".convviz-partials" / job[:24]

    def load(self, start: int) -> dict[str, np.ndarray] | None:
        """The saved partial of the batch at `start`, or None (also for a damaged file: it is redone)."""
        if self.folder is None:
            return None
        path = self.folder / f"{start:012d}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as saved:
                return {k: saved[k] for k in saved.files}
        except (OSError, ValueError, EOFError):
            return None

    def save(self, start: int, part: dict[str, np.ndarray]) -> None:
        """Write one partial atomically (a temp file moved into place)."""
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{start:012d}.npz"
        temp = self.folder / f".{start:012d}.{os.getpid()}.tmp.npz"
        np.savez(temp, **part)
        os.replace(temp, final)


def job_id(*parts: Any) -> str:
    """A fingerprint of a job's inputs: resumed partials must come from the very same job."""
    return hashlib.sha256(repr(parts).encode()).hexdigest()


# ----- running ----------------------------------------------------------------------------------------------------
@dataclass
class RunStats:
    """What a run did: batches in all, taken from saved partials, computed now; images; seconds."""

    batches: int = 0
    resumed: int = 0
    computed: int = 0
    images: int = 0
    seconds: float = 0.0

    @property
    def images_per_second(self) -> float:
        """Throughput of the batches computed in this run."""
        return self.images / self.seconds if self.seconds > 0 else float("nan")


Task = Callable[..., dict[str, np.ndarray]]


def run(task: Task, data: Dataset, args: tuple, *, client: Any = None, partials: Partials | None = None,
        progress: Progress | None = None, payload: bytes | None = None,
        merge: Callable[[dict[str, np.ndarray]], None]) -> RunStats:
    """Run `task(batch, *args, payload)` over every batch not saved yet, feeding each partial to `merge`.

    Partials are merged in whatever order they finish (the merges are exact and order-free) and
    saved as they come. progress(images done, total) after each batch; False from it cancels.
    """
    partials = partials or Partials(None, "")
    stats = RunStats(batches=len(data.batches))
    done = 0
    todo = []
    for b in data.batches:
        part = partials.load(b.start)
        if part is None:
            todo.append(b)
            continue
        merge(part)
        stats.resumed += 1
        done += b.size
    _tell(progress, done, data.total, stats)
    t0 = time.perf_counter()
    if client is None:
        for b in todo:
            part = task(b, *args, payload)
            done = _finish(b, part, partials, merge, stats, done)
            _tell(progress, done, data.total, stats)
    else:
        done = _run_on(client, task, todo, args, payload, partials, merge, stats, done, data.total, progress)
    stats.seconds = time.perf_counter() - t0
    return stats


def _finish(b: Batch, part: dict[str, np.ndarray], partials: Partials, merge: Callable, stats: RunStats,
            done: int) -> int:
    """Save and merge one finished batch; the new count of images done."""
    partials.save(b.start, part)
    merge(part)
    stats.computed += 1
    stats.images += b.size
    return done + b.size


def _tell(progress: Progress | None, done: int, total: int, stats: RunStats) -> None:
    """Report progress; False from the callback stops the run (saved partials stay for a resume)."""
    CTRL_C.check()
    if progress is not None and progress(done, total) is False:
        raise Cancelled(f"Stopped after {done} of {total} images; run again with the same output folder to continue.")


def _run_on(client: Any, task: Task, todo: list[Batch], args: tuple, payload: bytes | None, partials: Partials,
            merge: Callable, stats: RunStats, done: int, total: int, progress: Progress | None) -> int:
    """Submit every batch to the cluster and merge results as they complete; cancel the rest on a stop."""
    distributed = _distributed()
    shipped = client.scatter(payload, broadcast=True) if payload is not None else None
    run_id = uuid.uuid4().hex[:12]  # task keys of different runs never meet, even after a cancelled run
    futures = {client.submit(task, b, *args, shipped, pure=False, key=f"convviz-{task.__name__}-{run_id}-{b.start}"): b
               for b in todo}
    try:
        for future in distributed.as_completed(list(futures)):
            b = futures[future]
            part = future.result()
            done = _finish(b, part, partials, merge, stats, done)
            future.release()
            _tell(progress, done, total, stats)
    except BaseException:
        client.cancel(list(futures))
        raise
    return done
