# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # Assignment 1: what do the layers compute?
#
# A convnet turns an image into feature maps, layer after layer: one 2-D map per filter (a *channel*).
# In this assignment you look inside the demo shape classifier (five shapes: circle, square, triangle,
# star, cross on a cluttered background) and measure three things:
#
# 1. which filters are *dead*,
# 2. how sparse each layer's output is, from the first layer to the last,
# 3. what early and late layers respond to (a written answer).
#
# Write your code where it says `# YOUR CODE HERE` (remove the `raise NotImplementedError()`), then run
# the test cell below it. Notebook `01_intermediate_activations` in `notebooks/` shows every function
# you need. The tests you see check the form of your answer; your grade also counts hidden tests of the
# values.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log

import numpy as np

import convviz_widgets as cv
from convviz_widgets import checks, demo
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()
model = demo.load_model()
scenes = [demo.scene(seed=s) for s in range(32)]
conv_layers = cv.Inspector(model, preprocess=demo.PREPROCESS).conv_layers
print("conv layers:", conv_layers)

# %% [markdown] nbgrader={"grade": false, "grade_id": "dead-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1: dead filters (3 points)
#
# A filter is *dead* when its ReLU output is 0 at every position for every input: it never fires, so
# later layers cannot use it, and since its gradient is 0 as well, training cannot revive it.
# Find all dead filters of the conv layers on the 32 scenes in `scenes`:
#
# * `cv.activations(model, image, preprocess=demo.PREPROCESS, layers=conv_layers)` gives each layer's
#   output as an array `(height, width, filters)`;
# * a filter is dead when its maximum over all positions of all 32 scenes is 0.
#
# Answer with a dict from layer name to the list of its dead filters, e.g. `{"conv2": [5, 17]}`
# (leave out layers without any).

# %% nbgrader={"grade": false, "grade_id": "dead", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
peak = {}  # layer -> each filter's highest output so far
for s in scenes:
    acts = cv.activations(model, s.image, preprocess=demo.PREPROCESS, layers=conv_layers)
    for name in conv_layers:
        top = acts[name].max(axis=(0, 1))
        peak[name] = np.maximum(peak[name], top) if name in peak else top
dead = {name: np.flatnonzero(top <= 0).tolist() for name, top in peak.items() if (top <= 0).any()}
### END SOLUTION
print(dead)

# %% nbgrader={"grade": true, "grade_id": "dead-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_dead_filters(model, dead)
### BEGIN HIDDEN TESTS
import keras

_model = demo.load_model()  # fresh: the reference does not depend on names a student may have changed
_layers = [layer.name for layer in _model.layers if isinstance(layer, keras.layers.Conv2D)]
_outputs = keras.Model(_model.inputs[0], [_model.get_layer(n).output for n in _layers]).predict_on_batch(
    np.stack([demo.scene(seed=s).image for s in range(32)]) / 255.0)
_peaks = {n: np.asarray(out).max(axis=(0, 1, 2)) for n, out in zip(_layers, _outputs)}
_dead = {n: set(np.flatnonzero(p <= 0).tolist()) for n, p in _peaks.items()}
checks.compare("Dead filters", "dead", {n: dead.get(n, []) for n in _layers}, _dead,
               hint="A filter is dead when its maximum over all positions of all 32 scenes is 0.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "sparsity-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2: sparsity by depth (3 points)
#
# A ReLU output is often exactly 0: the filter's pattern is not there. For each conv layer, compute
# the share of its output values (all positions, all filters, all 32 scenes) that are 0. Answer with a
# dict `sparsity` from layer name to that share (a float between 0 and 1), with the layers in the
# model's order (`conv_layers`).

# %% nbgrader={"grade": false, "grade_id": "sparsity", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
zeros = {name: 0 for name in conv_layers}
values = {name: 0 for name in conv_layers}
for s in scenes:
    acts = cv.activations(model, s.image, preprocess=demo.PREPROCESS, layers=conv_layers)
    for name in conv_layers:
        zeros[name] += int((acts[name] <= 0).sum())
        values[name] += acts[name].size
sparsity = {name: zeros[name] / values[name] for name in conv_layers}
### END SOLUTION
for name, share in sparsity.items():
    print(f"{name:6s} {share:.1%} of the outputs are 0")

# %% nbgrader={"grade": true, "grade_id": "sparsity-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_sparsity(model, sparsity)
### BEGIN HIDDEN TESTS
import keras

_model = demo.load_model()
_layers = [layer.name for layer in _model.layers if isinstance(layer, keras.layers.Conv2D)]
_outputs = keras.Model(_model.inputs[0], [_model.get_layer(n).output for n in _layers]).predict_on_batch(
    np.stack([demo.scene(seed=s).image for s in range(32)]) / 255.0)
_zeros = {n: float(np.mean(np.asarray(out) <= 0)) for n, out in zip(_layers, _outputs)}
checks.compare("Sparsity", "sparsity", sparsity, _zeros, atol=1e-4,
               hint="Count every output value (all positions, filters and 32 scenes) that is 0.")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "early-late-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3: early and late layers (4 points, graded by hand)
#
# The cell below shows every channel of the first and the last conv layer for one scene.
# Run it (change the seed, look at a few scenes), then answer in the cell after it, in three to five
# sentences: what do the first layer's channels respond to, what do the last layer's channels respond
# to, and how does that fit the sparsity you measured in Task 2?

# %%
example = demo.scene(label=3, seed=demo.EVAL_SEED + 1)
acts = cv.activations(model, example.image, preprocess=demo.PREPROCESS, layers=conv_layers)
show(example.image, titles=["input"])
for name in (conv_layers[0], conv_layers[-1]):
    act = acts[name]
    show(cv.activation_grid(act, images_per_row=16), titles=[f"{name}: {act.shape[-1]} channels"], width=12)

# %% [markdown] nbgrader={"grade": true, "grade_id": "early-late", "locked": false, "points": 4, "schema_version": 3, "solution": true}
# The first layer's channels are edge, colour and brightness detectors: their maps still look like the
# scene, the shape and the clutter alike. The last layer's maps are small and coarse; a channel lights
# up on a part of the shape that tells the classes apart (a corner, a tip, a crossing) and stays dark
# elsewhere, including on most of the clutter. Sparsity is high at every depth and, for this model, does
# not simply rise with it (check the numbers above): an edge detector is already silent wherever its
# edge is absent. What changes with depth is what a non-zero value means: "an edge here" early, "a part
# of this class here" late.
#
# === BEGIN MARK SCHEME ===
# 1 point each: early = edges/colours/brightness, maps resemble the input; late = parts or
# class-specific features, coarse maps; a reading of the measured sparsity that the numbers support
# (they need not rise with depth); an observation from more than one scene.
# === END MARK SCHEME ===
