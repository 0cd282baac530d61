"""Loading Keras models from `.keras` and legacy Keras-2 `.h5` files: sized first, built light, with clear errors.

Before Keras reads a file, its size is checked without inflating anything: a `.keras` zip's directory
(every member's and the total inflated size against `limits.max_model_bytes`; assets are written to
disk when Keras loads them, so they count too), its configuration's parsing cost and the weights its
layers declare (parameter counts from each layer's declared input shape) against the memory budget;
a `.h5` file's datasets from their shapes (h5py reads shapes without data) and its configuration's
layers. The model is then built with its initialisers rewritten to zeros in a copy of the configuration
(the saved weights replace them: Keras's random initialisers would take several times the weights in
temporaries, kept in the backend's memory pool) and its variables are filled the backend's way, from a
`.keras` file a slice at a time: in place on TensorFlow (a CPU variable's memory) and PyTorch (any
device), into one host array that becomes the variable's value on JAX, whose arrays are immutable.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import math
import os
import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import keras
import numpy as np

from ..errors import ConvVizError
from ..images import check_regular_file
from ..limits import check_fits, limits, size_text
from . import backend as bk

_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
_CONFIG, _METADATA, _WEIGHTS = "config.json", "metadata.json", "model.weights.h5"
CONFIG_FACTOR = 10.0  # parsing a JSON configuration takes about this many times its size in Python objects
LIGHT_FACTOR = 1.1  # loading light: the weights, plus one slice being copied
LIGHT_FACTOR_JAX = 2.5  # on JAX, building the zeros peaks higher (2.3x measured on 114 MB of weights); filling: none
KERAS_FACTOR = 3.0  # Keras's own loader: the weights, their random initialisers' temporaries, the file read in
FILL_SLICE = 16 * 2**20  # bytes of saved weights copied into a variable at a time
_RAISE_FILE = ("If you trust the file, raise the limit: convviz_widgets.limits.max_model_bytes = <bytes> "
               "(or the CONVVIZ_MAX_MODEL_BYTES environment variable, e.g. 4G)")


def load_model(path_or_model: Any, *, safe_mode: bool = True) -> keras.Model:
    """Return a keras.Model: passed through, or loaded (without compiling) from a file."""
    if isinstance(path_or_model, keras.Model):
        return path_or_model
    if not isinstance(path_or_model, (str, os.PathLike)):
        raise ConvVizError(
            f"load_model takes a keras.Model or a path to a .keras/.h5 file; got {type(path_or_model).__name__}."
        )
    path = Path(path_or_model)
    check_regular_file(path, "Model file")  # a folder, FIFO or device is refused before anything opens it
    if path.suffix.lower() not in _MODEL_SUFFIXES:
        raise ConvVizError(
            f"{path.name}: unknown model format {path.suffix!r}; save the model with "
            "model.save('model.keras') (Keras 3) or pass a legacy Keras-2 .h5 file."
        )
    if path.suffix.lower() == ".keras" and not zipfile.is_zipfile(path):
        raise ConvVizError(
            f"{path.name} is corrupt or truncated: a .keras file is a zip archive and this one cannot be "
            "opened. Download or save the model again."
        )
    try:
        if path.suffix.lower() == ".keras":
            return _load_keras(path, safe_mode)
        check_h5_file(path)
        return _load_h5(path, safe_mode)
    except ConvVizError:
        raise
    except Exception as err:  # noqa: BLE001 - every failure becomes one clear message
        raise _explain_load_error(path, err) from err


# ----- sizing, before anything is inflated or built -----------------------------------------------
def _too_big(path: Path, what: str, size: float, verb: str = "inflates to") -> ConvVizError:
    """The refusal of a file part over `limits.max_model_bytes`: the file, the size, the limit, how to raise it."""
    return ConvVizError(
        f"{path.name}: {what} {verb} {size_text(size)}, more than the model-file limit of "
        f"{size_text(limits.max_model_bytes)}; it is refused before the model is built. {_RAISE_FILE}."
    )


def check_keras_file(path: Path, zf: zipfile.ZipFile) -> dict:
    """Size a `.keras` archive from its directory, its configuration and its weights' declared shapes; the config.

    Refuses (ConvVizError) a member or a total over `limits.max_model_bytes`, a configuration whose parsing
    would exceed the memory budget, and layers whose declared weights do not fit the budget.
    """
    infos = zf.infolist()
    limit = limits.max_model_bytes
    for info in infos:
        if info.file_size > limit:
            raise _too_big(path, f"its member {info.filename!r} ({size_text(info.compress_size)} stored)",
                           info.file_size)
    total = sum(info.file_size for info in infos)
    if total > limit:
        assets = sum(i.file_size for i in infos if i.filename not in (_CONFIG, _METADATA, _WEIGHTS))
        extra = f", of which assets written to disk on loading {size_text(assets)}" if assets else ""
        raise _too_big(path, f"the archive ({len(infos)} members{extra})", total)
    try:
        config_info = zf.getinfo(_CONFIG)
    except KeyError:
        raise ConvVizError(
            f"{path.name} holds no model configuration ({_CONFIG}); save the model with model.save('model.keras')."
        ) from None
    check_fits(CONFIG_FACTOR * config_info.file_size,
               what=f"Reading the configuration of {path.name} ({size_text(config_info.file_size)} of JSON)",
               lower="the model")
    config = json.loads(zf.read(_CONFIG))
    if not isinstance(config, dict):
        raise ConvVizError(f"{path.name}: its {_CONFIG} is not a model configuration. Save the model again.")
    declared, unknown = declared_weight_bytes(config)
    if declared > limit:  # a real model's weights are in the file, which is within the limit: these cannot be
        raise _too_big(path, "the weights its layers declare", declared, "come to")
    _check_weights_fit(path, declared, unknown, _light_factor() if _loads_light(zf) else KERAS_FACTOR)
    if _WEIGHTS in zf.namelist():
        with _member(zf, _WEIGHTS) as raw, h5py.File(raw, "r") as h5:
            stored = dataset_bytes(h5)
        if stored > limit:
            raise _too_big(path, f"the weights its {_WEIGHTS} declares", stored, "come to")
    return config


def check_h5_file(path: Path) -> None:
    """Size a legacy `.h5` model from its datasets' shapes (no data is read) and its configuration's layers.

    Both against `limits.max_model_bytes`, and the larger of the two against the memory budget.
    """
    with h5py.File(path, "r") as h5:
        stored = dataset_bytes(h5)
        text = h5.attrs.get("model_config")
    if stored > limits.max_model_bytes:
        raise _too_big(path, "the weights its datasets declare", stored, "come to")
    declared, unknown = 0.0, []
    if text is not None:
        text = text.decode("utf-8") if isinstance(text, bytes) else str(text)
        check_fits(CONFIG_FACTOR * len(text), what=f"Reading the configuration of {path.name} "
                   f"({size_text(len(text))} of JSON)", lower="the model")
        with contextlib.suppress(ValueError):
            declared, unknown = declared_weight_bytes(json.loads(text))
    if declared > limits.max_model_bytes:
        raise _too_big(path, "the weights its layers declare", declared, "come to")
    _check_weights_fit(path, max(stored, declared), unknown, KERAS_FACTOR)


def dataset_bytes(h5: h5py.Group) -> int:
    """Bytes every dataset of an HDF5 file declares (shape x item size), read from metadata alone."""
    sizes: list[int] = []

    def visit(_: str, item: Any) -> None:
        if isinstance(item, h5py.Dataset):
            sizes.append(int(np.prod(item.shape, dtype=np.float64)) * item.dtype.itemsize if item.shape else 0)

    h5.visititems(visit)
    return sum(sizes)


def _check_weights_fit(path: Path, weights: float, unknown: list[str], factor: float) -> None:
    """Refuse a model whose weights (times what loading adds) exceed the memory budget, naming the file."""
    note = f"; the size of {len(unknown)} layer(s) of unknown kind is not counted" if unknown else ""
    check_fits(factor * weights, what=f"Loading {path.name} ({size_text(weights)} of weights declared{note})",
               lower="the model (a smaller one)")


# ----- parameters a configuration declares ----------------------------------------------------------
_NO_WEIGHTS = {
    "InputLayer", "Flatten", "Reshape", "Permute", "RepeatVector", "Activation", "ReLU", "LeakyReLU", "ELU",
    "Softmax", "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianNoise",
    "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity", "Masking", "Rescaling",
    "Resizing", "CenterCrop", "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "Concatenate",
    "Dot", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D", "AveragePooling2D",
    "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D", "GlobalAveragePooling3D",
    "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D", "ZeroPadding1D", "ZeroPadding2D",
    "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D", "UpSampling1D", "UpSampling2D", "UpSampling3D",
    "RandomFlip", "RandomRotation", "RandomZoom", "RandomTranslation", "RandomContrast", "RandomCrop",
}


def _is_model(layer: Any) -> bool:
    """Whether a serialised layer is itself a model (its config lists layers)."""
    return isinstance(layer, dict) and isinstance(layer.get("config"), dict) and \
        isinstance(layer["config"].get("layers"), list)


def _layers_with_shapes(config: Any) -> Iterator[tuple[dict, list[list]]]:
    """Every leaf layer of a configuration (nested models included) with its candidate input shapes."""
    if not isinstance(config, dict):
        return
    if not _is_model(config):
        if "class_name" in config:
            yield config, [s for s in [_input_shape(config)] if s]
        return
    layers = config["config"]["layers"]
    inferred = _inferred_inputs(config, layers)
    for layer in layers:
        if _is_model(layer):
            yield from _layers_with_shapes(layer)
        elif isinstance(layer, dict) and "class_name" in layer:
            yield layer, [s for s in (_input_shape(layer), inferred.get(id(layer))) if s]


def _producers(value: Any) -> list[str]:
    """Names of the layers whose tensors a serialised call's arguments hold, in order."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            history = value.get("config", {}).get("keras_history") or [None]
            return [str(history[0])]
        return [n for v in value.values() for n in _producers(v)]
    if isinstance(value, list):
        return [n for v in value for n in _producers(v)]
    return []


