"""Batches of a few compiled sizes, and the one loop that reports progress and honours Cancel.

Every engine (CAMs, filter patterns, examples, activations) pads a batch to one of a few sizes, so a
handful of compiled functions serve every request on every backend, and runs long work in chunks that
call `progress(done, total)` after each; False (or a `Cancelled` raised by it) stops the work.
"""

from __future__ import annotations

import contextlib
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import Cancelled

Progress = Callable[[int, int], Any]


def bucket(n: int) -> int:
    """The batch n items are padded to: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, ... (< 1.5x n).

    Each batch size is one compiled graph; a few sizes serve every count.
    """
    size = 1
    while True:
        for b in (size, size * 3 // 2):
            if b >= n:
                return b
        size *= 2


def bucket_below(n: int) -> int:
    """The largest compiled batch size (see `bucket`) that is at most n (n >= 1)."""
    best = 1
    while bucket(best + 1) <= n:
        best = bucket(best + 1)
    return best


def pad_batch(a: np.ndarray, size: int) -> np.ndarray:
    """`a` with copies of its first row appended up to `size` rows (their results are dropped)."""
    extra = size - len(a)
    return a if extra <= 0 else np.concatenate([a, np.repeat(a[:1], extra, axis=0)])


def report(progress: Progress | None, done: int, total: int | None, what: str, unit: str) -> None:
    """Tell `progress` how far the work is (`total` None: a stream of unknown length); stop it with
    `Cancelled` when the answer is False, and with KeyboardInterrupt after a swallowed Ctrl-C (`CtrlC`)."""
    CTRL_C.check()
    if progress is not None and progress(done, total) is False:
        raise Cancelled(f"{what} cancelled after {done}{'' if total is None else f' of {total}'} {unit}.")


def chunks(total: int, size: int) -> Iterator[tuple[int, int]]:
    """(lo, hi) ranges of at most `size` items covering 0..total."""
    size = max(1, int(size))
    for lo in range(0, total, size):
        yield lo, min(lo + size, total)


def chunked(total: int, size: int, work: Callable[[int, int], None], progress: Progress | None, what: str,
            unit: str) -> None:
    """Run `work(lo, hi)` chunk by chunk, reporting items done after each (the shared progress/Cancel loop)."""
    for lo, hi in chunks(total, size):
        work(lo, hi)
        report(progress, hi, total, what, unit)


class CtrlC:
    """Ctrl-C during long work (a report, a dataset run), never lost.

    Python drops an exception raised inside a finaliser or a garbage-collection callback (it prints
    "Exception ignored in ..."; JAX, imported by Keras wherever it is installed, adds such a callback): a
    Ctrl-C landing there would be lost and the work would run on. While
    `kept()` is active, a press is raised at once as usual and also noted; a swallowed one is not printed and
    is raised again at the next progress step (`report` calls `check`).
    """

    def __init__(self) -> None:
        self.pressed = False

    def check(self) -> None:
        """Raise KeyboardInterrupt when Ctrl-C was pressed while `kept()` is active."""
        if self.pressed:
            raise KeyboardInterrupt

    def _press(self, _signum: int, _frame: Any) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def kept(self) -> Iterator[None]:
        """Note every Ctrl-C in the block; only in the main thread, and only over Python's own handler (a
        handler the host installed, or an ignored SIGINT, is left as it is)."""
        if (threading.current_thread() is not threading.main_thread()
                or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
            yield
            return
        previous_hook = sys.unraisablehook

        def hook(unraisable: Any) -> None:
            if not (self.pressed and isinstance(unraisable.exc_value, KeyboardInterrupt)):
                previous_hook(unraisable)

        self.pressed = False
        signal.signal(signal.SIGINT, self._press)
        sys.unraisablehook = hook
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            sys.unraisablehook = previous_hook
            self.pressed = False


CTRL_C = CtrlC()
