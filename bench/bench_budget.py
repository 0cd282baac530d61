"""Memory estimates next to measured peaks: filter patterns and Grad-CAM on the demo model and MobileNet.

Each case runs in a fresh process; the peak is the process's maximum resident memory minus its
resident memory just before the request. Run: python bench/bench_budget.py
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

MOBILENET = Path(__file__).resolve().parents[2] / "shared" / "data" / "mobilenet_2_5_128_tf.h5"

CASES = [
    ("filters", "conv5", 128, 96),
    ("filters", "conv1", 16, 1024),
    ("filters", "conv3", 8, 384),
    ("filters", "conv2", 4, 768),
    ("gradcam", None, 1, 96),
    ("mobilenet", "conv_pw_11", 96, 128),
]

CHILD = """
import json, resource, sys
import numpy as np
import convviz_widgets as cv
from convviz_widgets import demo, limits
limits.limits.memory_budget = 64 * 2**30
kind, layer, n, size, weights = json.loads(sys.argv[1])
if kind == "mobilenet":
    import keras
    ins = cv.Inspector(keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=weights))
    kind = "filters"
else:
    ins = cv.Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
image = demo.scene(seed=0).image
ins.gradcam(image)  # compiled functions and TensorFlow's pools exist before measuring
if kind == "filters":
    ins.filter_patterns(layer, range(2), size=size, steps=1)
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()
before = rss()
if kind == "filters":
    per_filter, whole = ins.pattern_memory(layer, n, size)
    estimate = per_filter * n + whole
    ins.filter_patterns(layer, range(n), size=size, steps=3)
else:
    estimate = ins.bytes_per_image(gradient=True)
    ins.gradcam(demo.scene(seed=1).image)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps([estimate, max(0, peak - before)]))
"""


def main() -> None:
    """Print estimate, measured peak and their ratio for each case."""
    print(f"{'case':<28} {'estimate MB':>12} {'measured MB':>12} {'ratio':>6}")
    for case in CASES:
        if case[0] == "mobilenet" and not MOBILENET.exists():
            print(case, "skipped: the MobileNet weights are not in ../shared/data")
            continue
        arg = json.dumps([*case, str(MOBILENET)])
        out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True)
        if out.returncode:
            print(case, "failed:", out.stderr[-500:])
            continue
        estimate, measured = json.loads(out.stdout.strip().splitlines()[-1])
        label = f"{case[0]} {case[1] or ''} n={case[2]} {case[3]}px"
        print(f"{label:<28} {estimate / 2**20:12.0f} {measured / 2**20:12.0f} {estimate / max(measured, 1):6.2f}")


if __name__ == "__main__":
    main()
