"""Input preprocessing: named presets written with backend ops, and the reading of a model's own input layers.

The layers between the model's input and its first learned layer say how the model wants its pixels:
a `Rescaling(1/255)` or a `Normalization` there means the model normalises itself and takes 0..255 as they
are. `choose` reads them (`read_input_layers`), recognises keras.applications models by name, and says why
it chose what it chose; only a model with nothing to read gets the default, and the reason says it was a guess.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
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

    return ops.subtract(ops.flip(x, axis=-1), _CAFFE_MEAN_BGR)  # ops, not `-`: numpy must not take a torch tensor


def _tf(x: Any) -> Any:
    """Scale to [-1, 1]: MobileNet, Inception, Xception."""
    return x / 127.5 - 1.0


def _torch(x: Any) -> Any:
    """Scale to [0, 1] and standardise with ImageNet mean/std: DenseNet."""
    from keras import ops

    return ops.divide(ops.subtract(x / 255.0, _TORCH_MEAN), _TORCH_STD)


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
SCALING_PRESETS = ("rescale", "tf", "torch", "caffe")  # presets that change the pixels' scale

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
# Families that normalise inside unless built with include_preprocessing=False; without those layers they
# take what their documentation says: [-1, 1] (MobileNetV3, EfficientNetV2) or ImageNet-standardised (ConvNeXt).
_WITHOUT_OWN_LAYERS: tuple[tuple[str, str], ...] = (
    ("efficientnetv2", "tf"),
    ("mobilenetv3", "tf"),
    ("convnext", "torch"),
)
# A chain of input layers that brings 0..255 within this bound normalises the model's input itself
# (a standardised input lies within a few standard deviations of 0; 0..255 divided once more does not).
NORMALISED_BOUND = 8.0

GUESS_REASON = "no normalisation found in the model: assuming pixels / 255; pass preprocess= to change"


# ----- reading the model's input layers ----------------------------------------------------------------
@dataclass(frozen=True)
class InputStep:
    """One layer read between the model's input and its first learned layer."""

    name: str  # the qualified layer name ("base/rescaling")
    kind: str  # "rescaling", "normalization", "converter", "augmentation", "resizing", "crop" or "unread"
    text: str  # what it does, in words ("Rescaling 1/255")
    scale: np.ndarray | None = None  # the values' affine map y = x * scale + offset (None: values unchanged)
    offset: np.ndarray | None = None

    @property
    def is_affine(self) -> bool:
        """True for a step that changes the pixel values (a scale and an offset)."""
        return self.scale is not None

    @property
    def is_identity(self) -> bool:
        """True for an affine step that changes nothing (a Normalization that was never adapted)."""
        return self.is_affine and np.allclose(self.scale, 1.0) and np.allclose(self.offset, 0.0)


