"""Reading a channel atlas folder back: each layer's top examples and their marked pictures, with no dataset.

`convviz atlas` writes `<layer>/examples.json` (per channel: image number, value and position of each
example, the model's name and fingerprint) and `<layer>/img/cNNNN_J_whole.png` (the example's image with
its maximum's receptive field boxed). The panel's channel cards read them here, so they show a channel's
examples at once.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConvVizError
from ..images import load_image
from .examples import TopExamples, check_layer, receptive_field

EXAMPLES_FILE = "examples.json"


def model_fingerprint(model: Any) -> str:
    """What identifies a model's atlas: its layers (names and kinds) and every weight's bytes."""
    h = hashlib.sha256()
    for w in getattr(model, "weights", []):
        h.update(np.asarray(w).tobytes())
    h.update(repr([(layer.name, type(layer).__name__) for layer in getattr(model, "layers", [])]).encode())
    return h.hexdigest()


@dataclass(frozen=True)
class AtlasLayer:
    """One layer of an atlas as written: its folder and its examples.json contents."""

    layer: str
    folder: Path
    data: dict[str, Any]

    @property
    def channels(self) -> tuple[int, ...]:
        """The channels the atlas holds examples of, in order."""
        return tuple(sorted(int(c) for c in self.data["channels"]))

    def top(self, inspector: Any) -> TopExamples:
        """The layer's examples as TopExamples (indices, values, positions), the receptive field from the model."""
        chans = self.channels
        rows = [self.data["channels"][str(c)] for c in chans]
        k = min(len(r) for r in rows)
        indices = np.array([[int(e["image"]) for e in r[:k]] for r in rows], np.int64).reshape(len(chans), k)
        values = np.array([[float(e["value"]) for e in r[:k]] for r in rows], np.float32).reshape(len(chans), k)
        positions = np.array([[(int(e["row"]), int(e["col"])) for e in r[:k]] for r in rows],
                             np.int32).reshape(len(chans), k, 2)
        field_ = receptive_field(inspector.graph, check_layer(inspector, self.layer))
        return TopExamples(indices, values, positions, self.layer, chans, int(self.data["count"]),
                           int(self.data.get("skipped", 0)), [], field_)

    def pictures(self, channel: int) -> list[np.ndarray]:
        """The channel's examples as the atlas drew them: whole images, the maximum's field boxed (uint8 RGB)."""
        n = len(self.data["channels"][str(channel)])
        return [load_image(self.folder / "img" / f"c{channel:04d}_{j}_whole.png") for j in range(n)]


class AtlasFolder:
    """An atlas folder opened for one model: its layers' examples, refused in words if it is not that model's."""

    def __init__(self, folder: Any, model: Any) -> None:
        self.folder = Path(folder).expanduser()
        if not self.folder.is_dir():
            raise ConvVizError(f"atlas={str(folder)!r} is not a folder: pass the folder `convviz atlas` wrote.")
        files = sorted(self.folder.glob(f"*/{EXAMPLES_FILE}"))
        if not files:
            raise ConvVizError(f"{str(self.folder)!r} holds no atlas: no <layer>/{EXAMPLES_FILE} in it "
                               "(write one with `convviz atlas` or cv.atlas).")
        self.layers = {}
        mine = model_fingerprint(model)
        for path in files:
            data = _read_layer(path)
            if data.get("fingerprint") != mine:
                raise ConvVizError(
                    f"The atlas in {str(self.folder)!r} was made for another model ({data.get('model', 'unnamed')!r}"
                    f", layer {data['layer']!r}), not for {getattr(model, 'name', 'this model')!r} with these weights:"
                    " its examples would be another model's. Write the atlas of this model with `convviz atlas`.")
            self.layers[data["layer"]] = AtlasLayer(data["layer"], path.parent, data)

    def layer(self, name: str) -> AtlasLayer | None:
        """The atlas's examples of a layer, or None when it holds none."""
        return self.layers.get(name)


def _read_layer(path: Path) -> dict[str, Any]:
    """One examples.json, checked: a layer name, an image count and per channel a list of examples."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        ok = isinstance(data, dict) and isinstance(data.get("layer"), str) and isinstance(data.get("count"), int) \
            and isinstance(data.get("channels"), dict) and all(
                str(c).isdigit() and isinstance(r, list) and r and all(
                    isinstance(e, dict) and {"image", "value", "row", "col"} <= set(e) for e in r)
                for c, r in data["channels"].items())
    except (OSError, ValueError) as err:
        raise ConvVizError(f"The atlas file {str(path)!r} cannot be read ({err}): write the atlas again.") from None
    if not ok:
        raise ConvVizError(f"The atlas file {str(path)!r} is not what `convviz atlas` writes (a layer, a count and "
                           "each channel's examples): write the atlas again.")
    return data
