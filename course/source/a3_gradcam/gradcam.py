# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # Assignment 3: where is the evidence, and should you believe it?
#
# Grad-CAM answers: which part of *this* image made the model say *this* class? You will
#
# 1. compute a Grad-CAM by hand from the gradients, one that `cv.gradcam` does not compute: why this
#    class *rather than* the runner-up,
# 2. find a mistake of the model and explain it with two heatmaps,
# 3. play the pointing game over many scenes, against a baseline that always points at the centre.
#
# Write your code where it says `# YOUR CODE HERE` (remove the `raise NotImplementedError()`), then run
# the test cell below it. Notebook `03_gradcam` in `notebooks/` shows the functions you need.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log

import keras
import numpy as np
import tensorflow as tf

import convviz_widgets as cv
from convviz_widgets import checks, demo, metrics
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()
model = demo.load_model()
inspector = cv.Inspector(model, preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
LAYER = inspector.default_cam_layer  # the last conv layer
DENSE = model.layers[-1]  # Dense(5, activation="softmax")
HEAD = model.layers[model.layers.index(model.get_layer(LAYER)) + 1 : -1]  # the layers between them
scene = demo.scene(label=2, seed=demo.EVAL_SEED + 5)
CLASS = scene.labels[0]
RIVAL = int(np.argsort(inspector.probabilities(scene.image))[-2])  # the model's second choice
print(f"Grad-CAM layer: {LAYER}, then {[layer.name for layer in HEAD]} and {DENSE.name}")
print(f"the scene shows a {demo.CLASS_NAMES[CLASS]}; the model's second choice is {demo.CLASS_NAMES[RIVAL]}")

# %% [markdown] nbgrader={"grade": false, "grade_id": "byhand-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1: Grad-CAM by hand (4 points)
#
# `cv.gradcam` explains one class: where is the evidence for `CLASS`? Here you ask a sharper question:
# where is the evidence for `CLASS` *rather than* `RIVAL`, the model's second choice? The score to
# explain is the difference of the two logits, `logit[CLASS] - logit[RIVAL]`. Compute its Grad-CAM
# for `scene.image` at layer `LAYER`, the way the book computes Grad-CAM:
#
# * a Keras model from the input to the layer's feature maps:
#   `keras.Model(model.inputs[0], model.get_layer(LAYER).output)`;
# * the rest of the network, applied by hand inside a `tf.GradientTape`: the layers in `HEAD` (global
#   average pooling, dropout) one after the other, then the last layer's *logits*
#   `h @ DENSE.kernel + DENSE.bias` (`tf.matmul`). Grad-CAM explains the logit, the score before the
#   softmax; `tape.watch` the feature maps, and feed the model the pixels divided by 255
#   (`scene.image[None] / 255.0`);
# * the gradient of the score `logit[CLASS] - logit[RIVAL]` with respect to the feature maps, averaged
#   over the positions, gives one weight per channel;
# * the heatmap is the weighted sum of the channels, its positive part (ReLU), divided by its maximum.
#
# Put the result in `heatmap`, a 2-D NumPy array on the layer's grid.

# %% nbgrader={"grade": false, "grade_id": "byhand", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
conv_model = keras.Model(model.inputs[0], model.get_layer(LAYER).output)
with tf.GradientTape() as tape:
    feats = conv_model(scene.image[None] / 255.0)
    tape.watch(feats)
    h = feats
    for layer in HEAD:
        h = layer(h)
    logits = tf.matmul(h, DENSE.kernel) + DENSE.bias
    score = logits[0, CLASS] - logits[0, RIVAL]
grads = tape.gradient(score, feats)[0]
weights = tf.reduce_mean(grads, axis=(0, 1))
raw = tf.reduce_sum(feats[0] * weights, axis=-1).numpy()
heatmap = np.maximum(raw, 0) / np.maximum(raw, 0).max()
### END SOLUTION
one_class = cv.gradcam(model, scene.image, preprocess=demo.PREPROCESS, class_index=CLASS).heatmap
show(scene.image, cv.overlay(scene.image, heatmap), cv.overlay(scene.image, one_class),
     titles=["image", f"{demo.CLASS_NAMES[CLASS]} rather than {demo.CLASS_NAMES[RIVAL]}",
             f"cv.gradcam: {demo.CLASS_NAMES[CLASS]}"])

# %% nbgrader={"grade": true, "grade_id": "byhand-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false}
checks.check_heatmap(model, scene.image, heatmap)
### BEGIN HIDDEN TESTS
_model = demo.load_model()
_scene = demo.scene(label=2, seed=demo.EVAL_SEED + 5)
_layer = _model.get_layer(LAYER)
_feats = keras.Model(_model.inputs[0], _layer.output)(_scene.image[None] / 255.0)
with tf.GradientTape() as _tape:
    _tape.watch(_feats)
    _h = _feats
    for _l in _model.layers[_model.layers.index(_layer) + 1 : -1]:
        _h = _l(_h)
    _z = tf.matmul(_h, _model.layers[-1].kernel) + _model.layers[-1].bias
    _rival = int(np.argsort(_z[0].numpy())[-2])
    _score = _z[0, _scene.labels[0]] - _z[0, _rival]
_weights = tf.reduce_mean(_tape.gradient(_score, _feats)[0], axis=(0, 1))
_raw = np.maximum(tf.reduce_sum(_feats[0] * _weights, axis=-1).numpy(), 0)
checks.compare("Grad-CAM by hand", "heatmap", heatmap, _raw / _raw.max(), atol=1e-3,
               hint="Explain the difference of two logits, logit[CLASS] - logit[RIVAL] (not one class, not "
                    "the softmax), average its gradient over the positions, then ReLU and divide by the maximum.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "mistake-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2: explain a mistake (3 points)
#
# The model is right on nearly every ordinary scene, so look where it is weaker: scenes drawn with
# `difficulty=1.5` (more clutter, smaller shapes, more noise). Find the first seed `s = 0, 1, 2, ...`
# for which the model's top class for `demo.scene(seed=s, difficulty=1.5)` differs from the scene's
# label (`scene.labels[0]`). Put that scene's picture in `image` and its true class in `label`. Then
# compute two Grad-CAMs of `image` (`inspector.gradcam`): `cam_predicted` for the class the model chose
# and `cam_true` for the true class.
#
# Hint: predicting 100 scenes at once is fast: `model.predict_on_batch(images / 255.0)`.

# %% nbgrader={"grade": false, "grade_id": "mistake", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
for first in range(0, 2000, 100):
    batch = [demo.scene(seed=s, difficulty=1.5) for s in range(first, first + 100)]
    predicted = model.predict_on_batch(np.stack([b.image for b in batch]) / 255.0).argmax(axis=1)
    wrong = [b for b, p in zip(batch, predicted) if p != b.labels[0]]
    if wrong:
        break
image, label = wrong[0].image, wrong[0].labels[0]
cam_predicted = inspector.gradcam(image)  # the top class
cam_true = inspector.gradcam(image, class_index=label)
### END SOLUTION
show(image, cv.overlay(image, cam_predicted.heatmap), cv.overlay(image, cam_true.heatmap),
     titles=[f"a {demo.CLASS_NAMES[label]}", f"evidence for {cam_predicted.class_name} (chosen)",
             f"evidence for {cam_true.class_name} (true)"], height=3)

# %% nbgrader={"grade": true, "grade_id": "mistake-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_misclassification(model, image, label, cam_predicted, cam_true)
### BEGIN HIDDEN TESTS
_model = demo.load_model()
_first = None
for _start in range(0, 2000, 100):
    _batch = [demo.scene(seed=_s, difficulty=1.5) for _s in range(_start, _start + 100)]
    _predicted = _model.predict_on_batch(np.stack([_b.image for _b in _batch]) / 255.0).argmax(axis=1)
    _wrong = [_b for _b, _p in zip(_batch, _predicted) if _p != _b.labels[0]]
    if _wrong:
        _first = _wrong[0]
        break
if _first is None or not np.array_equal(image, _first.image):
    checks.fail("A mistake", "the model gets this scene wrong, but it is not the first such scene: try the seeds "
                "0, 1, 2, ... in order and stop at the first mistake.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "why-task", "locked": true, "schema_version": 3, "solution": false}
# **In two or three sentences** (graded by hand, 3 points): what in the picture did the model take for
# the wrong class? Compare where the two heatmaps are hot: on a piece of clutter, on one corner or tip
# of the shape, or on nothing in particular?

# %% [markdown] nbgrader={"grade": true, "grade_id": "why", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# (The answer depends on the scene found.) The map of the chosen class is hot on a piece of clutter
# (or on a part of the shape that, blurred by the noise, looks like the other class), while the map of
# the true class is weaker or spread out: the model found more evidence for the wrong class there.
#
# === BEGIN MARK SCHEME ===
# 1 point: says where each map is hot (shape, clutter, border); 1 point: links that to the wrong class
# (e.g. a blurred edge looks cornered, a blob looks like a tip); 1 point: notes the strength/spread
# difference of the two maps or the probability.
# === END MARK SCHEME ===

# %% [markdown] nbgrader={"grade": false, "grade_id": "pointing-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3: the pointing game over many scenes (3 points)
#
# One scene proves little. Take the 12 two-shape scenes `demo.scene(seed=demo.EVAL_SEED + i, objects=2)`
# for `i = 0 .. 11`; for each shape in each scene compute the Grad-CAM of its own class and play the
# pointing game with `metrics.pointing_game(heatmap, mask)` (a hit when the heatmap's maximum lies on the
# shape, or within 15 pixels of it). Do the same with a heatmap that always points at the centre,
# `metrics.centre_prior(image.shape)`. Put the two hit rates (shares of the 24 shapes) in
# `accuracy = {"gradcam": ..., "centre": ...}`.

# %% nbgrader={"grade": false, "grade_id": "pointing", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
pairs = [demo.scene(seed=demo.EVAL_SEED + i, objects=2) for i in range(12)]
gradcam_hits, centre_hits = [], []
for pair in pairs:
    for shape_label, mask in zip(pair.labels, pair.masks):
        cam = inspector.gradcam(pair.image, class_index=shape_label)
        gradcam_hits.append(metrics.pointing_game(cam.heatmap, mask))
        centre_hits.append(metrics.pointing_game(metrics.centre_prior(pair.image.shape), mask))
accuracy = {"gradcam": float(np.mean(gradcam_hits)), "centre": float(np.mean(centre_hits))}
### END SOLUTION
print(accuracy)

# %% nbgrader={"grade": true, "grade_id": "pointing-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_shares("Pointing game", accuracy, "accuracy", ["gradcam", "centre"])
### BEGIN HIDDEN TESTS
_ins = cv.Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
_hits = {"gradcam": [], "centre": []}
for _i in range(12):
    _pair = demo.scene(seed=demo.EVAL_SEED + _i, objects=2)
    for _label, _mask in zip(_pair.labels, _pair.masks):
        _hits["gradcam"].append(metrics.pointing_game(_ins.gradcam(_pair.image, class_index=_label).heatmap, _mask))
        _hits["centre"].append(metrics.pointing_game(metrics.centre_prior(_pair.image.shape), _mask))
checks.compare("Pointing game", "accuracy", accuracy, {k: float(np.mean(v)) for k, v in _hits.items()},
               hint="Play once per shape (24 in all), with the Grad-CAM of that shape's own class.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "trust-task", "locked": true, "schema_version": 3, "solution": false}
# **Would you trust these heatmaps?** (graded by hand, 2 points) In two or three sentences, using your
# numbers: how much better than the centre baseline is Grad-CAM, and what does the pointing game not
# tell you about whether a heatmap is faithful to the model?

# %% [markdown] nbgrader={"grade": true, "grade_id": "trust", "locked": false, "points": 2, "schema_version": 3, "solution": true}
# Grad-CAM hits more shapes than the centre baseline, so its maximum usually lands on the right shape;
# but the baseline scores well too (shapes often lie near the centre) and 24 shapes are few. And the
# pointing game only checks agreement with where *we* think the evidence is; it does not show that the
# model used those pixels. Deletion curves or the randomisation sanity check test that.
#
# === BEGIN MARK SCHEME ===
# 1 point: compares the two numbers correctly (noting how strong the baseline is); 1 point: localisation is not faithfulness (names a test
# of faithfulness, e.g. deletion or model randomisation).
# === END MARK SCHEME ===