@dataclass(frozen=True)
class InputLayers:
    """What the layers before the first learned layer do to the pixels."""

    steps: tuple[InputStep, ...]
    first_learned: str | None  # the first layer with weights of its own (None: not found)

    @property
    def value_steps(self) -> list[InputStep]:
        """The steps that change pixel values, identities left out."""
        return [s for s in self.steps if s.is_affine and not s.is_identity]

    def bound(self, high: float) -> float:
        """The largest |value| the value steps make of inputs in 0..`high`."""
        lo, hi = np.zeros(1), np.full(1, float(high))
        for step in self.value_steps:
            a, b = lo * step.scale + step.offset, hi * step.scale + step.offset
            lo, hi = np.minimum(a, b), np.maximum(a, b)
        return float(max(np.abs(lo).max(), np.abs(hi).max()))

    @property
    def expects(self) -> str | None:
        """The pixel range the model's own layers are made for: "0..255", "0..1", or None (nothing read)."""
        if not self.value_steps:
            return None
        if self.bound(255.0) <= NORMALISED_BOUND:
            return "0..255"
        if self.bound(1.0) <= NORMALISED_BOUND:
            return "0..1"
        return None

    def describe(self) -> str:
        """The value steps in words: "Rescaling 1/255 at layer 'rescaling', ..."."""
        return ", ".join(f"{s.text} at layer {s.name!r}" for s in self.value_steps)

    @property
    def verb(self) -> str:
        """"rescales" when only Rescaling layers change the values, else "normalises"."""
        return "rescales" if all(s.kind == "rescaling" for s in self.value_steps) else "normalises"

    def notes(self) -> list[str]:
        """What else was read: augmentation (inactive at inference), resizing, crops, layers not read."""
        out = []
        by_kind = {k: [s for s in self.steps if s.kind == k] for k in ("augmentation", "resizing", "crop", "unread")}
        if by_kind["augmentation"]:
            out.append(f"its augmentation layers ({_names(by_kind['augmentation'])}) do nothing at inference")
        out += [f"it {s.text} at layer {s.name!r}" for s in by_kind["resizing"] + by_kind["crop"]]
        out += [f"{s.text} at layer {s.name!r} changes nothing (never adapted)" for s in self.steps if s.is_identity]
        if by_kind["unread"]:
            out.append(f"layers that could not be read: {_names(by_kind['unread'])}")
        return out


def _names(steps: Sequence[InputStep]) -> str:
    """Steps as "RandomFlip 'random_flip', ..."."""
    return ", ".join(f"{s.text} {s.name!r}" for s in steps)


def read_input_layers(nodes: Sequence[Any]) -> InputLayers:
    """Read the traced nodes (`graph.trace`, nested models flattened) up to the first learned layer."""
    steps: list[InputStep] = []
    for node in nodes:
        step = _read_layer(node.name, node.layer)
        if step is None:
            return InputLayers(tuple(steps), node.name)
        if step.kind != "skip":
            steps.append(step)
    return InputLayers(tuple(steps), None)


# Weightless layers that leave the pixel values alone at inference.
_TRANSPARENT = {"ZeroPadding2D", "Cropping2D", "Dropout", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
                "AlphaDropout", "Identity", "InputLayer"}
_AUGMENTATION = {"RandAugment", "AugMix", "CutMix", "MixUp"}


def _read_layer(name: str, layer: Any) -> InputStep | None:
    """One layer as a step; None for a learned layer (the end of the input layers)."""
    from keras import layers

    kind = type(layer).__name__
    if isinstance(layer, layers.Rescaling):
        scale, offset = _array(layer.scale), _array(layer.offset)
        return InputStep(name, "rescaling", f"Rescaling {_scale_text(scale, offset)}", scale, offset)
    if isinstance(layer, layers.Normalization):
        return _normalization(name, layer)
    if kind.endswith("ImageConverter"):  # KerasHub's converters, matched by name: keras_hub is never imported
        return _converter(name, layer)
    if isinstance(layer, layers.RandomCrop):
        return InputStep(name, "crop", f"crops and resizes its input to {layer.height}x{layer.width} at inference "
                                       "(RandomCrop)")
    if kind.startswith("Random") or kind in _AUGMENTATION:
        return InputStep(name, "augmentation", kind)
    if isinstance(layer, layers.Resizing):
        return InputStep(name, "resizing", f"resizes its input to {layer.height}x{layer.width} (Resizing)")
    if isinstance(layer, layers.CenterCrop):
        return InputStep(name, "crop", f"crops the centre to {layer.height}x{layer.width} (CenterCrop)")
    if getattr(layer, "weights", None):
        return None
    if kind in _TRANSPARENT:
        return InputStep(name, "skip", kind)
    return InputStep(name, "unread", kind)


def _array(value: Any) -> np.ndarray:
    """A layer's number, list or tensor as a float64 array."""
    from keras import ops

    if value is None:
        return np.zeros(1)
    if isinstance(value, (int, float, list, tuple)):
        return np.asarray(value, np.float64)
    return np.asarray(ops.convert_to_numpy(value), np.float64)


