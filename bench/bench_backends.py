"""Warm single-image Grad-CAM on each Keras backend (CPU), next to a hand-written floor on that backend.

For each backend (tensorflow, jax, torch; one interpreter each, `KERAS_BACKEND` set) and each model:

  demo    the package's demo convnet (96 px, "rescale"), `convviz_widgets.demo.load_model()`, a demo scene
  vgg128  `keras.applications.VGG16(weights=None)` trunk at 128 px + global average pool + a 1000-unit linear
          head (seeded random weights, nothing downloaded), a seeded noise image, "caffe"

the package's warm `Inspector.gradcam(image)` and the floor of `gpu_backends.Floors.gradcam` (the backend's
own idiom: `stateless_call` + `jax.grad` under `jax.jit`; `torch.autograd.grad` on the Keras model, eager;
`tf.function` + `tf.GradientTape`; input already preprocessed) run strictly alternately, `--repeats` times
each after a warm-up; medians of CPU time (`time.process_time`, all threads) and wall time are printed with
their ratios. Targets (issue 18): every backend's warm Grad-CAM <= 1.2x its floor (judged in CPU time,
steadier than wall on a shared machine).

Run:  python bench/bench_backends.py                (about 3 minutes on 2 cores; --repeats N, default 30)
      python bench/bench_backends.py --backends jax --models demo
Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGET = 1.2
BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("demo", "vgg128")


def measure(models: list[str], repeats: int) -> list[dict]:
    """In this interpreter (one backend): each model's package and floor Grad-CAM, as dicts."""
    sys.path.insert(0, str(HERE))
    import gpu_backends as gb

    from convviz_widgets import demo

    rows = []
    for name in models:
        if name == "demo":
            model, prep = demo.load_model(), demo.PREPROCESS
            image = demo.scene(label=1, seed=demo.EVAL_SEED).image[None]
        else:
            model, prep, image = gb.vgg16(128), "caffe", None
        row = gb.bench_gradcam(model, 1, repeats, preprocess=prep, images=image, name=f" ({name})")
        rows.append(asdict(row) | {"model": name})
    return rows


def run_backend(backend: str, models: list[str], repeats: int) -> list[dict] | str:
    """This script as a worker under `backend`: its rows, or why it could not run."""
    if importlib.util.find_spec(backend) is None:
        return f"{backend} is not installed"
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(HERE.parent), env.get("PYTHONPATH", "")) if p)
    cmd = [sys.executable, __file__, "--worker", "--models", ",".join(models), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"failed (exit {proc.returncode}): {proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else ''}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def ms(value: float) -> str:
    """Milliseconds for the table; '-' for a side that did not run."""
    return "-" if value != value else f"{value:.2f}"


def times(ratio: float) -> str:
    """A ratio for the table; '-' when a side did not run."""
    return "-" if ratio != ratio else f"{ratio:.2f}x"


def verdict(ratio: float) -> str:
    """PASS/FAIL against the target; 'not measured' when the package's side failed (NaN)."""
    return "not measured" if ratio != ratio else ("PASS" if ratio <= TARGET else "FAIL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each side (default 30)")
    parser.add_argument("--backends", default=",".join(BACKENDS))
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    models = args.models.split(",")
    if args.worker:
        print(json.dumps(measure(models, args.repeats)))
        return

    print(f"bench_backends: warm Grad-CAM vs a hand-written floor on each backend (CPU), medians of {args.repeats}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    lines = ["| backend | model | package CPU ms | floor CPU ms | CPU ratio | package wall ms | floor wall ms | "
             "wall ratio | maps | target <= 1.2x (CPU) |", "|---|---|---:|---:|---:|---:|---:|---:|---|---|"]
    for backend in args.backends.split(","):
        result = run_backend(backend, models, args.repeats)
        if isinstance(result, str):
            lines.append(f"| {backend} | - | | | | | | | {result} | not measured |")
            print(f"{backend}: {result}", flush=True)
            continue
        for r in result:
            cpu, wall = r["package_cpu_ms"] / r["floor_cpu_ms"], r["package_ms"] / r["floor_ms"]
            cells = [backend, r["model"], ms(r["package_cpu_ms"]), ms(r["floor_cpu_ms"]), times(cpu),
                     ms(r["package_ms"]), ms(r["floor_ms"]), times(wall), r["agree"][:120], verdict(cpu)]
            lines.append("| " + " | ".join(cells) + " |")
        print(f"{backend}: done", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
