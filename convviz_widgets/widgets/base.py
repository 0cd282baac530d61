"""What every view shares: the Inspector, a Runner, pictures, messages, saving and the current image."""

from __future__ import annotations

import base64
import functools
import html
import logging
import math
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import ipywidgets as widgets
import numpy as np

from ..core import Cancelled, ConvVizError, Inspector, inspector_for
from ..images import load_image, resize_rgb
from ..render import to_png, upscale
from .runner import Runner

log = logging.getLogger("convviz_widgets")

DISPLAY_MAX_SIDE = 512  # uploads are shown (and overlaid) at most this large
DOWNLOAD_LINK_MAX_BYTES = 2_000_000  # larger saved files get no inline download link

F = TypeVar("F", bound=Callable[..., Any])


# ----- small helpers -----------------------------------------------------------------------------------
def as_inspector(model: Any, preprocess: Any = None, class_names: Any = None) -> Inspector:
    """An Inspector for a model, a path or an Inspector (shared per model, so compiled work is reused)."""
    if isinstance(model, Inspector):
        if preprocess is not None or class_names is not None:
            raise ConvVizError("Pass preprocess and class_names when building the Inspector, not with it.")
        return model
    return inspector_for(model, preprocess, class_names)


def is_scene(source: Any) -> bool:
    """True for a demo Scene (or anything with .image, .labels and .masks)."""
    return all(hasattr(source, name) for name in ("image", "labels", "masks"))


def display_image(source: Any) -> np.ndarray:
    """The picture as a person sees it: uint8 RGB, shrunk to DISPLAY_MAX_SIDE keeping its aspect."""
    rgb = load_image(source)
    h, w = rgb.shape[:2]
    scale = DISPLAY_MAX_SIDE / max(h, w)
    if scale >= 1.0:
        return rgb
    return resize_rgb(rgb, (max(1, round(h * scale)), max(1, round(w * scale))))


def enlarge(image: np.ndarray, target: int = 256, limit: int = 1024) -> np.ndarray:
    """Nearest-neighbour enlargement so the longer side reaches `target`, never beyond `limit`."""
    h, w = image.shape[:2]
    longest = max(h, w)
    k = max(1, math.ceil(target / longest))
    while k > 1 and k * longest > limit:
        k -= 1
    return upscale(image, k * min(h, w)) if k > 1 else image


def slug(text: str) -> str:
    """A file-name-safe version of a layer name or label."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "view"


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

    def __init__(self, model: Any, *, preprocess: Any = None, class_names: Any = None, background: bool = True,
                 runner: Runner | None = None, save_dir: str | Path | None = None) -> None:
        super().__init__()
        self.inspector = as_inspector(model, preprocess, class_names)
        self.runner = runner if runner is not None else Runner(background)
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
        self._lock = threading.RLock()
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
        """Remove the last error message."""
        if self.message.value:
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

    def on(self, control: widgets.Widget, handler: Callable[[], None], name: str = "value") -> None:
        """Call `handler()` when the user changes a control (not when code does it quietly)."""

        def changed(_change: dict) -> None:
            if not getattr(self._quiet, "depth", 0):
                handler()

        control.observe(changed, names=name)

    def wait(self, timeout: float | None = 120.0) -> bool:
        """Block until background work is done (for tests and scripts); False on timeout."""
        return self.runner.wait(timeout)

    def set_active(self, active: bool) -> None:
        """The panel calls this when the view's tab is shown or hidden."""

    # ----- saving ------------------------------------------------------------------------------------
    def pictures(self) -> dict[str, np.ndarray]:
        """This view's current pictures, by file-name part."""
        return {}

    def save(self, directory: str | Path | None = None) -> list[Path]:
        """Write the current pictures as PNG files (next to the notebook by default)."""
        pictures = self.pictures()
        if not pictures:
            raise ConvVizError("Nothing to save yet: wait for a picture to appear first.")
        folder = Path(directory or self.save_dir or Path.cwd())
        folder.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, array in pictures.items():
            path = folder / f"convviz-{self.kind}-{slug(name)}.png"
            path.write_bytes(to_png(array))
            paths.append(path)
        return paths

    @guarded
    def _save_clicked(self) -> None:
        """Save, then show the file names with download links for small files."""
        paths = self.save()
        links = []
        for path in paths:
            data = path.read_bytes()
            name = html.escape(path.name)
            if len(data) <= DOWNLOAD_LINK_MAX_BYTES:
                href = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
                links.append(f'<a download="{name}" href="{href}" title="download">{name}</a>')
            else:
                links.append(f"<code>{name}</code>")
        self.saved.value = "Saved " + ", ".join(links)
        self.clear_error()


class ImageView(View):
    """A view that explains one image: its model work runs through the Runner when the image changes."""

    busy_text = "Computing…"

    def __init__(self, model: Any, image: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        self.rgb: np.ndarray | None = None  # the image as the model sees it
        self.display: np.ndarray | None = None  # the image as a person sees it
        self.scene: Any = None  # the demo Scene behind the image (labels, object masks), if it is one
        self._token = 0
        self._source: tuple[Any, np.ndarray | None] | None = None
        self._active = True
        self._dirty = False
        self._initial_image = image

    def _start_initial(self) -> None:
        """Subclasses call this at the end of __init__, once their controls exist."""
        if self._initial_image is not None:
            self.set_image(self._initial_image)
        self._initial_image = None

    def set_image(self, image: Any, display: np.ndarray | None = None, scene: Any = None) -> None:
        """Explain a new image (path, array, PIL image, bytes or a demo Scene); hidden views wait until shown.

        `scene`: the demo Scene the image was drawn from (its labels and object masks), if any.
        """
        if scene is None and is_scene(image):
            image, scene = image.image, image
        with self._lock:
            self._token += 1
            self._source = (image, display, scene)
        if self._active:
            self._load()
        else:
            self._dirty = True

    def set_active(self, active: bool) -> None:
        """Start deferred work when the view becomes visible."""
        self._active = active
        if active and self._dirty:
            self._load()

    def _load(self) -> None:
        """Submit the new image's model work."""
        self._dirty = False
        token = self._token
        image, display, scene = self._source
        self.status.value = self.busy_text

        def work() -> tuple[np.ndarray, np.ndarray, Any]:
            full = load_image(image)
            shown = display if display is not None else display_image(full)
            rgb = self.inspector.prepare(full)
            return rgb, shown, self.compute(rgb)

        self.runner.submit(work, lambda result: self._loaded(token, *result, scene=scene),
                           lambda err: self._failed(token, err))

    def compute(self, rgb: np.ndarray) -> Any:
        """The model work for a new image (runs in the worker thread); subclasses override."""
        return None

    def apply(self, result: Any) -> None:
        """Show a new image's results (runs under the view lock); subclasses override."""

    def current(self, token: int) -> bool:
        """True when `token` belongs to the image shown now."""
        return token == self._token

    def _loaded(self, token: int, rgb: np.ndarray, shown: np.ndarray, result: Any, scene: Any = None) -> None:
        """Accept results unless a newer image has replaced this one meanwhile."""
        with self._lock:
            if not self.current(token):
                return
            self.rgb, self.display, self.scene = rgb, shown, scene
            self.apply(result)
        self.status.value = ""
        self.clear_error()

    def _failed(self, token: int, err: BaseException) -> None:
        """Show an error for the current image's work; stale errors are dropped."""
        if self.current(token):
            self.show_error(err)
