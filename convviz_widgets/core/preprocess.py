"""Named input preprocessing presets, written with backend ops so gradients flow through them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import ConvVizError

Preprocess = str | Callable[[Any], Any] | None

_CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
_TORCH_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], np.float32)


def _rescale(x: Any) -> Any:
    """x / 255: the book's small convnet (`ImageDataGenerator(rescale=1./255)`)."""
    return x / 255.0


def _caffe(x: Any) -> Any:
    """RGB -> BGR and ImageNet mean subtraction: VGG16, VGG19, ResNet50."""
    from keras import ops

    return ops.flip(x, axis=-1) - _CAFFE_MEAN_BGR


def _tf(x: Any) -> Any:
    """Scale to [-1, 1]: MobileNet, Inception, Xception."""
    return x / 127.5 - 1.0


def _torch(x: Any) -> Any:
    """Scale to [0, 1] and standardise with ImageNet mean/std: DenseNet."""
    return (x / 255.0 - _TORCH_MEAN) / _TORCH_STD


def _none(x: Any) -> Any:
    """Pixels as they are, 0..255 (models that preprocess inside, e.g. EfficientNet)."""
    return x


PRESETS: dict[str, Callable[[Any], Any]] = {
    "rescale": _rescale,
    "caffe": _caffe,
    "tf": _tf,
    "torch": _torch,
    "none": _none,
}

DEFAULT_PRESET = "rescale"

# keras.applications families, by the model name Keras gives them, and their presets.
_APPLICATION_PRESETS: tuple[tuple[str, str], ...] = (
    ("vgg16", "caffe"),
    ("vgg19", "caffe"),
    ("resnet50", "caffe"),
    ("resnet101", "caffe"),
    ("resnet152", "caffe"),
    ("resnet50v2", "tf"),
    ("resnet101v2", "tf"),
    ("resnet152v2", "tf"),
    ("mobilenet", "tf"),
    ("mobilenetv2", "tf"),
    ("mobilenet_1.00_", "tf"),
    ("mobilenet_0.", "tf"),
    ("mobilenetv3", "none"),
    ("inception_v3", "tf"),
    ("inception_resnet_v2", "tf"),
    ("xception", "tf"),
    ("nasnet", "tf"),
    ("densenet", "torch"),
    ("efficientnet", "none"),
    ("convnext", "none"),
    ("regnet", "none"),
)


def guess_preset(model_names: list[str]) -> str | None:
    """Recognise a keras.applications model (or one nested inside) by its name."""
    for name in model_names:
        low = name.lower()
        for prefix, preset in sorted(_APPLICATION_PRESETS, key=lambda p: -len(p[0])):
            if low == prefix or low.startswith(prefix):
                return preset
    return None


def resolve(preprocess: Preprocess, model_names: list[str] | None = None) -> tuple[str, Callable[[Any], Any]]:
    """Return (label, function) for a preset name, a callable, or None (guess, else the default)."""
    if callable(preprocess):
        return getattr(preprocess, "__name__", "custom"), preprocess
    if preprocess is None:
        name = guess_preset(model_names or []) or DEFAULT_PRESET
        return name, PRESETS[name]
    if isinstance(preprocess, str) and preprocess.lower() in PRESETS:
        return preprocess.lower(), PRESETS[preprocess.lower()]
    raise ConvVizError(
        f"Unknown preprocess {preprocess!r}: use one of {sorted(PRESETS)} "
        "or a function taking a float32 RGB batch in 0..255."
    )
