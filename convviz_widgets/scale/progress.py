"""A text progress line for dataset runs: images done, images per second, time left."""

from __future__ import annotations

import sys
import time
from typing import Any


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

    def line(self, done: int, total: int | None) -> str:
        """The text for this moment."""
        now = time.perf_counter()
        if self._t0 is None:
            self._t0, self._start = now, done  # resumed images do not count towards the rate
        seconds = now - self._t0
        rate = (done - self._start) / seconds if seconds > 0 and done > self._start else 0.0
        if not total:
            return f"{self.label} {done:,} {rate:,.0f} img/s"
        fill = int(self.width * done / max(1, total))
        left = f", {(total - done) / rate:,.0f} s left" if rate > 0 and done < total else ""
        return (f"{self.label} {done:,}/{total:,} [{'#' * fill}{'-' * (self.width - fill)}] "
                f"{rate:,.0f} img/s{left}")

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
