"""Checks for the course (course/source): advice when an answer is not right yet, the right answers for grading.

The ``check_*`` functions are what the assignments' visible tests call: each looks at a student's
answer and raises :class:`CheckFailed` with advice (an ``AssertionError``, so nbgrader counts the test
as failed; IPython shows the advice alone, without a traceback). The other public functions
recompute the right answers from the model; the hidden tests compare with them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from .core import CAM, ConvVizError, Inspector, inspector_for
from .demo import CLASS_NAMES, EVAL_SEED, PREPROCESS, scene
from .metrics import centre_prior, pointing_game

SCENE_SEEDS = range(32)  # assignment 1 is judged on demo.scene(seed=s) for these seeds
HEATMAP_ATOL = 1e-3  # a heatmap must match the recomputed one this closely
HARD = 1.5  # assignment 3: the difficulty of the scenes searched for a mistake
POINTING_SCENES = 12  # assignment 3: two-shape scenes demo.scene(seed=EVAL_SEED + i, objects=2)
HIGH_FREQUENCY = 0.25  # assignment 2: cycles per pixel above which spectral power counts as high


class CheckFailed(AssertionError):
    """An answer that is not right yet; IPython shows only its advice (see ``_render_traceback_``)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of a traceback: the advice, its first line in red."""
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[1;31m✘ {first}\x1b[0m", *rest]


def fail(task: str, advice: str) -> NoReturn:
    """Stop the check with advice for the student."""
    raise CheckFailed(f"{task}: {advice}")


def passed(task: str, message: str) -> None:
    """Report a check as passed."""
    print(f"✔ {task}: {message}")


def require_answer(task: str, value: Any, name: str, hint: str) -> None:
    """Fail politely while a placeholder (``...`` or None) is still in place."""
    if value is None or value is Ellipsis:
        fail(task, f"not answered yet. Put {hint} in `{name}`.")


def class_name(index: int) -> str:
    """A demo class name, for messages."""
    return CLASS_NAMES[int(index)] if 0 <= int(index) < len(CLASS_NAMES) else f"class {index}"


def demo_inspector(task: str, model: Any) -> Inspector:
    """The shared Inspector for a demo-scene model, or advice when it is not one."""
    import keras

    if not isinstance(model, keras.Model):
        fail(task, f"`model` is a {type(model).__name__}, not a Keras model. Try `model = demo.load_model()`.")
    try:
        return inspector_for(model, PREPROCESS, list(CLASS_NAMES))
    except ConvVizError as err:
        fail(task, str(err))


# ----- assignment 1: activations --------------------------------------------------------------------------
def conv_outputs(ins: Inspector, seeds: Sequence[int] = SCENE_SEEDS) -> dict[str, np.ndarray]:
    """Each conv layer's outputs on the scenes, stacked: {layer: (scenes, H, W, C)}."""
    per_layer: dict[str, list[np.ndarray]] = {name: [] for name in ins.conv_layers}
    for seed in seeds:
        for name, act in ins.activations(scene(seed=seed).image, ins.conv_layers).items():
            per_layer[name].append(act)
    return {name: np.stack(acts) for name, acts in per_layer.items()}


def dead_filters(model: Any) -> dict[str, list[int]]:
    """The right answer: {conv layer: filters whose output is 0 everywhere on the 32 scenes} (layers with any)."""
    outs = conv_outputs(demo_inspector("dead filters", model))
    peaks = {name: out.max(axis=(0, 1, 2)) for name, out in outs.items()}
    return {name: np.flatnonzero(top <= 0).tolist() for name, top in peaks.items() if (top <= 0).any()}


def zero_shares(model: Any) -> dict[str, float]:
    """The right answer: each conv layer's share of output values that are exactly 0 on the 32 scenes."""
    outs = conv_outputs(demo_inspector("sparsity", model))
    return {name: float(np.mean(out <= 0)) for name, out in outs.items()}


def as_dead_answer(task: str, dead: Any, layers: Sequence[str]) -> dict[str, set[int]]:
    """Validate the form of a {layer: [filter, ...]} answer."""
    if not isinstance(dead, Mapping):
        fail(task, f"`dead` is a {type(dead).__name__}; make it a dict such as {{'conv1': [3, 7]}} "
                   "(layer name -> list of dead filter indices).")
    answer = {}
    for name, filters in dead.items():
        if name not in layers:
            fail(task, f"there is no conv layer named {name!r}. The conv layers are: {', '.join(layers)}.")
        try:
            answer[name] = {int(f) for f in filters}
        except (TypeError, ValueError):
            fail(task, f"dead[{name!r}] should be a list of filter indices (ints); got {filters!r}.")
    return answer