def _normalization(name: str, layer: Any) -> InputStep:
    """A Normalization layer's affine map, from its given or adapted mean and variance."""
    import keras

    if getattr(layer, "input_mean", None) is None and hasattr(layer, "adapt_mean"):
        shape = getattr(layer, "_broadcast_shape", None) or (-1,)
        mean = _array(layer.adapt_mean).reshape(shape)
        variance = _array(layer.adapt_variance).reshape(shape)
    elif getattr(layer, "mean", None) is not None:
        mean, variance = _array(layer.mean), _array(layer.variance)
    else:
        mean, variance = _array(layer.input_mean), _array(layer.input_variance)
    std = np.maximum(np.sqrt(np.maximum(variance, 0.0)), keras.backend.epsilon())
    text = f"Normalization (mean {_values_text(mean)}, std {_values_text(std)})"
    if getattr(layer, "invert", False):
        return InputStep(name, "normalization", f"inverted {text}", std, mean)
    return InputStep(name, "normalization", text, 1.0 / std, -mean / std)


def _converter(name: str, layer: Any) -> InputStep:
    """A KerasHub image converter's scale and offset (its resizing is noted in the text)."""
    try:
        config = layer.get_config()
    except Exception:  # a converter that cannot describe itself: read its attributes
        config = {}
    scale = config.get("scale", getattr(layer, "scale", None))
    offset = config.get("offset", getattr(layer, "offset", None))
    size = config.get("image_size")
    scale_a = np.ones(1) if scale is None else _array(scale)
    offset_a = _array(offset)
    text = f"{type(layer).__name__} ({_scale_text(scale_a, offset_a)}"
    text += f", resizing to {size[0]}x{size[1]})" if size else ")"
    return InputStep(name, "converter", text, scale_a, offset_a)


def _values_text(values: np.ndarray) -> str:
    """A few numbers as '0.485' or '(123.7, 116.3, 103.5)'; many as their mean."""
    flat = np.ravel(values)
    if np.allclose(flat, flat[0]):
        return f"{flat[0]:.4g}"
    if flat.size <= 4:
        return "(" + ", ".join(f"{v:.4g}" for v in flat) + ")"
    return f"≈ {float(np.mean(flat)):.4g}"


def _scale_text(scale: np.ndarray, offset: np.ndarray) -> str:
    """A scale and offset as '1/255' or '1/127.5, offset -1' or 'x (0.0171, 0.0175, 0.0174)'."""
    flat = np.ravel(scale)
    text = f"× {_values_text(scale)}"
    if np.allclose(flat, flat[0]) and flat[0] > 0:
        inverse = 1.0 / float(flat[0])
        if inverse >= 2 and abs(inverse * 10 - round(inverse * 10)) < 1e-3 * inverse:
            text = f"1/{round(inverse, 1):g}"
    if np.any(np.abs(offset) > 0):
        text += f", offset {_values_text(offset)}"
    return text


# ----- choosing the preprocessing ---------------------------------------------------------------------
@dataclass(frozen=True)
class Choice:
    """The preprocessing chosen, why, and a warning in words when the user's choice scales twice."""

    name: str
    fn: Callable[[Any], Any]
    reason: str
    warning: str | None = None
    in_graph: bool = False  # written in keras.ops: it may run inside compiled functions
    size: tuple[int, int] | None = None  # (h, w) the preprocessing resizes every image to (a KerasHub converter)
    crop_to_aspect: bool = False  # crop the centre to the aspect ratio of `size` before resizing
    bilinear: bool = False  # resize bilinearly without antialiasing, as the converter does


