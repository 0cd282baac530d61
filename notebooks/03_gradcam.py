# %% [markdown]
# # 3. Grad-CAM: where is the evidence for a class?
#
# Grad-CAM answers: which part of *this* image made the model say *this* class? Take the feature maps
# of the last conv layer; weigh each channel by how much the class score grows when that channel
# grows (its gradient, averaged over the map); add the weighted channels and keep the positive part.
# The result is a coarse heatmap on the conv layer's grid, which we enlarge and lay over the image.
# We follow *Deep Learning with Python* (section 5.4.3), then ask whether the heatmap deserves trust.

# %% tags=["quiet-import"]
# NBVAL_IGNORE_OUTPUT
# (TensorFlow may print a few start-up lines from C++ here; they differ from machine to machine)
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log: set before it is imported

import matplotlib.pyplot as plt

import convviz_widgets as cv
from convviz_widgets import demo, metrics
from convviz_widgets.notebook import quiet_tensorflow, show

quiet_tensorflow()  # hide its warnings about re-tracing functions

# %% [markdown]
# ## The model's prediction
#
# An `Inspector` binds the model, its preprocessing and its class names once.

# %%
model = demo.load_model()
inspector = cv.Inspector(model, preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
scene = demo.scene(label=2, seed=demo.EVAL_SEED + 5)
for index, name, probability in inspector.predict(scene.image, top=3):
    print(f"{index} {name:9s} {probability:.3f}")
show(scene.image, titles=[f"a {demo.CLASS_NAMES[scene.labels[0]]}"])

# %% [markdown]
# ## The heatmap
#
# `gradcam` explains the top class unless you pass `class_index`. It uses the last conv feature map
# (found for you) and differentiates the class *logit*, the score before softmax: a probability
# close to 1 barely changes when the image does, so its gradient says little.

# %%
cam = inspector.gradcam(scene.image)
print(f"class {cam.class_name!r}, layer {cam.layer!r}, logit {cam.score:.2f}, grid {cam.heatmap.shape}")
show(cam.heatmap, titles=["Grad-CAM on the conv grid"])

# %% [markdown]
# ## The overlay
#
# Enlarged to the image and coloured (red = strong evidence), the heatmap lies over the picture.

# %%
show(scene.image, cv.overlay(scene.image, cam.heatmap, alpha=0.4), titles=["image", "Grad-CAM overlay"])

# %% [markdown]
# ## One heatmap per class
#
# With two shapes in a scene, each class should light up its own shape. The demo scenes come with a
# mask of every shape, so we can check with the *pointing game*: a hit when the heatmap's maximum lies
# on the object (or within 15 pixels of it).

# %%
pair = demo.scene(seed=demo.EVAL_SEED + 2, objects=2)
cams = [inspector.gradcam(pair.image, class_index=label) for label in pair.labels]
for c, mask in zip(cams, pair.masks):
    print(f"{c.class_name:9s} p = {c.probability:.2f}  pointing game hit: {metrics.pointing_game(c, mask)}")
show(pair.image, *[cv.overlay(pair.image, c.heatmap) for c in cams],
     titles=["two shapes"] + [f"Grad-CAM of {c.class_name}" for c in cams])

# %% [markdown]
# ## Grad-CAM++ and Score-CAM
#
# Two later methods change only how the channels are weighed. **Grad-CAM++** counts positive gradients
# with extra weights, which helps when the evidence is spread over several places. **Score-CAM** uses
# no gradients: it masks the input with each channel's enlarged map and weighs the channel by the
# class probability of the masked image.

# %%
label = pair.labels[0]
methods = ["gradcam", "gradcam++", "scorecam"]
maps = [inspector.gradcam(pair.image, class_index=label, method=m) for m in methods]
show(*[cv.overlay(pair.image, m.heatmap) for m in maps],
     titles=[f"{m}: {demo.CLASS_NAMES[label]}" for m in methods])

# %% [markdown]
# ## Should you believe a heatmap?
#
# A heatmap is a claim about the model, and claims can be tested (`convviz_widgets.metrics`):
#
# * **Pointing game** over many two-shape scenes, for each shape: how often does the maximum land on
#   the right shape? *Energy* is the share of the heatmap's mass inside the shape. A heatmap that
#   always points at the image centre is the baseline to beat.
# * **Deletion**: blur away pixels in the order the heatmap ranks them and follow the class
#   probability. If the heatmap is faithful the probability falls sooner than when pixels go in
#   random order, so the area under the curve (AUC) is smaller.

# %%
pairs = [demo.scene(seed=demo.EVAL_SEED + i, objects=2) for i in range(12)]
targets = metrics.scene_targets(pairs)  # one target per shape: image, class, mask
rows = []
for method in methods:
    summary = metrics.localization_summary(method, metrics.compute_cams(inspector, targets, method), targets)
    rows.append([method, summary.pointing.accuracy, summary.pointing.energy])
centre = metrics.pointing_accuracy([metrics.centre_prior((96, 96))] * len(targets), [t.mask for t in targets])
rows.append(["centre baseline", centre.accuracy, centre.energy])
print(f"{len(targets)} shapes in {len(pairs)} scenes")
print(metrics.format_table(["heatmap", "pointing accuracy", "energy"], rows))

# %%
by_map = metrics.deletion_curve(inspector, scene.image, cam, cam.class_index, steps=32)
by_chance = metrics.deletion_curve(inspector, scene.image, None, cam.class_index, steps=32, order="random")
print(f"deletion AUC: Grad-CAM order {by_map.auc:.3f}, random order {by_chance.auc:.3f} (lower is better)")
plt.figure(figsize=(5, 3))
plt.plot(by_map.fractions, by_map.probabilities, label="pixels in Grad-CAM order")
plt.plot(by_chance.fractions, by_chance.probabilities, label="pixels in random order")
plt.xlabel("share of pixels blurred away")
plt.ylabel(f"p({cam.class_name})")
plt.legend()
plt.show()

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
    real = cv.Inspector(real_model)  # ImageNet class names and preprocessing are recognised
    for index, name, probability in real.predict(cat, top=3):
        print(f"{index:4d} {name:20s} {probability:.2f}")
    real_maps = [real.gradcam(cat, method=m) for m in ("gradcam", "gradcam++")]
    show(cat, *[cv.overlay(cat, m.heatmap) for m in real_maps],
         titles=["input"] + [f"{m.method}: {m.class_name}" for m in real_maps])
