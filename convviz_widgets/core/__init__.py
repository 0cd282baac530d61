"""TF/Keras maths: model inspection, activations, filter patterns and class activation maps."""

from ..errors import Cancelled, ConvVizError
from ..images import load_image
from . import device  # noqa: F401 - batch budgets follow the GPU's memory when one computes
from .api import activations, cam_methods, filter_patterns, gradcam, inspector_for, predict
from .cam import CAM
from .cams import CamMethod, CamRequest, GraphMethod, PerturbationMethod, register_cam_method, registered_cam_method
from .device import describe_device
from .examples import ReceptiveField, TopExamples, receptive_field, top_examples
from .feature_viz import Regularization
from .filters import FilterPatterns
from .inspector import Inspector
from .model_io import load_model
from .preprocess import PRESETS
from .targets import ClassTarget, LabelTarget, OutputTarget, RegionTarget, Target

__all__ = [
    "CAM", "CamMethod", "CamRequest", "GraphMethod", "PerturbationMethod", "cam_methods", "register_cam_method",
    "registered_cam_method", "describe_device",
    "PRESETS", "Cancelled", "ConvVizError", "FilterPatterns", "Inspector", "Regularization", "activations",
    "filter_patterns", "gradcam", "inspector_for", "load_image", "load_model", "predict",
    "ReceptiveField", "TopExamples", "receptive_field", "top_examples",
    "ClassTarget", "LabelTarget", "OutputTarget", "RegionTarget", "Target",
]
