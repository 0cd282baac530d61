"""CAM methods: a registry filled by the modules of this package on import, and the user's own."""

from __future__ import annotations

import importlib
import pkgutil

from .base import (
    METHODS,
    CamMethod,
    CamRequest,
    GraphMethod,
    PerturbationMethod,
    get_method,
    method_for,
    method_names,
    not_applying,
    register_cam_method,
    registered_cam_method,
)

_NOT_METHODS = {"base", "engine"}


def _load_builtins() -> None:
    """Import every method module here: each registers itself, so a new method is one new file."""
    for info in pkgutil.iter_modules(__path__):
        if info.name not in _NOT_METHODS:
            importlib.import_module(f"{__name__}.{info.name}")


_load_builtins()

__all__ = ["METHODS", "CamMethod", "CamRequest", "GraphMethod", "PerturbationMethod", "get_method", "method_for",
           "method_names", "not_applying", "register_cam_method", "registered_cam_method"]
