"""Write the course notebooks from the cells below, run them in this repository's kernel and store the outputs.

    .venv/bin/python notebooks/build.py           # every notebook (about 2-3 minutes on 2 cores)
    .venv/bin/python notebooks/build.py 02 03     # only those whose file name contains "02" or "03"

Run it again whenever the demo model or the package's API changes, then check the result with
nbval (see notebooks/README.md). Outputs are deterministic (fixed seeds, rounded numbers); cells
whose output depends on the machine start with ``# NBVAL_IGNORE_OUTPUT`` and a reason.
The assignment's exercise is stored unexecuted (a clean hand-out); its solution is executed.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from textwrap import dedent

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
IGNORE = "# NBVAL_IGNORE_OUTPUT"
QUIET_CELL = "quiet-import"  # tag: the set-up cell whose C++ start-up log is dropped from the stored copy
WIDGET_CELL = "live-widget"  # tag: a cell showing a widget, stored without output (run the notebook to see it)
CELL_TIMEOUT = 600


@dataclass
class Cell:
    """One cell: markdown, or code (optionally with an exercise version and tags)."""

    kind: str
    source: str
    exercise: str | None = None  # assignment only: what the hand-out shows instead of the solution
    tags: list[str] = field(default_factory=list)


def md(text: str, exercise: str | None = None) -> Cell:
    """A markdown cell (with the hand-out's version, if it differs)."""
    return Cell("markdown", dedent(text).strip(), None if exercise is None else dedent(exercise).strip())


def code(text: str, *, ignore: str | None = None, exercise: str | None = None, tags: list[str] | None = None) -> Cell:
    """A code cell; `ignore` gives the reason its output varies (the cell is then not compared by nbval)."""
    body = dedent(text).strip()
    if ignore:
        body = f"{IGNORE}\n# ({ignore})\n{body}"
    return Cell("code", body, None if exercise is None else dedent(exercise).strip(), tags or [])


# ----- cells shared by the notebooks -------------------------------------------------------------------
def setup(modules: str = "demo", third_party: str = "") -> Cell:
    """The first code cell: quiet TensorFlow, imports (`modules` of convviz_widgets), a `show` helper for pictures."""
    extra = f"\n        {third_party}" if third_party else ""
    return code(
        f"""
        import logging
        import os

        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log: set before it is imported

        import matplotlib.pyplot as plt{extra}

        import convviz_widgets as cv
        from convviz_widgets import {modules}

        logging.getLogger("tensorflow").setLevel(logging.ERROR)  # hide its warnings about re-tracing functions


        def show(*pictures, titles=(), height=2.5, width=None):
            \"\"\"Show pictures (uint8 RGB or 2-D arrays) side by side without axes; `width` overrides `height`.\"\"\"
            widths = [p.shape[1] / p.shape[0] for p in pictures]
            height = width / sum(widths) if width else height
            _, axes = plt.subplots(1, len(pictures), figsize=(height * sum(widths), height), squeeze=False,
                                   gridspec_kw={{"width_ratios": widths}})
            for ax, picture, title in zip(axes[0], pictures, list(titles) + [""] * len(pictures)):
                ax.imshow(picture, cmap="viridis" if picture.ndim == 2 else None)
                ax.set_title(title, fontsize=9)
                ax.axis("off")
            plt.show()
        """,
        ignore="TensorFlow may print a few start-up lines from C++ here; they differ from machine to machine",
        tags=[QUIET_CELL],
    )


REAL_MODEL = code(
    """
    import contextlib
    import io
    from pathlib import Path

    import keras
    from skimage import data

    SHARED_WEIGHTS = Path("../../shared/data/mobilenet_2_5_128_tf.h5")  # a folder beside the repository, if any


    def choose_real_model():
        \"\"\"(model or None, a line saying which): the shared MobileNet, else MobileNetV2 downloaded, else None.\"\"\"
        if SHARED_WEIGHTS.exists():
            model = keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(SHARED_WEIGHTS))
            return model, "Real model: ImageNet MobileNet v1 (width 0.25, 128 px) from ../../shared/data."
        try:
            with contextlib.redirect_stdout(io.StringIO()):  # hide the download progress bar
                model = keras.applications.MobileNetV2(weights="imagenet")
            return model, "Real model: ImageNet MobileNetV2 (224 px), weights from Keras' download site."
        except Exception:  # offline: nothing to download from
            return None, "Offline and no ImageNet weights here: the real-model cells below fall back or skip."


    real_model, line = choose_real_model()
    print(line)
    cat = data.chelsea()  # a photo of a cat that ships with scikit-image
    """,
    ignore="which real model is used depends on this machine; the line says which",
)


def real_guard(body: str, reason: str = "depends on the real model chosen above") -> Cell:
    """A code cell that runs `body` on the real model, or says why not."""
    text = 'if real_model is None:\n    print("No real model on this machine: skipped.")\nelse:\n'
    text += "".join(f"    {line}\n" if line else "\n" for line in dedent(body).strip().splitlines())
    return code(text, ignore=reason)


REAL_WHY = md(
    """
    ## The same on a real ImageNet model

    The book uses VGG16 here. VGG16 with its classifier (138 million parameters, a 528 MB weights file)
    pushes this kernel's memory to about 2.1 GB, more than a free Binder session's 2 GB; without the
    classifier (`include_top=False`) it fits but cannot name classes, so Grad-CAM would have nothing to
    explain. MobileNets are trained on the same 1000 ImageNet classes at a fraction of the size, so we use
    one: the MobileNet file in `../../shared/data` when that folder sits beside this repository, else
    MobileNetV2 (3.5 million parameters, 14 MB) downloaded by Keras, as on Binder. Offline with neither,
    the next cell says so in one line, and the cells after it fall back to the demo model or skip.
    """
)


# ----- 00 tour ---------------------------------------------------------------------------------------------
TOUR = [
    md(
        """
        # A tour of convviz_widgets

        One panel shows what a convolutional network has learned about an image:

        * **Activations**: the feature maps every conv and pooling layer computes for the image;
        * **Filters**: for each filter, the picture that excites it most;
        * **Grad-CAM**: a heatmap of where the evidence for a class lies in the image.

        We open the panel twice: on the small demo convnet that ships inside the package, then on a real
        ImageNet model. Notebooks `01`, `02` and `03` then take each view apart step by step, and
        `assignments/` holds an exercise for a course.
        """
    ),
    setup(third_party="from IPython.display import Image, display"),
    md(
        """
        ## The demo model

        The demo convnet was trained on generated scenes of five shapes (circle, square, triangle, star,
        cross), 96×96 pixels each, with clutter on the background. It is small, so everything here runs in
        seconds on a laptop CPU. `demo.scene(label, seed)` draws a scene; the same seed always gives the same
        picture. First, what does the model say about a star?
        """
    ),
    code(
        """
        model = demo.load_model()
        scene = demo.scene(label=3, seed=1)  # label 3 is a star
        for _, name, probability in cv.predict(model, scene.image, class_names=list(demo.CLASS_NAMES), top=3):
            print(f"{name:9s} {probability:.3f}")
        """
    ),
    md(
        """
        Now the panel. Choose another sample scene at the top, open the **Filters** tab (patterns are
        computed when you ask for them) and on **Grad-CAM** switch the class to see where the evidence for
        each shape lies.
        """
    ),
    code(
        """
        panel = cv.ConvVizPanel(model, scene.image)
        panel.wait()  # let the first view finish before the panel is shown
        panel
        """,
        ignore="a live widget: its text form is only a placeholder for the picture",
        tags=[WIDGET_CELL],
    ),
    md(
        """
        Reading this without a running kernel (on GitHub, say)? Widgets are not drawn there. This is what the
        Grad-CAM tab shows for the star: red where the evidence for "star" is strongest, blue where there is
        none. Does it sit on the star, on its edges, or on the clutter?
        """
    ),
    code(
        """
        cam = cv.gradcam(model, scene.image)
        display(Image(cv.to_png(cv.render.upscale(cv.overlay(scene.image, cam.heatmap), 256))))
        """
    ),
    REAL_WHY,
    REAL_MODEL,
    md(
        """
        The panel on the real model, explaining a photo of a cat (or on the demo model again, offline).
        Try the Grad-CAM tab: the evidence for the top class should sit on the cat's face.
        """
    ),
    code(
        """
        if real_model is None:
            real_panel = cv.ConvVizPanel(model, demo.scene(label=0, seed=2).image)
        else:
            real_panel = cv.ConvVizPanel(real_model, cat)
        real_panel.wait()
        real_panel
        """,
        ignore="a live widget, on whichever model was available",
        tags=[WIDGET_CELL],
    ),
    md(
        """
        ## Where next

        * `01_intermediate_activations.ipynb`: what each layer computes for one image;
        * `02_filter_patterns.ipynb`: what each filter looks for;
        * `03_gradcam.ipynb`: which part of the image made the model decide, and whether to believe it;
        * `assignments/shapes_assignment.ipynb`: an exercise with automatic checks.
        """
    ),
]


# ----- 01 intermediate activations ---------------------------------------------------------------------------
ACTIVATIONS = [
    md(
        """
        # 1. Intermediate activations

        A convnet turns an image into a stack of *feature maps* at every layer: one 2-D map per filter,
        called a *channel*. Each map says where in the image that filter found its pattern. Looking at
        the maps layer after layer shows how the network breaks the picture down into evidence for a
        class. We follow the steps of *Deep Learning with Python* (section 5.4.1), with this package's
        functions instead of hand-written Keras code.
        """
    ),
    setup(),
    md(
        """
        ## The model

        The demo convnet: blocks of convolution (3×3 filters, ReLU), batch normalisation and 2×2 max
        pooling, then global average pooling and a softmax over the five shapes. Pooling halves the maps,
        so deeper layers see coarser grids with more channels.
        """
    ),
    code(
        """
        model = demo.load_model()
        model.summary()
        """
    ),
    md(
        """
        ## An image the model has not seen

        The model was trained on 96×96 scenes drawn with seeds below `demo.EVAL_SEED`; seeds from there
        on are fresh. An image is a `(height, width, 3)` array of bytes.
        """
    ),
    code(
        """
        scene = demo.scene(label=3, seed=demo.EVAL_SEED + 1)
        print(scene.image.shape, scene.image.dtype, "- a", demo.CLASS_NAMES[scene.labels[0]])
        show(scene.image, titles=["input"])
        """
    ),
    md(
        """
        ## Every layer's output from one forward pass

        The book builds a second Keras model whose outputs are the layers' outputs. `cv.activations` does
        that for every convolution and pooling layer at once and returns a dictionary of
        `(height, width, channels)` arrays. `preprocess` says how pixels are scaled before the model
        sees them; the demo model expects `x / 255`, which is `demo.PREPROCESS` (`"rescale"`).
        """
    ),
    code(
        """
        acts = cv.activations(model, scene.image, preprocess=demo.PREPROCESS)
        for name, act in acts.items():
            print(f"{name:6s} {act.shape}")
        """
    ),
    md(
        """
        ## One channel

        Each channel is a small picture. In the first layer, channels react to simple things: an edge in one
        direction, a colour, a change of brightness. Here are two channels of `conv1` (bright = strong
        response).
        """
    ),
    code(
        """
        first = acts["conv1"]
        show(first[:, :, 4], first[:, :, 7], titles=["conv1, channel 4", "conv1, channel 7"])
        """
    ),
    md(
        """
        ## Every channel of every layer

        `cv.activation_grid` tiles all channels of a layer into one picture, 16 per row, each channel
        scaled to its own range. A channel that is zero everywhere stays flat dark.
        """
    ),
    code(
        """
        for name, act in acts.items():
            grid = cv.activation_grid(act, images_per_row=16)
            show(grid, titles=[f"{name}: {act.shape[-1]} channels of {act.shape[0]}x{act.shape[1]}"], width=12)
        """
    ),
    md(
        """
        ## What the grids say

        * The first layer keeps almost all of the picture: its channels are edge and colour detectors, and
          together they still look like the scene.
        * Deeper, maps get smaller and more abstract. They no longer show pixels; they say *there is a
          corner here* or *a pointed tip there*, features that tell the shapes apart.
        * Deeper, more channels stay silent: the pattern they look for is not in this image. Count them:
        """
    ),
    code(
        """
        for name, act in acts.items():
            silent = int((act.max(axis=(0, 1)) <= 0).sum())
            print(f"{name:6s} {silent:3d} of {act.shape[-1]:3d} channels are zero everywhere")
        """
    ),
    md(
        """
        (After batch normalisation a pooled map can be negative, so pooling layers rarely count as silent.)
        """
    ),
    REAL_WHY,
    REAL_MODEL,
    real_guard(
        """
        real_acts = cv.activations(real_model, cat)  # preprocessing recognised from the model's name
        names = [name for name, act in real_acts.items() if act.shape[0] > 1]  # maps, not 1x1 vectors
        print(f"{len(names)} conv/pool layers with spatial maps, from {names[0]} to {names[-1]}")
        show(cat, titles=["input"])
        for name in (names[0], names[len(names) // 2], names[-1]):
            act = real_acts[name]
            show(cv.activation_grid(act[:, :, :64], images_per_row=16), titles=[f"{name}: first 64 channels"], width=12)
        """
    ),
]


# ----- 02 filter patterns ---------------------------------------------------------------------------------
PATTERNS = [
    md(
        """
        # 2. Filter patterns

        What does a filter look for? Start from a grey picture with a little noise and change its pixels,
        step after step, in the direction that raises the filter's mean activation: gradient *ascent* in
        input space. The picture we end with is a pattern the filter responds to strongly. We follow
        *Deep Learning with Python* (section 5.4.2) with this package's functions.
        """
    ),
    setup(),
    md(
        """
        ## The model and its conv layers
        """
    ),
    code(
        """
        model = demo.load_model()
        inspector = cv.Inspector(model, preprocess=demo.PREPROCESS)  # binds the model once; reused below
        print(inspector.conv_layers)
        """
    ),
    md(
        """
        ## One filter's pattern

        `cv.filter_patterns(model, layer, filters)` runs the book's recipe: a 64×64 grey start with noise,
        then 40 steps, each adding the gradient divided by its root mean square, times `step_size` grey
        levels. The book's VGG16 takes pixels as they are and moves well with steps of 1. The demo model
        divides pixels by 255 first, so one grey level is a tiny change for it: we take steps of 10.
        The result holds the pictures and the filter's mean activation before and after the ascent.
        """
    ),
    code(
        """
        one = cv.filter_patterns(model, "conv3", [0], preprocess=demo.PREPROCESS, size=64, steps=40,
                                 step_size=10, seed=0)
        print(f"conv3, filter 0: mean activation {one.start_activation[0]:.1f} -> {one.final_activation[0]:.1f}")
        show(one.images[0], titles=["conv3, filter 0"])
        """
    ),
    md(
        """
        ## Grids for each block

        The book shows the first conv layer of each VGG16 block (`block1_conv1` … `block4_conv1`). Each
        block of the demo model holds one conv layer, so we show them all, up to 32 filters each. All
        filters of a layer are optimised together as one batch, which is why this takes seconds.
        """
    ),
    code(
        """
        for layer in inspector.conv_layers:
            n = min(32, inspector.layer(layer).channels)
            patterns = inspector.filter_patterns(layer, range(n), size=64, steps=40, step_size=10, seed=0)
            rose = int((patterns.final_activation > patterns.start_activation).sum())
            print(f"{layer}: the ascent raised {rose} of {n} filters")
            show(cv.filter_grid(patterns.images, cols=16, margin=3), titles=[f"{layer}, filters 0-{n - 1}"], width=12)
        """
    ),
    md(
        """
        The first layer's filters respond to colours and simple edges; deeper filters to combinations of
        them: stripes, corners, tips, repeated strokes. A picture that stays grey noise belongs to a
        filter the ascent could not raise: often a *dead* filter whose ReLU never fires (see the
        assignment).

        ## A regularised picture beside the book's

        Plain ascent produces noisy, high-frequency pictures: tiny pixel changes that excite the filter but
        that no real image contains. `mode="regularized"` (on an `Inspector`) describes the picture by its
        Fourier coefficients with natural colour correlations, optimises them with Adam, and shifts,
        scales and rotates the picture a little at random at every step, so only patterns that survive
        such changes grow. The results read more like textures and object parts.
        """
    ),
    code(
        """
        plain = inspector.filter_patterns("conv4", range(16), size=64, steps=40, step_size=10, seed=0)
        smooth = inspector.filter_patterns("conv4", range(16), size=64, steps=64, seed=0, mode="regularized")
        show(cv.filter_grid(plain.images, cols=4, margin=3), cv.filter_grid(smooth.images, cols=4, margin=3),
             titles=["conv4, plain ascent (the book)", "conv4, regularized"], height=4)
        """
    ),
    REAL_WHY,
    REAL_MODEL,
    md(
        """
        On a real network the difference is larger. We take a layer in the middle of the network
        (`conv_pw_5` of MobileNet, `block_6_expand` of MobileNetV2) and 16 of its filters.
        """
    ),
    real_guard(
        """
        real = cv.Inspector(real_model)
        layer = "conv_pw_5" if "conv_pw_5" in real.layers else "block_6_expand"
        plain = real.filter_patterns(layer, range(16), size=96, steps=40, seed=0)
        smooth = real.filter_patterns(layer, range(16), size=96, steps=64, seed=0, mode="regularized")
        show(cv.filter_grid(plain.images, cols=4, margin=3), cv.filter_grid(smooth.images, cols=4, margin=3),
             titles=[f"{layer}, plain ascent", f"{layer}, regularized"], height=4)
        """
    ),
]


# ----- 03 Grad-CAM -----------------------------------------------------------------------------------------
GRADCAM = [
    md(
        """
        # 3. Grad-CAM: where is the evidence for a class?

        Grad-CAM answers: which part of *this* image made the model say *this* class? Take the feature maps
        of the last conv layer; weigh each channel by how much the class score grows when that channel
        grows (its gradient, averaged over the map); add the weighted channels and keep the positive part.
        The result is a coarse heatmap on the conv layer's grid, which we enlarge and lay over the image.
        We follow *Deep Learning with Python* (section 5.4.3), then ask whether the heatmap deserves trust.
        """
    ),
    setup("demo, metrics"),
    md(
        """
        ## The model's prediction

        An `Inspector` binds the model, its preprocessing and its class names once.
        """
    ),
    code(
        """
        model = demo.load_model()
        inspector = cv.Inspector(model, preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
        scene = demo.scene(label=2, seed=demo.EVAL_SEED + 5)
        for index, name, probability in inspector.predict(scene.image, top=3):
            print(f"{index} {name:9s} {probability:.3f}")
        show(scene.image, titles=[f"a {demo.CLASS_NAMES[scene.labels[0]]}"])
        """
    ),
    md(
        """
        ## The heatmap

        `gradcam` explains the top class unless you pass `class_index`. It uses the last conv feature map
        (found for you) and differentiates the class *logit*, the score before softmax: a probability
        close to 1 barely changes when the image does, so its gradient says little.
        """
    ),
    code(
        """
        cam = inspector.gradcam(scene.image)
        print(f"class {cam.class_name!r}, layer {cam.layer!r}, logit {cam.score:.2f}, grid {cam.heatmap.shape}")
        show(cam.heatmap, titles=["Grad-CAM on the conv grid"])
        """
    ),
    md(
        """
        ## The overlay

        Enlarged to the image and coloured (red = strong evidence), the heatmap lies over the picture.
        """
    ),
    code(
        """
        show(scene.image, cv.overlay(scene.image, cam.heatmap, alpha=0.4), titles=["image", "Grad-CAM overlay"])
        """
    ),
    md(
        """
        ## One heatmap per class

        With two shapes in a scene, each class should light up its own shape. The demo scenes come with a
        mask of every shape, so we can check with the *pointing game*: a hit when the heatmap's maximum lies
        on the object (or within 15 pixels of it).
        """
    ),
    code(
        """
        pair = demo.scene(seed=demo.EVAL_SEED + 2, objects=2)
        cams = [inspector.gradcam(pair.image, class_index=label) for label in pair.labels]
        for c, mask in zip(cams, pair.masks):
            print(f"{c.class_name:9s} p = {c.probability:.2f}  pointing game hit: {metrics.pointing_game(c, mask)}")
        show(pair.image, *[cv.overlay(pair.image, c.heatmap) for c in cams],
             titles=["two shapes"] + [f"Grad-CAM of {c.class_name}" for c in cams])
        """
    ),
    md(
        """
        ## Grad-CAM++ and Score-CAM

        Two later methods change only how the channels are weighed. **Grad-CAM++** counts positive gradients
        with extra weights, which helps when the evidence is spread over several places. **Score-CAM** uses
        no gradients: it masks the input with each channel's enlarged map and weighs the channel by the
        class probability of the masked image.
        """
    ),
    code(
        """
        label = pair.labels[0]
        methods = ["gradcam", "gradcam++", "scorecam"]
        maps = [inspector.gradcam(pair.image, class_index=label, method=m) for m in methods]
        show(*[cv.overlay(pair.image, m.heatmap) for m in maps],
             titles=[f"{m}: {demo.CLASS_NAMES[label]}" for m in methods])
        """
    ),
    md(
        """
        ## Should you believe a heatmap?

        A heatmap is a claim about the model, and claims can be tested (`convviz_widgets.metrics`):

        * **Pointing game** over many two-shape scenes, for each shape: how often does the maximum land on
          the right shape? *Energy* is the share of the heatmap's mass inside the shape. A heatmap that
          always points at the image centre is the baseline to beat.
        * **Deletion**: blur away pixels in the order the heatmap ranks them and follow the class
          probability. If the heatmap is faithful the probability falls sooner than when pixels go in
          random order, so the area under the curve (AUC) is smaller.
        """
    ),
    code(
        """
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
        """
    ),
    code(
        """
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
        """
    ),
    REAL_WHY,
    REAL_MODEL,
    real_guard(
        """
        real = cv.Inspector(real_model)  # ImageNet class names and preprocessing are recognised
        for index, name, probability in real.predict(cat, top=3):
            print(f"{index:4d} {name:20s} {probability:.2f}")
        real_maps = [real.gradcam(cat, method=m) for m in ("gradcam", "gradcam++")]
        show(cat, *[cv.overlay(cat, m.heatmap) for m in real_maps],
             titles=["input"] + [f"{m.method}: {m.class_name}" for m in real_maps])
        """
    ),
]


# ----- the assignment ----------------------------------------------------------------------------------------
TODO = "# YOUR CODE HERE"
ASSIGNMENT = [
    md(
        """
        # Assignment: what has the shape classifier learned?

        You will

        1. get a small convnet that recognises five shapes,
        2. find its *dead* filters,
        3. explain one of its mistakes with Grad-CAM,
        4. test whether a Grad-CAM heatmap points at the right object.

        Fill in every cell marked `# YOUR CODE HERE` (replace the `...`), then run the check cell below it.
        A green ✔ means the task is done; a red ✘ says what is still missing. Notebooks `01`–`03` in the
        folder above show every function you need.
        """
    ),
    code(
        """
        import logging
        import os

        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # quiet TensorFlow's start-up log

        import matplotlib.pyplot as plt
        import numpy as np  # noqa: F401 (numpy, cv and metrics are there for your answers)

        import convviz_widgets as cv  # noqa: F401
        from convviz_widgets import checks, demo, metrics  # noqa: F401

        logging.getLogger("tensorflow").setLevel(logging.ERROR)
        """,
        ignore="TensorFlow may print a few start-up lines from C++ here",
        tags=[QUIET_CELL],
    ),
    md(
        """
        ## Task 1: a convnet for the shape scenes

        The scenes are 96×96 RGB pictures of one shape (`demo.CLASS_NAMES`) on a cluttered background.
        `demo.scene(label, seed)` draws one; `demo.make_batch(first_seed, n)` draws many for training.
        Put a trained convnet in `model`: load the one trained on these scenes with
        `demo.load_model()`, or (optional, minutes on a CPU) train your own: a few `Conv2D` layers with
        `padding="same"` and `MaxPooling2D`, then `GlobalAveragePooling2D` and `Dense(5, activation="softmax")`,
        fed pixels divided by 255. The check wants at least 80 % accuracy on 200 new scenes.
        """
    ),
    code("model = demo.load_model()", exercise=f"{TODO}\nmodel = ..."),
    code("checks.check_model(model)", tags=["check"]),
    md(
        """
        ## Task 2: dead filters

        A filter is *dead* when its ReLU output is 0 at every position for every input: it never fires, so
        later layers cannot use it, and since its gradient is 0 as well, training cannot revive it.
        Find all dead filters of the model's conv layers on the 32 scenes below:

        * the conv layers are `cv.Inspector(model).conv_layers`;
        * `cv.activations(model, image, preprocess=demo.PREPROCESS, layers=...)` gives each layer's output
          as an array `(height, width, filters)`;
        * a filter is dead when its maximum over all positions of all 32 scenes is 0.

        Answer with a dict from layer name to the list of its dead filters, e.g. `{"conv2": [5, 17]}`
        (leave out layers without any).
        """
    ),
    code("scenes = [demo.scene(seed=s) for s in range(32)]"),
    code(
        """
        conv_layers = cv.Inspector(model, preprocess=demo.PREPROCESS).conv_layers
        peak = {}  # layer -> each filter's highest output so far
        for s in scenes:
            acts = cv.activations(model, s.image, preprocess=demo.PREPROCESS, layers=conv_layers)
            for name in conv_layers:
                top = acts[name].max(axis=(0, 1))
                peak[name] = np.maximum(peak[name], top) if name in peak else top
        dead = {name: np.flatnonzero(top <= 0).tolist() for name, top in peak.items() if (top <= 0).any()}
        print(dead)
        """,
        exercise=f"{TODO}\ndead = ...",
    ),
    code("checks.check_dead_filters(model, dead)", tags=["check"]),
    md(
        """
        ## Task 3: explain a mistake

        The model is right on nearly every ordinary scene, so look where it is weaker: scenes drawn with
        `difficulty=1.5` (more clutter, smaller shapes, more noise). Find the first seed `s = 0, 1, 2, ...`
        for which the model's top class for `demo.scene(seed=s, difficulty=1.5)` differs from the scene's
        label (`scene.labels[0]`). Put that scene's picture in `image` and its true class in `label`. Then
        compute two Grad-CAMs of `image`: `cam_predicted` for the class the model chose and `cam_true` for
        the true class, and show both overlays side by side (`cv.overlay(image, cam.heatmap)`).

        Hint: predicting 100 scenes at once is fast: `model.predict_on_batch(images / 255.0)`.
        """
    ),
    code(
        """
        for start in range(0, 2000, 100):
            batch = [demo.scene(seed=s, difficulty=1.5) for s in range(start, start + 100)]
            predicted = model.predict_on_batch(np.stack([b.image for b in batch]) / 255.0).argmax(axis=1)
            wrong = [b for b, p in zip(batch, predicted) if p != b.labels[0]]
            if wrong:
                break
        image, label = wrong[0].image, wrong[0].labels[0]

        inspector = cv.Inspector(model, preprocess=demo.PREPROCESS, class_names=list(demo.CLASS_NAMES))
        cam_predicted = inspector.gradcam(image)  # the top class
        cam_true = inspector.gradcam(image, class_index=label)
        fig, axes = plt.subplots(1, 3, figsize=(9, 3))
        titles = [f"a {demo.CLASS_NAMES[label]}", f"evidence for {cam_predicted.class_name} (chosen)",
                  f"evidence for {cam_true.class_name} (true)"]
        pictures = [image, cv.overlay(image, cam_predicted.heatmap), cv.overlay(image, cam_true.heatmap)]
        for ax, picture, title in zip(axes, pictures, titles):
            ax.imshow(picture)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        plt.show()
        """,
        exercise=f"{TODO}\nimage, label = ..., ...\ncam_predicted = ...\ncam_true = ...",
    ),
    code("checks.check_misclassification(model, image, label, cam_predicted, cam_true)", tags=["check"]),
    md(
        """
        **In two sentences** (not checked automatically): what in the picture did the model take for the
        wrong class? Compare where the two heatmaps are hot: on a piece of clutter, on one corner or tip of
        the shape, or on nothing in particular?
        """
    ),
    md(
        """
        *Teacher's note:* answers depend on the scene found. A good answer says where each map is hot (on the
        shape, on a blob or line of clutter, at the border) and links that to the wrong class, e.g. "the
        square map sits on the circle's blurred edge, where the noise makes it look cornered; the circle map
        is weaker and spread out."
        """,
        exercise="*Your answer here.*",
    ),
    md(
        """
        ## Task 4: does the heatmap point at the right object?

        The scene below holds two shapes; `pair.labels` are their classes and `pair.masks` their exact
        pixel masks. For each shape compute the Grad-CAM of its class, and play the *pointing game* with
        `metrics.pointing_game(cam.heatmap, mask)`: a hit (`True`) when the heatmap's maximum lies on the
        shape, or within 15 pixels of it. Put the two CAMs in `cams` and the two results in `hits`, in the
        order of `pair.labels`.
        """
    ),
    code(
        """
        pair = demo.scene(seed=3, objects=2)
        print("classes:", [demo.CLASS_NAMES[label] for label in pair.labels])
        plt.imshow(pair.image)
        plt.axis("off")
        plt.show()
        """
    ),
    code(
        """
        cams = [inspector.gradcam(pair.image, class_index=label) for label in pair.labels]
        hits = [metrics.pointing_game(cam.heatmap, mask) for cam, mask in zip(cams, pair.masks)]
        print(hits)
        """,
        exercise=f"{TODO}\ncams = ...\nhits = ...",
    ),
    code("checks.check_pointing(model, pair, cams, hits)", tags=["check"]),
    md(
        """
        ## Going further

        One scene proves little. `metrics.scene_targets` and `metrics.localization_summary` play the
        pointing game over many scenes at once; compare Grad-CAM with `method="gradcam++"` and
        `method="scorecam"`, and with a heatmap that always points at the centre
        (`metrics.centre_prior`). Which would you trust?
        """
    ),
]


@dataclass(frozen=True)
class Spec:
    """A notebook to write: its path, cells, and whether it is the assignment's exercise (stored unexecuted)."""

    path: Path
    cells: list[Cell]
    exercise: bool = False


NOTEBOOKS = [
    Spec(HERE / "00_tour.ipynb", TOUR),
    Spec(HERE / "01_intermediate_activations.ipynb", ACTIVATIONS),
    Spec(HERE / "02_filter_patterns.ipynb", PATTERNS),
    Spec(HERE / "03_gradcam.ipynb", GRADCAM),
    Spec(HERE / "assignments" / "shapes_assignment.ipynb", ASSIGNMENT, exercise=True),
    Spec(HERE / "assignments" / "shapes_assignment_solution.ipynb", ASSIGNMENT),
]


def to_notebook(spec: Spec) -> nbformat.NotebookNode:
    """The notebook's cells (exercise or solution versions), without outputs."""
    cells = []
    for cell in spec.cells:
        source = cell.exercise if spec.exercise and cell.exercise is not None else cell.source
        if cell.kind == "markdown":
            cells.append(new_markdown_cell(source))
            continue
        tags = list(cell.tags)
        if spec.exercise and "check" in tags:
            tags.append("raises-exception")  # unsolved, the check fails; Run All goes on to the next task
        cells.append(new_code_cell(source, metadata={"tags": tags} if tags else {}))
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}
    nb.metadata["language_info"] = {"name": "python"}
    return nb


