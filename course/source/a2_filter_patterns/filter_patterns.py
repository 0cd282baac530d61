# %% [markdown] nbgrader={"grade": false, "grade_id": "intro", "locked": true, "schema_version": 3, "solution": false}
# # Assignment 2: what does a filter look for?
#
# Start from a grey picture with a little noise and change its pixels, step after step, in the
# direction that raises one filter's mean activation: gradient *ascent* in input space. The picture you
# end with is a pattern the filter responds to strongly. You will
#
# 1. write that loop yourself with `tf.GradientTape`, as *Deep Learning with Python* does, and check it
#    against `cv.filter_patterns`,
# 2. measure how noisy the patterns are, for the book's recipe and for a regularised one,
# 3. say what changed (a written answer).
#
# Write your code where it says `# YOUR CODE HERE` (remove the `raise NotImplementedError()`), then run
# the test cell below it. Notebook `02_filter_patterns` in `notebooks/` shows the functions you need.

# %% nbgrader={"grade": false, "grade_id": "setup", "locked": true, "schema_version": 3, "solution": false}
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log

import keras
import numpy as np
import tensorflow as tf

import convviz_widgets as cv
from convviz_widgets import checks, demo
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()
model = demo.load_model()
LAYER, SIZE, STEPS, STEP_SIZE = "conv3", demo.IMAGE_SIZE, 40, demo.FILTER_STEP_SIZE
# The filter to explain: the one of the first 16 that responds most to the grey start picture.
FILTER = int(np.argmax(cv.filter_patterns(model, LAYER, range(16), preprocess=demo.PREPROCESS, size=SIZE,
                                          steps=0).start_activation))
x0 = np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32) * 20.0 + 128.0  # grey + noise
start = checks.pattern_activation(model, LAYER, FILTER, x0)  # the filter's mean activation on x0
print(f"{LAYER}, filter {FILTER}: mean activation {start:.3f} on the start picture")

# %% [markdown] nbgrader={"grade": false, "grade_id": "ascent-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 1: the book's gradient ascent (4 points)
#
# Starting from `x0` (pixels in 0..255, shape `(1, 96, 96, 3)`, the size the demo model takes), run `STEPS` steps of gradient ascent on
# the mean activation of filter `FILTER` of layer `LAYER`:
#
# * a Keras model from the demo model's input to the layer's output:
#   `keras.Model(model.inputs[0], model.get_layer(LAYER).output)`;
# * the demo model takes pixels divided by 255, so feed it `x / 255.0`;
# * in each step, under a `tf.GradientTape`, the loss is the mean of the layer's output for channel
#   `FILTER`; take the gradient of the loss with respect to the pixels, divide it by its root mean square
#   plus `1e-5` (`tf.sqrt(tf.reduce_mean(tf.square(grads))) + 1e-5`), and add `STEP_SIZE` times that to
#   the pixels.
#
# Put the final pixels in `x` as a NumPy array of the same shape.

# %% nbgrader={"grade": false, "grade_id": "ascent", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
feature_model = keras.Model(model.inputs[0], model.get_layer(LAYER).output)
pixels = tf.Variable(x0)
for _ in range(STEPS):
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(feature_model(pixels / 255.0)[..., FILTER])
    grads = tape.gradient(loss, pixels)
    grads /= tf.sqrt(tf.reduce_mean(tf.square(grads))) + 1e-5
    pixels.assign_add(STEP_SIZE * grads)
x = pixels.numpy()
### END SOLUTION
print(f"mean activation after {STEPS} steps: {checks.pattern_activation(model, LAYER, FILTER, x):.3f}")

# %% nbgrader={"grade": true, "grade_id": "ascent-tests", "locked": true, "points": 4, "schema_version": 3, "solution": false}
checks.check_ascent(model, LAYER, FILTER, x, x0)
### BEGIN HIDDEN TESTS
_model = demo.load_model()
_features = keras.Model(_model.inputs[0], _model.get_layer(LAYER).output)
_start = np.random.default_rng(0).random((1, SIZE, SIZE, 3), dtype=np.float32) * 20.0 + 128.0
_pixels = tf.Variable(_start)
for _ in range(STEPS):
    with tf.GradientTape() as _tape:
        _loss = tf.reduce_mean(_features(_pixels / 255.0)[..., FILTER])
    _grads = _tape.gradient(_loss, _pixels)
    _pixels.assign_add(STEP_SIZE * _grads / (tf.sqrt(tf.reduce_mean(tf.square(_grads))) + 1e-5))
_want = float(tf.reduce_mean(_features(_pixels / 255.0)[..., FILTER]))
_reached = float(tf.reduce_mean(_features(np.asarray(x, np.float32) / 255.0)[..., FILTER]))
if not abs(_reached - _want) <= 0.02 * abs(_want):
    checks.fail("Gradient ascent", f"your picture reaches a mean activation of {_reached:.3f}, {STEPS} steps of the "
                "book's ascent reach a different value. Check the step (STEP_SIZE times the gradient divided by "
                "its RMS plus 1e-5), the number of steps and the scaling of the pixels (x / 255).")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "compare-text", "locked": true, "schema_version": 3, "solution": false}
