"""ImageView: a tab that explains the header's image, its requests computed in its job slot."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from ..core import Cancelled
from ..images import load_image
from .base import View, display_image, guarded, is_scene

ImageEvent = Literal["coming", "arrives", "kept"]  # a new image is loading / is set / was refused


@dataclass(frozen=True)
class Pending:
    """An image asked for and not shown yet: its source, its display picture if known, its demo scene."""

    source: Any
    display: np.ndarray | None = None
    scene: Any = None

    def load(self, inspector: Any) -> Loaded:
        """Decode it (worker thread): the image as the model sees it and as a person does."""
        full = load_image(self.source)
        shown = self.display if self.display is not None else display_image(full)
        return Loaded(inspector.prepare(full), shown, self.scene)


@dataclass(frozen=True)
class Loaded:
    """A decoded image: as the model sees it (rgb), as a person does (display) and its demo scene."""

    rgb: np.ndarray
    display: np.ndarray
    scene: Any


@dataclass(frozen=True)
class Outcome:
    """What a request's job hands back: the new image it loaded (if any) and the view's result or error."""

    image: Loaded | None
    result: Any = None
    error: BaseException | None = None


def explain(view: ImageView, pending: Pending | None, rgb: np.ndarray | None, wanted: Any) -> Outcome:
    """Worker thread: load a new image (errors here refuse it), then compute (errors here belong to it)."""
    image = None if pending is None else pending.load(view.inspector)
    try:
        return Outcome(image, view.compute(image.rgb if image else rgb, wanted, image is not None))
    except Cancelled:
        raise
    except Exception as err:  # noqa: BLE001 - shown in the view, for the new image
        if image is None:
            raise
        return Outcome(image, error=err)


class ImageHooks:
    """What an image view says (override what it needs): its request, how to draw it from the current image's
    caches, how to compute it (worker thread), how to show the result (under the runner's lock), and the rest."""

    busy_text = "Computing…"

    @property
    def enabled(self) -> bool:
        """False when this view cannot explain anything for this model (it then shows why instead)."""
        return True

    def wanted(self) -> Any:
        """What the controls ask for now, as the view's request type (read in the caller's thread)."""
        return None

    def show(self, wanted: Any) -> bool:
        """Draw what `wanted` asks for from the current image's caches (under the lock); False when not there."""
        return True

    def compute(self, rgb: np.ndarray, wanted: Any, fresh: bool) -> Any:
        """The model work (worker thread); `fresh` for a new image, whose caches are empty."""
        return None

    def apply(self, result: Any, wanted: Any, fresh: bool) -> None:
        """Show a result and keep it in the caches (runs under the lock)."""

    def clear_pictures(self) -> None:
        """Hide the pictures (their image or request failed)."""

    def busy(self, wanted: Any) -> str:
        """Set busy states (progress bars, placeholders) for `wanted`; returns what the status line says."""
        return self.busy_text

    def image_event(self, event: ImageEvent) -> None:
        """Hook: a new image is loading in the header, is set here, or was refused (the previous one stays)."""

    def stopped(self, err: BaseException) -> None:
        """Hook: the request failed or was cancelled (the status line or the message says so already)."""


class ImageView(ImageHooks, View):
    """A view that explains one image: whatever its controls ask for is computed in its job slot.

    Subclasses fill in `ImageHooks`: at least `compute` and `apply`. A request replaces the previous one of
    this view, so what is shown always belongs to the last request. The header's image comes through
    `set_image`, `expect_image` and `image_refused` (the panel calls them); a hidden view waits until shown.
    """

    def __init__(self, model: Any, image: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.rgb: np.ndarray | None = None  # the image as the model sees it
        self.display: np.ndarray | None = None  # the image as a person sees it
        self.scene: Any = None  # the demo Scene behind the image (labels, object masks), if it is one
        self._pending: Pending | None = None  # an image asked for, not shown yet
        self._awaiting = False  # the panel's header is loading a new image for this view
        self._active, self._dirty = True, False  # shown; a request waits until it is
        self._initial_image = image

    def _start_initial(self) -> None:
        """Subclasses call this at the end of __init__, once their controls exist."""
        if self._initial_image is not None:
            self.set_image(self._initial_image)
        self._initial_image = None

    # ----- the image ------------------------------------------------------------------------------
    def set_image(self, image: Any, display: np.ndarray | None = None, scene: Any = None) -> None:
        """Explain a new image (path, array, PIL image, bytes or a demo Scene); hidden views wait until shown."""
        if scene is None and is_scene(image):
            image, scene = image.image, image
        with self._lock:
            self._pending = Pending(image, display, scene)
            self.image_event("arrives")
            self._awaiting = False
            self.request()

    def expect_image(self) -> None:
        """The panel's header started loading a new image: requests made meanwhile are for that image."""
        with self._lock:
            if not self._awaiting:
                self.image_event("coming")
            self._awaiting = True
            self.job.drop()  # work on the old image is not wanted any more
            if self._active and self.enabled:
                self.status.value = "Waiting for the new image…"

    def image_refused(self) -> None:
        """The header refused the new image: carry on with the previous one."""
        with self._lock:
            if self._awaiting:
                self._awaiting = False
                self.image_event("kept")
                self.request()

    def set_active(self, active: bool) -> None:
        """Start deferred work when the view becomes visible."""
        with self._lock:
            self._active = active
            if active and self._dirty:
                self.request()

    # ----- the request's life -----------------------------------------------------------------------------
    @guarded
    def request(self) -> None:
        """Make the view show what its controls ask for: from the caches at once, or computed in its job slot."""
        with self._lock:
            if not self.enabled:
                return
            self._dirty = not self._active
            if self._dirty:
                return
            if self._awaiting:
                self.status.value = "Waiting for the new image…"
                return
            pending, rgb, wanted = self._pending, self.rgb, self.wanted()
            if pending is None and rgb is None:
                return
            if pending is None and self.show(wanted):
                self.job.drop("success")
                self.status.value = ""
                self.clear_error()
                return
            self.status.value = self.busy(wanted)
            self.job.submit(wanted, lambda: explain(self, pending, rgb, wanted),
                            lambda outcome: self._done(pending, wanted, outcome),
                            lambda err: self._failed(pending, err))

    def _done(self, pending: Pending | None, wanted: Any, outcome: Outcome) -> None:
        """The last request's result (the runner drops stale ones): show it, or the new image's error."""
        if outcome.image is not None:
            self.rgb, self.display, self.scene = outcome.image.rgb, outcome.image.display, outcome.image.scene
            self.standing = None
            if self._pending is pending:
                self._pending = None
        if outcome.error is not None:
            self.clear_pictures()
            self.standing = outcome.error
            self.show_error(outcome.error)
            return
        self.apply(outcome.result, wanted, outcome.image is not None)
        self.status.value = ""
        self.clear_error()

    def _failed(self, pending: Pending | None, err: BaseException) -> None:
        """The last request failed: a refused image leaves the previous one; other errors hide stale pictures."""
        if isinstance(err, Cancelled):
            self.status.value = str(err)
            return self.stopped(err)
        if pending is not None and self._pending is pending:
            self._pending = None  # refused: the previous image (and its pictures) stay
        else:
            self.clear_pictures()
        self.show_error(err)
        return self.stopped(err)
