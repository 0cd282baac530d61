"""Smoke run on whatever device TensorFlow finds (a GPU on Colab, else the CPU): the three views and a
batched Grad-CAM, with the device and the time of each step printed.

Run:  python bench/gpu_smoke.py            (seconds on a GPU; under a minute on 2 CPU cores)
      pip install ".[gpu]" first for a CUDA build of TensorFlow.
Exits 1 if a step fails or gives a non-finite or blank result.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets import demo, limits  # noqa: E402

BATCH = 32


def step(name: str, fn):  # noqa: ANN001, ANN201 - any callable, its result
    """Run one step twice (cold: tracing included; warm) and print both times."""
    t0 = time.perf_counter()
    out = fn()
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = fn()
    warm = time.perf_counter() - t0
    print(f"  {name:40s} cold {cold * 1e3:8.1f} ms   warm {warm * 1e3:8.1f} ms")
    return out


def main() -> int:
    import tensorflow as tf

    print(f"device: {cv.describe_device()}  (TensorFlow {tf.__version__}; GPUs: "
          f"{[g.name for g in tf.config.list_physical_devices('GPU')] or 'none'}; memory growth: "
          f"{os.environ.get('CONVVIZ_GPU_MEMORY_GROWTH', '1') != '0'}; budget {limits.mib(limits.budget_bytes())})")
    model = demo.load_model()
    images = np.stack([demo.scene(seed=i).image for i in range(BATCH)])
    ins = cv.Inspector(model, preprocess=demo.PREPROCESS)
    layer = ins.conv_layers[-1]
    acts = step("activations (one image)", lambda: ins.activations(images[0]))
    pats = step(f"filter patterns ({layer}, 16 filters)", lambda: ins.filter_patterns(layer, range(16), steps=20))
    cam = step("Grad-CAM (one image)", lambda: ins.gradcam(images[0]))
    cams = step(f"batched Grad-CAM ({BATCH} images)", lambda: ins.gradcam(images, batch_size=BATCH))
    ok = (all(np.isfinite(a).all() for a in acts.values()) and pats.images.std() > 0
          and cam.heatmap.max() > 0 and len(cams) == BATCH and all(np.isfinite(c.raw).all() for c in cams))
    print("OK" if ok else "FAILED: a result was non-finite or blank")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
