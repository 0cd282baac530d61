"""Model-randomisation sanity check (Adebayo et al., "Sanity checks for saliency maps", 2018).

If a heatmap explains the model, it must change when the model's learned weights are
destroyed. We re-initialise layers from the top down, cascading (first the output layer,
then also the next layer with weights below it, ...), on a COPY of the model, and compare
each stage's heatmap with the original one:

- Spearman rank correlation of the heatmaps after the ReLU (at the feature-map grid); a map
  that turns blank carries no ranking and counts as 0;
- Spearman rank correlation of the maps before the ReLU (``CAM.raw``);
- SSIM of the heatmaps resized to the model's input size.

Re-initialisation: every weight of a layer gets fresh values from the initializer the layer
names for it (``kernel_initializer``, ``gamma_initializer``, ... seeded per layer), as
Adebayo et al. did; a weight with no initializer (or ``init="normal"``) gets a seeded normal
with the original weight's mean and standard deviation (absolute values when the original is
never negative, e.g. variances). The user's model is never touched.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from ..core import checks
from ..core.cam import CAM
from ..core.graph import is_nested_model
from ..core.inspector import Inspector
from ..core.targets import index_target
from ..errors import ConvVizError
from ..images import ImageSource
from ..limits import check_fits
from ._maps import is_blank, resize_map
from .similarity import spearman, ssim

INITS = ("initializer", "normal")
SANITY_SEED = 0  # the cached randomised copies are seeded: the same check gives the same picture
MAX_COPIES = 3  # randomised model copies kept per Inspector (each is a full copy of the weights)

_COPIES: weakref.WeakKeyDictionary[Inspector, dict[int, Inspector]] = weakref.WeakKeyDictionary()
_COPIES_LOCK = threading.Lock()


@dataclass(frozen=True)
class SanityStage:
    """One cascade stage: `layer` and every weighted layer above it are randomised."""

    layer: str
    spearman: float  # heatmaps after ReLU; 0.0 when either map is blank
    spearman_raw: float  # maps before ReLU (CAM.raw); NaN when a CAM has no raw map
    ssim: float  # heatmaps resized to the model input, data range 1
    blank: bool  # the randomised heatmap is blank


def weighted_layers(model: keras.Model, prefix: str = "") -> list[tuple[str, Any]]:
    """(qualified name, layer) of every layer holding weights, nested models descended, in model order."""
    found: list[tuple[str, Any]] = []
    for layer in model.layers:
        if is_nested_model(layer):
            found += weighted_layers(layer, f"{prefix}{layer.name}/")
        elif layer.weights:
            found.append((f"{prefix}{layer.name}", layer))
    return found


def cascade_layers(model: keras.Model, layers: int | str | Sequence[str] | None = None) -> list[str]:
    """Names to randomise, top first: all weighted layers (None), the top `n` (int), or the given names in order."""
    top_down = [name for name, _ in weighted_layers(model)][::-1]
    if layers is None:
        return top_down
    if isinstance(layers, (int, np.integer)) and not isinstance(layers, bool):
        if not 1 <= int(layers) <= len(top_down):
            raise ConvVizError(f"layers={layers}: the model has {len(top_down)} layers with weights.")
        return top_down[: int(layers)]
    names = [layers] if isinstance(layers, str) else list(layers)
    return [_qualified(name, top_down) for name in names]


def _qualified(name: str, known: list[str]) -> str:
    """A weighted layer's qualified name from its full or unambiguous inner name."""
    if name in known:
        return name
    tails = [k for k in known if k.rsplit("/", 1)[-1] == name]
    if len(tails) == 1:
        return tails[0]
    raise ConvVizError(f"No layer with weights named {name!r}; layers with weights, top first: {', '.join(known)}.")


def layer_seed(seed: int, name: str) -> int:
    """A per-layer seed from the user's seed and the layer's name (stable across runs and stage choices)."""
    return int(np.random.SeedSequence([int(seed), *name.encode()]).generate_state(1)[0] & 0x7FFFFFFF)


