# %% [markdown]
# # 1. Intermediate activations
#
# A convnet turns an image into a stack of *feature maps* at every layer: one 2-D map per filter,
# called a *channel*. Each map says where in the image that filter found its pattern. Looking at
# the maps layer after layer shows how the network breaks the picture down into evidence for a
# class. We follow the steps of *Deep Learning with Python* (section 5.4.1), with this package's
# functions instead of hand-written Keras code.

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
# ## The model
#
# The demo convnet: blocks of convolution (3×3 filters, ReLU), batch normalisation and 2×2 max
# pooling, then global average pooling and a softmax over the five shapes. Pooling halves the maps,
# so deeper layers see coarser grids with more channels.

# %%
model = demo.load_model()
model.summary()

# %% [markdown]
# ## An image the model has not seen
#
# The model was trained on 96×96 scenes drawn with seeds below `demo.EVAL_SEED`; seeds from there
# on are fresh. An image is a `(height, width, 3)` array of bytes.

# %%
scene = demo.scene(label=3, seed=demo.EVAL_SEED + 1)
print(scene.image.shape, scene.image.dtype, "- a", demo.CLASS_NAMES[scene.labels[0]])
show(scene.image, titles=["input"])

# %% [markdown]
# ## Every layer's output from one forward pass
#
# The book builds a second Keras model whose outputs are the layers' outputs. `cv.activations` does
# that for every convolution and pooling layer at once and returns a dictionary of
# `(height, width, channels)` arrays. `preprocess` says how pixels are scaled before the model
# sees them; the demo model expects `x / 255`, which is `demo.PREPROCESS` (`"rescale"`).

# %%
acts = cv.activations(model, scene.image, preprocess=demo.PREPROCESS)
for name, act in acts.items():
    print(f"{name:6s} {act.shape}")

# %% [markdown]
# ## One channel
#
# Each channel is a small picture. In the first layer, channels react to simple things: an edge in one
# direction, a colour, a change of brightness. Here are two channels of `conv1` (bright = strong
# response).

# %%
first = acts["conv1"]
show(first[:, :, 4], first[:, :, 7], titles=["conv1, channel 4", "conv1, channel 7"])

# %% [markdown]
# ## Every channel of every layer
#
# `cv.activation_grid` tiles all channels of a layer into one picture, 16 per row, each channel
# scaled to its own range. A channel that is zero everywhere stays flat dark.

# %%
for name, act in acts.items():
    grid = cv.activation_grid(act, images_per_row=16)
    show(grid, titles=[f"{name}: {act.shape[-1]} channels of {act.shape[0]}x{act.shape[1]}"], width=12)

# %% [markdown]
# ## What the grids say
#
# * The first layer keeps almost all of the picture: its channels are edge and colour detectors, and
#   together they still look like the scene.
# * Deeper, maps get smaller and more abstract. They no longer show pixels; they say *there is a
#   corner here* or *a pointed tip there*, features that tell the shapes apart.
# * Deeper, more channels stay silent: the pattern they look for is not in this image. Count them:

# %%
for name, act in acts.items():
    silent = int((act.max(axis=(0, 1)) <= 0).sum())
    print(f"{name:6s} {silent:3d} of {act.shape[-1]:3d} channels are zero everywhere")

# %% [markdown]
# (After batch normalisation a pooled map can be negative, so pooling layers rarely count as silent.)

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

# %%
# NBVAL_IGNORE_OUTPUT
# (depends on the real model chosen above)
if real_model is None:
    print("No real model on this machine: skipped.")
else:
    real_acts = cv.activations(real_model, cat)  # preprocessing recognised from the model's name
    names = [name for name, act in real_acts.items() if act.shape[0] > 1]  # maps, not 1x1 vectors
    print(f"{len(names)} conv/pool layers with spatial maps, from {names[0]} to {names[-1]}")
    show(cat, titles=["input"])
    for name in (names[0], names[len(names) // 2], names[-1]):
        act = real_acts[name]
        show(cv.activation_grid(act[:, :, :64], images_per_row=16), titles=[f"{name}: first 64 channels"], width=12)
