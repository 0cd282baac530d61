"""Auto-checks for the course assignment (notebooks/assignments): a ✔ line when a task is done, advice when not.

Each ``check_*`` function recomputes the right answer from the model and compares it with the
student's. A failed check raises :class:`CheckFailed`, an ``AssertionError`` (so nbgrader and other
autograders count the task as failed) that IPython shows as its advice alone, without a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

import numpy as np

from .core import CAM, ConvVizError, Inspector, inspector_for
from .demo import CLASS_NAMES, IMAGE_SIZE, PREPROCESS, evaluate, scene
from .metrics import pointing_game

DEAD_SCENE_SEEDS = range(32)  # Task 2 is judged on demo.scene(seed=s) for these seeds
EVAL_SCENES = 200  # Task 1: fresh scenes the accuracy is measured on
MIN_ACCURACY = 0.8
HEATMAP_ATOL = 1e-3  # a student's heatmap must match the recomputed one this closely


class CheckFailed(AssertionError):
    """A task that is not done yet; IPython shows only its advice (see ``_render_traceback_``)."""

    def _render_traceback_(self) -> list[str]:
        """What IPython prints instead of a traceback: the advice, its first line in red."""
        first, *rest = str(self).splitlines() or [""]
        return [f"\x1b[1;31m✘ {first}\x1b[0m", *rest]


def fail(task: str, advice: str) -> NoReturn:
    """Stop the check with advice for the student."""
    raise CheckFailed(f"{task}: {advice}")


def passed(task: str, message: str) -> None:
    """Report a task as done."""
    print(f"✔ {task}: {message}")


def require_answer(task: str, value: Any, name: str, hint: str) -> None:
    """Fail politely while a placeholder (``...`` or None) is still in place."""
    if value is None or value is Ellipsis:
        fail(task, f"not answered yet. Replace the `...` in `{name} = ...` with {hint}.")


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


def check_model(model: Any) -> None:
    """Task 1: a convnet for the 96x96 demo scenes with five classes and useful accuracy."""
    task = "Task 1"
    require_answer(task, model, "model", "`demo.load_model()` or a convnet you trained")
    ins = demo_inspector(task, model)
    shape = tuple(ins.graph.input.shape[1:])
    if shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
        fail(task, f"the model takes inputs of shape {shape}; the demo scenes are "
                   f"({IMAGE_SIZE}, {IMAGE_SIZE}, 3): start it with keras.Input(({IMAGE_SIZE}, {IMAGE_SIZE}, 3)).")
    if ins.n_classes != len(CLASS_NAMES):
        fail(task, f"the model has {ins.n_classes} outputs; it needs one per class ({', '.join(CLASS_NAMES)}): "
                   f"end with keras.layers.Dense({len(CLASS_NAMES)}, activation='softmax').")
    accuracy = evaluate(model, n=EVAL_SCENES)
    if accuracy < MIN_ACCURACY:
        fail(task, f"accuracy {accuracy:.2f} on {EVAL_SCENES} fresh scenes; aim for {MIN_ACCURACY:.2f} or more. "
                   "Train for more steps (pixels scaled by 1/255), or load the trained one: `demo.load_model()`.")
    passed(task, f"a convnet with {len(ins.conv_layers)} conv layers, accuracy {accuracy:.2f} "
                 f"on {EVAL_SCENES} fresh scenes.")


def dead_filter_peaks(ins: Inspector, seeds: Sequence[int] = DEAD_SCENE_SEEDS) -> dict[str, np.ndarray]:
    """Each conv layer's highest output per filter over the scenes (0 means the filter never fired)."""
    peaks: dict[str, np.ndarray] = {}
    for seed in seeds:
        acts = ins.activations(scene(seed=seed).image, ins.conv_layers)
        for name, act in acts.items():
            top = act.max(axis=(0, 1))
            peaks[name] = np.maximum(peaks[name], top) if name in peaks else top
    return peaks


