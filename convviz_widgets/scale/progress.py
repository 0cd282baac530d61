"""Progress of dataset runs: images done, images per second, time left; a text line, or a bar in a notebook."""

from __future__ import annotations

import sys
import time
from typing import Any


def time_left(done: int, total: int | None, rate: float) -> str:
    """', 21 s left' when the rate and the total say it; '' otherwise."""
    return f", {(total - done) / rate:,.0f} s left" if total and rate > 0 and done < total else ""


def counts_text(done: int, total: int | None, rate: float) -> str:
    """A notebook bar's label: '1,280/10,000 images, 410 img/s, 21 s left'."""
    seen = f"{done:,}/{total:,}" if total else f"{done:,}"
    return f"{seen} images, {rate:,.0f} img/s{time_left(done, total, rate)}"


def in_notebook() -> bool:
    """True inside a running Jupyter kernel (IPython already imported, with a kernel), where a widget can show."""
    ipython = sys.modules.get("IPython")
    shell = getattr(ipython, "get_ipython", lambda: None)() if ipython is not None else None
    return shell is not None and getattr(shell, "kernel", None) is not None


def progress_bar(label: str = "Images", stream: Any = None) -> DatasetProgress:
    """progress(done, total) for `atlas`, `evaluate` and `top_examples`: a widget bar in a notebook, else a line."""
    if stream is None and in_notebook():
        return NotebookProgress(label)
    return DatasetProgress(label, stream)


class DatasetProgress:
    """progress(done, total) that draws 'Images 1,280/10,000 [####----] 410 img/s, 21 s left' on a stream.

    A terminal gets one line redrawn in place, a log file or a notebook one line per tenth of the run.
    """

    def __init__(self, label: str = "Images", stream: Any = None, width: int = 24) -> None:
        self.label, self.width = label, width
        self.stream = stream if stream is not None else sys.stderr
        self._t0: float | None = None
        self._start = 0
        self._shown = -1

    def rate(self, done: int) -> float:
        """Images per second since the first call (images resumed from saved batches do not count)."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._start = now, done
        seconds = now - self._t0
        return (done - self._start) / seconds if seconds > 0 and done > self._start else 0.0

    def line(self, done: int, total: int | None) -> str:
        """The text for this moment."""
        rate = self.rate(done)
        if not total:
            return f"{self.label} {done:,} {rate:,.0f} img/s"
        fill = int(self.width * done / max(1, total))
        return (f"{self.label} {done:,}/{total:,} [{'#' * fill}{'-' * (self.width - fill)}] "
                f"{rate:,.0f} img/s{time_left(done, total, rate)}")

    def __call__(self, done: int, total: int | None = None) -> None:
        text = self.line(done, total)
        live = getattr(self.stream, "isatty", lambda: False)()
        tenth = int(10 * done / total) if total else done
        if live:
            self.stream.write(f"\r{text}")
        elif tenth != self._shown:
            self.stream.write(f"{text}\n")
        self._shown = tenth
        if live and total and done >= total:
            self.stream.write("\n")
        self.stream.flush()


class NotebookProgress(DatasetProgress):
    """progress(done, total) drawn as a notebook bar (ipywidgets IntProgress) and a label with the rate and ETA."""

    def __init__(self, label: str = "Images") -> None:
        import ipywidgets as widgets  # only in a notebook, where the package's panel needs it anyway

        super().__init__(label)
        self.bar = widgets.IntProgress(0, min=0, max=1, description=label)
        self.text = widgets.Label()
        self.box = widgets.HBox([self.bar, self.text])
        self._displayed = False

    def __call__(self, done: int, total: int | None = None) -> None:
        rate = self.rate(done)
        self.bar.max = max(1, total or done)
        self.bar.value = min(done, self.bar.max)
        self.text.value = counts_text(done, total, rate)
        if total and done >= total:
            self.bar.bar_style = "success"
        if not self._displayed:
            from IPython.display import display

            display(self.box)
            self._displayed = True
