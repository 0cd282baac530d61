"""Batched CAMs and activations: 32 images in one call vs 32 single calls vs a hand-written batched floor.

Workload: 32 seeded noise images; keras.applications.VGG16(weights=None, seed 0) at 224x224 and the
demo convnet (at its own size).

gradcam      default Grad-CAM (top class, default layer).
  batched  `Inspector.gradcam(images, batch_size=32)`: one compiled pass per chunk (the chunk is
           what the memory budget allows, printed), preparation, finite checks and the CAM objects included.
  singles  32 calls `Inspector.gradcam(image)`.
  floor    a tf.function on the already-prepared uint8 batch, in the same chunks: preprocessing,
           forward to the feature map and the logits, and the gradient of the top logits w.r.t. the
           feature map. Nothing else: what any batched Grad-CAM must compute.
activations  every conv/pool layer's output.
  batched  `Inspector.activations(images, batch_size=32)`: one compiled pass per chunk (what the
           memory budget allows, printed), preparation, finite checks and the per-image dicts included.
  singles  32 calls `Inspector.activations(image)` (each a new image: the one-image cache never hits).
  floor    a tf.function on the already-prepared uint8 batch, in the same chunks: preprocessing and
           every conv/pool output as numpy arrays. Nothing else. Outputs are read with np.asarray, which
           shares the tensor's memory as the package does; `.numpy()` copies them (on VGG16, 32 images'
           2 GB of activations, ~3.5 CPU-s more).

Sides alternate; medians of CPU time (steady on a shared machine) and wall time are printed, per run
of a side (a sample repeats fast sides until it lasts about MIN_SAMPLE_CPU seconds).
Targets: singles / batched >= 2x; batched / floor <= 1.2x.

Run:  .venv/bin/python bench/bench_batch.py --repeats 1       (a few minutes on 2 cores; VGG16 dominates)
      --cases gradcam,activations (default both), --models vgg16,demo (default both)
Exits 0 whether or not the targets are met.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import Sample, footer, header, load_bench_model, med_cpu, med_wall, timed  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets import limits  # noqa: E402

N = 32
SPEEDUP_TARGET = 2.0
FLOOR_TARGET = 1.2
SEED = 0
MIN_SAMPLE_CPU = 1.0  # a sample shorter than this is mostly timer noise and scheduling


def floor_fn(ins: cv.Inspector):  # noqa: ANN201 - a compiled function
    """Pixels -> preprocessing -> the default CAM layer and the logits; gradient of the top logits w.r.t. it."""
    node = ins.layer(ins.default_cam_layer)
    model = keras.Model(ins.graph.input, [node.output, ins.graph.head.logits])
    preprocess = ins.preprocess_fn

    @tf.function(reduce_retracing=True)
    def run(pixels):
        with tf.GradientTape() as tape:
            feats, logits = model(preprocess(tf.cast(pixels, tf.float32)), training=False)
            top = tf.reduce_sum(tf.reduce_max(logits, axis=-1))
        return feats, tape.gradient(top, feats)

    return run


def activations_floor_fn(ins: cv.Inspector):  # noqa: ANN201 - a compiled function
    """Pixels -> preprocessing -> every conv/pool output, nothing else."""
    model = keras.Model(ins.graph.input, [ins.layer(name).output for name in ins.layers])
    preprocess = ins.preprocess_fn

    @tf.function(reduce_retracing=True)
    def run(pixels):
        return model(preprocess(tf.cast(pixels, tf.float32)), training=False)

    return run


def setup(case: str, ins: cv.Inspector, images: np.ndarray) -> tuple[int, dict]:
    """The chunk the memory budget allows and the three sides of one case, compiled and warm."""
    if case == "gradcam":
        per_image = ins.bytes_per_image(gradient=True)
        floor, run = floor_fn(ins), (lambda ims, **kw: ins.gradcam(ims, **kw))
    else:
        per_image = ins.footprint().forward(ins.input_size, set(ins.layers))
        floor, run = activations_floor_fn(ins), (lambda ims, **kw: ins.activations(ims, **kw))
    chunk = limits.fit_batch(per_image, N, what="images", lower="batch_size")
    xs = [tf.constant(np.stack([ins.prepare(im) for im in images[i : i + chunk]])) for i in range(0, N, chunk)]
    run(images[:2], batch_size=N)  # compile (the function takes any batch size)
    run(images[0])
    [np.asarray(g) for x in xs for g in floor(x)]  # the floor traces once per chunk size
    return chunk, {"batched": lambda: run(images, batch_size=N),
                   "singles": lambda: [run(im) for im in images],
                   "floor": lambda: [np.asarray(g) for x in xs for g in floor(x)]}


def loops_for(run, min_cpu: float = MIN_SAMPLE_CPU) -> int:  # noqa: ANN001 - a side
    """How many runs make one sample last about `min_cpu` CPU seconds (small models take milliseconds)."""
    with timed() as t:
        run()
    return max(1, math.ceil(min_cpu / max(t.sample.cpu, 1e-3)))


def bench(kind: str, cases: list[str], repeats: int) -> list[tuple[str, bool | None]]:
    """Time the three sides of each case on one model; returns the verdict lines."""
    model, about = load_bench_model(kind, include_top=True, seed=SEED)
    size = int(model.input_shape[1])
    images = np.random.default_rng(SEED).integers(0, 256, (N, size, size, 3), dtype=np.uint8)
    ins = cv.Inspector(model)
    print(f"\n{kind}: {about}; {N} images {size}x{size}; budget {limits.mib(limits.budget_bytes())}")
    verdicts: list[tuple[str, bool | None]] = []
    for case in cases:
        chunk, sides = setup(case, ins, images)
        inner = loops_for(sides["batched"])
        print(f" {case}: chunk {chunk} images; each sample runs every side {inner}x (per-run figures below)")
        samples: dict[str, list[Sample]] = {k: [] for k in sides}
        for i in range(repeats):
            for name in (list(sides) if i % 2 == 0 else list(sides)[::-1]):
                with timed() as t:
                    for _ in range(inner):
                        sides[name]()
                samples[name].append(Sample(t.sample.wall / inner, t.sample.cpu / inner))
        for name, s in samples.items():
            print(f"  {name:8s} median {med_cpu(s):7.3f} CPU-s  {med_wall(s):7.3f} wall-s  "
                  f"(CPU runs: {', '.join(f'{x.cpu:.3f}' for x in s)})")
        speedup = med_cpu(samples["singles"]) / med_cpu(samples["batched"])
        over = med_cpu(samples["batched"]) / med_cpu(samples["floor"])
        speed_wall = med_wall(samples["singles"]) / med_wall(samples["batched"])
        over_wall = med_wall(samples["batched"]) / med_wall(samples["floor"])
        print(f"  singles / batched: {speedup:.2f}x CPU ({speed_wall:.2f}x wall);  "
              f"batched / floor: {over:.2f}x CPU ({over_wall:.2f}x wall)")
        verdicts += [(f"{kind} {case}: batched is {speedup:.2f}x faster than single calls (CPU, >= {SPEEDUP_TARGET}x)",
                      speedup >= SPEEDUP_TARGET),
                     (f"{kind} {case}: batched costs {over:.2f}x the hand-written floor (CPU, <= {FLOOR_TARGET}x)",
                      over <= FLOOR_TARGET)]
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs of each side (default 3)")
    parser.add_argument("--models", default="vgg16,demo", help="comma-separated: vgg16, demo")
    parser.add_argument("--cases", default="gradcam,activations", help="comma-separated: gradcam, activations")
    args = parser.parse_args()
    cases = [c.strip() for c in args.cases.split(",")]
    unknown = set(cases) - {"gradcam", "activations"}
    if unknown:
        raise SystemExit(f"unknown --cases {sorted(unknown)}: use gradcam, activations")
    header(f"bench_batch: {N} images, batched {' and '.join(cases)} vs single calls vs a batched floor")
    verdicts: list[tuple[str, bool | None]] = []
    for kind in args.models.split(","):
        verdicts += bench(kind.strip(), cases, args.repeats)
    footer(verdicts)


if __name__ == "__main__":
    main()
