"""Visible checks for the course (course/source): advice on the form of an answer, never the answer itself.

Each ``check_*`` function looks at a student's answer and, when its type, shape or plausibility is not
right yet, raises :class:`CheckFailed` with advice in words (an ``AssertionError``, so nbgrader counts
the test as failed; IPython shows the advice alone, without a traceback). A check that passes says
what it looked at and that the values are graded by hidden tests; it never shows a tick, since the
hidden tests may still fail. Nothing here computes a graded answer: the hidden tests compute their
references themselves, and :func:`compare` only says, in words, where an answer and a reference differ.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from .core import CAM, ConvVizError, Inspector, inspector_for
from .demo import CLASS_NAMES, PREPROCESS

HARD = 1.5  # assignment 3: the difficulty of the scenes searched for a mistake
HEATMAP_ATOL = 1e-3  # assignment 3: a CAM recomputed from the same image matches this closely


class CheckFailed(AssertionError):
    """An answer that is not right yet; IPython shows only its advice (see ``_render_traceback_``)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of a traceback: the advice, its first line in red."""
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[1;31m✘ {first}\x1b[0m", *rest]


def fail(task: str, advice: str) -> NoReturn:
    """Stop the check with advice for the student."""
    raise CheckFailed(f"{task}: {advice}")


def form_ok(task: str, message: str) -> None:
    """Say what a passing check looked at; the values are for the hidden tests (so no tick)."""
    print(f"{task}: {message} The hidden tests grade the values.")


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


def is_share(value: Any) -> bool:
    """A number between 0 and 1 (not a bool)."""
    return not isinstance(value, (bool, np.bool_)) and isinstance(value, (int, float, np.integer, np.floating)) \
        and 0.0 <= float(value) <= 1.0


# ----- hidden tests: where an answer and a reference (computed in the hidden cell) differ ---------------------
def compare(task: str, name: str, answer: Any, reference: Any, atol: float = 1e-6, hint: str = "") -> None:
    """Fail with words when `answer` is not `reference` (dicts key by key, arrays value by value, within atol).

    `hint` says what to check when they differ; the reference itself is never shown.
    """
    advice = f" {hint}" if hint else " Check each step of the task."
    if isinstance(reference, Mapping):
        if not isinstance(answer, Mapping) or set(answer) != set(reference):
            got = sorted(answer, key=str) if isinstance(answer, Mapping) else type(answer).__name__
            fail(task, f"`{name}` should have the keys {sorted(reference, key=str)}; got {got}.")
        wrong = [k for k in reference if not _close(answer[k], reference[k], atol)]
        if wrong:
            count = f"{len(wrong)} of the {len(reference)} entries of `{name}` " + ("is" if len(wrong) == 1 else "are")
            fail(task, f"{count} not right: {', '.join(repr(k) for k in wrong)}.{advice}")
        return
    if not _close(answer, reference, atol):
        fail(task, f"`{name}` is not the expected value.{advice}")


def _close(answer: Any, reference: Any, atol: float) -> bool:
    """Equal sets of ints, or numbers/arrays of the same shape within atol."""
    if isinstance(reference, (set, frozenset)):
        try:
            return {int(v) for v in answer} == reference
        except (TypeError, ValueError):
            return False
    try:
        a, r = np.asarray(answer, np.float64), np.asarray(reference, np.float64)
    except (TypeError, ValueError):
        return False
    return a.shape == r.shape and bool(np.all(np.abs(a - r) <= atol))


# ----- assignment 1: activations --------------------------------------------------------------------------
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
    """Assignment 1, visible test: the answer's form (layer names, filter indices in range, not every filter)."""
    task = "Dead filters"
    require_answer(task, dead, "dead", "a dict {layer name: [dead filter indices]}")
    ins = demo_inspector(task, model)
    for name, filters in as_dead_answer(task, dead, ins.conv_layers).items():
        channels = ins.layer(name).channels
        bad = sorted(f for f in filters if not 0 <= f < channels)
        if bad:
            fail(task, f"{name} has filters 0..{channels - 1}; {bad[0]} is not one of them.")
        if len(filters) == channels:
            fail(task, f"every filter of {name} is in your list, but a trained layer whose filters are all dead "
                       "could not pass anything on. A filter is dead only when its maximum over all 32 scenes is 0.")
    form_ok(task, f"a dict of {len(dead)} layer(s) with filter indices in range.")