def _initializer_for(layer: Any, weight_name: str) -> Any:
    """The initializer a layer names for one of its weights ('kernel' -> kernel_initializer), if any."""
    short = weight_name.rsplit("/", 1)[-1]
    candidates = [f"{short}_initializer", f"{short.removesuffix('_kernel')}_initializer"]
    if short == "kernel":
        candidates.append("depthwise_initializer")  # DepthwiseConv2D keeps its kernel under that name
    for attr in candidates:
        init = getattr(layer, attr, None)
        if init is not None:
            return keras.initializers.get(init)
    return None


def _seeded(init: Any, seed: int) -> Any:
    """A copy of an initializer with a fixed seed (constant initializers are returned as they are)."""
    config = init.get_config()
    if "seed" not in config:
        return init
    return type(init).from_config({**config, "seed": seed})


def random_like(values: np.ndarray, seed: int) -> np.ndarray:
    """Seeded normal values with the original's shape, mean and std (absolute when the original is >= 0)."""
    x = np.asarray(values, np.float64)
    fresh = np.random.default_rng(seed).normal(x.mean(), x.std(), x.shape)
    return (np.abs(fresh) if x.min(initial=0.0) >= 0.0 else fresh).astype(np.asarray(values).dtype)


def randomize_layer(layer: Any, seed: int, init: str = "initializer") -> None:
    """Re-initialise every weight of `layer` in place (call it on a copy, never the user's model)."""
    if init not in INITS:
        raise ConvVizError(f"Unknown init {init!r}: use one of {', '.join(INITS)}.")
    for i, variable in enumerate(layer.weights):
        current = np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)
        fn = _initializer_for(layer, variable.name) if init == "initializer" else None
        if fn is not None:
            fresh = np.asarray(_seeded(fn, seed + i)(tuple(current.shape), dtype=str(current.dtype)))
        else:
            fresh = random_like(current, seed + i)
        variable.assign(fresh.astype(current.dtype))


def model_copy(model: keras.Model) -> keras.Model:
    """An independent copy of a model (nested models too) holding the same weights."""
    try:
        copy = keras.models.clone_model(model, recursive=True)
    except Exception as err:  # noqa: BLE001 - custom layers without from_config end up here
        raise ConvVizError(
            f"The model could not be copied for the randomisation check ({type(err).__name__}: {err}). "
            "Its custom layers need get_config/from_config."
        ) from err
    copy.set_weights(model.get_weights())
    return copy


def inspector_copy(inspector: Inspector) -> Inspector:
    """An Inspector on a copy of the inspector's model, with the same preprocessing and class names."""
    return Inspector(model_copy(inspector.model), preprocess=inspector.preprocess_fn, output=inspector.output_index,
                     class_names=list(inspector.class_names))


def randomized_copy(inspector: Inspector, depth: int, seed: int = 0, init: str = "initializer") -> Inspector:
    """An Inspector on a copy of the model whose top `depth` weighted layers are re-initialised."""
    copy = inspector_copy(inspector)  # the user's model is never changed
    layers = dict(weighted_layers(copy.model))
    for name in cascade_layers(copy.model, depth):
        randomize_layer(layers[name], layer_seed(seed, name), init)
    return copy


def compare_cams(original: CAM, other: CAM, layer: str, size: tuple[int, int]) -> SanityStage:
    """Rank correlations (after and before ReLU) and SSIM between two CAMs of one feature map."""
    blank = is_blank(other.heatmap)
    rho = 0.0 if blank or is_blank(original.heatmap) else spearman(original.heatmap, other.heatmap)
    rho_raw = float("nan") if original.raw is None or other.raw is None else spearman(original.raw, other.raw)
    similarity = ssim(resize_map(original.heatmap, size), resize_map(other.heatmap, size), data_range=1.0)
    return SanityStage(layer, rho, rho_raw, similarity, blank)


def check_copy_fits(inspector: Inspector) -> None:
    """The check holds a second copy of the model's weights and runs CAMs on it: refuse when that cannot fit."""
    weights = 4.0 * float(inspector.model.count_params())
    check_fits(2.0 * weights + inspector.bytes_per_image(gradient=True), what="The randomisation check",
               lower="the model size (check a smaller model) or the image size")