# `cv.filter_patterns` runs this recipe for many filters at once (one batch), with two changes: it scales
# each gradient to RMS 1 without the `+ 1e-5` (here the gradient's RMS is a few millionths, so the book's
# `+ 1e-5` shrinks every step), and its start's noise grows with the step. So it climbs further. Your
# picture and its picture for the same filter, side by side (both scaled for display the same way):

# %% nbgrader={"grade": false, "grade_id": "compare", "locked": true, "schema_version": 3, "solution": false}
reference = cv.filter_patterns(model, LAYER, [FILTER], preprocess=demo.PREPROCESS, size=SIZE, steps=STEPS,
                               step_size=STEP_SIZE, seed=0)
mine = np.clip((x[0] - x[0].mean()) / (x[0].std() + 1e-5) * 0.15 * 255 + 128, 0, 255).astype(np.uint8)
print(f"cv.filter_patterns: {reference.start_activation[0]:.3f} -> {reference.final_activation[0]:.3f}")
show(mine, reference.images[0], titles=["your loop", "cv.filter_patterns"])

# %% [markdown] nbgrader={"grade": false, "grade_id": "hf-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 2: how noisy is a pattern? (3 points)
#
# The book's patterns are full of fine, pixel-sized detail. Measure it: write a function
# `high_frequency_share(images)` that takes a batch of pictures `(n, h, w, 3)` and returns a NumPy
# array of `n` shares, one per picture:
#
# * make the picture grey (the mean of its three colour channels) and subtract its mean;
# * take its 2-D Fourier transform (`np.fft.fft2`) and the power `abs(...) ** 2` of each frequency;
# * a frequency is *high* when `sqrt(fy**2 + fx**2) > 0.25` cycles per pixel, with `fy`, `fx` from
#   `np.fft.fftfreq(h)` and `np.fft.fftfreq(w)`;
# * the share is the power at high frequencies divided by the total power (0 for a flat picture).

