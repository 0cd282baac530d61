"""Loading Keras models from `.keras` and legacy Keras-2 `.h5` files, with clear errors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import keras

from ..errors import ConvVizError
from ..images import check_regular_file

_MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


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
        return keras.saving.load_model(path, compile=False, safe_mode=safe_mode)
    except Exception as err:  # noqa: BLE001 - every failure becomes one clear message
        raise _explain_load_error(path, err) from err


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
