"""What every view shares: the Inspector, a job slot, pictures, messages, saving and its part of a report."""

from __future__ import annotations

import base64
import functools
import html
import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, ConvVizError, Inspector, inspector_for
from ..core.checks import Bound
from ..images import load_image, short_digest, write_new_file
from ..render import DISPLAY_MAX_SIDE, shrink, slug, to_png
from .runner import JobSlot, Runner
from .text import error_html, error_text

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


def head_reading(inspector: Any) -> str:
    """How the panel reads the head: "classes", "labels" (a multi-label sigmoid head, each label on its own),
    "regression" (one linear unit: an output value), "segmentation" or "features"."""
    kind = str(getattr(inspector, "output_kind", "classes"))
    return "labels" if kind == "classes" and getattr(inspector, "multi_label", False) else kind


def head_noun(inspector: Any) -> str:
    """What the panel calls one entry of the head: "class", "label" (multi-label) or "output" (regression)."""
    return {"labels": "label", "regression": "output"}.get(head_reading(inspector), "class")


def score_label(inspector: Any) -> str:
    """'probability' for a softmax/sigmoid head, 'score' for a linear one (never called a probability)."""
    return str(getattr(inspector, "score_label", "probability"))




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


@dataclass
class ReportSection:
    """A view's part of `convviz report`: a title, HTML (trusted: the view wrote it) and pictures by name."""

    title: str
    html: str = ""
    pictures: dict[str, np.ndarray] = field(default_factory=dict)


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
        self.job = JobSlot(self.runner, self.slot)
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
        self.error = ""  # the error text shown now ('' when none)
        self._lock = self.runner.lock  # results are handed over under the same lock
        self._quiet = threading.local()  # per thread: a job setting controls must not mute the user
        self.add_class("convviz-view")
        self.add_class(f"convviz-{self.kind}")

    # ----- messages --------------------------------------------------------------------------------
    def show_error(self, err: BaseException) -> None:
        """Show an error as a readable message in the view (and log unexpected ones)."""
        if not isinstance(err, (ConvVizError, Cancelled)):
            log.warning("convviz_widgets: %s", error_text(err), exc_info=err)
        self.error = error_text(err)
        self.message.value = error_html(self.error)
        self.status.value = ""

    def clear_error(self) -> None:
        """Remove the last error message (a standing problem of the current image stays)."""
        if self.standing is not None:
            self.show_error(self.standing)
        else:
            self.message.value, self.error = "", ""

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
        """Build this view as a tab of `panel`: its Inspector, job runner and save folder are shared.

        A view that needs what the panel offers (``panel.services``: the dataset, the class evidence, opening
        a channel's card) overrides this and takes it from there.
        """
        return cls(panel.inspector, runner=panel.runner, save_dir=panel.save_dir)

    def connect(self, panel: Any) -> None:
        """Hook: called once every tab of the panel exists (``panel.tab(key)`` finds the others)."""

    def report_section(self) -> ReportSection | None:
        """Hook: this view's part of `convviz report`, once it has explained the report's image (None: no part).

        `convviz report` builds every registered view that overrides this alone, runs it inline on the report's
        image and adds the section it returns (e.g. ``ReportSection("Top 3", html=..., pictures=self.pictures())``).
        The built-in tabs have their own sections in the report already.
        """
        return None

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
