"""The dataset engine: top examples of N demo scenes in this process vs on W local Dask worker processes.

Workload: N demo scenes (seeds 0..N-1, 96x96, one uint8 array), the demo convnet, conv5, k = 9,
batches of 64.

  core        `cv.top_examples(model, "conv5", images)`: one process, no engine.
  engine      the same through the engine in this process (`scale.dataset_examples`, no Dask):
              the batches as tasks, partials merged; (engine - core) / batches = the engine's own
              cost per batch in this process.
  W workers   the same on a LocalCluster of W processes (1 thread each), started and warmed up
              (each worker loads the model once on a small run) before the clock starts: images/s.
  no-op       W workers running tasks that do nothing but return a small partial, one per batch of
              the same images: the scheduling, transfer and merge cost per batch on the cluster.

Every run is checked to give exactly the core result. Images/s = N / wall seconds.
No target: the figures depend on the machine's cores (a 2-core machine cannot gain from 2 worker
processes when the in-process run already uses both cores for TensorFlow's threads).

Run:  .venv/bin/python bench/bench_dataset.py                      (N = 10,000, 2 workers)
      .venv/bin/python bench/bench_dataset.py --n 2000 --workers 1,2,4,8
Exits 0.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets import demo  # noqa: E402
from convviz_widgets.scale import dataset_examples, engine  # noqa: E402

LAYER, K, BATCH = "conv5", 9, 64


def noop_task(batch: engine.Batch, *args: object) -> dict[str, np.ndarray]:
    """A task that reads nothing and computes nothing: what is left is the engine's cost."""
    return {"count": np.array(batch.size, np.int64)}


def same(a: cv.TopExamples, b: cv.TopExamples) -> bool:
    """Exactly the same examples."""
    return bool((a.indices == b.indices).all() and (a.values == b.values).all() and (a.positions == b.positions).all())


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--workers", default="2", help="comma-separated worker counts (default 2)")
    args = p.parse_args()
    counts = [int(w) for w in args.workers.split(",") if w]
    print(f"drawing {args.n} scenes ...", flush=True)
    images = demo.example_images(args.n)
    model = demo.load_model()
    batches = -(-args.n // BATCH)
    cv.top_examples(model, LAYER, images[:BATCH], k=K)  # compile once
    t0 = time.perf_counter()
    core = cv.top_examples(model, LAYER, images, k=K)
    t_core = time.perf_counter() - t0
    t0 = time.perf_counter()
    (here,), _, _ = dataset_examples(model, [LAYER], images, k=K, batch_size=BATCH)
    t_engine = time.perf_counter() - t0
    print(f"cores: {os.cpu_count()}, scenes: {args.n}, batches of {BATCH}: {batches}")
    print(f"core, one process         {args.n / t_core:8.0f} images/s  ({t_core:.1f} s)")
    print(f"engine, this process      {args.n / t_engine:8.0f} images/s  ({t_engine:.1f} s), "
          f"exact: {same(here, core)}, "
          f"overhead {1000 * (t_engine - t_core) / batches:+.2f} ms/batch")
    from distributed import Client, LocalCluster

    data = engine.dataset(images, BATCH)
    for w in counts:
        with LocalCluster(n_workers=w, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
                Client(lc) as client:
            cv.top_examples(model, LAYER, images[: BATCH * w], k=K, client=client, batch_size=BATCH)  # warm up
            t0 = time.perf_counter()
            there = cv.top_examples(model, LAYER, images, k=K, client=client, batch_size=BATCH)
            t_dask = time.perf_counter() - t0
            t0 = time.perf_counter()
            engine.run(noop_task, data, (), client=client, merge=lambda part: None)
            t_noop = time.perf_counter() - t0
        print(f"{w} worker process{'es' if w > 1 else ''}       {args.n / t_dask:8.0f} images/s  ({t_dask:.1f} s), "
              f"exact: {same(there, core)}, speed-up vs core {t_core / t_dask:.2f}x; "
              f"engine cost on the cluster {1000 * t_noop / batches:.1f} ms/batch (no-op tasks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