def _inferred_inputs(model: dict, layers: list) -> dict[int, list]:
    """Each layer's input shape inferred from the model's inputs (by id of its dict), where it can be."""
    sequential = model.get("class_name") == "Sequential"
    build = model.get("config", {}).get("build_config") or model.get("build_config") or {}
    current = build.get("input_shape") if isinstance(build, dict) else None
    outputs: dict[str, list | None] = {}
    inputs: dict[int, list] = {}
    for layer in layers:
        if not isinstance(layer, dict):
            continue
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        kind = str(layer.get("class_name"))
        if kind == "InputLayer":
            out = cfg.get("batch_shape") or cfg.get("batch_input_shape")
        else:
            nodes = layer.get("inbound_nodes") or []
            shapes = [current] if sequential else [outputs.get(n) for n in _producers(nodes[:1])]
            known = bool(shapes) and all(_valid_shape(x) for x in shapes)
            if known:
                inputs[id(layer)] = shapes[0]
            try:
                out = _output_shape(kind, cfg, shapes) if known and not _is_model(layer) else None
            except (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError):
                out = None
        out = out if _valid_shape(out) else None
        outputs[str(cfg.get("name", layer.get("name")))] = out
        current = out
    return inputs


def _valid_shape(shape: Any) -> bool:
    """A shape list of ints and Nones (a batch dimension first)."""
    return isinstance(shape, list) and len(shape) >= 1 and \
        all(d is None or (isinstance(d, int) and not isinstance(d, bool) and d >= 0) for d in shape)