def execute(nb: nbformat.NotebookNode, cwd: Path) -> None:
    """Run every cell in a fresh kernel of this environment (cwd = the notebook's folder)."""
    client = NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3", record_timing=False,
                            store_widget_state=False, resources={"metadata": {"path": str(cwd)}})
    client.execute()


def tidy(nb: nbformat.NotebookNode) -> list[str]:
    """Drop C++ start-up logs and widget placeholders from the stored copy; return problems left in outputs."""
    problems = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tags = cell.metadata.get("tags", [])
        if QUIET_CELL in tags:
            cell.outputs = [o for o in cell.outputs if o.get("name") != "stderr"]
        if WIDGET_CELL in tags:
            cell.outputs = []
        compared = IGNORE not in cell.source
        for out in cell.outputs:
            if out.output_type == "error":
                problems.append(f"cell {index}: {out.ename}: {out.evalue}")
            elif compared and out.get("name") == "stderr":
                problems.append(f"cell {index}: stderr in a compared cell: {out.text[:200]!r}")
    return problems


def build(spec: Spec) -> list[str]:
    """Write (and, unless it is the exercise, run) one notebook; returns problems found in its outputs."""
    nb = to_notebook(spec)
    problems: list[str] = []
    if not spec.exercise:
        execute(nb, spec.path.parent)
        problems = tidy(nb)
    spec.path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.validate(nb)
    nbformat.write(nb, spec.path)
    return problems


def main(argv: list[str] | None = None) -> int:
    """Build the notebooks named on the command line (substrings of file names), or all."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("only", nargs="*", help="build only notebooks whose file name contains one of these")
    args = parser.parse_args(argv)
    failed = False
    for spec in NOTEBOOKS:
        if args.only and not any(part in spec.path.name for part in args.only):
            continue
        start = time.perf_counter()
        problems = build(spec)
        status = "ok" if not problems else "PROBLEMS"
        print(f"{spec.path.relative_to(HERE)}: {status} ({time.perf_counter() - start:.0f} s)", flush=True)
        for problem in problems:
            print(f"  {problem}")
        failed |= bool(problems)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