def check_dead_filters(model: Any, dead: Any) -> None:
    """Assignment 1, visible test: the answer's form (layer names, filter indices in range)."""
    task = "Dead filters"
    require_answer(task, dead, "dead", "a dict {layer name: [dead filter indices]}")
    ins = demo_inspector(task, model)
    for name, filters in as_dead_answer(task, dead, ins.conv_layers).items():
        channels = ins.layer(name).channels
        bad = sorted(f for f in filters if not 0 <= f < channels)
        if bad:
            fail(task, f"{name} has filters 0..{channels - 1}; {bad[0]} is not one of them.")
    passed(task, f"a dict of {len(dead)} layer(s) with valid filter indices.")


def check_sparsity(model: Any, sparsity: Any) -> None:
    """Assignment 1, visible test: one share in [0, 1] per conv layer, in the model's order."""
    task = "Sparsity"
    require_answer(task, sparsity, "sparsity", "a dict {conv layer: share of zero outputs}")
    ins = demo_inspector(task, model)
    if not isinstance(sparsity, Mapping) or list(sparsity) != list(ins.conv_layers):
        got = list(sparsity) if isinstance(sparsity, Mapping) else type(sparsity).__name__
        fail(task, f"`sparsity` should have one entry per conv layer, in order: {list(ins.conv_layers)}; got {got}.")
    for name, share in sparsity.items():
        if not isinstance(share, (float, np.floating)) or not 0.0 <= float(share) <= 1.0:
            fail(task, f"sparsity[{name!r}] = {share!r}; a share is a float between 0 and 1.")
    passed(task, "one share between 0 and 1 per conv layer.")


# ----- assignment 2: filter patterns ------------------------------------------------------------------------
def pattern_activation(model: Any, layer: str, filter_index: int, pixels: Any) -> float:
    """The filter's mean activation for pixels (size, size, 3) or (1, size, size, 3) in 0..255."""
    x = np.asarray(pixels, np.float32).reshape((-1, *np.shape(pixels)[-3:]))
    objective = demo_inspector("patterns", model).pattern_objective(layer, x.shape[1])
    return float(np.asarray(objective(x, np.array([int(filter_index)], np.int32)))[0])


def check_ascent(model: Any, layer: str, filter_index: int, x: Any, x0: Any) -> None:
    """Assignment 2, visible test: `x` is a float picture shaped like `x0` whose filter activation rose above x0's."""
    task = "Gradient ascent"
    want = np.shape(x0)
    require_answer(task, x, "x", f"the picture after the ascent, shape {want}")
    if np.shape(x) != want:
        fail(task, f"`x` has shape {np.shape(x)}; keep the start picture's shape {want} (with the batch axis).")
    values = np.asarray(x, np.float32)
    if not np.all(np.isfinite(values)):
        fail(task, "`x` holds NaN or inf: divide the gradient by its RMS plus 1e-5, not by 0.")
    start = pattern_activation(model, layer, filter_index, x0)
    reached = pattern_activation(model, layer, filter_index, values)
    if not reached > start:
        fail(task, f"the filter's mean activation went from {start:.3f} to {reached:.3f}: it should rise. "
                   "Add the normalised gradient (ascent), do not subtract it.")
    passed(task, f"the mean activation of {layer}[{filter_index}] rose from {start:.3f} to {reached:.3f}.")