# ----- a KerasHub model's own preprocessing ------------------------------------------------------------
def hub_converter(source: Any) -> Any | None:
    """The KerasHub image converter of a task, of its preprocessor or the converter itself; None for anything else.

    Matched by name and attributes (`...ImageConverter`, `.preprocessor`, `.image_converter`): keras_hub is never
    imported here.
    """
    if source is None or isinstance(source, str):
        return None
    if _is_converter(source):
        return source
    preprocessor = source if hasattr(source, "image_converter") else getattr(source, "preprocessor", None)
    converter = getattr(preprocessor, "image_converter", None)
    return converter if _is_converter(converter) else None


def _is_converter(layer: Any) -> bool:
    """Whether `layer` is an image converter (KerasHub's, matched by class name)."""
    return layer is not None and type(layer).__name__.endswith("ImageConverter")


def converter_choice(converter: Any, how: str) -> Choice:
    """The converter's scale and offset as a keras.ops function, its image size, and the reason (`how` it came)."""
    step = _converter("", converter)
    config = _config(converter)
    size = config.get("image_size")
    size = None if size is None or None in tuple(size) else (int(size[0]), int(size[1]))
    crop = bool(config.get("crop_to_aspect_ratio", False)) and size is not None
    bilinear = config.get("interpolation", "bilinear") == "bilinear" and not config.get("antialias", False)
    name = type(converter).__name__
    reason = f"{how} {name} ({_scale_text(step.scale, step.offset)})"
    if size is not None:
        reason += (f"; this package resizes each image to {size[0]}x{size[1]} itself, "
                   f"{'cropping the centre to that aspect ratio first, ' if crop else ''}"
                   f"{'bilinearly, ' if bilinear else ''}as the converter does, so the picture shown is the one "
                   "explained")
    if config.get("pad_to_aspect_ratio"):
        reason += " (the converter would pad to the aspect ratio instead: give images of that aspect ratio)"
    return Choice(name, _affine(step.scale, step.offset), reason, in_graph=True, size=size, crop_to_aspect=crop,
                  bilinear=bilinear)


def _warn_if_twice(choice: Choice, converter: Any, found: InputLayers) -> Choice:
    """A given converter that scales the pixels, for a model that normalises pixels in 0..255 itself: warned."""
    step = _converter("", converter)
    if found.expects != "0..255" or (np.allclose(step.scale, 1.0) and np.allclose(step.offset, 0.0)):
        return choice
    where = ", ".join(repr(s.name) for s in found.value_steps)
    warning = (f"The model already {found.verb} its input at layer {where}; the given {choice.name} scales the "
               "pixels too, so they would be normalised twice. Leave preprocess= out (or pass 'none') to give the "
               "model pixels in 0..255.")
    return replace(choice, reason=choice.reason + f" (the model already {found.verb} its input: {found.describe()})",
                   warning=warning)


def _config(layer: Any) -> dict:
    """A layer's config, or {} for a layer that cannot describe itself."""
    try:
        return dict(layer.get_config())
    except Exception:  # a converter that cannot describe itself: its attributes are read instead
        return {}


def _affine(scale: np.ndarray, offset: np.ndarray) -> Callable[[Any], Any]:
    """x * scale + offset per channel, in keras.ops (what an image converter does after resizing)."""
    s = np.asarray(scale, np.float32).reshape(-1)
    o = np.asarray(offset, np.float32).reshape(-1)

    def converter(x: Any) -> Any:
        from keras import ops

        return ops.add(ops.multiply(x, s), o)

    return converter


def recognise(model_names: list[str]) -> tuple[str, str] | None:
    """(the model's name, its preset) of a keras.applications model recognised by name, or None."""
    for name in model_names:
        low = name.lower()
        for prefix, preset in sorted(_APPLICATION_PRESETS, key=lambda p: -len(p[0])):
            if low == prefix or low.startswith(prefix):
                return name, preset
    return None


