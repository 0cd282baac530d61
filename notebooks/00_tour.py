# %% [markdown]
# # A tour of convviz_widgets
#
# One panel shows what a convolutional network has learned about an image:
#
# * **Activations**: the feature maps every conv and pooling layer computes for the image;
# * **Filters**: for each filter, the picture that excites it most;
# * **Grad-CAM**: a heatmap of where the evidence for a class lies in the image.
#
# We open the panel twice: on the small demo convnet that ships inside the package, then on a real
# ImageNet model. Notebooks `01`, `02` and `03` then take each view apart step by step, and
# `../course/` holds four graded assignments for a course (nbgrader).

# %% tags=["quiet-import"]
# NBVAL_IGNORE_OUTPUT
# (TensorFlow may print a few start-up lines from C++ here; they differ from machine to machine)
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log: set before it is imported

from IPython.display import Image, display

import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.notebook import quiet_tensorflow

quiet_tensorflow()  # hide its warnings about re-tracing functions

# %% [markdown]
# ## The demo model
#
# The demo convnet was trained on generated scenes of five shapes (circle, square, triangle, star,
# cross), 96×96 pixels each, with clutter on the background. It is small, so everything here runs in
# seconds on a laptop CPU. `demo.scene(label, seed)` draws a scene; the same seed always gives the same
# picture. First, what does the model say about a star?

# %%
model = demo.load_model()
scene = demo.scene(label=3, seed=1)  # label 3 is a star
for _, name, probability in cv.predict(model, scene.image, class_names=list(demo.CLASS_NAMES), top=3):
    print(f"{name:9s} {probability:.3f}")

# %% [markdown]
# Now the panel. Choose another sample scene at the top, open the **Filters** tab (patterns are
# computed when you ask for them) and on **Grad-CAM** switch the class to see where the evidence for
# each shape lies.

# %% tags=["live-widget"]
# NBVAL_IGNORE_OUTPUT
# (a live widget: its text form is only a placeholder for the picture)
panel = cv.ConvVizPanel(model, scene.image)
panel.wait()  # let the first view finish before the panel is shown
panel

# %% [markdown]
# Reading this without a running kernel (on GitHub, say)? Widgets are not drawn there. This is what the
# Grad-CAM tab shows for the star: red where the evidence for "star" is strongest, blue where there is
# none. Does it sit on the star, on its edges, or on the clutter?

# %%
cam = cv.gradcam(model, scene.image)
display(Image(cv.to_png(cv.render.upscale(cv.overlay(scene.image, cam.heatmap), 256))))

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
# The panel on the real model, explaining a photo of a cat (or on the demo model again, offline).
# Try the Grad-CAM tab: the evidence for the top class should sit on the cat's face.

# %% tags=["live-widget"]
# NBVAL_IGNORE_OUTPUT
# (a live widget, on whichever model was available)
if real_model is None:
    real_panel = cv.ConvVizPanel(model, demo.scene(label=0, seed=2).image)
else:
    real_panel = cv.ConvVizPanel(real_model, cat)
real_panel.wait()
real_panel

# %% [markdown]
# ## Where next
#
# * `01_intermediate_activations.ipynb`: what each layer computes for one image;
# * `02_filter_patterns.ipynb`: what each filter looks for;
# * `03_gradcam.ipynb`: which part of the image made the model decide, and whether to believe it;
# * `../course/source/`: four assignments with autograded tests (activations, filter patterns, Grad-CAM,
#   a model that learned a shortcut).
