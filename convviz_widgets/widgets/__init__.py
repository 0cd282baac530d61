"""Interactive ipywidgets views over an Inspector: pure ipywidgets core controls, no custom JavaScript.

``ConvVizPanel`` puts ``ImageChooser`` (header) above one tab per registered view: ``ActivationsView``,
``FiltersView``, ``CamView`` and any view a user registers with ``register_view``; each view also works
alone. Model work goes through a ``Runner``.
"""

from .activations import ActivationsView
from .base import ImageView, View
from .cam import CamView
from .chooser import ImageChooser
from .filters import FiltersView
from .panel import ConvVizPanel
from .registry import ViewEntry, register_view, unregister_view, view_entries
from .runner import Runner

__all__ = ["ActivationsView", "CamView", "ConvVizPanel", "FiltersView", "ImageChooser", "ImageView", "Runner", "View",
           "ViewEntry", "register_view", "unregister_view", "view_entries"]
