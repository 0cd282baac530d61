"""Interactive ipywidgets views over an Inspector: pure ipywidgets core controls, no custom JavaScript.

``ConvVizPanel`` composes ``ImageChooser`` (header) with ``ActivationsView``, ``FiltersView`` and
``CamView`` in a Tab; each view also works alone. Model work goes through a ``Runner``.
"""

from .activations import ActivationsView
from .base import View
from .cam import CamView
from .chooser import ImageChooser
from .filters import FiltersView
from .panel import ConvVizPanel
from .runner import Runner

__all__ = ["ActivationsView", "CamView", "ConvVizPanel", "FiltersView", "ImageChooser", "Runner", "View"]
