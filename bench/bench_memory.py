"""Peak memory of the requests a student's upload or a slider can trigger, each in its own process.

Cases (each run in a fresh interpreter, so one case's peak cannot hide in another's):

  a  a 20000x20000 PNG of ~50 kB (a decompression bomb): load_image must refuse it from its header
  b  a 12000x9000 JPEG loaded with size=(96, 96): decoded at 1/8 scale, target <= +100 MB
  c  filter_patterns on the demo model at size=2048: refused or split into chunks (what happened is printed)
  d  a soak: 60 filter_patterns calls with changing filter counts and sizes, target <= +100 MB at the end
  e  1000 panel interactions (class, layer, image) on ConvVizPanel(demo model, background=False)
  s  a soak: 5,000 random panel actions over every tab (--actions N), after 300 of warm-up that fill the
     bounded caches; RSS and the kernel's live widgets after warm-up and every 500 actions, target flat
     (<= +50 MB at the end over the RSS after warm-up)
  u  VGG16 built in code (keras.applications.VGG16(weights=None)), then a panel with its Grad-CAM tab computed
  v  VGG16 (keras.applications, weights=None, with its classifier) saved to .keras, loaded with Keras's own
     loader, then a panel with its Grad-CAM tab computed: the "before" of loading light
  w  the same with cv.load_model (built with zero initialisers, filled from the file): target <= 1.3 GB
     (1,331 MB) absolute peak RSS, the figure that matters on a 2 GB Binder (TensorFlow alone takes ~610 MB)
  x  a .keras whose config.json inflates to 2 GiB (2 MB on disk): refused, target <= +100 MB
  y  a .keras declaring Flatten -> Dense(10000) on 3 million inputs (112 GB of weights): refused, <= +100 MB
  z  a small real .keras with an asset that inflates to 2 GiB on disk: refused, <= +100 MB

Memory is the resident set size (RSS) over the case's baseline, the RSS once its inputs are ready:
the peak is the larger of a 5 ms sampler's maximum and the process's own high-water mark (when the
case raised it). The parent also watches every child and stops it above --cap (8 GB, or 60 % of the
memory available if less), so a case that would exhaust the machine reports that instead. Always exits
0; PASS/FAIL lines say what met its target.

    .venv/bin/python bench/bench_memory.py            # all cases
    .venv/bin/python bench/bench_memory.py --cases ab # only some
    .venv/bin/python bench/bench_memory.py --cases s --actions 2000  # a shorter soak
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import struct
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
TARGET_MB = 100
SOAK_TARGET_MB = 50  # the soak's growth after warm-up
SOAK_WARMUP = 300  # actions before the soak's baseline: every bounded cache has been filled and evicted
SOAK_MARK = 500  # the soak reports every this many actions
LIGHT_TARGET_MB = 1331  # 1.3 GB in the binary units of every size this package prints (1 GB = 1024 MB)


# ---------------------------------------------------------------- inputs, made in the parent (no TensorFlow)

def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def write_png_bomb(path: Path, width: int = 20_000, height: int = 20_000) -> None:
    """A valid all-black 1-bit PNG, compressed row block by row block (~50 kB for 20000x20000)."""
    rows = (b"\0" * (1 + (width + 7) // 8)) * 500
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(rows) for _ in range(height // 500)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", idat)
                     + _png_chunk(b"IEND", b""))


def write_big_jpeg(path: Path, width: int = 12_000, height: int = 9_000) -> None:
    """A photo-like 12000x9000 JPEG: smooth random colour fields, upscaled, quality 85."""
    import numpy as np
    from PIL import Image

    small = np.random.default_rng(0).integers(0, 256, (height // 250, width // 250, 3), dtype=np.uint8)
    Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC).save(path, quality=85)


# ---------------------------------------------------------------- measuring inside a child

class PeakRSS:
    """Samples this process's RSS every 5 ms from start() until stop(); also reads the kernel's high-water mark."""

    def __init__(self) -> None:
        self.process = psutil.Process()
        self.baseline = self.process.memory_info().rss
        self.hwm_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        self.peak = self.baseline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.process.memory_info().rss)
            time.sleep(0.005)

    def now_mb(self) -> float:
        """RSS over the baseline now."""
        return (self.process.memory_info().rss - self.baseline) / MB

    def stop(self) -> dict:
        """Peak and final RSS over the baseline, in MB."""
        self._stop.set()
        self._thread.join()
        hwm = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        peak = max(self.peak, hwm if hwm > self.hwm_before else 0)
        return {"peak_mb": (peak - self.baseline) / MB, "end_mb": self.now_mb(), "baseline_mb": self.baseline / MB}


def _report(result: dict) -> None:
    print("RESULT " + json.dumps(result), flush=True)


def case_a(work: Path) -> None:
    import convviz_widgets as cv

    meter = PeakRSS()
    try:
        cv.load_image(work / "bomb.png")
        outcome = "decoded (not refused)"
    except cv.ConvVizError as err:
        outcome = f"refused: {err}"
    _report({**meter.stop(), "outcome": outcome, "ok": outcome.startswith("refused")})


def case_b(work: Path) -> None:
    import convviz_widgets as cv

    meter = PeakRSS()
    start = time.process_time()
    try:
        out = cv.load_image(work / "big.jpg", size=(96, 96))
        outcome = f"loaded {out.shape} in {time.process_time() - start:.2f} CPU s"
    except cv.ConvVizError as err:
        outcome = f"refused: {err}"
    result = meter.stop()
    _report({**result, "outcome": outcome, "ok": outcome.startswith("loaded") and result["peak_mb"] <= TARGET_MB})


def _demo():  # noqa: ANN202
    import convviz_widgets as cv
    from convviz_widgets import demo

    return cv, demo, demo.load_model()


def case_c(work: Path) -> None:
    cv, demo, model = _demo()
    from convviz_widgets.limits import budget_bytes

    budget_mb = budget_bytes() / MB
    meter = PeakRSS()
    start = time.process_time()
    try:
        fp = cv.filter_patterns(model, "conv3", range(4), preprocess=demo.PREPROCESS, size=2048, steps=3, seed=0)
        outcome = f"computed {fp.images.shape} in {time.process_time() - start:.1f} CPU s"
    except cv.ConvVizError as err:
        outcome = f"refused: {err}"
    result = meter.stop()
    ok = result["peak_mb"] <= budget_mb  # refused, or chunked to fit the budget
    _report({**result, "outcome": f"{outcome} (memory budget {budget_mb:,.0f} MB)", "ok": ok})


def case_d(work: Path) -> None:
    cv, demo, model = _demo()
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
    meter = PeakRSS()
    marks = []
    for i in range(60):
        cv.filter_patterns(model, layers[i % len(layers)], range(1 + i % 7), preprocess=demo.PREPROCESS,
                           size=32 + 8 * (i % 9), steps=2, seed=i)
        if i in (9, 29, 59):
            marks.append(f"after {i + 1}: {meter.now_mb():+.0f} MB")
    result = meter.stop()
    _report({**result, "outcome": "60 calls; " + ", ".join(marks), "ok": result["end_mb"] <= TARGET_MB})


def case_e(work: Path) -> None:
    cv, demo, model = _demo()
    panel = cv.ConvVizPanel(model, background=False)
    panel.select("Grad-CAM")
    cam = panel.cam
    layers = [value for _, value in cam.layer.options]
    n_classes = int(cam.class_index.max) + 1
    meter = PeakRSS()
    start = time.monotonic()
    marks = []
    for i in range(1000):
        kind = i % 3
        if kind == 0:
            cam.class_index.value = (i // 3) % n_classes
        elif kind == 1:
            cam.layer.value = layers[(i // 3) % len(layers)]
        else:
            panel.set_image(demo.scene(seed=i).image)  # a new picture each time, as uploads are
        if i + 1 in (100, 500, 1000):
            marks.append(f"after {i + 1}: {meter.now_mb():+.0f} MB")
    panel.wait()
    per = (time.monotonic() - start) / 1000 * 1000
    drawn = "drawn" if getattr(cam.current_cam(), "heatmap", None) is not None else "missing"
    result = meter.stop()
    _report({**result, "outcome": f"1000 interactions ({per:.0f} ms each; last map {drawn}); " + ", ".join(marks),
             "ok": result["end_mb"] <= TARGET_MB})


def _soak_actions(panel, scenes: list, seed: int = 0):  # noqa: ANN001, ANN202 - a generator of named actions
    """An endless random walk over the panel's controls, each step (name, function), deterministic for `seed`.

    What a visitor does: switch tabs, load pictures, change the class, layer, method, colour map and opacity,
    toggle the sanity check, pick layers and channels (the card computes a pattern), render small filter
    grids, click the channels behind a map.
    """
    import random

    rng = random.Random(seed)
    acts, filt, cam = panel.activations, panel.filters, panel.cam

    def values(control) -> list:  # noqa: ANN001
        return [o[1] if isinstance(o, tuple) else o for o in control.options]

    def on(title: str):  # noqa: ANN202
        return panel.select(title)

    def channel_button() -> None:
        on("Grad-CAM")
        buttons = cam.channel_buttons.children
        if buttons:
            buttons[rng.randrange(len(buttons))].click()

    def render() -> None:
        on("Filters")
        filt.layer.value = rng.choice(values(filt.layer))
        filt.steps.value, filt.count.value = 2, rng.choice([1, 2, 4])
        filt.render()

    methods = [m for m in ("gradcam", "gradcam++", "hirescam", "xgradcam", "layercam", "eigencam")
               if m in values(cam.method)]
    steps = [
        ("tab", lambda: on(rng.choice(panel.titles))),
        ("image", lambda: panel.set_image(rng.choice(scenes))),
        ("class", lambda: (on("Grad-CAM"), setattr(cam.class_index, "value", rng.randrange(cam.class_index.max + 1)))),
        ("cam layer", lambda: (on("Grad-CAM"), setattr(cam.layer, "value", rng.choice(values(cam.layer))))),
        ("method", lambda: (on("Grad-CAM"), setattr(cam.method, "value", rng.choice(methods)))),
        ("sanity", lambda: (on("Grad-CAM"), setattr(cam.sanity, "value", not cam.sanity.value))),
        ("look", lambda: (setattr(cam.cmap, "value", rng.choice(values(cam.cmap))),
                          setattr(cam.opacity, "value", rng.choice([0.3, 0.5, 0.7])))),
        ("layer", lambda: (on("Activations"), setattr(acts.layer, "value", rng.choice(values(acts.layer))))),
        ("channel", lambda: (on("Activations"), setattr(acts.channel, "value", rng.randrange(acts.channel.max + 1)))),
        ("grid", lambda: (setattr(acts.per_row, "value", rng.choice([4, 8, 16])),
                          setattr(acts.cmap, "value", rng.choice(values(acts.cmap))))),
        ("render", render),
        ("channel button", channel_button),
        ("card", lambda: panel.open_channel(rng.choice(values(acts.layer)), 0)),
    ]
    while True:
        yield rng.choice(steps)


def _live_widgets() -> int:
    """Widgets alive in this kernel (ipywidgets keeps each one until it is closed)."""
    import warnings

    import ipywidgets

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return len(ipywidgets.Widget.widgets)


def case_s(work: Path, actions: int = 5000) -> None:
    import gc

    cv, demo, model = _demo()
    panel = cv.ConvVizPanel(model, background=False)
    scenes = [demo.scene(seed=i).image for i in range(24)]
    walk = _soak_actions(panel, scenes)
    for _ in range(SOAK_WARMUP):
        next(walk)[1]()
    panel.wait()
    gc.collect()
    meter = PeakRSS()  # the baseline: after warm-up
    widgets0, start, marks = _live_widgets(), time.monotonic(), []
    for i in range(actions):
        next(walk)[1]()
        if (i + 1) % SOAK_MARK == 0 or i + 1 == actions:
            panel.wait()
            gc.collect()
            marks.append(f"{i + 1}: {meter.now_mb():+.0f} MB, {_live_widgets() - widgets0:+d} widgets")
            print(f"MARK after {marks[-1]} ({time.monotonic() - start:.0f} s)", flush=True)
    panel.wait()
    gc.collect()
    per = (time.monotonic() - start) / max(1, actions) * 1000
    result = meter.stop()
    _report({**result, "outcome": f"{actions} random actions after {SOAK_WARMUP} of warm-up ({per:.0f} ms each); "
             + "; ".join(marks), "ok": result["end_mb"] <= SOAK_TARGET_MB})
# ---------------------------------------------------------------- model files: loading light, and bombs

def _load_vgg_panel(work: Path, light: bool | None) -> None:
    """Load the saved VGG16 (light, or with Keras's loader; None: built in code), open a panel, compute Grad-CAM."""
    import convviz_widgets as cv

    meter = PeakRSS()
    start = time.monotonic()
    if light is None:
        import keras

        model = keras.applications.VGG16(weights=None, include_top=True)
    elif light:
        model = cv.load_model(work / "vgg16.keras")
    else:
        import keras

        model = keras.saving.load_model(work / "vgg16.keras", compile=False)
    loaded = meter.now_mb()
    loaded_peak = max(meter.peak, meter.process.memory_info().rss)
    panel = cv.ConvVizPanel(model, background=False)
    panel.select("Grad-CAM")
    panel.wait()
    drawn = getattr(panel.cam.current_cam(), "heatmap", None) is not None
    result = meter.stop()
    absolute = result["baseline_mb"] + result["peak_mb"]
    _report({**result, "ok": None if not light else absolute <= LIGHT_TARGET_MB and drawn,
             "outcome": f"{ {None: 'built in code', True: 'cv.load_model', False: 'keras.saving.load_model'}[light]}: "
                        f"after loading "
                        f"{loaded:+,.0f} MB (peak while loading {(loaded_peak - meter.baseline) / MB:+,.0f} MB), "
                        f"{time.monotonic() - start:.0f} s to the Grad-CAM map ({'drawn' if drawn else 'MISSING'}); "
                        f"absolute peak RSS {absolute:,.0f} MB = {absolute / 1024:.2f} GB = "
                        f"{absolute * MB / 1e9:.2f} decimal GB "
                        f"(target for light loading: 1.3 GB = {LIGHT_TARGET_MB:,} MB)"})


def case_u(work: Path) -> None:
    _load_vgg_panel(work, light=None)


def case_v(work: Path) -> None:
    _load_vgg_panel(work, light=False)


def case_w(work: Path) -> None:
    _load_vgg_panel(work, light=True)


def _refuse_model(path: Path) -> None:
    """cv.load_model on a hostile file: refused within +100 MB (and how long it took)."""
    import convviz_widgets as cv

    meter = PeakRSS()
    start = time.monotonic()
    try:
        cv.load_model(path)
        outcome = "loaded (not refused)"
    except cv.ConvVizError as err:
        outcome = f"refused in {time.monotonic() - start:.2f} s: {err}"
    result = meter.stop()
    _report({**result, "outcome": outcome, "ok": outcome.startswith("refused") and result["peak_mb"] <= TARGET_MB})


def case_x(work: Path) -> None:
    _refuse_model(work / "config_bomb.keras")


def case_y(work: Path) -> None:
    _refuse_model(work / "huge_dense.keras")


def case_z(work: Path) -> None:
    _refuse_model(work / "assets_bomb.keras")


def prepare_models(work: Path, cases: str) -> None:
    """The model files the model cases read, written in a child (the parent imports no TensorFlow)."""
    sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
    import model_bombs

    if "x" in cases:
        model_bombs.write_config_bomb(work / "config_bomb.keras")
    if set(cases) & set("yz"):
        model_bombs.tiny_flatten_dense().save(work / "tiny.keras")
        model_bombs.write_huge_dense(work / "huge_dense.keras", work / "tiny.keras")
        model_bombs.write_assets_bomb(work / "assets_bomb.keras", work / "tiny.keras")
    if set(cases) & set("vw"):
        import keras

        keras.applications.VGG16(weights=None, include_top=True).save(work / "vgg16.keras")


CASES = {
    "a": ("20000x20000 PNG bomb (50 kB) refused", case_a),
    "b": ("12000x9000 JPEG at 96x96 (target <= +100 MB peak)", case_b),
    "c": ("filter_patterns, demo model, size=2048 (refused or chunked: peak within the memory budget)", case_c),
    "d": ("soak: 60 filter_patterns calls, changing counts and sizes (target <= +100 MB at the end)", case_d),
    "e": ("1000 panel interactions: class, layer, image (target <= +100 MB at the end)", case_e),
    "s": ("soak: random panel actions over every tab (target <= +50 MB after warm-up)", case_s),
    "u": ("VGG16 built in code (keras.applications, weights=None), then a panel with Grad-CAM", case_u),
    "v": ("VGG16 .keras with Keras's loader, then a panel with Grad-CAM (before loading light)", case_v),
    "w": ("VGG16 .keras with cv.load_model, then a panel with Grad-CAM (target <= 1.3 GB absolute)", case_w),
    "x": ("model bomb: config.json inflating to 2 GiB, refused (target <= +100 MB)", case_x),
    "y": ("model bomb: Dense(10000) declared on 3 million inputs, refused (target <= +100 MB)", case_y),
    "z": ("model bomb: an asset inflating to 2 GiB, refused (target <= +100 MB)", case_z),
}


# ---------------------------------------------------------------- the parent

def run_child(case: str, work: Path, cap: int, timeout: float, actions: int = 5000) -> dict:
    """Run one case in a fresh interpreter; stop it above `cap` bytes or after `timeout` seconds."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2")}
    command = [sys.executable, __file__, "--child", case, "--work", str(work), "--actions", str(actions)]
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    watched = psutil.Process(child.pid)
    started, stopped = time.monotonic(), ""
    while child.poll() is None:
        try:
            rss = watched.memory_info().rss
        except psutil.NoSuchProcess:
            break
        if rss > cap:
            stopped = f"stopped by the parent: RSS {rss / MB:,.0f} MB passed the cap of {cap / MB:,.0f} MB"
        elif time.monotonic() - started > timeout:
            stopped = f"stopped by the parent after {timeout:.0f} s"
        if stopped:
            child.kill()
            break
        time.sleep(0.02)
    out, err = child.communicate()
    for line in out.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    tail = " | ".join(err.strip().splitlines()[-3:])
    marks = [line[len("MARK "):] for line in out.splitlines() if line.startswith("MARK ")]
    so_far = f" (so far: {'; '.join(marks)})" if marks else ""
    return {"outcome": (stopped or f"the child failed (exit {child.returncode}): {tail}") + so_far, "ok": False}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="abcdeuvwxyz",
                        help="which cases to run, e.g. 'ab' (default: all but the soak, s, which takes 20-40 min)")
    parser.add_argument("--cap", type=float, default=None,
                        help="stop a case above this many GB of RSS (default: 8, or 60%% of the memory available)")
    parser.add_argument("--timeout", type=float, default=900,
                        help="stop a case after this many seconds (the soak: at least 1 s per action)")
    parser.add_argument("--actions", type=int, default=5000, help="random panel actions of the soak (case s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "prepare":
        prepare_models(Path(args.work), args.cases)
        return 0
    if args.child:
        sys.path.insert(0, str(ROOT))
        if args.child == "s":
            case_s(Path(args.work), args.actions)
        else:
            CASES[args.child][1](Path(args.work))
        return 0
    print(f"== bench_memory: peak RSS over each case's baseline (python {sys.version.split()[0]}, "
          f"{os.cpu_count()} cores, {psutil.virtual_memory().available / 2**30:.1f} GB available) ==", flush=True)
    cap = int(args.cap * 2**30) if args.cap else int(min(8 * 2**30, 0.6 * psutil.virtual_memory().available))
    print(f"each case is stopped above {cap / 2**30:.1f} GB of RSS", flush=True)
    verdicts = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        if "a" in args.cases:
            write_png_bomb(work / "bomb.png")
        if "b" in args.cases:
            write_big_jpeg(work / "big.jpg")
        if set(args.cases) & set("vwxyz"):
            subprocess.run([sys.executable, __file__, "--child", "prepare", "--cases", args.cases, "--work", str(work)],
                           cwd=ROOT, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        for case in args.cases:
            title = CASES[case][0]
            started = time.monotonic()
            timeout = max(args.timeout, 1.0 * (args.actions + SOAK_WARMUP)) if case == "s" else args.timeout
            r = run_child(case, work, cap, timeout, args.actions)
            figures = (f"peak {r['peak_mb']:+,.0f} MB, end {r['end_mb']:+,.0f} MB (baseline {r['baseline_mb']:,.0f} MB)"
                       if "peak_mb" in r else "no figures")
            print(f"[{case}] {title}\n    {figures}; {time.monotonic() - started:.0f} s wall\n    {r['outcome']}",
                  flush=True)
            verdicts.append((f"[{case}] {title}", r.get("ok")))
    print("-- verdict --")
    for text, ok in verdicts:
        print(f"{'INFO' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