_SAME_SHAPE = {
    "Activation", "ReLU", "LeakyReLU", "ELU", "PReLU", "Softmax", "Dropout", "SpatialDropout1D", "SpatialDropout2D",
    "SpatialDropout3D", "GaussianNoise", "GaussianDropout", "AlphaDropout", "ActivityRegularization", "Identity",
    "Masking", "Rescaling", "Normalization", "BatchNormalization", "LayerNormalization", "GroupNormalization",
    "Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum", "RandomFlip", "RandomRotation", "RandomZoom",
    "RandomTranslation", "RandomContrast",
}


def _tuple(value: Any, n: int) -> list[int]:
    """A size or list of sizes as n ints (Keras configs store both)."""
    return [int(value)] * n if isinstance(value, int) else [int(v) for v in value]


def _spatial(shape: list, kind: str, cfg: dict) -> list | None:
    """Output shape of a channels-last convolution or pooling layer."""
    if cfg.get("data_format", "channels_last") == "channels_first":
        return None
    dims = shape[1:-1]
    n = len(dims)
    if kind.endswith("Pooling1D") or kind.endswith("Pooling2D") or kind.endswith("Pooling3D"):
        kernel = _tuple(cfg.get("pool_size", 2), n)
        strides, dilation, channels = _tuple(cfg.get("strides") or kernel, n), [1] * n, shape[-1]
    else:
        kernel = _tuple(cfg.get("kernel_size", 1), n)
        strides, dilation = _tuple(cfg.get("strides", 1), n), _tuple(cfg.get("dilation_rate", 1), n)
        channels = shape[-1] * int(cfg.get("depth_multiplier", 1)) if kind.startswith("Depthwise") else \
            int(cfg["filters"])
    same = cfg.get("padding", "valid") == "same"
    out = []
    for d, k, st, dl in zip(dims, kernel, strides, dilation):
        span = (k - 1) * dl + 1
        out.append(None if d is None else (-(-d // st) if same else max(0, (d - span) // st + 1)))
    return [shape[0], *out, channels]


def _output_shape(kind: str, cfg: dict, shapes: list[list]) -> list | None:
    """A layer's output shape from its input shapes, for the kinds whose shape follows from their configuration."""
    x = shapes[0]
    if kind in _SAME_SHAPE:
        return list(x)
    if kind == "Flatten":
        rest = x[1:]
        return [x[0], int(np.prod(rest, dtype=np.int64))] if None not in rest else None
    if kind == "Dense":
        return [*x[:-1], int(cfg["units"])]
    if kind == "Embedding":
        return [*x, int(cfg["output_dim"])]
    if kind == "Reshape":
        target = [int(d) for d in cfg["target_shape"]]
        if -1 in target:
            known = int(np.prod([d for d in target if d != -1], dtype=np.int64))
            total = int(np.prod(x[1:], dtype=np.int64)) if None not in x[1:] else None
            target = [total // known if d == -1 and total is not None else d for d in target]
        return [x[0], *target] if -1 not in target else None
    if kind == "Concatenate":
        axis = int(cfg.get("axis", -1))
        sizes = [s[axis] for s in shapes]
        out = list(x)
        out[axis] = None if None in sizes else sum(sizes)
        return out
    if kind.startswith(("GlobalAveragePooling", "GlobalMaxPooling")):
        if cfg.get("data_format", "channels_last") == "channels_first":
            return None
        return [x[0], *([1] * (len(x) - 2)), x[-1]] if cfg.get("keepdims") else [x[0], x[-1]]
    if kind in ("Conv1D", "Conv2D", "Conv3D", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                "SeparableConv2D") or kind.startswith(("MaxPooling", "AveragePooling")):
        return _spatial(x, kind, cfg)
    if kind == "ZeroPadding2D" and cfg.get("data_format", "channels_last") != "channels_first":
        pad = cfg.get("padding", 1)
        pairs = [[pad, pad]] * 2 if isinstance(pad, int) else [_tuple(p, 2) for p in pad]
        return [x[0], *[None if d is None else d + sum(p) for d, p in zip(x[1:3], pairs)], x[3]]
    return None


def _input_shape(layer: dict) -> list | None:
    """A layer's declared input shape: its build configuration's, else its first inbound tensor's."""
    build = layer.get("build_config")
    shape = build.get("input_shape") if isinstance(build, dict) else None
    if shape is None:
        with contextlib.suppress(Exception):
            shape = layer["inbound_nodes"][0]["args"][0]["config"]["shape"]
    if isinstance(shape, list) and shape and all(isinstance(d, (int, type(None))) for d in shape):
        return shape
    return None


def _dim(shape: list, axis: int) -> int | None:
    """One declared dimension (None when unknown or out of range)."""
    with contextlib.suppress(IndexError, TypeError):
        d = shape[axis]
        return int(d) if d is not None else None
    return None


def _param_count(kind: str, cfg: dict, shape: list | None) -> float | None:
    """Parameters a layer of `kind` declares with input `shape`; 0 for weightless kinds, None when unknown."""
    if kind in _NO_WEIGHTS:
        return 0.0
    if shape is None:
        return None
    last = cfg.get("data_format", "channels_last") != "channels_first"
    channels = _dim(shape, -1 if last else 1)
    bias = bool(cfg.get("use_bias", True))
    kernel = float(np.prod(cfg.get("kernel_size") or [1], dtype=np.float64))
    if kind == "Dense" and channels:
        return float(channels) * cfg["units"] + (cfg["units"] if bias else 0)
    if kind in ("Conv1D", "Conv2D", "Conv3D") and channels:
        return kernel * channels / max(1, int(cfg.get("groups", 1))) * cfg["filters"] + (cfg["filters"] if bias else 0)
    if kind in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose") and channels:
        return kernel * channels * cfg["filters"] + (cfg["filters"] if bias else 0)
    if kind in ("DepthwiseConv1D", "DepthwiseConv2D") and channels:
        out = channels * int(cfg.get("depth_multiplier", 1))
        return kernel * out + (out if bias else 0)
    if kind in ("SeparableConv1D", "SeparableConv2D") and channels:
        mid = channels * int(cfg.get("depth_multiplier", 1))
        return kernel * mid + float(mid) * cfg["filters"] + (cfg["filters"] if bias else 0)
    if kind in ("BatchNormalization", "LayerNormalization", "GroupNormalization") and channels:
        return float(channels) * (4 if kind == "BatchNormalization" else 2)
    if kind == "Embedding":
        return float(cfg["input_dim"]) * cfg["output_dim"]
    if kind == "Normalization":  # mean and variance over the kept axes, and a count
        axes = cfg.get("axis", -1)
        sizes = [_dim(shape, int(a)) for a in ([axes] if isinstance(axes, int) else axes or [])]
        return None if None in sizes else 2.0 * float(np.prod(sizes, dtype=np.float64)) + 1
    return None


def _itemsize(cfg: dict) -> int:
    """Bytes per variable element of a layer (its dtype policy's variable dtype; float32 when unsaid)."""
    dtype = cfg.get("dtype")
    name = dtype.get("config", {}).get("name", "") if isinstance(dtype, dict) else str(dtype or "")
    if name in ("float16", "bfloat16"):
        return 2
    return 8 if name == "float64" else 4


def declared_weight_bytes(config: dict) -> tuple[float, list[str]]:
    """Bytes of the variables a model configuration declares, and the names of layers whose size is unknown.

    Each layer's parameters follow from its kind and its input shape (Dense: inputs x units + bias;
    convolutions: kernel x input channels x filters + bias; normalisations: a few per channel), taking the
    larger of the shape the file declares and the shape inferred from the model's inputs through the
    layers whose output shapes follow from their configuration (so a file cannot understate what Keras
    will build); weightless kinds count 0; a layer of another kind, or without any shape, is unknown.
    """
    total, unknown = 0.0, []
    for layer, shapes in _layers_with_shapes(config):
        cfg = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        counts = []
        for shape in shapes or [None]:
            try:
                counts.append(_param_count(str(layer.get("class_name")), cfg, shape))
            except (KeyError, TypeError, ValueError):
                counts.append(None)
        known = [c for c in counts if c is not None and math.isfinite(c)]
        count = max(known) if known else None
        if count is None:
            unknown.append(str(cfg.get("name", layer.get("class_name"))))
            continue
        total += count * _itemsize(cfg)
    return total, unknown


# ----- building light ----------------------------------------------------------------------------
_ZEROS = {"module": "keras.initializers", "class_name": "Zeros", "config": {}, "registered_name": None}
_BUILTIN_INITIALIZERS = {
    "zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal", "variance_scaling",
    "glorot_normal", "glorot_uniform", "he_normal", "he_uniform", "lecun_normal", "lecun_uniform",
    "orthogonal", "identity",
}


def _is_builtin_initializer(value: Any) -> bool:
    """Whether a serialised value is one of Keras's own initialisers (a name, or a dict: Keras 3's or Keras 2's)."""
    if isinstance(value, str):
        return value.lower() in _BUILTIN_INITIALIZERS
    if not isinstance(value, dict) or value.get("registered_name") is not None:
        return False
    module = value.get("module")
    if module is not None:
        return str(module).startswith("keras.initializers")
    name = re.sub(r"(?<!^)(?=[A-Z])", "_", str(value.get("class_name", ""))).lower()
    return name in _BUILTIN_INITIALIZERS  # Keras 2 wrote {"class_name": "GlorotUniform", "config": {...}}


def zero_initializers(config: Any) -> Any:
    """A copy of a configuration whose Keras initialisers are all zeros (the saved weights replace them)."""
    if isinstance(config, list):
        return [zero_initializers(v) for v in config]
    if not isinstance(config, dict):
        return config
    return {k: (dict(_ZEROS) if k.endswith("_initializer") and _is_builtin_initializer(v) else zero_initializers(v))
            for k, v in config.items()}


def restore_initializers(model: Any, config: Any) -> None:
    """Give each layer back the initialisers its file declares, once the saved weights are in.

    The model was built with zeros to skip the random draws; its layers must still name the
    initialisers of the file, since re-initialising (the randomisation check), `get_config` and
    saving read them.
    """
    layers = {layer.name: layer for layer in getattr(model, "layers", [])}
    entries = (config.get("config") or {}).get("layers") if isinstance(config, dict) else None
    for entry in entries or []:
        declared = entry.get("config") if isinstance(entry, dict) else None
        layer = layers.get(declared.get("name")) if isinstance(declared, dict) else None
        if layer is None:
            continue
        for key, value in declared.items():
            if key.endswith("_initializer") and _is_builtin_initializer(value) and hasattr(layer, key):
                with contextlib.suppress(ValueError, TypeError):
                    setattr(layer, key, keras.initializers.get(value))
        if isinstance(declared.get("layers"), list):
            restore_initializers(layer, entry)


def _light_factor() -> float:
    """Memory that loading light takes, as a multiple of the weights, on the backend that computes."""
    return LIGHT_FACTOR_JAX if bk.name() == "jax" else LIGHT_FACTOR


def _loads_light(zf: zipfile.ZipFile) -> bool:
    """Whether an archive can be built light: config and HDF5 weights only (assets go through Keras's loader)."""
    names = set(zf.namelist())
    return _WEIGHTS in names and names <= {_CONFIG, _METADATA, _WEIGHTS}


def _load_keras(path: Path, safe_mode: bool) -> keras.Model:
    """A `.keras` model, sized first; built with zero initialisers and filled from the file when it has no assets."""
    with open(path, "rb") as handle, zipfile.ZipFile(handle) as zf:
        config = check_keras_file(path, zf)
        light = _loads_light(zf)
    if not light:
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    with _object_sharing():
        model = keras.saving.deserialize_keras_object({**zero_initializers(config), "compile_config": None},
                                                      safe_mode=safe_mode)
    with _filled_in_slices(model), open(path, "rb") as handle, zipfile.ZipFile(handle) as zf:
        _load_weights(model, path, zf)
    restore_initializers(model, config)
    return model


def _load_weights(model: keras.Model, path: Path, zf: zipfile.ZipFile) -> None:
    """Keras's weight loading, reading the stored HDF5 member in place (Keras's way seeks through the zip)."""
    try:
        from keras.src.saving import saving_lib
    except ImportError:  # pragma: no cover - another Keras layout: its own, slower path
        model.load_weights(path)
        return
    with _member(zf, _WEIGHTS) as raw:
        store = saving_lib.H5IOStore(_WEIGHTS, archive=_OneMember(raw), mode="r")
        try:
            failed: set = set()
            errors: dict = {}
            saving_lib._load_state(model, weights_store=store, assets_store=None, inner_path="",
                                   visited_saveables=set(), failed_saveables=failed, error_msgs=errors)
        finally:
            store.close()
    if failed:
        saving_lib._raise_loading_failure(errors)


class _OneMember:
    """The one archive member Keras's weight store asks for, already opened."""

    def __init__(self, raw: Any) -> None:
        self.raw = raw

    def open(self, name: str, mode: str = "r") -> Any:
        return self.raw


class _Window(io.RawIOBase):
    """A read-only window of a file: a stored zip member read in place (seeks are plain file seeks)."""

    def __init__(self, handle: Any, start: int, size: int) -> None:
        super().__init__()
        self.handle, self.start, self.size, self.pos = handle, start, size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: Any) -> int:
        n = max(0, min(len(buffer), self.size - self.pos))
        self.handle.seek(self.start + self.pos)
        got = self.handle.readinto(memoryview(buffer)[:n]) if n else 0
        self.pos += got or 0
        return got or 0


@contextlib.contextmanager
def _member(zf: zipfile.ZipFile, name: str) -> Iterator[Any]:
    """A zip member as a seekable file: in place when stored uncompressed (as Keras writes), else zipfile's own."""
    info = zf.getinfo(name)
    handle = zf.fp
    if info.compress_type != zipfile.ZIP_STORED or handle is None or info.flag_bits & 0x1:
        with zf.open(name) as raw:
            yield raw
        return
    handle.seek(info.header_offset)
    header = handle.read(30)
    if header[:4] != b"PK\x03\x04":
        raise zipfile.BadZipFile(f"the local header of {name} is damaged")
    start = info.header_offset + 30 + int.from_bytes(header[26:28], "little") + int.from_bytes(header[28:30], "little")
    with _Window(handle, start, info.file_size) as window:
        yield window


def _load_h5(path: Path, safe_mode: bool) -> keras.Model:
    """A legacy `.h5` model built with zero initialisers, then given its saved weights (Keras's own steps)."""
    try:
        from keras.src.backend.common import global_state
        from keras.src.legacy.saving import json_utils, legacy_h5_format, saving_options, saving_utils
        from keras.src.saving import object_registration, serialization_lib
    except ImportError:  # pragma: no cover - another Keras layout: its own loader
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    with h5py.File(path, "r") as h5:
        text = h5.attrs.get("model_config")
        if text is None or "model_weights" not in h5:  # Keras's loader says what is missing
            return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
        declared = json_utils.decode(text.decode("utf-8") if isinstance(text, bytes) else str(text))
        config = zero_initializers(declared)
        custom = {**object_registration.GLOBAL_CUSTOM_OBJECTS,
                  **global_state.get_global_attribute("custom_objects_scope_dict", {})}
        with saving_options.keras_option_scope(use_legacy_config=True), serialization_lib.SafeModeScope(safe_mode):
            model = saving_utils.model_from_config(config, custom_objects=custom)
            with _filled_in_slices(model, lazy_stores=False):  # each array read whole, copied in without a tensor
                legacy_h5_format.load_weights_from_hdf5_group(h5["model_weights"], model)
            restore_initializers(model, declared)
    return model


def _object_sharing() -> contextlib.AbstractContextManager:
    """Keras's scope that lets layers share objects while a configuration is deserialised (as its loader does)."""
    try:
        from keras.src.saving.serialization_lib import ObjectSharingScope
    except ImportError:  # pragma: no cover - a Keras without it builds without sharing
        return contextlib.nullcontext()
    return ObjectSharingScope()


@contextlib.contextmanager
def _filled_in_slices(model: keras.Model, *, lazy_stores: bool = True) -> Iterator[None]:
    """While the model (just built, seen by no one else) loads its weights, each variable takes them a slice at a time.

    Keras reads each saved array whole and converts it to a tensor before assigning it: two copies of
    the largest variable (392 MB for VGG16's first dense layer), which then stay in the backend's
    memory pool. Here every layer's loader is handed a store whose arrays stay in the file, and every
    variable copies them in slices of FILL_SLICE bytes, the backend's way (`_FILLERS`), into its own
    (zero-initialised) memory. Only this model's own objects are touched, and only until the weights are in. Without
    `lazy_stores` (the legacy `.h5` loader, which reads each array whole), only the copy is changed.
    """
    layers = list(model._flatten_layers(include_self=True, recursive=True)) if lazy_stores else []
    variables = list(model.variables)
    for layer in layers:
        own = layer.load_own_variables
        layer.load_own_variables = lambda store, own=own: own(_LazyStore(store))
    for variable in variables:
        variable.assign = lambda value, variable=variable: _assign_in_slices(variable, value)
    try:
        yield
    finally:
        for layer in layers:
            with contextlib.suppress(AttributeError):
                del layer.load_own_variables
        for variable in variables:
            with contextlib.suppress(AttributeError):
                del variable.assign


class _LazyStore:
    """A layer's weight store whose float entries are the HDF5 datasets themselves, read later in slices."""

    def __init__(self, store: Any) -> None:
        self._store = store
        self._group = getattr(store, "_h5_entry_group", None)

    def keys(self) -> Any:
        return self._store.keys()

    def __len__(self) -> int:
        return len(self._store)

    def __contains__(self, key: str) -> bool:
        return key in self._store.keys()

    def __getitem__(self, key: str) -> Any:
        item = self._group.get(key) if self._group is not None else None
        if isinstance(item, h5py.Dataset) and "dtype" not in item.attrs and item.dtype.kind == "f":
            return item
        return self._store[key]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def _rows(value: Any, variable: Any) -> Iterator[tuple[int, np.ndarray]]:
    """(first row, rows) of `value` in slices of about FILL_SLICE bytes, read from the file one slice at a time."""
    row_bytes = max(1, int(np.prod(value.shape[1:], dtype=np.int64)) * value.dtype.itemsize)
    step = max(1, FILL_SLICE // row_bytes)
    for start in range(0, value.shape[0], step):
        yield start, np.asarray(value[start : start + step])


def _fill_tensorflow(variable: Any, value: Any) -> bool:
    """Write the rows straight into a CPU resource variable's own memory; False when its memory cannot be reached.

    Two reads of a resource variable share its buffer; when both point at the same address (seen
    through DLPack), that address is the variable's memory, and writing there fills it without a copy.
    """
    target = getattr(variable, "_value", None)
    if target is None or "CPU" not in str(getattr(target, "device", "")).upper():
        return False
    try:
        dtype = np.dtype(str(variable.dtype))
        reads = [target.read_value(), target.read_value()]
        addresses = {np.from_dlpack(r).__array_interface__["data"][0] for r in reads}
    except Exception:  # noqa: BLE001 - any doubt: the plain assign
        return False
    if len(addresses) != 1:
        return False
    shape = tuple(int(d) for d in variable.shape)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    view = np.ctypeslib.as_array((ctypes.c_byte * size).from_address(addresses.pop())).view(dtype).reshape(shape)
    for start, rows in _rows(value, variable):
        view[start : start + len(rows)] = rows
    del view, reads
    return True


def _fill_torch(variable: Any, value: Any) -> bool:
    """Copy the rows into the variable's tensor in place (on its device, CPU or GPU), a slice at a time."""
    import torch

    target = getattr(variable, "_value", None)
    if not isinstance(target, torch.Tensor):
        return False
    with torch.no_grad():
        for start, rows in _rows(value, variable):
            target[start : start + len(rows)].copy_(torch.from_numpy(np.ascontiguousarray(rows)))
    return True


def _fill_jax(variable: Any, value: Any) -> bool:
    """Read the rows into one aligned host array that becomes the variable's value (JAX arrays are immutable).

    On the CPU, JAX takes a 64-byte aligned numpy array without copying it, so loading holds the
    weights once, plus the zeros of the variable being replaced; on a GPU the array is copied there.
    """
    import jax

    dtype = np.dtype(str(variable.dtype))
    shape = tuple(int(d) for d in variable.shape)
    size = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(size + 64, np.uint8)
    offset = (-raw.ctypes.data) % 64
    host = raw[offset : offset + size].view(dtype).reshape(shape)
    for start, rows in _rows(value, variable):
        host[start : start + len(rows)] = rows
    type(variable).assign(variable, jax.device_put(host))
    return True


_FILLERS = {"tensorflow": _fill_tensorflow, "torch": _fill_torch, "jax": _fill_jax}


def _assign_in_slices(variable: Any, value: Any) -> None:
    """Copy saved weights into a variable a slice of rows at a time, the backend's way (a plain assign otherwise).

    `value` is an HDF5 dataset (read a slice at a time) or an array already read (copied without a tensor).
    """
    fill = _FILLERS.get(bk.name())
    if fill is not None and isinstance(value, (h5py.Dataset, np.ndarray)) and value.shape \
            and tuple(value.shape) == tuple(variable.shape) and value.dtype.kind == "f" and fill(variable, value):
        return
    type(variable).assign(variable, value[()] if isinstance(value, h5py.Dataset) else value)


def _explain_load_error(path: Path, err: Exception) -> ConvVizError:
    """Translate Keras/h5py/zip failures into what went wrong and what to do."""
    text = str(err)
    if "lambda" in text.lower() and "safe_mode" in text:
        return ConvVizError(
            f"{path.name} contains a Lambda layer, whose Python code would run on loading; "
            "it is refused in safe mode. If you trust the file, call "
            "load_model(path, safe_mode=False)."
        )
    if "No model config found" in text or "model_config" in text:
        return ConvVizError(
            f"{path.name} holds weights only, not a model: build the architecture in code "
            "(e.g. keras.applications.MobileNet(weights=None, ...)) and call model.load_weights(path), "
            "or pass weights=path to the keras.applications constructor."
        )
    if isinstance(err, zipfile.BadZipFile) or _looks_truncated(path, text):
        return ConvVizError(
            f"{path.name} is corrupt or truncated and cannot be read ({type(err).__name__}: {text[:200]}). "
            "Download or save the model again."
        )
    return ConvVizError(f"Could not load the model from {path.name}: {type(err).__name__}: {text[:300]}")


def _looks_truncated(path: Path, text: str) -> bool:
    """Heuristics for files that end early or are not what their suffix says."""
    hints = ("truncated", "file signature", "unable to open", "not a zip", "bad magic",
             "end of file", "eof", "corrupt", "unable to synchronously open")
    return any(h in text.lower() for h in hints) or path.stat().st_size < 64
