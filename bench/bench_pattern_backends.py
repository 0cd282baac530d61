"""Filter patterns on every Keras backend: the same final activations, and the time each backend takes.

Workload: the demo model (its shipped weights), each conv layer, filters 0..15, 64x64 pixels, 40 steps,
seed 0, both recipes (plain with the demo's step size, regularized with its defaults). Each backend runs
in its own process (`KERAS_BACKEND` is read once, at import), one after another:

  final activations  each filter's mean activation on its final picture; JAX and PyTorch are compared
                     with TensorFlow filter by filter (|other - tf| / |tf|): median and max per layer.
  time               the last conv layer's 16 patterns, cold (first call: tracing/compiling included)
                     and warm (the same call again, median of --repeats), wall and CPU seconds.

Target (issue 18): median relative difference <= 2 % per layer and recipe. The times are figures, not
targets (CPU-only JAX and PyTorch builds; see bench/README.md).

Run:  .venv/bin/python bench/bench_pattern_backends.py                      (~10 min on 2 busy cores)
      .venv/bin/python bench/bench_pattern_backends.py --layers conv5 --backends tensorflow,jax
Exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

TARGET = 0.02
MODES = ("plain", "regularized")


def child(layers: list[str], filters: int, size: int, steps: int, repeats: int) -> None:
    """Run in one backend's process: print one JSON line of final activations and timings."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import med_cpu, med_wall, timed

    import convviz_widgets as cv
    from convviz_widgets import demo

    ins = cv.Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
    layers = layers or list(ins.conv_layers)
    result: dict = {"finals": {}, "times": {}}

    def run(layer: str, mode: str) -> cv.FilterPatterns:
        return ins.filter_patterns(layer, range(filters), size=size, steps=steps, seed=0, mode=mode,
                                   step_size=demo.FILTER_STEP_SIZE)

    for mode in MODES:
        last = layers[-1]
        with timed() as t:
            run(last, mode)
        warm = []
        for _ in range(max(1, repeats)):
            with timed() as w:
                patterns = run(last, mode)
            warm.append(w.sample)
        result["times"][mode] = {"layer": last, "cold": [t.sample.wall, t.sample.cpu],
                                 "warm": [med_wall(warm), med_cpu(warm)]}
        result["finals"][f"{last}/{mode}"] = patterns.final_activation.tolist()
        for layer in layers[:-1]:
            result["finals"][f"{layer}/{mode}"] = run(layer, mode).final_activation.tolist()
    print("RESULT " + json.dumps(result))


def run_backend(backend: str, args: argparse.Namespace) -> dict | None:
    """One child process under KERAS_BACKEND=backend; its JSON result, or None when it failed."""
    cmd = [sys.executable, __file__, "--child", "--filters", str(args.filters), "--size", str(args.size),
           "--steps", str(args.steps), "--repeats", str(args.repeats)]
    if args.layers:
        cmd += ["--layers", args.layers]
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    if done.returncode or not lines:
        print(f"{backend}: failed (exit {done.returncode})\n{done.stderr[-2000:]}")
        return None
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--layers", default="", help="comma-separated conv layers (default: all of them)")
    parser.add_argument("--filters", type=int, default=16)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=2, help="warm runs timed per backend and recipe")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    layers = [name for name in args.layers.split(",") if name]
    if args.child:
        child(layers, args.filters, args.size, args.steps, args.repeats)
        return

    print("== bench_pattern_backends: demo model, filter patterns on every Keras backend ==")
    print(f"workload: filters 0..{args.filters - 1}, {args.size}x{args.size}, {args.steps} steps, seed 0; "
          f"load average at start: {os.getloadavg()[0]:.2f}")
    results = {b: run_backend(b, args) for b in args.backends.split(",")}
    print("-- time: the last conv layer's patterns (wall s [CPU s]) --")
    for backend, res in results.items():
        if res:
            for mode, t in res["times"].items():
                print(f"{backend:10s} {mode:11s} {t['layer']}: cold {t['cold'][0]:6.2f} [{t['cold'][1]:6.2f}]  "
                      f"warm {t['warm'][0]:6.2f} [{t['warm'][1]:6.2f}]")
    reference = results.get("tensorflow")
    verdicts = []
    if reference:
        print("-- final activations vs TensorFlow: relative difference per filter, median / max --")
        for backend, res in results.items():
            if backend == "tensorflow" or not res:
                continue
            worst = 0.0
            for key, ref in reference["finals"].items():
                ref, got = np.asarray(ref), np.asarray(res["finals"][key])
                rel = np.abs(got - ref) / np.maximum(np.abs(ref), 1e-6)
                worst = max(worst, float(np.median(rel)))
                print(f"{backend:6s} {key:18s} median {np.median(rel):.2e}  max {rel.max():.2e}")
            verdicts.append((backend, worst))
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    print("-- verdict --")
    for backend, worst in verdicts:
        print(f"{'PASS' if worst <= TARGET else 'FAIL'}  {backend}: largest per-layer median relative difference "
              f"{worst:.2%} <= {TARGET:.0%}")


if __name__ == "__main__":
    main()