def check_sparsity(model: Any, sparsity: Any) -> None:
    """Assignment 1, visible test: one share in [0, 1] per conv layer, in the model's order, not all 0."""
    task = "Sparsity"
    require_answer(task, sparsity, "sparsity", "a dict {conv layer: share of zero outputs}")
    ins = demo_inspector(task, model)
    if not isinstance(sparsity, Mapping) or list(sparsity) != list(ins.conv_layers):
        got = list(sparsity) if isinstance(sparsity, Mapping) else type(sparsity).__name__
        fail(task, f"`sparsity` should have one entry per conv layer, in order: {list(ins.conv_layers)}; got {got}.")
    for name, share in sparsity.items():
        if not isinstance(share, (float, np.floating)) or not 0.0 <= float(share) <= 1.0:
            fail(task, f"sparsity[{name!r}] = {share!r}; a share is a float between 0 and 1.")
    if all(float(share) == 0.0 for share in sparsity.values()):
        fail(task, "every share is 0, but a ReLU sets every negative input to exactly 0. "
                   "Count the values that are 0 (ReLU outputs are never below 0).")
    form_ok(task, "one share between 0 and 1 per conv layer.")


# ----- assignment 2: filter patterns ------------------------------------------------------------------------
def pattern_activation(model: Any, layer: str, filter_index: int, pixels: Any) -> float:
    """The filter's mean activation for pixels (size, size, 3) or (1, size, size, 3) in 0..255 (a measure)."""
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
    form_ok(task, f"the mean activation of {layer}[{filter_index}] rose from {start:.3f} to {reached:.3f}.")


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
    form_ok(task, "one share in [0, 1] per picture, 0 for a flat one.")


# ----- assignment 3: Grad-CAM -------------------------------------------------------------------------------
def check_heatmap(model: Any, image: Any, heatmap: Any) -> None:
    """Assignment 3, visible test: a 2-D heatmap on the last conv layer's grid, values in [0, 1], max 1."""
    task = "Grad-CAM by hand"
    require_answer(task, heatmap, "heatmap", "your Grad-CAM, a 2-D array")
    ins = demo_inspector(task, model)
    grid = tuple(ins.activations(image, [ins.default_cam_layer])[ins.default_cam_layer].shape[:2])
    try:
        h = np.asarray(heatmap, np.float64)
    except (TypeError, ValueError):
        fail(task, f"`heatmap` is a {type(heatmap).__name__}; make it a 2-D NumPy array.")
    if h.shape != grid:
        fail(task, f"`heatmap` has shape {h.shape}; Grad-CAM lives on {ins.default_cam_layer}'s grid {grid}. "
                   "Sum the weighted channels over the last axis.")
    if not np.all(np.isfinite(h)) or h.min() < 0 or not np.isclose(h.max(), 1.0):
        fail(task, f"`heatmap` ranges over [{h.min():.3f}, {h.max():.3f}]: keep the positive part (ReLU) "
                   "and divide by its maximum, so it ends in [0, 1] with a maximum of 1.")
    form_ok(task, f"a heatmap of shape {grid} in [0, 1].")


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
    try:
        probs = ins.probabilities(image)
    except (ConvVizError, TypeError, ValueError) as err:
        fail(task, f"`image` should be a scene's picture (`scene.image`): {err}")
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
    form_ok(task, f"the model calls this {class_name(int(label))} a {class_name(predicted)} "
                  f"(p = {float(probs[predicted]):.2f}); both Grad-CAMs are of this image.")


# ----- assignments 3 and 4: shares --------------------------------------------------------------------------
def check_shares(task: str, answer: Any, name: str, keys: Sequence[Any]) -> None:
    """A dict with exactly these keys and values in [0, 1] (accuracies, shares of scenes)."""
    require_answer(task, answer, name, f"a dict with keys {list(keys)}")
    if not isinstance(answer, Mapping) or set(answer) != set(keys):
        got = sorted(answer, key=str) if isinstance(answer, Mapping) else type(answer).__name__
        fail(task, f"`{name}` should be a dict with the keys {list(keys)}; got {got}.")
    for key, value in answer.items():
        if not is_share(value):
            fail(task, f"{name}[{key!r}] = {value!r}; it should be a share between 0 and 1.")
    form_ok(task, f"`{name}` has the keys {list(keys)}, each a share between 0 and 1.")
