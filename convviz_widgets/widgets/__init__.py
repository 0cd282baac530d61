"""Interactive ipywidgets views over an Inspector: pure ipywidgets core controls, no custom JavaScript.

``ConvVizPanel`` puts ``ImageChooser`` (header) above one tab per registered view: ``ActivationsView``,
``FiltersView``, ``CamView`` and any view a user registers with ``register_view``; each view also works
alone. Each view runs its model work in its own ``JobSlot`` of a ``Runner``; tabs that need each other's work
get it from the panel's ``PanelServices``; a view may add a ``ReportSection`` to ``convviz report``.
"""

from .activations import ActivationsView
from .base import ReportSection, View
from .cam import CamView
from .chooser import ImageChooser
from .filters import FiltersView
from .image_view import ImageHooks, ImageView
from .panel import ConvVizPanel
from .registry import (
    ViewEntry,
    register_view,
    registered_view,
    scoped_registries,
    unregister_view,
    view_entries,
)
from .runner import JobSlot, Runner
from .services import ClassEvidence, PanelServices

__all__ = ["ActivationsView", "CamView", "ClassEvidence", "ConvVizPanel", "FiltersView", "ImageChooser", "ImageHooks",
           "ImageView", "JobSlot", "PanelServices", "ReportSection", "Runner", "View", "ViewEntry", "register_view",
           "registered_view", "scoped_registries", "unregister_view", "view_entries"]
