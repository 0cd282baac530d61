"""Peak memory (RSS) of each notebook's kernel, each run in a fresh kernel process: the tour must fit Binder's 2 GB.

    .venv/bin/python bench/bench_notebook_memory.py            # every notebook, then the tour as on Binder
    .venv/bin/python bench/bench_notebook_memory.py 00 03      # only notebooks whose name contains 00 or 03

Peak = the kernel process's high-water mark (VmHWM from /proc, exact) plus the highest RSS its child
processes were seen with (sampled every 50 ms; the notebooks start none). "Binder path" runs the tour
from a copy with no ../../shared beside it, so it takes MobileNetV2 as on mybinder.org; nothing can be
downloaded here, so MobileNetV2 is built with weights=None instead (same layers and memory, random values).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import _common
import nbformat
import psutil
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
BINDER_LIMIT_MB = 2048
TOUR = "00_tour.ipynb"
# Run first in the Binder-path kernel: MobileNetV2(weights="imagenet") becomes weights=None (nothing to download).
NO_DOWNLOAD = """
import keras
_mobilenet_v2 = keras.applications.MobileNetV2
keras.applications.MobileNetV2 = lambda *args, **kwargs: _mobilenet_v2(*args, **{**kwargs, "weights": None})
"""


class PeakSampler:
    """Highest total RSS of a process's children, sampled in a thread."""

    def __init__(self, pid: int, interval: float = 0.05) -> None:
        self.process = psutil.Process(pid)
        self.interval = interval
        self.children_peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                rss = sum(c.memory_info().rss for c in self.process.children(recursive=True))
            except psutil.Error:
                rss = 0
            self.children_peak = max(self.children_peak, rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def high_water_mark(pid: int) -> int:
    """Peak resident memory of a process in bytes (VmHWM)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc (Linux only)")


def run_notebook(path: Path, prelude: str | None = None) -> tuple[float, float]:
    """Run a notebook in a fresh kernel; (peak RSS in MB, wall seconds)."""
    nb = nbformat.read(path, as_version=4)
    if prelude:
        nb.cells.insert(0, nbformat.v4.new_code_cell(prelude))
    client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    with client.setup_kernel():
        pid = client.km.provisioner.pid
        with PeakSampler(pid) as sampler:
            client.wait_for_reply(client.kc.kernel_info())
            for index, cell in enumerate(nb.cells):
                client.execute_cell(cell, index)
            peak = high_water_mark(pid) + sampler.children_peak
    return peak / 2**20, time.perf_counter() - start


def binder_copy(tmp: Path) -> Path:
    """The tour in a folder with no ../../shared beside it (as on Binder)."""
    dest = tmp / "repo" / "notebooks"
    dest.mkdir(parents=True)
    shutil.copy2(NOTEBOOKS / TOUR, dest / TOUR)
    return dest / TOUR


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="only notebooks whose file name contains one of these")
    args = parser.parse_args()
    _common.header("notebook kernels: peak memory (RSS)")
    paths = sorted(p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    paths = [p for p in paths if not args.only or any(part in p.name for part in args.only)]
    verdicts: list[tuple[str, bool | None]] = []
    print(f"{'notebook':52s} {'peak RSS':>10s} {'wall':>7s}", flush=True)
    for path in paths:
        peak, wall = run_notebook(path)
        name = path.relative_to(NOTEBOOKS).as_posix()
        print(f"{name:52s} {peak:7.0f} MB {wall:6.1f} s", flush=True)
        verdicts.append((f"{name}: {peak:.0f} MB", peak < BINDER_LIMIT_MB if path.name == TOUR else None))
    if not args.only or any(part in TOUR for part in args.only):
        with tempfile.TemporaryDirectory() as tmp:
            peak, wall = run_notebook(binder_copy(Path(tmp)), prelude=NO_DOWNLOAD)
        print(f"{TOUR + ' (Binder path: MobileNetV2)':52s} {peak:7.0f} MB {wall:6.1f} s", flush=True)
        verdicts.append((f"{TOUR} on Binder's path (MobileNetV2): {peak:.0f} MB < {BINDER_LIMIT_MB} MB",
                         peak < BINDER_LIMIT_MB))
    _common.footer(verdicts)


if __name__ == "__main__":
    main()
