"""Faster Score-CAM on VGG16 at 224x224: max_channels=10 and 64 against all 512 channels.

Workload: keras.applications.VGG16(weights=None, include_top=True) with seeded random weights,
one 224x224 RGB image (uint8, seeded noise), Score-CAM of the top class at the default layer
block5_conv3 (512 channels), batch_size 32 (the default; the memory budget may lower it).

  all   `Inspector.gradcam(image, method="scorecam")`: 512 masked forward passes
  N=64  the same with max_channels=64: only the 64 maps of largest spatial variance are masked
  N=10  max_channels=10

Each is warm (a first N=10 call traces the batch function).  Order: N=10, N=64, all, N=64, N=10
(the fast ones twice, medians; all-channels once: it takes about a minute on 2 cores).  Speed-up
= all / N, in wall and CPU seconds.  Target: each speed-up >= half the ideal 512 / N (the fixed
part: one forward for the feature map, one for the blurred baseline, the masks).  The rank
correlation (Spearman) of each fast map with the full one is printed for information: random
weights give near-uniform probabilities, so it says little about a trained model (see the tests
for the demo model's figures).

Run:  .venv/bin/python bench/bench_scorecam.py     (about 2.5 minutes on 2 calm cores)
Exits 0 whether or not the target is met.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import numpy as np  # noqa: E402
from _common import Sample, footer, header, load_bench_model, med_cpu, med_wall, timed  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets.metrics import spearman  # noqa: E402

SEED = 0
COUNTS = (10, 64)


def run(ins: cv.Inspector, image: np.ndarray, n: int | None) -> tuple[Sample, cv.CAM]:
    """One timed Score-CAM with at most n masked channels (None: all)."""
    with timed() as t:
        cam = ins.gradcam(image, method="scorecam", max_channels=n)
    return t.sample, cam


def main() -> None:
    header("bench_scorecam: VGG16 224x224 Score-CAM, max_channels vs all channels")
    model, about = load_bench_model("vgg16", include_top=True, seed=SEED)
    print(f"model: {about}")
    image = np.random.default_rng(SEED).integers(0, 256, (224, 224, 3), dtype=np.uint8)
    ins = cv.Inspector(model)
    layer = ins.layer(ins.default_cam_layer)
    print(f"layer: {layer.name} ({layer.channels} channels); masked image estimate "
          f"{ins._masked_image_bytes((224, 224)) / 2**20:.1f} MB each")  # private: bench only
    with timed() as t:
        run(ins, image, COUNTS[0])
    print(f"warm-up (N={COUNTS[0]}, tracing included): {t.sample.wall:.2f} s")

    samples: dict[int | None, list[Sample]] = {n: [] for n in (*COUNTS, None)}
    cams: dict[int | None, cv.CAM] = {}
    for n in (*COUNTS, None, *reversed(COUNTS)):
        sample, cams[n] = run(ins, image, n)
        samples[n].append(sample)
        print(f"  max_channels={n}: {sample.wall:.2f} s wall, {sample.cpu:.2f} s CPU")
        sys.stdout.flush()

    full = samples[None]
    channels = layer.channels
    print(f"\n{'max_channels':>12} {'wall s':>8} {'CPU s':>8} {'speed-up wall':>14} {'speed-up CPU':>13} "
          f"{'ideal':>6} {'Spearman vs all':>16}")
    verdicts = []
    for n in (None, *COUNTS):
        s = samples[n]
        wall_x, cpu_x = med_wall(full) / med_wall(s), med_cpu(full) / med_cpu(s)
        ideal = channels / (n or channels)
        rho = spearman(cams[n].heatmap, cams[None].heatmap)
        print(f"{n or 'all':>12} {med_wall(s):8.2f} {med_cpu(s):8.2f} {wall_x:13.1f}x {cpu_x:12.1f}x "
              f"{ideal:5.1f}x {rho:16.3f}")
        if n is not None:
            verdicts.append((f"max_channels={n}: {wall_x:.1f}x faster than all {channels} (CPU {cpu_x:.1f}x; "
                             f">= {ideal / 2:.1f}x = half the ideal)", wall_x >= ideal / 2))
    footer(verdicts)


if __name__ == "__main__":
    main()
