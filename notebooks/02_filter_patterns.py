# %% [markdown]
# # 2. Filter patterns
#
# What does a filter look for? Start from a grey picture with a little noise and change its pixels,
# step after step, in the direction that raises the filter's mean activation: gradient *ascent* in
# input space. The picture we end with is a pattern the filter responds to strongly. We follow
# *Deep Learning with Python* (section 5.4.2) with this package's functions.

# %% tags=["quiet-import"]
# NBVAL_IGNORE_OUTPUT
# (TensorFlow may print a few start-up lines from C++ here; they differ from machine to machine)
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log: set before it is imported


import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()  # hide its warnings about re-tracing functions

# %% [markdown]
# ## The model and its conv layers

# %%
model = demo.load_model()
inspector = cv.Inspector(model, preprocess=demo.PREPROCESS)  # binds the model once; reused below
print(inspector.conv_layers)

# %% [markdown]
# ## One filter's pattern
#
# `cv.filter_patterns(model, layer, filters)` runs the book's recipe: a 64×64 grey start with noise,
# then 40 steps, each adding the gradient divided by its root mean square, times `step_size` grey
# levels. The book's VGG16 takes pixels as they are and moves well with steps of 1. The demo model
# divides pixels by 255 first, so one grey level is a tiny change for it: we take steps of 10.
# The result holds the pictures and the filter's mean activation before and after the ascent.

# %%
one = cv.filter_patterns(model, "conv3", [0], preprocess=demo.PREPROCESS, size=64, steps=40,
                         step_size=10, seed=0)
print(f"conv3, filter 0: mean activation {one.start_activation[0]:.1f} -> {one.final_activation[0]:.1f}")
show(one.images[0], titles=["conv3, filter 0"])

# %% [markdown]
# ## Grids for each block
#
# The book shows the first conv layer of each VGG16 block (`block1_conv1` … `block4_conv1`). Each
# block of the demo model holds one conv layer, so we show them all, up to 32 filters each. All
# filters of a layer are optimised together as one batch, which is why this takes seconds.

# %%
for layer in inspector.conv_layers:
    n = min(32, inspector.layer(layer).channels)
    patterns = inspector.filter_patterns(layer, range(n), size=64, steps=40, step_size=10, seed=0)
    rose = int((patterns.final_activation > patterns.start_activation).sum())
    print(f"{layer}: the ascent raised {rose} of {n} filters")
    show(cv.filter_grid(patterns.images, cols=16, margin=3), titles=[f"{layer}, filters 0-{n - 1}"], width=12)

# %% [markdown]
# The first layer's filters respond to colours and simple edges; deeper filters to combinations of
# them: stripes, corners, tips, repeated strokes. A picture that stays grey noise belongs to a
# filter the ascent could not raise: often a *dead* filter whose ReLU never fires (see the
# course's first assignment).
#
# ## A regularised picture beside the book's
#
# Plain ascent produces noisy, high-frequency pictures: tiny pixel changes that excite the filter but
# that no real image contains. `mode="regularized"` (on an `Inspector`) describes the picture by its
# Fourier coefficients with natural colour correlations, optimises them with Adam, and shifts,
# scales and rotates the picture a little at random at every step, so only patterns that survive
# such changes grow. The results read more like textures and object parts.

# %%
plain = inspector.filter_patterns("conv4", range(16), size=64, steps=40, step_size=10, seed=0)
smooth = inspector.filter_patterns("conv4", range(16), size=64, steps=64, seed=0, mode="regularized")
show(cv.filter_grid(plain.images, cols=4, margin=3), cv.filter_grid(smooth.images, cols=4, margin=3),
     titles=["conv4, plain ascent (the book)", "conv4, regularized"], height=4)

# %% [markdown]
# ## The same on a real ImageNet model
#
# The book uses VGG16 here. VGG16 with its classifier (138 million parameters, a 528 MB weights file)
# pushes this kernel's memory to about 2.1 GB, more than a free Binder session's 2 GB; without the
# classifier (`include_top=False`) it fits but cannot name classes, so Grad-CAM would have nothing to
# explain. MobileNets are trained on the same 1000 ImageNet classes at a fraction of the size, so we use
# one: the MobileNet file in `../../shared/data` when that folder sits beside this repository, else
# MobileNetV2 (3.5 million parameters, 14 MB) downloaded by Keras, as on Binder. Offline with neither,
# the next cell says so in one line, and the cells after it fall back to the demo model or skip.

# %%
# NBVAL_IGNORE_OUTPUT
# (which real model is used depends on this machine; the line says which)
from convviz_widgets.notebook import cat_photo, choose_real_model

real_model, line = choose_real_model("../../shared/data")  # a folder beside the repository, if any
print(line)
cat = cat_photo()  # a photo of a cat that ships with scikit-image

# %% [markdown]
# On a real network the difference is larger. We take a layer in the middle of the network
# (`conv_pw_5` of MobileNet, `block_6_expand` of MobileNetV2) and 16 of its filters.

# %%
# NBVAL_IGNORE_OUTPUT
# (depends on the real model chosen above)
if real_model is None:
    print("No real model on this machine: skipped.")
else:
    real = cv.Inspector(real_model)
    layer = "conv_pw_5" if "conv_pw_5" in real.layers else "block_6_expand"
    plain = real.filter_patterns(layer, range(16), size=96, steps=40, seed=0)
    smooth = real.filter_patterns(layer, range(16), size=96, steps=64, seed=0, mode="regularized")
    show(cv.filter_grid(plain.images, cols=4, margin=3), cv.filter_grid(smooth.images, cols=4, margin=3),
         titles=[f"{layer}, plain ascent", f"{layer}, regularized"], height=4)
