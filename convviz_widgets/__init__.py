"""convviz_widgets: see what a convnet has learned — activations, filter patterns, Grad-CAM.

One public API: the functions and classes below; `render` turns arrays into pictures and
`ConvVizPanel` shows everything interactively in a notebook.
"""

from __future__ import annotations

from . import _quiet
from ._version import __version__

_quiet.start_backend()  # Keras and its backend first: TensorFlow (only when it computes) starts without its C++ lines

from . import limits, render  # noqa: E402
from .core import (  # noqa: E402
    CAM,
    PRESETS,
    CamMethod,
    CamRequest,
    Cancelled,
    ClassTarget,
    ConvVizError,
    FilterPatterns,
    GraphMethod,
    Inspector,
    LabelTarget,
    OutputTarget,
    PerturbationMethod,
    RegionTarget,
    Regularization,
    Target,
    TopExamples,
    activations,
    cam_methods,
    describe_device,
    filter_patterns,
    gradcam,
    load_image,
    load_model,
    predict,
    register_cam_method,
    registered_cam_method,
)
from .render import activation_grid, filter_grid, overlay, to_png  # noqa: E402
from .scale import Atlas, EvaluationTable, atlas, evaluate, top_examples  # noqa: E402
from .widgets import (  # noqa: E402
    ActivationsView,
    CamView,
    ConvVizPanel,
    FiltersView,
    ImageView,
    ReportSection,
    View,
    register_view,
    registered_view,
    scoped_registries,
)
from .widgets import chooser as _chooser  # noqa: E402


def _demo_samples() -> object | None:
    """The demo's sample scenes: what the panel offers for a model that brings none (None without the demo)."""
    try:
        from .demo import SAMPLES
    except ImportError:
        return None
    return SAMPLES


_chooser.set_default_samples(_demo_samples)


__all__ = [
    "__version__",
    "ActivationsView", "CamView", "ConvVizPanel", "FiltersView", "ImageView", "ReportSection", "View",
    "register_view", "registered_view", "scoped_registries",
    "CAM", "CamMethod", "CamRequest", "GraphMethod", "PerturbationMethod", "cam_methods", "register_cam_method",
    "registered_cam_method",
    "describe_device",
    "PRESETS", "Cancelled", "ConvVizError", "FilterPatterns", "Inspector", "Regularization", "activation_grid",
    "activations", "filter_grid", "filter_patterns", "gradcam", "limits", "load_image", "load_model", "overlay",
    "predict", "render", "to_png",
    "TopExamples", "top_examples",
    "ClassTarget", "LabelTarget", "OutputTarget", "RegionTarget", "Target",
    "Atlas", "EvaluationTable", "atlas", "evaluate",
]