def randomization_checks(inspector: Inspector, images: Sequence[ImageSource],
                         class_indices: Sequence[int | None] | None = None, *, method: str = "gradcam",
                         layers: int | str | Sequence[str] | None = None, seed: int = 0,
                         cam_layer: str | None = None, init: str = "initializer") -> list[list[SanityStage]]:
    """The cascading randomisation check for many images: one model copy, randomised stage by stage.

    Returns, per image, one SanityStage per randomised layer (top first). The class explained is
    `class_indices[i]` (None: the original model's top class) for the original and every stage.
    """
    classes = list(class_indices) if class_indices is not None else [None] * len(images)
    if len(classes) != len(images):
        raise ConvVizError(f"{len(images)} images but {len(classes)} class indices.")
    classes = [None if c is None else inspector.check_class(c) for c in classes]
    seed = checks.bounded(seed, "seed", checks.SEED)
    check_copy_fits(inspector)
    originals = [inspector.gradcam(img, class_index=c, layer=cam_layer, method=method)
                 for img, c in zip(images, classes)]
    names = cascade_layers(inspector.model, layers)
    work = inspector_copy(inspector)
    by_name = dict(weighted_layers(work.model))
    sizes = [inspector.prepare(img).shape[:2] for img in images]
    results: list[list[SanityStage]] = [[] for _ in images]
    for name in names:
        randomize_layer(by_name[name], layer_seed(seed, name), init)
        for img, cam, size, out in zip(images, originals, sizes, results):
            again = work.gradcam(img, class_index=cam.class_index, layer=cam.layer, method=method)
            out.append(compare_cams(cam, again, name, size))
    return results


def randomization_check(inspector: Inspector, image: ImageSource, class_index: int | None = None,
                        method: str = "gradcam", layers: int | str | Sequence[str] | None = None, seed: int = 0,
                        cam_layer: str | None = None, init: str = "initializer") -> list[SanityStage]:
    """The cascading randomisation check for one image: one SanityStage per randomised layer, top first."""
    return randomization_checks(inspector, [image], [class_index], method=method, layers=layers, seed=seed,
                                cam_layer=cam_layer, init=init)[0]


# ----- one check at a time, on cached randomised copies (the panel's sanity check) ---------------------------
Sanity = tuple[CAM, SanityStage] | BaseException  # the randomised map and its comparison, or why it failed


def randomized_inspector(inspector: Inspector, depth: int) -> Inspector:
    """randomized_copy with SANITY_SEED, made once per (inspector, depth) and cached (at most MAX_COPIES each)."""
    with _COPIES_LOCK:
        copies = _COPIES.setdefault(inspector, {})
        if depth not in copies:
            copies[depth] = randomized_copy(inspector, depth, SANITY_SEED)  # the user's model is never changed
            while len(copies) > MAX_COPIES:
                copies.pop(next(iter(copies)))  # the oldest depth goes first
        return copies[depth]


def default_depth(inspector: Inspector, layer: str) -> int:
    """Top layers with weights to randomise so the CAM layer's block (down to the conv feeding it) is included."""
    top_down = cascade_layers(inspector.model)
    nodes = list(inspector.graph.nodes)
    at = [n.name for n in nodes].index(inspector.layer(layer).name)
    convs = [n.name for n in nodes[: at + 1] if n.kind == "conv"]
    target = convs[-1] if convs else nodes[at].name
    return top_down.index(target) + 1 if target in top_down else len(top_down)


def class_map(inspector: Inspector, rgb: np.ndarray, index: int, layer: str, method: str, channels: int | None,
              progress: Callable[[int, int], bool] | None = None) -> CAM:
    """One map of entry `index` of the head's values (a class, a label, a regression output or its negation:
    `targets.index_target`); a perturbation method uses only the `channels` channels of largest variance (0: all)."""
    return inspector.gradcam(rgb, target=index_target(inspector, index), layer=layer, method=method,
                             max_channels=channels or None, progress=progress)


def sanity_check(inspector: Inspector, rgb: np.ndarray, cam: CAM, depth: int, channels: int | None = None,
                 progress: Callable[[int, int], bool] | None = None) -> Sanity:
    """The same map on the cached randomised copy and how alike the two are; an error is returned, not raised."""
    try:
        other = class_map(randomized_inspector(inspector, depth), rgb, cam.class_index, cam.layer, cam.method,
                          channels, progress)
        return other, compare_cams(cam, other, f"top {depth}", rgb.shape[:2])
    except Exception as err:  # noqa: BLE001 - the real map stays useful when the check cannot run
        return err
