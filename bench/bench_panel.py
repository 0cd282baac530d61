"""Panel benchmarks, measured side by side in one run (python bench/bench_panel.py).

1. Server-side time of a layer switch in the Activations tab with cached activations, VGG16 at 224x224
   (weights=None): median over 20 switches to the largest layer, next to one forward pass of the model
   and next to drawing that layer's grid at full resolution. Target: <= 100 ms.
2. Rapid requests in the Grad-CAM tab (VGG16 base at 224x224, weights=None, a 1000-class head), with
   the background runner: time until the panel settles after 20 class changes made at once, next to one
   class change, and how many maps were computed (one job slot per view: the last request wins).
3. The Grad-CAM tab's Score-CAM default (the 32 channels of largest variance) on the demo model: CPU time
   and the heatmap's rank correlation with all channels, median over 5 scenes.
4. Peak memory (RSS) of a fresh process that shows the panel on VGG16 with its classifier
   (weights=None, include_top=True) and renders one picture in each tab (Binder gives about 2 GB).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import psutil  # noqa: E402

from convviz_widgets.render import activation_grid, to_png  # noqa: E402
from convviz_widgets.widgets import ConvVizPanel  # noqa: E402

SWITCHES = 20
RAPID = 20  # class changes made at once
TARGET_MS = 100.0
BINDER_MB = 2048


def image(seed: int, size: int = 224) -> np.ndarray:
    """A deterministic test picture: smooth colour blobs (random noise would make PNGs unusually large)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    channels = [np.sin(2 * np.pi * (rng.uniform(1, 4) * xx + rng.uniform(1, 4) * yy + rng.uniform())) for _ in range(3)]
    return ((np.stack(channels, axis=-1) + 1) * 127.5).astype(np.uint8)


def ms(seconds: float) -> float:
    """Seconds to milliseconds, rounded."""
    return round(seconds * 1000.0, 1)


def timed(fn, repeat: int) -> list[float]:  # noqa: ANN001 - any callable
    """Wall times of `repeat` calls."""
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def layer_switch() -> dict[str, float | str]:
    """Median layer-switch time for the largest VGG16 layer, next to one forward pass."""
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    panel = ConvVizPanel(model, image(0), background=False)
    view, inspector = panel.activations, panel.inspector
    assert view.error == "" and len(bytes(view.grid.value)) > 0, view.error
    acts = inspector.activations(image(0))
    largest = max(acts, key=lambda name: acts[name].size)
    small = inspector.layers[-1]
    seeds = iter(range(1, 100))
    forward = timed(lambda: inspector.activations(image(next(seeds))), 5)[1:]  # a new image each time: no cache
    panel.set_image(image(0))

    def switch() -> float:
        view.layer.value = small  # not timed: only to make the next switch a real one
        t = time.perf_counter()
        view.layer.value = largest
        return time.perf_counter() - t

    switch()  # warm-up
    switches = [switch() for _ in range(SWITCHES)]
    assert view.error == "" and largest in view.facts.value, view.error
    all_layers = []
    for name in inspector.layers:
        t = time.perf_counter()
        view.layer.value = name
        all_layers.append(time.perf_counter() - t)
    full = timed(lambda: to_png(activation_grid(acts[largest], 16)), 3)
    view.layer.value = largest

    def toggle_cmap() -> None:
        view.cmap.value = "magma" if view.cmap.value == "gray" else "gray"

    cmap = timed(toggle_cmap, 6)
    median = statistics.median(switches)
    return {
        "largest layer": f"{largest} {acts[largest].shape}",
        "layer switch median ms": ms(median),
        "layer switch p90 ms": ms(sorted(switches)[int(0.9 * len(switches)) - 1]),
        "every layer once, median ms": ms(statistics.median(all_layers)),
        "every layer once, max ms": ms(max(all_layers)),
        "colormap change (largest layer) median ms": ms(statistics.median(cmap)),
        "one forward pass median ms": ms(statistics.median(forward)),
        "switch / forward pass": round(median / statistics.median(forward), 3),
        "full-resolution grid + PNG ms (not shown)": ms(statistics.median(full)),
        "switch / full-resolution grid": round(median / statistics.median(full), 3),
        "target met (<= 100 ms)": median * 1000.0 <= TARGET_MS,
    }


