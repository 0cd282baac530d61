"""What every view shares: the Inspector, a Runner, pictures, messages, saving and the current image."""

from __future__ import annotations

import base64
import functools
import html
import logging
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, ConvVizError, Inspector, inspector_for
from ..core.checks import Bound
from ..images import load_image, short_digest, write_new_file
from ..render import DISPLAY_MAX_SIDE, shrink, slug, to_png
from .runner import Runner

log = logging.getLogger("convviz_widgets")

DOWNLOAD_LINK_MAX_BYTES = 2_000_000  # larger saved files get no inline download link

F = TypeVar("F", bound=Callable[..., Any])


# ----- small helpers -----------------------------------------------------------------------------------
def as_inspector(model: Any, preprocess: Any = None, class_names: Any = None, output: Any = None) -> Inspector:
    """An Inspector for a model, a path or an Inspector (shared per model, so compiled work is reused).

    `output` names the class output of a model with several outputs (a name or an index).
    """
    if isinstance(model, Inspector):
        if preprocess is not None or class_names is not None or output is not None:
            raise ConvVizError("Pass preprocess, class_names and output when building the Inspector, not with it.")
        return model
    if output is None:
        return inspector_for(model, preprocess, class_names)
    return inspector_for(model, preprocess, class_names, output=output)


def score_label(inspector: Any) -> str:
    """'probability' for a softmax/sigmoid head, 'score' for a linear one (never called a probability)."""
    return str(getattr(inspector, "score_label", "probability"))


def no_classes_text(inspector: Any) -> str:
    """One line: the model has no class output, and how to give it one."""
    shape = tuple(inspector.graph.head.logits.shape)
    return (f"This model has no class output (it ends in a feature map {shape}), so there is no class to "
            "explain: add a classifier head, or pass the full model (e.g. include_top=True).")


NOT_FINITE = ("The model's output is not finite (NaN or inf) for this image, so its {what} mean nothing. "
              "Check the model's weights (a diverged training leaves NaN) and the preprocessing.")


def output_problem(inspector: Any, rgb: np.ndarray, acts: dict[str, np.ndarray] | None = None) -> ConvVizError | None:
    """A ConvVizError when the model's class output (or a layer's output) holds NaN/inf for this image, else None."""
    if inspector.has_classes and not np.isfinite(inspector.probabilities(rgb)).all():
        return ConvVizError(NOT_FINITE.format(what="predictions"))
    bad = [name for name, act in (acts or {}).items() if not np.isfinite(act).all()]
    if bad:
        return ConvVizError(f"Layer {bad[0]!r} outputs NaN or inf for this image ({len(bad)} layer(s) do): "
                            "its pictures show those values as 0. Check the model's weights and the preprocessing.")
    return None


def is_scene(source: Any) -> bool:
    """True for a demo Scene (or anything with .image, .labels and .masks)."""
    return all(hasattr(source, name) for name in ("image", "labels", "masks"))


def display_image(source: Any) -> np.ndarray:
    """The picture as a person sees it: uint8 RGB, shrunk to DISPLAY_MAX_SIDE keeping its aspect."""
    return shrink(load_image(source), DISPLAY_MAX_SIDE)


def picture_widget(css_class: str) -> widgets.Image:
    """An empty PNG Image widget, hidden until it has a picture; shown at its size, shrunk to fit its column."""
    layout = widgets.Layout(max_width="100%", height="auto", align_self="flex-start", display="none")
    image = widgets.Image(format="png", layout=layout)
    image.add_class(css_class)
    return image


def show_picture(image: widgets.Image, array: np.ndarray) -> bytes:
    """Encode an RGB array as PNG into an Image widget and make it visible; returns the bytes."""
    png = to_png(array)
    image.value = png
    image.layout.display = None
    return png


def control_value(control: widgets.Widget, bound: Bound) -> Any:
    """A numeric control's value within its API bound, else a ConvVizError naming the control (a visitor may
    push a value past the control's own min/max)."""
    return bound.check(control.value, str(getattr(control, "description", "") or "this control"))


def error_text(err: BaseException) -> str:
    """A readable one-paragraph message for an error raised in a callback."""
    if isinstance(err, (ConvVizError, Cancelled)):
        return str(err)
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__


