"""The panel's tabs: a registry of view classes, so a new tab is one module and one decorator.

``@register_view("mine", "My view")`` above a ``View`` subclass makes every ``ConvVizPanel`` built
afterwards show it as a tab (after the built-in ones unless `order` says otherwise). The panel builds
each view with ``View.for_panel(panel)`` (where it takes what it shares with other tabs from
``panel.services``), hands every ``ImageView`` the header's image, and calls ``connect(panel)`` on each once
all exist. ``convviz report`` adds the section of each registered view that writes one (``report_section``).
Every module of this package is imported before a panel is built, so a built-in view registers itself just by
being here. ``registered_view`` and ``scoped_registries`` register for one ``with`` block only (tests, demos).
"""

from __future__ import annotations

import importlib
import pkgutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from ..core.cams import METHODS
from ..errors import ConvVizError
from .base import View

V = TypeVar("V", bound=type)

_VIEWS: dict[str, ViewEntry] = {}
_LOCK = threading.Lock()
_DISCOVERED = False


@dataclass(frozen=True)
class ViewEntry:
    """One tab: the panel attribute it answers to (`key`), its title, the view class and its place."""

    key: str
    title: str
    view: type
    order: float


def register_view(key: str, title: str, *, order: float | None = None) -> Callable[[V], V]:
    """Class decorator: show this View subclass as a panel tab titled `title`, reachable as ``panel.<key>``.

    Tabs are sorted by `order` (the built-in ones use 10, 20, 30; None puts it after every tab so far).
    Registering a class again under its key (a re-run notebook cell) replaces it; another class under a
    taken key or title is refused.
    """
    if not (isinstance(key, str) and key.isidentifier() and not key.startswith("_")):
        raise ConvVizError(f"A view's key must be a Python name (it becomes panel.<key>), not {key!r}.")
    if not (isinstance(title, str) and title.strip()):
        raise ConvVizError(f"A view needs a non-empty title for its tab, not {title!r}.")

    def decorate(cls: V) -> V:
        if not (isinstance(cls, type) and issubclass(cls, View)):
            raise ConvVizError(f"register_view decorates a View subclass, not {cls!r}.")
        with _LOCK:
            for other in _VIEWS.values():
                same = other.view.__qualname__ == cls.__qualname__ and other.view.__module__ == cls.__module__
                if (other.key == key or other.title == title) and not same:
                    raise ConvVizError(f"The tab {other.title!r} ({other.key}) is taken by {other.view.__name__}; "
                                       "unregister_view it first, or choose another key and title.")
            place = order if order is not None else max((e.order for e in _VIEWS.values()), default=0.0) + 10
            old = _VIEWS.get(key)
            if old is not None and order is None:
                place = old.order  # a re-run cell keeps its tab where it was
            _VIEWS[key] = ViewEntry(key, title, cls, float(place))
        return cls

    return decorate


def unregister_view(key: str) -> None:
    """Remove a tab from panels built from now on (ConvVizError when no view has this key)."""
    with _LOCK:
        if key not in _VIEWS:
            raise ConvVizError(f"No view is registered as {key!r}; the tabs are: {', '.join(_VIEWS) or 'none'}.")
        del _VIEWS[key]


@contextmanager
def registered_view(key: str, title: str, view: type, *, order: float | None = None) -> Iterator[ViewEntry]:
    """Show `view` as a tab of the panels built inside one `with` block (a test, a demo); then it is gone."""
    _discover()
    with _LOCK:
        before = dict(_VIEWS)
    register_view(key, title, order=order)(view)
    try:
        with _LOCK:
            entry = _VIEWS[key]
        yield entry
    finally:
        with _LOCK:
            _VIEWS.clear()
            _VIEWS.update(before)


@contextmanager
def scoped_registries() -> Iterator[None]:
    """Whatever tabs and CAM methods are registered inside the `with` block are gone after it."""
    _discover()
    with _LOCK:
        views = dict(_VIEWS)
    methods = dict(METHODS)
    try:
        yield
    finally:
        with _LOCK:
            _VIEWS.clear()
            _VIEWS.update(views)
        METHODS.clear()
        METHODS.update(methods)


def view_entries() -> list[ViewEntry]:
    """The registered tabs in their order (the package's own views are loaded first)."""
    _discover()
    with _LOCK:
        return sorted(_VIEWS.values(), key=lambda e: e.order)


def _discover() -> None:
    """Import every module of this package once, so each built-in view has registered itself."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    package: Any = importlib.import_module(__package__)
    for info in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{__package__}.{info.name}")
    _DISCOVERED = True