def high_frequency_share(images: Any, cutoff: float = HIGH_FREQUENCY) -> np.ndarray:
    """The right answer: per picture (n, h, w, 3), the share of the grey image's spectral power above `cutoff`.

    The grey image is the mean of the colour channels minus its own mean; frequencies are in cycles per
    pixel (np.fft.fftfreq), their radius is sqrt(fy**2 + fx**2). A flat picture has share 0.
    """
    grey = np.asarray(images, np.float64).mean(axis=-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    fy = np.fft.fftfreq(grey.shape[1])[:, None]
    fx = np.fft.fftfreq(grey.shape[2])[None, :]
    high = np.sqrt(fy * fy + fx * fx) > cutoff
    total = power.sum(axis=(1, 2))
    return np.divide((power * high).sum(axis=(1, 2)), total, out=np.zeros_like(total), where=total > 0)


def check_high_frequency(fn: Any) -> None:
    """Assignment 2, visible test: `fn` maps a batch of pictures to one share per picture, in [0, 1]."""
    task = "High frequencies"
    if not callable(fn):
        fail(task, "`high_frequency_share` should be a function of a batch of pictures.")
    rng = np.random.default_rng(0)
    flat = np.full((1, 16, 16, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    shares = np.asarray(fn(np.concatenate([flat, noise])), np.float64)
    if shares.shape != (4,):
        fail(task, f"for 4 pictures the function returned shape {shares.shape}; return one share per picture.")
    if not np.all((shares >= 0) & (shares <= 1)):
        fail(task, f"shares must lie in [0, 1]; got {np.round(shares, 3).tolist()}.")
    if shares[0] != 0:
        fail(task, f"a flat grey picture has no frequencies at all; its share should be 0, not {shares[0]:.3f}.")
    passed(task, "one share in [0, 1] per picture, 0 for a flat one.")


# ----- assignment 3: Grad-CAM -------------------------------------------------------------------------------
def check_heatmap(model: Any, image: Any, heatmap: Any) -> None:
    """Assignment 3, visible test: a 2-D heatmap on the last conv layer's grid, values in [0, 1], max 1."""
    task = "Grad-CAM by hand"
    require_answer(task, heatmap, "heatmap", "your Grad-CAM, a 2-D array")
    ins = demo_inspector(task, model)
    grid = tuple(ins.activations(image, [ins.default_cam_layer])[ins.default_cam_layer].shape[:2])
    h = np.asarray(heatmap, np.float64)
    if h.shape != grid:
        fail(task, f"`heatmap` has shape {h.shape}; Grad-CAM lives on {ins.default_cam_layer}'s grid {grid}. "
                   "Sum the weighted channels over the last axis.")
    if not np.all(np.isfinite(h)) or h.min() < 0 or not np.isclose(h.max(), 1.0):
        fail(task, f"`heatmap` ranges over [{h.min():.3f}, {h.max():.3f}]: keep the positive part (ReLU) "
                   "and divide by its maximum, so it ends in [0, 1] with a maximum of 1.")
    passed(task, f"a heatmap of shape {grid} in [0, 1].")


def first_mistake(model: Any, difficulty: float = HARD, limit: int = 2000) -> Any:
    """The right answer: the first scene demo.scene(seed=s, difficulty=...) (s = 0, 1, ...) the model gets wrong."""
    for start in range(0, limit, 100):
        batch = [scene(seed=s, difficulty=difficulty) for s in range(start, start + 100)]
        predicted = model.predict_on_batch(np.stack([b.image for b in batch]) / 255.0).argmax(axis=1)
        for b, p in zip(batch, predicted):
            if p != b.labels[0]:
                return b
    raise ConvVizError(f"the model gets all of the first {limit} hard scenes right.")


def as_cam(task: str, cam: Any, name: str) -> CAM:
    """A CAM, or advice on how to get one."""
    require_answer(task, cam, name, "a Grad-CAM, e.g. `cv.gradcam(model, image, class_index=...)`")
    if not isinstance(cam, CAM):
        fail(task, f"`{name}` is a {type(cam).__name__}; it should be what cv.gradcam(...) returns (a CAM).")
    return cam


def matches_image(ins: Inspector, cam: CAM, image: Any) -> bool:
    """Whether a CAM is the one of this image (same class, layer and method, recomputed)."""
    again = ins.gradcam(image, class_index=cam.class_index, layer=cam.layer, method=cam.method)
    return again.heatmap.shape == cam.heatmap.shape and np.allclose(again.heatmap, cam.heatmap, atol=HEATMAP_ATOL)


def check_misclassification(model: Any, image: Any, label: Any, cam_predicted: Any, cam_true: Any) -> None:
    """Assignment 3, visible test: an image the model gets wrong, with Grad-CAMs of the predicted and the true class."""
    task = "A mistake"
    require_answer(task, image, "image", "the picture of a scene the model gets wrong (`scene.image`)")
    require_answer(task, label, "label", "that scene's true class (`scene.labels[0]`)")
    ins = demo_inspector(task, model)
    if isinstance(label, (bool, np.bool_)) or not isinstance(label, (int, np.integer)) \
            or not 0 <= int(label) < len(CLASS_NAMES):
        fail(task, f"`label` should be a class index 0..{len(CLASS_NAMES) - 1}; got {label!r}.")
    probs = ins.probabilities(image)
    predicted = int(np.argmax(probs))
    if predicted == int(label):
        fail(task, f"the model gets this image right (it says {class_name(predicted)!r}, p = "
                   f"{float(probs[predicted]):.2f}). Look for a scene whose top prediction differs from its label, "
                   f"among `demo.scene(seed=s, difficulty={HARD})` for s = 0, 1, 2, ...")
    cam_p = as_cam(task, cam_predicted, "cam_predicted")
    cam_t = as_cam(task, cam_true, "cam_true")
    for cam, want, name in ((cam_p, predicted, "cam_predicted"), (cam_t, int(label), "cam_true")):
        if cam.class_index != want:
            fail(task, f"`{name}` explains {class_name(cam.class_index)!r}, but it should explain "
                       f"{class_name(want)!r} (class_index={want}).")
        if not matches_image(ins, cam, image):
            fail(task, f"`{name}` was not computed on this `image`: compute both CAMs on the image you chose.")
    passed(task, f"the model calls this {class_name(int(label))} a {class_name(predicted)} "
                 f"(p = {float(probs[predicted]):.2f}); both Grad-CAMs are of this image.")


def pointing_scenes(n: int = POINTING_SCENES) -> list[Any]:
    """Assignment 3's two-shape scenes."""
    return [scene(seed=EVAL_SEED + i, objects=2) for i in range(n)]


def pointing_accuracies(model: Any, n: int = POINTING_SCENES) -> dict[str, float]:
    """The right answer: pointing-game accuracy of Grad-CAM (each shape's own class) and of the centre baseline."""
    ins = demo_inspector("pointing game", model)
    hits, centre = [], []
    for s in pointing_scenes(n):
        for label, mask in zip(s.labels, s.masks):
            hits.append(pointing_game(ins.gradcam(s.image, class_index=label).heatmap, mask))
            centre.append(pointing_game(centre_prior(s.image.shape), mask))
    return {"gradcam": float(np.mean(hits)), "centre": float(np.mean(centre))}


def check_shares(task: str, answer: Any, name: str, keys: Sequence[Any]) -> None:
    """A dict with exactly these keys and values in [0, 1] (accuracies, shares of scenes)."""
    require_answer(task, answer, name, f"a dict with keys {list(keys)}")
    if not isinstance(answer, Mapping) or set(answer) != set(keys):
        got = sorted(answer, key=str) if isinstance(answer, Mapping) else type(answer).__name__
        fail(task, f"`{name}` should be a dict with the keys {list(keys)}; got {got}.")
    for key, value in answer.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
                or not 0.0 <= float(value) <= 1.0:
            fail(task, f"{name}[{key!r}] = {value!r}; it should be a share between 0 and 1.")
    passed(task, f"`{name}` has the keys {list(keys)}, each a share between 0 and 1.")


# ----- assignment 4: Clever Hans ---------------------------------------------------------------------------
CUE_SCENES = 200  # accuracy is measured on demo.scene(seed=EVAL_SEED + i, cue=...) for these many scenes
CUE_CAM_SCENES = 20  # where Grad-CAM points: the first of those scenes, drawn with the cue
CUE_TOLERANCE = 4  # pixels: a heatmap peak this close to the cue square counts as on it


def cue_accuracy(model: Any, cue: bool, n: int = CUE_SCENES) -> float:
    """The right answer: top-1 accuracy on n scenes demo.scene(seed=EVAL_SEED + i, cue=cue)."""
    shots = [scene(seed=EVAL_SEED + i, cue=cue) for i in range(n)]
    predicted = model.predict_on_batch(np.stack([s.image for s in shots]) / 255.0).argmax(axis=1)
    return float(np.mean(predicted == np.array([s.labels[0] for s in shots])))


def cue_pointing(model: Any, n: int = CUE_CAM_SCENES) -> dict[str, float]:
    """The right answer: share of n cue scenes whose true-class Grad-CAM peaks on the cue, and on the shape."""
    ins = demo_inspector("cue", model)
    on_cue, on_shape = [], []
    for i in range(n):
        s = scene(seed=EVAL_SEED + i, cue=True)
        heatmap = ins.gradcam(s.image, class_index=s.labels[0]).heatmap
        on_cue.append(pointing_game(heatmap, s.cue_mask, CUE_TOLERANCE))
        on_shape.append(pointing_game(heatmap, s.masks[0], CUE_TOLERANCE))
    return {"cue": float(np.mean(on_cue)), "shape": float(np.mean(on_shape))}


def close_shares(answer: Mapping[Any, Any], truth: Mapping[Any, float], atol: float = 1e-6) -> bool:
    """Whether every share in the answer equals the right one (hidden tests)."""
    return set(answer) == set(truth) and all(abs(float(answer[k]) - truth[k]) <= atol for k in truth)


def same_function(fn: Callable[[Any], Any], reference: Callable[[Any], Any], inputs: Sequence[Any],
                  atol: float = 1e-6) -> bool:
    """Whether a student's function gives the reference's values on every input (hidden tests)."""
    return all(np.allclose(np.asarray(fn(x), np.float64), reference(x), atol=atol) for x in inputs)