def guarded(method: F) -> F:
    """Decorate a widget callback so an error shows in the view instead of escaping."""

    @functools.wraps(method)
    def wrapper(self: View, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - the panel must keep working
            self.show_error(err)
            return None

    return wrapper  # type: ignore[return-value]


# ----- the base view ------------------------------------------------------------------------------------
class View(widgets.VBox):
    """A tab of the panel, also usable alone: controls, pictures, a status line, errors and saving."""

    kind = "view"  # CSS class suffix and file-name prefix

    def __init__(self, model: Any, *, preprocess: Any = None, class_names: Any = None, output: Any = None,
                 background: bool = True, runner: Runner | None = None, save_dir: str | Path | None = None) -> None:
        super().__init__()
        self.inspector = as_inspector(model, preprocess, class_names, output)
        self.runner = runner if runner is not None else Runner(background)
        self.slot = f"{self.kind}-{id(self):x}"  # this view's job slot: a new request replaces the last one
        self.save_dir = save_dir
        self.status = widgets.Label()
        self.status.add_class("convviz-status")
        self.message = widgets.HTML()
        self.message.add_class("convviz-message")
        self.save_button = widgets.Button(description="Save PNG", icon="download",
                                          tooltip="Write this view's pictures next to the notebook")
        self.saved = widgets.HTML()
        self.saved.add_class("convviz-saved")
        self.save_button.on_click(lambda _: self._save_clicked())
        self.standing: BaseException | None = None  # a problem of the current image, shown until the image changes
        self._lock = self.runner.lock  # results are handed over under the same lock
        self._quiet = threading.local()  # per thread: a job setting controls must not mute the user
        self.add_class("convviz-view")
        self.add_class(f"convviz-{self.kind}")

    # ----- messages --------------------------------------------------------------------------------
    def show_error(self, err: BaseException) -> None:
        """Show an error as a readable message in the view (and log unexpected ones)."""
        if not isinstance(err, (ConvVizError, Cancelled)):
            log.warning("convviz_widgets: %s", error_text(err), exc_info=err)
        self.message.value = (
            '<div class="convviz-error" style="color:#b00020;border-left:3px solid #b00020;padding:2px 8px">'
            f"<b>Error:</b> {html.escape(error_text(err))}</div>"
        )
        self.status.value = ""

    def clear_error(self) -> None:
        """Remove the last error message (a standing problem of the current image stays)."""
        if self.standing is not None:
            self.show_error(self.standing)
        elif self.message.value:
            self.message.value = ""

    @property
    def error(self) -> str:
        """The error text currently shown ('' when none)."""
        return re.sub(r"<[^>]+>", "", html.unescape(self.message.value)).replace("Error: ", "", 1)

    @contextmanager
    def quietly(self) -> Iterator[None]:
        """Set controls from code without running their callbacks."""
        self._quiet.depth = getattr(self._quiet, "depth", 0) + 1
        try:
            yield
        finally:
            self._quiet.depth -= 1

    def on(self, control: widgets.Widget, handler: Callable[..., None], name: str = "value",
           pass_value: bool = False) -> None:
        """Call `handler()` (or `handler(new_value)`) when the user changes a control, not when code does it quietly.

        Passing the new value matters when a job may set the same control meanwhile from another thread.
        """

        def changed(change: dict) -> None:
            if not getattr(self._quiet, "depth", 0):
                handler(change["new"]) if pass_value else handler()

        control.observe(changed, names=name)

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until background work is done (for tests and scripts); False on timeout."""
        return self.runner.wait(timeout)

    def set_active(self, active: bool) -> None:
        """The panel calls this when the view's tab is shown or hidden."""

    # ----- as a tab of the panel -----------------------------------------------------------------------
    @classmethod
    def for_panel(cls, panel: Any) -> View:
        """Build this view as a tab of `panel`: its Inspector, job runner and save folder are shared."""
        return cls(panel.inspector, runner=panel.runner, save_dir=panel.save_dir)

    def connect(self, panel: Any) -> None:
        """Hook: wire this tab to the panel's other tabs (``panel.tab(key)``) once all of them exist."""

    # ----- saving ------------------------------------------------------------------------------------
    def pictures(self) -> dict[str, np.ndarray]:
        """This view's current pictures, by file-name part."""
        return {}

    def image_tag(self) -> str | None:
        """A short digest of the image explained (`self.rgb`), for file names; None for a view without one."""
        rgb = getattr(self, "rgb", None)
        return short_digest(rgb) if isinstance(rgb, np.ndarray) else None

    def save(self, directory: str | Path | None = None) -> list[Path]:
        """Write the current pictures as new PNG files (next to the notebook by default); returns their paths.

        Never overwrites: each name holds the view, the picture and the image (`image_tag`), and a name
        already taken (by a file, a folder or a link) gets -2, -3, ...; files are created exclusively, so
        a link is never written through.
        """
        return [path for path, _ in self._write_pictures(directory)]

    def _write_pictures(self, directory: str | Path | None = None) -> list[tuple[Path, bytes]]:
        """Write each current picture to a new file; (path, PNG bytes) for each."""
        pictures = self.pictures()
        if not pictures:
            raise ConvVizError("Nothing to save yet: wait for a picture to appear first.")
        folder = Path(directory or self.save_dir or Path.cwd())
        folder.mkdir(parents=True, exist_ok=True)
        tag = self.image_tag()
        written = []
        for name, array in pictures.items():
            stem = f"convviz-{self.kind}-{slug(name)}" + (f"-{tag}" if tag else "")
            png = to_png(array)
            written.append((write_new_file(folder, stem, ".png", png), png))
        return written

    @guarded
    def _save_clicked(self) -> None:
        """Save, then say where: the folder, and the file names with download links for small files."""
        written = self._write_pictures()
        links = []
        for path, data in written:
            name = html.escape(path.name)
            if len(data) <= DOWNLOAD_LINK_MAX_BYTES:
                href = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                links.append(f'<a download="{name}" href="{href}" title="download">{name}</a>')
            else:
                links.append(f"<code>{name}</code>")
        folder = html.escape(str(written[0][0].parent.resolve()))
        self.saved.value = f"Saved in <code>{folder}</code>: " + ", ".join(links)
        self.clear_error()


class ImageView(View):
    """A view that explains one image: whatever its controls ask for is computed in its job slot.

    Subclasses say what the controls ask for (`wanted`), whether the current image's caches hold it
    (`cached`, then `show` draws it at once), how to compute it (`compute`, in the worker thread) and
    how to show a result (`apply`, under the runner's lock). Every request replaces the previous one
    of this view, so what is shown always belongs to the last request.
    """

    busy_text = "Computing…"

    def __init__(self, model: Any, image: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.rgb: np.ndarray | None = None  # the image as the model sees it
        self.display: np.ndarray | None = None  # the image as a person sees it
        self.scene: Any = None  # the demo Scene behind the image (labels, object masks), if it is one
        self._pending: tuple[Any, np.ndarray | None, Any] | None = None  # an image asked for, not shown yet
        self._awaiting = False  # the panel's header is loading a new image for this view
        self._active = True
        self._dirty = False
        self._initial_image = image

    def _start_initial(self) -> None:
        """Subclasses call this at the end of __init__, once their controls exist."""
        if self._initial_image is not None:
            self.set_image(self._initial_image)
        self._initial_image = None

    @property
    def enabled(self) -> bool:
        """False when this view cannot explain anything for this model (it then shows why instead)."""
        return True

    # ----- the image ------------------------------------------------------------------------------
    def set_image(self, image: Any, display: np.ndarray | None = None, scene: Any = None) -> None:
        """Explain a new image (path, array, PIL image, bytes or a demo Scene); hidden views wait until shown.

        `scene`: the demo Scene the image was drawn from (its labels and object masks), if any.
        """
        if scene is None and is_scene(image):
            image, scene = image.image, image
        with self._lock:
            self._pending = (image, display, scene)
            self._image_arrives()
            self._awaiting = False
            self.request()

    def expect_image(self) -> None:
        """The panel's header started loading a new image: requests made meanwhile are for that image."""
        with self._lock:
            if not self._awaiting:
                self._image_coming()
            self._awaiting = True
            self.runner.drop(self.slot)  # work on the old image is not wanted any more
            if self._active and self.enabled:
                self.status.value = "Waiting for the new image…"

    def image_refused(self) -> None:
        """The header refused the new image: carry on with the previous one."""
        with self._lock:
            if self._awaiting:
                self._awaiting = False
                self._image_kept()
                self.request()

    def _image_coming(self) -> None:
        """Hook: a new image is on its way (the panel's header loads it)."""

    def _image_arrives(self) -> None:
        """Hook: a new image is set (before its work is requested)."""

    def _image_kept(self) -> None:
        """Hook: the image that was on its way was refused; the previous one stays."""

    def set_active(self, active: bool) -> None:
        """Start deferred work when the view becomes visible."""
        with self._lock:
            self._active = active
            if active and self._dirty:
                self.request()

    # ----- requests ---------------------------------------------------------------------------------
    def wanted(self) -> Any:
        """What the controls ask for now (read in the caller's thread); subclasses override."""
        return None

    def cached(self, wanted: Any) -> bool:
        """True when the current image's caches already hold what `wanted` asks for."""
        return True

    def show(self, wanted: Any) -> None:
        """Draw what `wanted` asks for from the caches (runs under the lock)."""

    def compute(self, rgb: np.ndarray, wanted: Any, fresh: bool) -> Any:
        """The model work (worker thread); `fresh` for a new image, whose caches are empty."""
        return None

    def apply(self, result: Any, wanted: Any, fresh: bool) -> None:
        """Show a result and keep it in the caches (runs under the lock)."""

    def clear_pictures(self) -> None:
        """Hide the pictures (their image or request failed); subclasses override."""

    def busy(self, wanted: Any) -> str:
        """What the status line says while `wanted` is computed."""
        return self.busy_text

    @guarded
    def request(self) -> None:
        """Make the view show what its controls ask for: from the caches at once, or computed in its job slot."""
        with self._lock:
            if not self.enabled:
                return
            if not self._active:
                self._dirty = True
                return
            self._dirty = False
            if self._awaiting:
                self.status.value = "Waiting for the new image…"
                return
            pending, rgb, wanted = self._pending, self.rgb, self.wanted()
            if pending is None:
                if rgb is None:
                    return
                if self.cached(wanted):
                    self.runner.drop(self.slot)
                    self.show(wanted)
                    self.status.value = ""
                    self.clear_error()
                    return
            self.status.value = self.busy(wanted)
            self.before_submit(wanted)
            self.runner.submit(lambda: self._work(pending, rgb, wanted),
                               lambda result: self._done(pending, wanted, *result),
                               lambda err: self._failed(pending, err), slot=self.slot)

    def before_submit(self, wanted: Any) -> None:
        """Hook: set busy states (progress bars, placeholders) before the work is queued."""

    def _work(self, pending: tuple[Any, np.ndarray | None, Any] | None, rgb: np.ndarray | None,
              wanted: Any) -> tuple[tuple[np.ndarray, np.ndarray, Any] | None, Any, BaseException | None]:
        """Worker thread: load a new image (errors here refuse it), then compute (errors here belong to it)."""
        image = None
        if pending is not None:
            source, display, scene = pending
            full = load_image(source)
            shown = display if display is not None else display_image(full)
            rgb = self.inspector.prepare(full)
            image = (rgb, shown, scene)
        try:
            return image, self.compute(rgb, wanted, image is not None), None
        except Cancelled:
            raise
        except Exception as err:  # noqa: BLE001 - shown in the view, for the new image
            if image is None:
                raise
            return image, None, err

    def _done(self, pending: Any, wanted: Any, image: tuple[np.ndarray, np.ndarray, Any] | None, result: Any,
              error: BaseException | None) -> None:
        """The last request's result (the runner drops stale ones): show it, or the new image's error."""
        if image is not None:
            self.rgb, self.display, self.scene = image
            self.standing = None
            if self._pending is pending:
                self._pending = None
        if error is not None:
            self.clear_pictures()
            self.standing = error
            self.show_error(error)
            return
        self.apply(result, wanted, image is not None)
        self.status.value = ""
        self.clear_error()

    def _failed(self, pending: Any, err: BaseException) -> None:
        """The last request failed: a refused image leaves the previous one; other errors hide stale pictures."""
        if pending is not None and self._pending is pending and not isinstance(err, Cancelled):
            self._pending = None  # refused: the previous image (and its pictures) stay
        elif not isinstance(err, Cancelled):
            self.clear_pictures()
        self.stopped(err)

    def stopped(self, err: BaseException) -> None:
        """Report an error, or that the work was cancelled."""
        if isinstance(err, Cancelled):
            self.status.value = str(err)
        else:
            self.show_error(err)