def as_dead_answer(task: str, dead: Any, layers: Sequence[str]) -> dict[str, set[int]]:
    """Validate the student's {layer: [filter, ...]} answer."""
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
    """Task 2: every filter whose output is 0 everywhere on the 32 scenes, and no other."""
    task = "Task 2"
    require_answer(task, dead, "dead", "a dict {layer name: [dead filter indices]}")
    ins = demo_inspector(task, model)
    peaks = dead_filter_peaks(ins)
    answer = as_dead_answer(task, dead, ins.conv_layers)
    truth = {name: set(np.flatnonzero(top <= 0).tolist()) for name, top in peaks.items()}
    for name, filters in answer.items():
        alive = sorted(filters - truth[name])
        if alive:
            f = alive[0]
            fail(task, f"filter {f} of {name} is not dead: it reaches {float(peaks[name][f]):.2f} on at least "
                       "one scene. A dead filter outputs 0 at every position of every scene.")
    for name in ins.conv_layers:
        missed = truth[name] - answer.get(name, set())
        if missed:
            fail(task, f"{name} has {len(missed)} dead filter(s) that are not in your answer. Take each "
                       "filter's maximum over all positions and all 32 scenes: dead ones stay at 0.")
    total = sum(len(v) for v in truth.values())
    if total == 0:
        passed(task, "right: no filter of this model is dead on these scenes.")
        return
    found = "; ".join(f"{name}: {sorted(v)}" for name, v in truth.items() if v)
    passed(task, f"you found all {total} dead filters ({found}).")


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
    """Task 3: an image the model gets wrong, with Grad-CAMs of the predicted and the true class."""
    task = "Task 3"
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
                   "e.g. among `demo.scene(seed=s, difficulty=1.5)` for s = 0, 1, 2, ...")
    cam_p = as_cam(task, cam_predicted, "cam_predicted")
    cam_t = as_cam(task, cam_true, "cam_true")
    for cam, want, name in ((cam_p, predicted, "cam_predicted"), (cam_t, int(label), "cam_true")):
        if cam.class_index != want:
            fail(task, f"`{name}` explains {class_name(cam.class_index)!r}, but it should explain "
                       f"{class_name(want)!r} (class_index={want}).")
        if not matches_image(ins, cam, image):
            fail(task, f"`{name}` was not computed on this `image`: compute both CAMs on the image you chose.")
    passed(task, f"the model calls this {class_name(int(label))} a {class_name(predicted)} "
                 f"(p = {float(probs[predicted]):.2f}); both Grad-CAMs are right. Now compare where they look.")


def check_pointing(model: Any, pair: Any, cams: Any, hits: Any) -> None:
    """Task 4: the Grad-CAM of each object's class, and whether it points at that object."""
    task = "Task 4"
    require_answer(task, cams, "cams", "a list of two Grad-CAMs, one per object in `pair.labels`")
    require_answer(task, hits, "hits", "a list of two booleans from `metrics.pointing_game`")
    ins = demo_inspector(task, model)
    labels, masks = list(pair.labels), list(pair.masks)
    if not isinstance(cams, Sequence) or len(cams) != len(labels):
        fail(task, f"`cams` should be a list of {len(labels)} CAMs, one per object (pair.labels = {labels}).")
    if not isinstance(hits, Sequence) or len(hits) != len(labels):
        fail(task, f"`hits` should be a list of {len(labels)} booleans, one per object.")
    verdicts = []
    for i, (cam, label, mask, hit) in enumerate(zip(cams, labels, masks, hits)):
        cam = as_cam(task, cam, f"cams[{i}]")
        if cam.class_index != label:
            fail(task, f"cams[{i}] explains {class_name(cam.class_index)!r}, but object {i} is a "
                       f"{class_name(label)}: use class_index=pair.labels[{i}].")
        if not matches_image(ins, cam, pair.image):
            fail(task, f"cams[{i}] was not computed on `pair.image`.")
        truth = pointing_game(cam.heatmap, mask)
        if not isinstance(hit, (bool, np.bool_)) or bool(hit) != truth:
            fail(task, f"hits[{i}] is {hit!r}, but the pointing game says {truth} for the {class_name(label)}: "
                       f"use metrics.pointing_game(cams[{i}].heatmap, pair.masks[{i}]).")
        verdicts.append(f"the {class_name(label)} map {'hits' if truth else 'misses'} its object")
    passed(task, "; ".join(verdicts) + ".")