# %% nbgrader={"grade": false, "grade_id": "hf", "locked": false, "schema_version": 3, "solution": true}
def high_frequency_share(images):
    """Per picture, the share of its grey image's spectral power above 0.25 cycles per pixel."""
    ### BEGIN SOLUTION
    grey = np.asarray(images, np.float64).mean(axis=-1)
    grey -= grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    radius = np.hypot(np.fft.fftfreq(grey.shape[1])[:, None], np.fft.fftfreq(grey.shape[2])[None, :])
    total = power.sum(axis=(1, 2))
    high = power[:, radius > 0.25].sum(axis=1)
    return np.where(total > 0, high / np.where(total > 0, total, 1.0), 0.0)
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "hf-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_high_frequency(high_frequency_share)
### BEGIN HIDDEN TESTS
def _reference_share(images):
    grey = np.asarray(images, np.float64).mean(axis=-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    high = np.sqrt(np.fft.fftfreq(grey.shape[1])[:, None] ** 2 + np.fft.fftfreq(grey.shape[2])[None, :] ** 2) > 0.25
    total = power.sum(axis=(1, 2))
    return np.divide((power * high).sum(axis=(1, 2)), total, out=np.zeros_like(total), where=total > 0)


_rng = np.random.default_rng(1)
_inputs = {"random pixels (2, 24, 32)": _rng.integers(0, 256, (2, 24, 32, 3)),
           "Gaussian noise (3, 17, 17)": _rng.normal(128, 40, (3, 17, 17, 3)),
           "vertical stripes (1, 32, 32)": np.tile(np.arange(32, dtype=np.float64)[None, None, :, None] % 2 * 255,
                                                   (1, 32, 1, 3))}
checks.compare("High frequencies", "high_frequency_share(pictures)",
               {k: np.asarray(high_frequency_share(v), np.float64) for k, v in _inputs.items()},
               {k: _reference_share(v) for k, v in _inputs.items()},
               hint="Subtract each grey picture's own mean before np.fft.fft2, and count as high the frequencies "
                    "with sqrt(fy**2 + fx**2) > 0.25 (fy, fx from np.fft.fftfreq).")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "modes-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 3: the regularised recipe (3 points)
#
# `cv.filter_patterns(..., mode="regularized")` describes the picture by its Fourier coefficients with
# natural colour correlations, optimises them with Adam, and shifts, scales and rotates the picture a
# little at random at every step. Compute the patterns of filters 0 to 7 of `conv4` with both recipes
# (`size=64`, `seed=0`, `preprocess=demo.PREPROCESS`): `plain` with `mode="plain"`, `steps=40` and
# `step_size=STEP_SIZE`, and `regularized` with `mode="regularized"` and `steps=64`. Then put the mean
# high-frequency share of each set of pictures in `noise = {"plain": ..., "regularized": ...}`.

# %% nbgrader={"grade": false, "grade_id": "modes", "locked": false, "schema_version": 3, "solution": true}
### BEGIN SOLUTION
plain = cv.filter_patterns(model, "conv4", range(8), preprocess=demo.PREPROCESS, size=64, steps=40,
                           step_size=STEP_SIZE, seed=0, mode="plain")
regularized = cv.filter_patterns(model, "conv4", range(8), preprocess=demo.PREPROCESS, size=64, steps=64,
                                 seed=0, mode="regularized")
noise = {"plain": float(high_frequency_share(plain.images).mean()),
         "regularized": float(high_frequency_share(regularized.images).mean())}
### END SOLUTION
print({k: round(v, 3) for k, v in noise.items()})
show(cv.filter_grid(plain.images, cols=4, margin=3), cv.filter_grid(regularized.images, cols=4, margin=3),
     titles=["conv4, plain ascent (the book)", "conv4, regularized"], height=3)

# %% nbgrader={"grade": true, "grade_id": "modes-tests", "locked": true, "points": 3, "schema_version": 3, "solution": false}
checks.check_shares("Noise", noise, "noise", ["plain", "regularized"])
for _name, _patterns in (("plain", plain), ("regularized", regularized)):
    if getattr(_patterns, "layer", None) != "conv4" or tuple(getattr(_patterns, "filters", ())) != tuple(range(8)):
        checks.fail("Noise", f"`{_name}` should be what cv.filter_patterns returns for filters 0 to 7 of conv4.")
### BEGIN HIDDEN TESTS
_model = demo.load_model()
_want = {"plain": cv.filter_patterns(_model, "conv4", range(8), preprocess=demo.PREPROCESS, size=64, steps=40,
                                     step_size=STEP_SIZE, seed=0, mode="plain"),
         "regularized": cv.filter_patterns(_model, "conv4", range(8), preprocess=demo.PREPROCESS, size=64, steps=64,
                                           seed=0, mode="regularized")}
for _name, _patterns in (("plain", plain), ("regularized", regularized)):
    if np.shape(_patterns.images) != _want[_name].images.shape \
            or np.abs(_want[_name].images.astype(float) - _patterns.images).mean() >= 2.0:
        checks.fail("Noise", f"`{_name}` is not the {_name} recipe with the task's settings (size, steps, seed).")


def _reference_share(images):
    grey = np.asarray(images, np.float64).mean(axis=-1)
    grey = grey - grey.mean(axis=(1, 2), keepdims=True)
    power = np.abs(np.fft.fft2(grey)) ** 2
    high = np.sqrt(np.fft.fftfreq(grey.shape[1])[:, None] ** 2 + np.fft.fftfreq(grey.shape[2])[None, :] ** 2) > 0.25
    total = power.sum(axis=(1, 2))
    return np.divide((power * high).sum(axis=(1, 2)), total, out=np.zeros_like(total), where=total > 0)


_shares = {"plain": _reference_share(plain.images).mean(), "regularized": _reference_share(regularized.images).mean()}
checks.compare("Noise", "noise", noise, _shares, 1e-4,
               hint="Each value is the mean of high_frequency_share(...) over that recipe's 8 pictures "
                    "(a wrong high_frequency_share makes these wrong too).")
### END HIDDEN TESTS

# %% [markdown] nbgrader={"grade": false, "grade_id": "changed-task", "locked": true, "schema_version": 3, "solution": false}
# ## Task 4: what changed? (3 points, graded by hand)
#
# In three to five sentences: how do the two sets of pictures differ, what do your numbers say, and
# why would a regularised picture be a better answer to "what does this filter look for"? Is it also a
# *faithful* one? Compare the mean activations the two recipes reach (`plain.final_activation`,
# `regularized.final_activation`).

# %% [markdown] nbgrader={"grade": true, "grade_id": "changed", "locked": false, "points": 3, "schema_version": 3, "solution": true}
# The plain pictures are grey with fine, pixel-sized speckle; the regularised ones show larger strokes,
# blobs and colours, and a smaller share of their power lies at high frequencies. Plain ascent exploits
# tiny pixel changes that no scene contains; the jitter, scaling and rotation keep only patterns that
# survive such changes, which is closer to what the filter responds to in real scenes. The picture is
# still a choice of the recipe (its prior), not only of the filter, so it is less faithful in that sense:
# compare the activations each reaches.
#
# === BEGIN MARK SCHEME ===
# 1 point: the visual difference (noise vs larger structures) with the measured shares; 1 point: why
# (transformations/Fourier parametrisation suppress high frequencies); 1 point: the caveat that the
# regulariser shapes the picture, supported by the activations reached.
# === END MARK SCHEME ===
