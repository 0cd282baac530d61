"""Dataset examples: cv.top_examples vs a plain batched predict of the truncated model, and its memory.

Workload: N demo scenes (seeds 0..N-1, 96x96) through the demo convnet truncated at a layer
(default conv5, its last conv: 128 channels on a 12x12 grid), k = 9, batches of 64.

  ours      `cv.top_examples(model, layer, images, k=9, batch_size=64)`: everything a user pays
            is inside (argument checks, the memory budget, uint8 -> float and x/255 in the
            compiled function, forward pass, per-channel max and argmax, the running top-k merge).
  plain     for each batch of 64: `x = batch.astype(float32) / 255` (the same "rescale"
            preprocessing) and `truncated.predict_on_batch(x)` of
            `keras.Model(inspector.graph.input, layer.output)`: the feature maps come back and
            nothing is done with them.

The N scenes are cut into 10 rounds; in every round both arms run on the same scenes, order
flipped every round, in two settings: scenes pre-rendered once (drawing cost excluded), and
scenes drawn inside each arm (`demo.scene(seed=s)`, identically in both; ours gets them as a
generator, so each also goes through `Inspector.prepare`). Throughput = images / total seconds,
wall and CPU (user+sys of the process). Targets: ours >= 0.9x plain (wall, both settings).

Memory: one streaming pass over N scenes drawn by a generator; resident memory (RSS) is read at
1,000 images (after warm-up) and at the end. Target: growth < 32 MB (it does not grow with N).

Run:  .venv/bin/python bench/bench_examples.py            (N = 10,000: a few minutes on 2 cores)
      .venv/bin/python bench/bench_examples.py --n 2000   (a shorter run)
Exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402
from _common import Sample, footer, header, load_bench_model, timed  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets import demo  # noqa: E402

TARGET = 0.9
RSS_TARGET_MB = 32
ROUNDS = 10
K = 9


def plain_predict(truncated: keras.Model, images: np.ndarray, batch: int) -> None:
    """The baseline: batches of pre-rendered scenes, x/255, predict_on_batch."""
    for start in range(0, len(images), batch):
        truncated.predict_on_batch(images[start:start + batch].astype(np.float32) / 255.0)


def plain_predict_drawing(truncated: keras.Model, seeds: range, batch: int) -> None:
    """The baseline, drawing each scene as it goes."""
    for start in range(seeds.start, seeds.stop, batch):
        images = np.stack([demo.scene(seed=s).image for s in range(start, min(start + batch, seeds.stop))])
        truncated.predict_on_batch(images.astype(np.float32) / 255.0)


def totals(samples: list[Sample]) -> Sample:
    """Sum of wall and CPU seconds."""
    return Sample(sum(s.wall for s in samples), sum(s.cpu for s in samples))


def check_against_plain(model: keras.Model, truncated: keras.Model, images: np.ndarray, layer: str) -> float:
    """Largest difference between our top values and the maxima of the plain model's maps (first 256 scenes)."""
    ours = cv.top_examples(model, layer, images, k=K)
    maps = truncated.predict_on_batch(images.astype(np.float32) / 255.0)
    peaks = maps.reshape(len(images), -1, maps.shape[-1]).max(axis=1)  # (n, C)
    expected = -np.sort(-peaks, axis=0)[:K].T
    return float(np.abs(ours.values - expected).max())


