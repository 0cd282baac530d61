"""Shared helpers for the bench scripts: quiet TensorFlow, timers, the matmul yardstick, verdicts.

Timing on a shared 2-core machine is noisy, so every script interleaves the things it compares,
reports medians, and prints CPU time (user+sys of this process, all threads) next to wall time:
CPU time barely moves when other people's jobs take cores from us, so ratios of CPU seconds are
a steadier cross-check of the wall-clock ratios that the targets are written in.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402


@dataclass
class Sample:
    """One timed run."""

    wall: float
    cpu: float


class timed:  # noqa: N801 - used as a context manager, reads like a statement
    """`with timed() as t: ...` then t.sample (wall and process CPU seconds)."""

    def __enter__(self) -> timed:
        self._c = time.process_time()
        self._w = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.sample = Sample(time.perf_counter() - self._w, time.process_time() - self._c)


def med(values: list[float]) -> float:
    return float(statistics.median(values))


def med_wall(samples: list[Sample]) -> float:
    return med([s.wall for s in samples])


def med_cpu(samples: list[Sample]) -> float:
    return med([s.cpu for s in samples])


def alternate(ours: Callable[[], object], base: Callable[[], object], repeats: int
              ) -> tuple[list[Sample], list[Sample]]:
    """Time two arms strictly alternately, order flipped every round; the first round only warms up."""
    samples: tuple[list[Sample], list[Sample]] = ([], [])
    arms = (ours, base)
    for i in range(repeats + 1):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            with timed() as t:
                arms[which]()
            if i > 0:
                samples[which].append(t.sample)
    return samples


def fmt_samples(samples: list[Sample], unit: float = 1.0, suffix: str = "s") -> str:
    """'median (all values)' for the wall times of a list of samples."""
    vals = ", ".join(f"{s.wall * unit:.3g}" for s in samples)
    return f"{med_wall(samples) * unit:.4g} {suffix} (runs: {vals})"


MATMUL_N = 2048
MATMUL_FLOP = 2.0 * MATMUL_N**3


class MatmulProbe:
    """float32 tf.matmul of 2048x2048 in a tf.function: the machine's dense-compute yardstick.

    Call `probe()` between the runs being compared so the yardstick sees the same load.
    """

    def __init__(self) -> None:
        import tensorflow as tf

        g = tf.random.Generator.from_seed(1234)
        self.a = g.normal((MATMUL_N, MATMUL_N), dtype=tf.float32)
        self.b = g.normal((MATMUL_N, MATMUL_N), dtype=tf.float32)
        self.fn = tf.function(lambda a, b: tf.matmul(a, b))
        self.fn(self.a, self.b).numpy()  # trace and warm up
        self.samples: list[Sample] = []

    def probe(self, repeats: int = 5) -> None:
        for _ in range(repeats):
            with timed() as t:
                self.fn(self.a, self.b).numpy()
            self.samples.append(t.sample)

    def gflops_wall(self) -> float:
        """Median wall-clock GFLOP/s over every probe so far."""
        return MATMUL_FLOP / med_wall(self.samples) / 1e9

    def gflops_best(self) -> float:
        return MATMUL_FLOP / min(s.wall for s in self.samples) / 1e9

    def gflops_cpu(self) -> float:
        """Median GFLOP per CPU-second (insensitive to other jobs taking our cores)."""
        return MATMUL_FLOP / med_cpu(self.samples) / 1e9


def header(title: str) -> None:
    """Print what ran where, so figures from different machines are not mixed up."""
    import keras
    import numpy as np
    import tensorflow as tf

    print(f"== {title} ==")
    print(f"python {platform.python_version()}  tensorflow {tf.__version__}  keras {keras.__version__}  "
          f"numpy {np.__version__}")
    print(f"cpu: {_cpu_name()}  cores visible: {os.cpu_count()}  "
          f"TF intra/inter threads: {tf.config.threading.get_intra_op_parallelism_threads()}/"
          f"{tf.config.threading.get_inter_op_parallelism_threads()} (0 = TF default)  "
          f"oneDNN: {_onednn()}  GPUs: {len(tf.config.list_physical_devices('GPU'))}")
    print(f"load average at start: {_load()}")
    sys.stdout.flush()


def footer(verdicts: list[tuple[str, bool | None]]) -> None:
    """PASS/FAIL per target; ok=None prints INFO (a figure with no target of its own)."""
    print(f"load average at end: {_load()}")
    print("-- verdict --")
    for text, ok in verdicts:
        print(f"{'INFO' if ok is None else 'PASS' if ok else 'FAIL'}  {text}")
    sys.stdout.flush()


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _onednn() -> str:
    try:
        from tensorflow.python.util import _pywrap_util_port

        return "on" if _pywrap_util_port.IsMklEnabled() else "off"
    except Exception:  # noqa: BLE001 - informational only
        return "unknown"


def load_bench_model(kind: str, include_top: bool, seed: int = 0):
    """('vgg16' | 'demo') -> (model, description).

    vgg16: keras.applications.VGG16(weights=None, ...) with seeded random weights (the cost does
    not depend on the weight values; nothing is downloaded).  include_top=False gives the book's
    (None, None, 3) input.  demo: the package's shipped demo convnet if its file exists, else the
    same architecture built with seeded random weights (`convviz_widgets.demo.train.build_model`).
    """
    import keras
    import numpy as np

    keras.utils.set_random_seed(seed)
    if kind == "vgg16":
        return keras.applications.VGG16(weights=None, include_top=include_top), \
            f"VGG16(weights=None, include_top={include_top}), seeded random weights"
    if kind == "demo":
        from convviz_widgets import demo

        if demo.MODEL_PATH.is_file():
            return demo.load_model(), f"demo model {demo.MODEL_PATH.name} (trained weights)"
        from convviz_widgets.demo.train import build_model

        model = build_model()
        model(np.zeros((1, *model.input_shape[1:]), np.float32))  # define its symbolic input/outputs
        return model, "demo architecture (demo_model.keras not built yet: seeded random weights)"
    raise SystemExit(f"unknown --model {kind!r}: use vgg16 or demo")