def rapid_requests() -> dict[str, float | int | str]:
    """Settling time after RAPID class changes made without waiting, next to one change (wall and CPU)."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(224, 224, 3))
    model = keras.Sequential([keras.Input((224, 224, 3)), base, keras.layers.GlobalAveragePooling2D(),
                              keras.layers.Dense(1000, activation="softmax", name="head")], name="vgg16_head")
    panel = ConvVizPanel(model, image(0), preprocess="caffe", background=True)
    cam = panel.select("Grad-CAM")
    assert panel.wait(600) and cam.error == "", cam.error
    inspector = panel.inspector
    computed: list[int] = []
    original = inspector.gradcam
    inspector.gradcam = lambda *a, **k: computed.append(k.get("class_index")) or original(*a, **k)

    def settle(classes: list[int]) -> tuple[float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        for index in classes:
            cam.choose(index)
        assert panel.wait(600)
        return time.perf_counter() - wall, time.process_time() - cpu

    settle([1])  # warm-up: traces the CAM function
    one = [settle([2 + i]) for i in range(3)]
    computed.clear()
    last = 10 + RAPID - 1
    rapid = settle(list(range(10, 10 + RAPID)))
    assert f"(class {last})" in cam.score.value and cam.error == "", cam.error
    one_wall, one_cpu = statistics.median(w for w, _ in one), statistics.median(c for _, c in one)
    return {
        "one class change, median ms (wall / CPU)": f"{ms(one_wall)} / {ms(one_cpu)}",
        f"{RAPID} class changes at once, ms (wall / CPU)": f"{ms(rapid[0])} / {ms(rapid[1])}",
        f"maps computed for the {RAPID} requests": len(computed),
        "settle / one change (wall)": round(rapid[0] / one_wall, 2),
        "settle / one change (CPU)": round(rapid[1] / one_cpu, 2),
        "shows the last request": True,
    }


def scorecam_default(scenes: int = 5) -> dict[str, float | str]:
    """The panel's Score-CAM default against all channels on the demo model: CPU time and Spearman rho."""
    from scipy.stats import spearmanr

    from convviz_widgets import Inspector, demo
    from convviz_widgets.widgets.cam import SCORECAM_CHANNELS

    inspector = Inspector(demo.load_model())
    layer = inspector.default_cam_layer
    total = inspector.layer(layer).channels
    inspector.gradcam(demo.scene(seed=0).image, method="scorecam")  # warm-up: traces the functions
    cpu = {"all": [], "default": []}
    rhos = []
    for seed in range(scenes):
        image = demo.scene(seed=seed).image
        maps = {}
        for name, n in (("all", None), ("default", SCORECAM_CHANNELS)):
            t = time.process_time()
            maps[name] = inspector.gradcam(image, method="scorecam", max_channels=n).heatmap
            cpu[name].append(time.process_time() - t)
        rhos.append(spearmanr(maps["all"].ravel(), maps["default"].ravel())[0])
    return {
        "layer": f"{layer} ({total} channels), default {SCORECAM_CHANNELS}",
        "all channels, median CPU ms": ms(statistics.median(cpu["all"])),
        f"{SCORECAM_CHANNELS} channels, median CPU ms": ms(statistics.median(cpu["default"])),
        "all / default (CPU)": round(statistics.median(cpu["all"]) / statistics.median(cpu["default"]), 2),
        "Spearman rho with all channels, median": round(float(statistics.median(rhos)), 3),
        "Spearman rho, lowest": round(float(min(rhos)), 3),
    }