def memory_pass(model: keras.Model, layer: str, n: int, batch: int) -> tuple[float, float, float]:
    """RSS (MB) at 1,000 streamed scenes, at n, and the growth between."""
    process = psutil.Process()
    seen: dict[str, float] = {}

    def watch(done: int, total: int | None) -> None:
        if "warm" not in seen and done >= 1000:
            gc.collect()
            seen["warm"] = process.memory_info().rss / 2**20

    cv.top_examples(model, layer, (demo.scene(seed=s).image for s in range(n)), k=K, batch_size=batch,
                    progress=watch)
    gc.collect()
    end = process.memory_info().rss / 2**20
    return seen["warm"], end, end - seen["warm"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="scenes (default 10,000)")
    parser.add_argument("--layer", default="conv5", help="demo layer (default conv5)")
    parser.add_argument("--batch", type=int, default=64, help="batch size (default 64)")
    args = parser.parse_args()
    if args.n < 1000:
        raise SystemExit("--n must be at least 1,000")

    header(f"bench_examples: demo {args.layer}, {args.n:,} scenes, k={K}, batches of {args.batch}")
    model, about = load_bench_model("demo", include_top=True)
    print(f"model: {about}")
    ins = cv.core.inspector_for(model)
    truncated = keras.Model(ins.graph.input, ins.layer(args.layer).output)

    with timed() as t:
        images = demo.make_batch(0, args.n)[0]
    print(f"pre-rendered {args.n:,} scenes in {t.sample.wall:.1f} s (kept out of the first comparison)")
    diff = check_against_plain(model, truncated, images[:256], args.layer)
    print(f"check: top-{K} values vs the plain maps' maxima on 256 scenes, max |difference| = {diff:.2e}")
    # warm both arms (tracing, first-call costs) outside the timed rounds
    cv.top_examples(model, args.layer, images[:args.batch], k=K, batch_size=args.batch)
    plain_predict(truncated, images[:args.batch], args.batch)

    arms: dict[str, list[Sample]] = {name: [] for name in ("ours", "plain", "ours+draw", "plain+draw")}
    edges = np.linspace(0, args.n, ROUNDS + 1).astype(int)
    for r in range(ROUNDS):
        lo, hi = int(edges[r]), int(edges[r + 1])
        chunk, seeds = images[lo:hi], range(lo, hi)
        runs = {
            "ours": lambda: cv.top_examples(model, args.layer, chunk, k=K, batch_size=args.batch),  # noqa: B023
            "plain": lambda: plain_predict(truncated, chunk, args.batch),  # noqa: B023
            "ours+draw": lambda: cv.top_examples(  # noqa: B023
                model, args.layer, (demo.scene(seed=s).image for s in seeds), k=K, batch_size=args.batch),  # noqa: B023
            "plain+draw": lambda: plain_predict_drawing(truncated, seeds, args.batch),  # noqa: B023
        }
        order = list(runs) if r % 2 == 0 else list(reversed(runs))
        for name in order:
            with timed() as t:
                runs[name]()
            arms[name].append(t.sample)
        print(f"round {r + 1}/{ROUNDS}: " + ", ".join(
            f"{name} {arms[name][-1].wall:.2f} s" for name in runs), flush=True)

    print(f"\n{'arm':<12} {'wall s':>8} {'CPU s':>8} {'img/s wall':>11} {'img/s CPU':>10}")
    sums = {name: totals(samples) for name, samples in arms.items()}
    for name, s in sums.items():
        print(f"{name:<12} {s.wall:8.2f} {s.cpu:8.2f} {args.n / s.wall:11.0f} {args.n / s.cpu:10.0f}")
    ratio = sums["plain"].wall / sums["ours"].wall
    ratio_cpu = sums["plain"].cpu / sums["ours"].cpu
    ratio_draw = sums["plain+draw"].wall / sums["ours+draw"].wall
    ratio_draw_cpu = sums["plain+draw"].cpu / sums["ours+draw"].cpu
    print(f"throughput ours / plain, pre-rendered: {ratio:.3f}x wall, {ratio_cpu:.3f}x CPU")
    print(f"throughput ours / plain, drawing:      {ratio_draw:.3f}x wall, {ratio_draw_cpu:.3f}x CPU")
    del images
    gc.collect()

    warm, end, growth = memory_pass(model, args.layer, args.n, args.batch)
    print(f"RSS streaming {args.n:,} drawn scenes: {warm:.1f} MB at 1,000, {end:.1f} MB at {args.n:,} "
          f"(growth {growth:+.1f} MB)")
    footer([
        (f"throughput >= {TARGET}x plain predict, pre-rendered scenes: {ratio:.3f}x wall "
         f"({ratio_cpu:.3f}x CPU)", ratio >= TARGET),
        (f"throughput >= {TARGET}x plain predict, scenes drawn in both arms: {ratio_draw:.3f}x wall "
         f"({ratio_draw_cpu:.3f}x CPU)", ratio_draw >= TARGET),
        (f"RSS growth from 1,000 to {args.n:,} scenes < {RSS_TARGET_MB} MB: {growth:+.1f} MB",
         growth < RSS_TARGET_MB),
        (f"top-{K} values equal the plain maps' maxima (max |difference| {diff:.1e} <= 1e-4)", diff <= 1e-4),
    ])


if __name__ == "__main__":
    main()
