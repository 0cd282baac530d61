"""Model work one job at a time: in a background thread (notebooks) or inline (tests, scripts).

Each view owns a job *slot*: a new request in a slot supersedes the request queued there (it never
runs) and marks the one running there as stale (its progress callback is told to stop, and its
result or error is dropped without a word). So the latest request of a view always wins, and what
a view shows always belongs to its last request. Results are handed over under one lock that views
also take when they change their state, so a result is never shown half-way through a new request.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from ..errors import Cancelled

log = logging.getLogger("convviz_widgets")

THREAD_PREFIX = "convviz-worker"
IDLE_SECONDS = 30.0  # an idle worker thread ends after this long

_local = threading.local()  # the jobs whose work runs in this thread (innermost last)


class Job:
    """One piece of model work: its slot, and whether it was superseded (stale) or asked to stop (cancelled)."""

    def __init__(self, work: Callable[[], Any], done: Callable[[Any], None],
                 failed: Callable[[BaseException], None], slot: Hashable | None) -> None:
        self.work, self.done, self.failed, self.slot = work, done, failed, slot
        self.stale = threading.Event()  # a newer request replaced it: drop whatever it produces
        self.cancelled = threading.Event()  # the user pressed Cancel: stop, and report that it stopped

    @property
    def stopped(self) -> bool:
        """True when the work should stop at its next progress step."""
        return self.stale.is_set() or self.cancelled.is_set()


def current_job() -> Job | None:
    """The job whose work runs in this thread now (for progress callbacks), or None."""
    stack = getattr(_local, "jobs", None)
    return stack[-1] if stack else None


def still_wanted(_done: int = 0, _total: int = 0) -> bool:
    """A progress callback: False once the running job is stale or cancelled (so the work stops)."""
    job = current_job()
    return job is None or not job.stopped


class Runner:
    """Runs jobs in submission order on one worker thread, so TensorFlow work never overlaps.

    With ``background=False`` each job runs at once in the caller's thread: the synchronous
    mode for tests and scripts. ``wait()`` blocks until every job, and any job a finished job
    submitted, is done. ``lock`` is held while a result is handed to its view.
    """

    def __init__(self, background: bool = True) -> None:
        self.background = background
        self.lock = threading.RLock()  # results are delivered, and requests made, under it
        self._cond = threading.Condition(threading.Lock())  # guards the queue and the running job
        self._queue: deque[Job] = deque()
        self._running: Job | None = None
        self._thread: threading.Thread | None = None

    # ----- requests ------------------------------------------------------------------------------
    def submit(self, work: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[BaseException], None], slot: Hashable | None = None) -> Job:
        """Run ``work()``, then ``done(result)``; ``failed(error)`` if either raises.

        With a ``slot``, the request replaces the one queued in that slot and makes the one running
        there stale. Without one, the job is never replaced.
        """
        job = Job(work, done, failed, slot)
        with self.lock:
            if slot is not None:
                self.drop(slot)
            if not self.background:
                self._run(job)
                return job
            with self._cond:
                self._queue.append(job)
                self._start()
                self._cond.notify_all()
        return job

    def drop(self, slot: Hashable) -> None:
        """Forget the request queued in a slot and make the running one stale (its result is never shown)."""
        with self.lock, self._cond:
            self._queue = deque(job for job in self._queue if job.slot != slot)
            for job in self._active():
                if job.slot == slot:
                    job.stale.set()
            self._cond.notify_all()

    def cancel(self, slot: Hashable) -> bool:
        """Ask the job running in a slot to stop (it reports Cancelled); a queued one never runs. True if any."""
        with self.lock, self._cond:
            queued = [job for job in self._queue if job.slot == slot]
            self._queue = deque(job for job in self._queue if job.slot != slot)
            running = [job for job in self._active() if job.slot == slot and not job.stale.is_set()]
            for job in running:
                job.cancelled.set()
            self._cond.notify_all()
        for job in queued:  # never started: tell its view, as a running job would
            self._deliver(job, None, Cancelled("Cancelled before it started."))
        return bool(queued or running)

    def _active(self) -> list[Job]:
        """The running jobs: the worker's, and inline ones (which may nest)."""
        inline = list(getattr(_local, "jobs", []))
        return inline + ([self._running] if self._running is not None else [])

    # ----- state ----------------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """True while a job is queued or running."""
        with self._cond:
            return bool(self._queue) or self._running is not None

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until all jobs are finished; False if `timeout` seconds passed first."""
        if threading.current_thread().name.startswith(THREAD_PREFIX):
            raise RuntimeError("wait() was called from a convviz job: it would wait for itself.")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self._queue or self._running is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    # ----- the worker ---------------------------------------------------------------------------------
    def _start(self) -> None:
        """Start the worker thread if it is not running (called with the queue lock held)."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"{THREAD_PREFIX}-{id(self):x}", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        """Take jobs from the queue until it stays empty for IDLE_SECONDS."""
        while True:
            with self._cond:
                while not self._queue:
                    if not self._cond.wait(IDLE_SECONDS) and not self._queue:
                        break  # idle for a while: end; the next request starts a new thread
                if not self._queue:
                    self._thread = None
                    return
                job = self._queue.popleft()
                self._running = job
            try:
                self._run(job)
            finally:
                with self._cond:
                    self._running = None
                    self._cond.notify_all()

    def _run(self, job: Job) -> None:
        """One job: compute (unless already stale), then hand the result or the error to its view."""
        stack = _local.__dict__.setdefault("jobs", [])
        stack.append(job)
        result, error = None, None
        try:
            if job.stale.is_set():
                return
            result = job.work()
        except Exception as err:  # noqa: BLE001 - every error is shown in the panel
            error = err
        finally:
            stack.pop()
        self._deliver(job, result, error)

    def _deliver(self, job: Job, result: Any, error: BaseException | None) -> None:
        """Call done/failed under the lock, unless a newer request made the job stale meanwhile."""
        with self.lock:
            if job.stale.is_set():
                return
            if error is None:
                try:
                    job.done(result)
                    return
                except Exception as err:  # noqa: BLE001
                    error = err
            try:
                job.failed(error)
            except Exception:  # noqa: BLE001 - if even that fails, log it rather than lose it
                log.exception("convviz_widgets could not show an error: %s", error)



class JobSlot:
    """One job slot of a view: the request queued or running in it, and the progress bar and Cancel it drives.

    Every view (and the channel card) runs its model work through one of these, so there is one job state
    machine: `submit` marks the slot busy (bar at 0, Cancel on), `cancel` asks the work to stop, and when
    the work ends (done, failed or cancelled) the slot is idle again before the view's callback runs.
    """

    def __init__(self, runner: Runner, name: str, progress: Any = None, cancel_button: Any = None, *,
                 restart_bar: bool = True) -> None:
        self.runner, self.name = runner, name
        self.progress, self.cancel_button = progress, cancel_button  # ipywidgets IntProgress and Button, or None
        self.restart_bar = restart_bar  # False: the view restarts the bar itself (only when the work reports)
        self.cancellable = True  # whether Cancel is offered for the next request
        self.key: Hashable | None = None  # what the request queued or running here asks for; None when idle
        self.cancelling = False

    @property
    def running(self) -> bool:
        """True while a request is queued or running in this slot."""
        return self.key is not None

    def submit(self, key: Hashable, work: Callable[[], Any], done: Callable[[Any], None],
               failed: Callable[[BaseException], None], *, cancellable: bool | None = None) -> Job:
        """Run `work` in this slot (replacing its last request); the slot is idle again before `done`/`failed`."""
        self.key, self.cancelling = key, False
        if self.progress is not None and self.restart_bar:
            self.progress.bar_style, self.progress.value = "info", 0
        if self.cancel_button is not None:
            self.cancel_button.disabled = not (self.cancellable if cancellable is None else cancellable)

        def finished(result: Any) -> None:
            self.idle("success")
            done(result)

        def stopped(err: BaseException) -> None:
            self.idle("warning" if isinstance(err, Cancelled) else "danger")
            failed(err)

        return self.runner.submit(work, finished, stopped, slot=self.name)

    def drop(self, style: str | None = None) -> None:
        """Forget this slot's request (its result is never shown); with a `style`, the bar shows it."""
        self.runner.drop(self.name)
        if self.key is not None or style is not None:
            self.idle(style)

    def cancel(self) -> bool:
        """Ask the request running here to stop (it reports Cancelled); True if there was one."""
        if self.runner.cancel(self.name):
            self.cancelling = True
            return True
        return False

    def idle(self, style: str | None = None) -> None:
        """Nothing runs here: Cancel is off, the bar keeps its last value in `style` (success, warning, danger)."""
        self.key, self.cancelling = None, False
        if self.progress is not None and style is not None:
            self.progress.bar_style = style
        if self.cancel_button is not None:
            self.cancel_button.disabled = True

    def report(self, done: int, total: int | None = None) -> bool:
        """A progress callback (worker thread): move the bar; False stops work that is stale or cancelled."""
        if not still_wanted():
            return False
        if self.progress is not None:
            self.progress.max = max(1, int(total or done))
            self.progress.value = int(done)
        return True