def rss_child(panel_too: bool = True) -> None:
    """Run in a fresh process: show the panel on VGG16 with its classifier, one picture per tab; print JSON."""
    proc = psutil.Process()
    stages: dict[str, float] = {"after imports": proc.memory_info().rss}
    t0 = time.perf_counter()
    keras.utils.set_random_seed(0)
    model = keras.applications.VGG16(weights=None, include_top=True)
    stages["model built"] = proc.memory_info().rss
    if not panel_too:
        model.predict_on_batch(image(0)[None].astype(np.float32))
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({"stages_mb": {k: round(v / 2**20) for k, v in stages.items()},
                          "peak_rss_mb": round(peak / 2**20)}))
        return
    panel = ConvVizPanel(model, image(0), background=False)
    assert len(bytes(panel.activations.grid.value)) > 0
    stages["panel shown (activations grid)"] = proc.memory_info().rss
    t1 = time.perf_counter()
    filters = panel.select("Filters")
    filters.render()
    assert filters.error == "" and len(bytes(filters.grid.value)) > 0, filters.error
    stages[f"filters grid ({filters.layer.value}, 16 filters, 64 px, 40 steps)"] = proc.memory_info().rss
    t2 = time.perf_counter()
    cam = panel.select("Grad-CAM")
    assert cam.error == "" and len(bytes(cam.overlay.value)) > 0, cam.error
    stages["grad-cam overlay"] = proc.memory_info().rss
    t3 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux reports KiB
    print(json.dumps({
        "stages_mb": {k: round(v / 2**20) for k, v in stages.items()},
        "peak_rss_mb": round(peak / 2**20),
        "seconds": {"model + panel + activations": round(t1 - t0, 1), "filters": round(t2 - t1, 1),
                    "grad-cam": round(t3 - t2, 1)},
        "params_millions": round(model.count_params() / 1e6, 1),
    }))


def peak_memory(mode: str = "--rss-child") -> dict:
    """Peak RSS of a fresh process running rss_child() (with the panel, or the model alone)."""
    out = subprocess.run([sys.executable, __file__, mode], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    """Run both benchmarks and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rss-model-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child or args.rss_model_only:
        rss_child(panel_too=args.rss_child)
        return
    logging.getLogger("convviz_widgets").setLevel(logging.ERROR)
    print(f"CPU cores: {os.cpu_count()}; TensorFlow threads as configured; timings are wall-clock.")
    print("\n== Activations tab: layer switch with cached activations (VGG16, 224x224, weights=None) ==")
    for key, value in layer_switch().items():
        print(f"  {key:45s} {value}")
    print(f"\n== Grad-CAM tab: {RAPID} rapid class changes, background runner (VGG16 base 224x224 + head) ==")
    for key, value in rapid_requests().items():
        print(f"  {key:45s} {value}")
    print("\n== Score-CAM default in the Grad-CAM tab vs all channels (demo model, 5 scenes) ==")
    for key, value in scorecam_default().items():
        print(f"  {key:45s} {value}")
    print("\n== Peak memory: panel on VGG16 with its classifier (weights=None, include_top=True) ==")
    memory = peak_memory()
    alone = peak_memory("--rss-model-only")
    for key, value in memory["stages_mb"].items():
        print(f"  RSS {key:60s} {value:6d} MB")
    peak, base = memory["peak_rss_mb"], alone["peak_rss_mb"]
    print(f"  peak RSS with the panel, one picture per tab:  {peak} MB = {peak / BINDER_MB:.0%} of Binder's "
          f"~{BINDER_MB} MB ({memory['params_millions']} M parameters)")
    print(f"  peak RSS of the model alone (build + predict): {base} MB; the panel adds {peak - base} MB "
          f"(ratio {peak / base:.2f})")
    print(f"  seconds: {memory['seconds']}")


if __name__ == "__main__":
    main()
