# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # Assignment 4: Clever Hans
#
# Clever Hans was a horse that seemed to do arithmetic; in fact he read his trainer's body language.
# A model can do the same: reach high accuracy by a *shortcut*, a cue that happens to go with the
# label in its training data, instead of the thing it is supposed to recognise.
#
# `demo.load_model("shortcut")` is such a model. It was trained on shape scenes that also carry a
# small mark whose look gives the class away; `demo.scene(..., cue=True)` draws a scene with that mark,
# `cue=False` the same scene without it, and `scene.cue_mask` is where the mark is. The honest demo
# model, `demo.load_model()`, never saw the mark. You will
#
# 1. measure both models' accuracy with and without the cue,
# 2. use Grad-CAM to see where each model finds its evidence,
# 3. explain what the shortcut model learned (a written answer).
#
# Write your code where it says `# YOUR CODE HERE` (remove the `raise NotImplementedError()`), then run
# the test cell below it.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log

import numpy as np

import convviz_widgets as cv
from convviz_widgets import checks, demo, metrics
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()
models = {"honest": demo.load_model(), "shortcut": demo.load_model("shortcut")}
with_cue = demo.scene(seed=demo.EVAL_SEED, cue=True)
without = demo.scene(seed=demo.EVAL_SEED, cue=False)
show(with_cue.image, without.image, with_cue.cue_mask, titles=["cue=True", "cue=False", "cue_mask"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "accuracy-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1: accuracy with and without the cue (4 points)
#
# For each model, compute the top-1 accuracy on the 200 scenes `demo.scene(seed=demo.EVAL_SEED + i,
# cue=True)` for `i = 0 .. 199`, and on the same 200 scenes drawn with `cue=False`. The models take
# pixels divided by 255: `model.predict_on_batch(images / 255.0)` classifies a batch at once. Put the
# four numbers in `accuracy`, a dict with the keys `"honest/cue"`, `"honest/no cue"`,
# `"shortcut/cue"` and `"shortcut/no cue"`.

# %% nbgrader={"grade": false, "grade_id": "accuracy", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
accuracy = {}
for cue, key in ((True, "cue"), (False, "no cue")):
    shots = [demo.scene(seed=demo.EVAL_SEED + i, cue=cue) for i in range(200)]
    images = np.stack([s.image for s in shots]) / 255.0
    labels = np.array([s.labels[0] for s in shots])
    for name, model in models.items():
        accuracy[f"{name}/{key}"] = float(np.mean(model.predict_on_batch(images).argmax(axis=1) == labels))
### END SOLUTION
for key, value in accuracy.items():
    print(f"{key:16s} {value:.2f}")

# %% nbgrader={"grade": true, "grade_id": "accuracy-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false}
checks.check_shares("Accuracy", accuracy, "accuracy", ["honest/cue", "honest/no cue", "shortcut/cue", "shortcut/no cue"])
### BEGIN HIDDEN TESTS
_models = {"honest": demo.load_model(), "shortcut": demo.load_model("shortcut")}
_accuracy = {}
for _cue, _key in ((True, "cue"), (False, "no cue")):
    _shots = [demo.scene(seed=demo.EVAL_SEED + _i, cue=_cue) for _i in range(200)]
    _labels = np.array([_s.labels[0] for _s in _shots])
    for _name, _m in _models.items():
        _predicted = _m.predict_on_batch(np.stack([_s.image for _s in _shots]) / 255.0).argmax(axis=1)
        _accuracy[f"{_name}/{_key}"] = float(np.mean(_predicted == _labels))
checks.compare("Accuracy", "accuracy", accuracy, _accuracy,
               hint="Use all 200 scenes demo.scene(seed=demo.EVAL_SEED + i, cue=...), i = 0 .. 199, and compare "
                    "each model's top class with scene.labels[0].")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "where-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2: where does each model look? (4 points)
#
# Take the first 20 of those scenes drawn *with* the cue. For each scene and each model, compute the
# Grad-CAM of the scene's true class (`cv.gradcam(model, image, preprocess=demo.PREPROCESS,
# class_index=...)`) and ask two questions with the pointing game, allowing 4 pixels
# (`metrics.pointing_game(heatmap, mask, tolerance=4)`): does the heatmap's maximum lie on the cue
# (`scene.cue_mask`)? On the shape (`scene.masks[0]`)? Put the shares of the 20 scenes in
# `on_cue = {"honest": ..., "shortcut": ...}` and `on_shape = {"honest": ..., "shortcut": ...}`.

# %% nbgrader={"grade": false, "grade_id": "where", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
cue_scenes = [demo.scene(seed=demo.EVAL_SEED + i, cue=True) for i in range(20)]
on_cue, on_shape = {}, {}
for name, model in models.items():
    cams = [cv.gradcam(model, s.image, preprocess=demo.PREPROCESS, class_index=s.labels[0]) for s in cue_scenes]
    on_cue[name] = float(np.mean([metrics.pointing_game(c.heatmap, s.cue_mask, tolerance=4)
                                  for c, s in zip(cams, cue_scenes)]))
    on_shape[name] = float(np.mean([metrics.pointing_game(c.heatmap, s.masks[0], tolerance=4)
                                    for c, s in zip(cams, cue_scenes)]))
### END SOLUTION
print("peak on the cue:  ", on_cue)
print("peak on the shape:", on_shape)

# %% nbgrader={"grade": true, "grade_id": "where-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false}
checks.check_shares("On the cue", on_cue, "on_cue", ["honest", "shortcut"])
checks.check_shares("On the shape", on_shape, "on_shape", ["honest", "shortcut"])
### BEGIN HIDDEN TESTS
_models = {"honest": demo.load_model(), "shortcut": demo.load_model("shortcut")}
_scenes = [demo.scene(seed=demo.EVAL_SEED + _i, cue=True) for _i in range(20)]
_on_cue, _on_shape = {}, {}
for _name, _m in _models.items():
    _maps = [cv.gradcam(_m, _s.image, preprocess=demo.PREPROCESS, class_index=_s.labels[0]).heatmap for _s in _scenes]
    _on_cue[_name] = float(np.mean([metrics.pointing_game(_h, _s.cue_mask, 4) for _h, _s in zip(_maps, _scenes)]))
    _on_shape[_name] = float(np.mean([metrics.pointing_game(_h, _s.masks[0], 4) for _h, _s in zip(_maps, _scenes)]))
_hint = "Use the first 20 cue scenes, the Grad-CAM of the true class and a tolerance of 4 pixels."
checks.compare("On the cue", "on_cue", on_cue, _on_cue, hint=_hint)
checks.compare("On the shape", "on_shape", on_shape, _on_shape, hint=_hint)
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "look-text", "locked": true, "schema_version": 3, "solution": false}
# Both models' Grad-CAMs on a few cue scenes:

# %%
for s in [demo.scene(seed=demo.EVAL_SEED + i, cue=True) for i in range(3)]:
    cams = [cv.gradcam(model, s.image, preprocess=demo.PREPROCESS, class_index=s.labels[0]) for model in models.values()]
    show(s.image, *[cv.overlay(s.image, c.heatmap) for c in cams],
         titles=[f"a {demo.CLASS_NAMES[s.labels[0]]}"] + [f"{name} model" for name in models])

# %% [markdown] nbgrader={"grade": false, "grade_id": "explain-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3: what did the shortcut model learn? (4 points, graded by hand)
#
# In four to six sentences, using your numbers and pictures: what is the cue, and how did you find it?
# Why does the shortcut model's accuracy change when the cue is gone, and the honest model's not (or
# much less)? Would you have caught the shortcut from its accuracy on scenes *with* the cue alone? What
# would you change in the training data?

# %% [markdown] nbgrader={"grade": true, "grade_id": "explain", "locked": false, "points": 4, "schema_version": 3, "solution": true}
# The cue is the small coloured square near a corner: its colour says the class. The shortcut model's
# Grad-CAM peaks on that square in most cue scenes, the honest model's on the shape. With the cue both
# models are accurate, so accuracy on such scenes alone would not reveal the shortcut; without it the
# shortcut model loses much of its accuracy, because the shape was never the evidence it relied on,
# while the honest model is unaffected (it never saw the cue). Training scenes in which the cue does not
# go with the label (random colours, or no cue) would remove the shortcut.
#
# === BEGIN MARK SCHEME ===
# 1 point: names the cue (coloured corner square, colour = class) with the Grad-CAM evidence; 1 point:
# explains the accuracy drop with numbers; 1 point: accuracy with the cue alone cannot reveal it;
# 1 point: a sensible fix (decorrelate the cue from the label, augment, or mask it).
# === END MARK SCHEME ===