def choose(preprocess: Preprocess, nodes: Sequence[Any] = (), model_names: list[str] | None = None,
           model: Any = None) -> Choice:
    """The preprocessing for a model: the user's, else the model's own preprocessor (a KerasHub task's image
    converter), else its own layers, else its name, else the default."""
    found = read_input_layers(nodes)
    given = hub_converter(preprocess)
    if given is not None:
        return _warn_if_twice(converter_choice(given, "given: the KerasHub image converter"), given, found)
    if callable(preprocess):
        name = getattr(preprocess, "__name__", "custom")
        return Choice(name, preprocess, f"given as a function ({name})")
    if preprocess is None:
        attached = hub_converter(model) if model is not None else None
        if attached is not None:
            return converter_choice(attached, "the model's own KerasHub preprocessor: its image converter")
        return _found_choice(found, model_names or [])
    if isinstance(preprocess, str) and preprocess.lower() in PRESETS:
        return _given_choice(preprocess.lower(), found)
    raise ConvVizError(
        f"Unknown preprocess {preprocess!r}: use one of {sorted(PRESETS)} "
        "or a function taking a float32 RGB batch in 0..255."
    )


def _with_notes(reason: str, found: InputLayers) -> str:
    """The reason followed by what else was read in the input layers."""
    return "; ".join([reason, *found.notes()])


def _found_choice(found: InputLayers, model_names: list[str]) -> Choice:
    """Nothing given: the model's own input layers decide, else a keras.applications name, else the default."""
    if found.expects == "0..255":
        reason = f"the model {found.verb} its own input ({found.describe()})"
        return Choice("none", PRESETS["none"], _with_notes(reason, found))
    if found.expects == "0..1":
        reason = f"the model {found.verb} its input for pixels in 0..1 ({found.describe()}): pixels / 255 go in"
        return Choice("rescale", PRESETS["rescale"], _with_notes(reason, found))
    known = recognise(model_names)
    if known is not None:
        model_name, preset = known
        reason = f"recognised as keras.applications {model_name!r}"
        if preset == "none":
            preset, reason = _without_own_layers(model_name, reason)
        return Choice(preset, PRESETS[preset], _with_notes(reason, found))
    if found.value_steps:
        reason = (f"the model's input layers ({found.describe()}) do not bring pixels in 0..255 or 0..1 to a "
                  f"normalised range: assuming pixels / 255; pass preprocess= to change")
        return Choice(DEFAULT_PRESET, PRESETS[DEFAULT_PRESET], _with_notes(reason, found))
    return Choice(DEFAULT_PRESET, PRESETS[DEFAULT_PRESET], _with_notes(GUESS_REASON, found))


def _without_own_layers(model_name: str, reason: str) -> tuple[str, str]:
    """A family that normalises inside, found without its normalisation layers: built without preprocessing."""
    low = model_name.lower()
    for prefix, preset in _WITHOUT_OWN_LAYERS:
        if low.startswith(prefix):
            return preset, (f"{reason}, built without its own preprocessing layers (include_preprocessing=False): "
                            f"the family's documented input ({preset!r})")
    return "none", f"{reason} (it normalises inside, in layers this package does not read)"


_TWICE = {
    "rescale": "would divide by 255 twice",
    "tf": "would scale to [-1, 1] and the model would scale that again",
    "torch": "would standardise the pixels and the model would standardise them again",
    "caffe": "would subtract the ImageNet mean and the model would normalise the result again",
}


def _given_choice(name: str, found: InputLayers) -> Choice:
    """A preset the user named: used as given, with a warning when the model normalises its own input too."""
    reason = f"given: preprocess={name!r}"
    warning = None
    if found.expects == "0..255" and name in SCALING_PRESETS:
        where = ", ".join(repr(s.name) for s in found.value_steps)
        warning = (f"The model already {found.verb} its input at layer {where}; preprocess={name!r} {_TWICE[name]}. "
                   "Leave preprocess= out (or pass 'none') to give the model pixels in 0..255.")
        reason += f" (the model already {found.verb} its input: {found.describe()})"
    return Choice(name, PRESETS[name], reason, warning)
