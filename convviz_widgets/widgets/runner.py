"""Model work one job at a time: in a background thread (notebooks) or inline (tests, scripts)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

log = logging.getLogger("convviz_widgets")

THREAD_PREFIX = "convviz-worker"


class Runner:
    """Runs jobs in submission order on one worker thread, so TensorFlow work never overlaps.

    With ``background=False`` each job runs at once in the caller's thread: the synchronous
    mode for tests and scripts. ``wait()`` blocks until every job, and any job a finished job
    submitted, is done.
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self._executor: ThreadPoolExecutor | None = None
        self._futures: list[Future] = []
        self._lock = threading.Lock()

    def submit(self, work: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[BaseException], None]) -> None:
        """Run ``work()``, then ``done(result)``; ``failed(error)`` if either raises."""
        if not self.background:
            _run(work, done, failed)
            return
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_PREFIX)
            future = self._executor.submit(_run, work, done, failed)
            self._futures = [f for f in self._futures if not f.done()] + [future]

    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        with self._lock:
            return any(not f.done() for f in self._futures)

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until all jobs are finished; False if `timeout` seconds passed first."""
        if threading.current_thread().name.startswith(THREAD_PREFIX):
            raise RuntimeError("wait() was called from a convviz job: it would wait for itself.")
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            with self._lock:
                pending = [f for f in self._futures if not f.done()]
            if not pending:
                return True
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return False
            wait_futures(pending, timeout=left)

    def shutdown(self) -> None:
        """Let the worker thread end once its queue is empty."""
        with self._lock:
            if self._executor is not None:
                self._executor.shutdown(wait=False, cancel_futures=True)
                self._executor = None


def _run(work: Callable[[], Any], done: Callable[[Any], None], failed: Callable[[BaseException], None]) -> None:
    """One job: compute, then hand the result (or the error) to the view."""
    try:
        result = work()
    except Exception as err:  # noqa: BLE001 - every error is shown in the panel
        _report(failed, err)
        return
    try:
        done(result)
    except Exception as err:  # noqa: BLE001
        _report(failed, err)


def _report(failed: Callable[[BaseException], None], err: BaseException) -> None:
    """Pass an error to the view; if even that fails, log it rather than lose it."""
    try:
        failed(err)
    except Exception:  # noqa: BLE001
        log.exception("convviz_widgets could not show an error: %s", err)
