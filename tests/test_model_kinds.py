"""The README's table of model kinds, row by row: each row's claims run on a small model of that kind.

A row is one `Kind` entry of `KINDS`: the row's name as the README writes it, a builder of a small model of
that kind (with an image and the options a user passes), and what the row says works. The maths (activations,
filter patterns, every CAM method, top_examples) is checked under every Keras backend; the panel and the
report under the suite's backend. The oracles are written here: each layer's map and each explained score
are computed from the user's model directly (sub-models of its layers, its head's weights).
A last test keeps the README's table and `KINDS` the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from conftest import MOBILENET_WEIGHTS, rng_image, small_convnet
from keras import layers
from vit_models import small_vit

import convviz_widgets as cv
from convviz_widgets import ConvVizPanel
from convviz_widgets.report import build_report

README = Path(__file__).resolve().parents[1] / "README.md"
CORE_WORKS = ("activations", "filter patterns", "CAM methods", "top_examples")
VIEW_WORKS = ("panel", "report")


@dataclass
class Case:
    """A small model of one kind, an image for it, and what a user passes with it."""

    model: keras.Model
    image: np.ndarray
    layer: str  # a feature layer whose map, filter patterns and top examples are checked
    pixels: Callable[[np.ndarray], np.ndarray]  # uint8 images (B, H, W, 3) -> the model's input, written here
    score: Callable[[np.ndarray], float]  # the default target's score for one uint8 image, written here
    options: dict = field(default_factory=dict)  # preprocess=, output=, class_names=
    grid: Callable[[np.ndarray], np.ndarray] | None = None  # the layer's raw output (B, ...) -> (B, h, w, C)

    def map_of(self, images: np.ndarray) -> np.ndarray:
        """`layer`'s (B, h, w, C) maps of uint8 images, from the user's model directly (the oracle)."""
        node = _find(self.model, self.layer)
        sub = keras.Model(node[0].inputs[0], node[1].output)
        out = np.asarray(keras.ops.convert_to_numpy(sub(self.pixels(images), training=False)), np.float64)
        return self.grid(out) if self.grid else out


@dataclass(frozen=True)
class Kind:
    """One row of the README's table: its name there, a builder, what its "what works" cell lists."""

    row: str
    build: Callable[[], Case]
    works: tuple[str, ...] = CORE_WORKS + VIEW_WORKS
    core: bool = True  # backend-neutral maths: the core checks run under every Keras backend
    extra: Callable[[Case], None] | None = None  # the row's own claim beyond the common checks
    views: Callable[[Case, ConvVizPanel, str], None] | None = None  # the row's own claim on (panel, report page)


# ----- oracles -------------------------------------------------------------------------------------------
def _find(model: keras.Model, name: str) -> tuple[keras.Model, keras.layers.Layer]:
    """(the model that owns it, the layer) of a possibly nested 'outer/inner' layer name."""
    if "/" in name:
        outer, inner = name.split("/", 1)
        return _find(model.get_layer(outer), inner)
    return model, model.get_layer(name)


def rescale(images: np.ndarray) -> np.ndarray:
    """x / 255, the "rescale" preset, in numpy."""
    return np.asarray(images, np.float32) / 255.0


def raw(images: np.ndarray) -> np.ndarray:
    """The pixels as they are: a model that normalises its own input."""
    return np.asarray(images, np.float32)


def before(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """The input of layer `name` (float64) for the model input x."""
    sub = keras.Model(model.inputs[0], model.get_layer(name).input)
    return np.asarray(keras.ops.convert_to_numpy(sub(x, training=False)), np.float64)


def dense_logits(model: keras.Model, name: str, x: np.ndarray) -> np.ndarray:
    """A Dense (or 1x1 conv) layer's pre-activation output, from its input and its weights, in float64."""
    kernel, bias = (np.asarray(keras.ops.convert_to_numpy(w), np.float64) for w in model.get_layer(name).weights)
    return before(model, name, x) @ kernel.reshape(-1, kernel.shape[-1]) + bias


def top_logit(head: str, pixels: Callable = rescale) -> Callable[[keras.Model], Callable[[np.ndarray], float]]:
    """The score a classifier explains by default: its top class's logit (the head's input times its weights)."""
    return lambda model: lambda image: float(dense_logits(model, head, pixels(image[None]))[0].max())


# ----- the model kinds -------------------------------------------------------------------------------------
def functional() -> Case:
    """Two conv branches added, a ReLU, global average pooling, a softmax head."""
    keras.utils.set_random_seed(1)
    inp = keras.Input((32, 32, 3))
    a = layers.Conv2D(6, 3, padding="same", name="a")(inp)
    b = layers.Conv2D(6, 1, name="b")(inp)
    x = layers.ReLU(name="relu")(layers.Add(name="add")([a, b]))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="c")(layers.MaxPooling2D(name="pool")(x))
    out = layers.Dense(3, activation="softmax", name="head")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out, name="functional")
    return Case(model, rng_image(seed=1), "a", rescale, top_logit("head")(model), {"preprocess": "rescale"})


def sequential() -> Case:
    """The book's Sequential convnet (conv/pool blocks, flatten, dense softmax head)."""
    model = small_convnet(seed=2)
    return Case(model, rng_image(seed=2), "conv2", rescale, top_logit("predictions")(model), {"preprocess": "rescale"})


def nested() -> Case:
    """A small functional backbone as one layer of a Sequential with a softmax head (as a keras.applications base)."""
    keras.utils.set_random_seed(3)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(inp)
    x = layers.Conv2D(12, 3, padding="same", activation="relu", name="conv2")(layers.MaxPooling2D(name="pool1")(x))
    backbone = keras.Model(inp, layers.Conv2D(16, 3, activation="relu", name="conv3")(x), name="backbone")
    model = keras.Sequential([keras.Input((32, 32, 3)), backbone, layers.GlobalAveragePooling2D(name="gap"),
                              layers.Dense(4, activation="softmax", name="head")], name="nested")
    return Case(model, rng_image(seed=3), "backbone/conv2", rescale, top_logit("head")(model),
                {"preprocess": "rescale"})


def inner_names(case: Case) -> None:
    """The backbone's layers are found inside it, named outer/inner; the default CAM layer is its last conv."""
    ins = cv.Inspector(case.model, **case.options)
    assert ins.layers == ["backbone/conv1", "backbone/pool1", "backbone/conv2", "backbone/conv3"]
    assert ins.default_cam_layer == "backbone/conv3" and ins.layer("conv2").name == "backbone/conv2"


def legacy_h5() -> Case:
    """The real ImageNet MobileNet 0.25/128 whose weights are a Keras-2 .h5 file (read from the shared data)."""
    if not MOBILENET_WEIGHTS.exists():
        pytest.skip(f"the ImageNet MobileNet weights are not here ({MOBILENET_WEIGHTS}); they live in ../shared/data")
    model = keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(MOBILENET_WEIGHTS))

    def tf_mode(images: np.ndarray) -> np.ndarray:
        return np.asarray(images, np.float32) / 127.5 - 1.0

    def score(image: np.ndarray) -> float:  # the 1x1 conv under the softmax gives the logits
        sub = keras.Model(model.inputs[0], model.get_layer("conv_preds").output)
        return float(np.asarray(keras.ops.convert_to_numpy(sub(tf_mode(image[None]), training=False))).max())

    return Case(model, rng_image(128, 128, seed=4), "conv_pw_2", tf_mode, score)


def keras_hub_classifier() -> Case:
    """A KerasHub ResNet image classifier (random weights, built from a config) with its own image converter."""
    hub = pytest.importorskip("keras_hub", reason="keras_hub is not installed (pip install '.[hub]')")
    from hub_models import STANDARDISE, resnet

    model = resnet(hub, seed=13)

    def standardise(images: np.ndarray) -> np.ndarray:  # the converter's scale and offset, at the model's size
        return np.asarray(images, np.float32) * np.float32(STANDARDISE["scale"]) + np.float32(STANDARDISE["offset"])

    layer = f"{model.backbone.name}/stack0_block0_1_conv"  # the backbone's name is numbered in a busy process
    return Case(model, rng_image(32, 32, seed=13), layer, standardise,
                top_logit("predictions", standardise)(model))  # no preprocess= given: the task's converter is used


def own_converter(case: Case) -> None:
    """The task's image converter is found and used; the default CAM layer is inside the backbone."""
    ins = cv.Inspector(case.model)
    assert ins.preprocess_name == "ResNetImageConverter" and "KerasHub" in ins.preprocess_reason
    assert ins.default_cam_layer.startswith(f"{case.model.backbone.name}/")


def softmax_layer_head() -> Case:
    """Logits from a Dense layer, then a separate softmax Activation layer: the logits are explained."""
    keras.utils.set_random_seed(5)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv")(inp)
    z = layers.Dense(5, name="logits")(layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, layers.Activation("softmax", name="probabilities")(z), name="softmax_head")
    return Case(model, rng_image(seed=5), "conv", rescale, top_logit("logits")(model), {"preprocess": "rescale"})


def two_outputs() -> Case:
    """A box regression output and a class output; the class output is explained (output="cls")."""
    keras.utils.set_random_seed(6)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, activation="relu", name="conv1")(inp)
    x = layers.GlobalAveragePooling2D()(layers.Conv2D(8, 3, activation="relu", name="conv2")(x))
    model = keras.Model(inp, [layers.Dense(4, name="box")(x), layers.Dense(3, activation="softmax", name="cls")(x)],
                        name="two_outputs")
    return Case(model, rng_image(seed=6), "conv1", rescale, top_logit("cls")(model),
                {"preprocess": "rescale", "output": "cls"})


def mixed_precision() -> Case:
    """The Sequential convnet built under the mixed_bfloat16 policy (bfloat16 layers, float32 variables)."""
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        model = small_convnet(seed=7)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    assert model.get_layer("conv3").compute_dtype == "bfloat16"
    return Case(model, rng_image(seed=7), "conv2", rescale, top_logit("predictions")(model), {"preprocess": "rescale"})


def self_normalising() -> Case:
    """A tutorial Sequential: Rescaling(1/255) and RandomFlip inside, so the pixels go in as they are."""
    keras.utils.set_random_seed(8)
    model = keras.Sequential([
        keras.Input((32, 32, 3)), layers.Rescaling(1 / 255, name="rescaling"), layers.RandomFlip(name="flip"),
        layers.Conv2D(8, 3, activation="relu", name="conv1"), layers.MaxPooling2D(name="pool1"),
        layers.Conv2D(12, 3, activation="relu", name="conv2"), layers.GlobalAveragePooling2D(),
        layers.Dense(3, activation="softmax", name="head")], name="self_normalising")
    return Case(model, rng_image(seed=8), "conv2", raw, top_logit("head", raw)(model))  # no preprocess= given


def sees_raw_pixels(case: Case) -> None:
    """The package finds the model's own normalisation and predicts what model(raw pixels) predicts."""
    ins = cv.Inspector(case.model)
    assert ins.preprocess_name == "none" and "rescales its own input" in ins.preprocess_reason
    want = np.asarray(keras.ops.convert_to_numpy(case.model(raw(case.image[None]), training=False)))[0]
    got = {i: p for i, _, p in ins.predict(case.image, top=3)}
    np.testing.assert_allclose([got[i] for i in range(3)], want, rtol=1e-5, atol=1e-6)


def vit() -> Case:
    """The hand-built ViT: 64 px, 8x8 patches, a class token, 2 blocks, a softmax head on the class token."""
    model = small_vit(seed=9)

    def patches(tokens: np.ndarray) -> np.ndarray:  # the class token dropped, the 64 patch tokens as 8x8
        return tokens[:, 1:].reshape(len(tokens), 8, 8, -1)

    return Case(model, rng_image(64, 64, seed=9), "block1_mlp1", raw, top_logit("predictions", raw)(model),
                grid=patches)


def token_grids(case: Case) -> None:
    """Token layers are read as the 8x8 patch grid, and the default CAM layer is a block's norm."""
    ins = cv.Inspector(case.model)
    assert ins.default_cam_layer == "block1_norm1"
    assert ins.gradcam(case.image).heatmap.shape == (8, 8)


def segmentation() -> Case:
    """A small U-Net (random weights): a 3-class softmax per pixel; a class over its predicted region."""
    keras.utils.set_random_seed(10)
    inp = keras.Input((32, 32, 3))
    c1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="enc1")(inp)
    c2 = layers.Conv2D(12, 3, padding="same", activation="relu", name="enc2")(layers.MaxPooling2D()(c1))
    d1 = layers.Conv2D(8, 3, padding="same", activation="relu", name="dec1")(
        layers.Concatenate()([layers.UpSampling2D()(c2), c1]))
    model = keras.Model(inp, layers.Conv2D(3, 1, activation="softmax", name="classes")(d1), name="segmentation")

    def region_score(image: np.ndarray) -> float:  # the default: the class predicted over the largest area
        logits = dense_logits(model, "classes", rescale(image[None]))[0]  # (32, 32, 3)
        predicted = logits.argmax(-1)
        k = int(np.bincount(predicted.ravel(), minlength=3).argmax())
        return float(logits[..., k][predicted == k].sum())

    return Case(model, rng_image(seed=10), "enc2", rescale, region_score, {"preprocess": "rescale"})


def region_explained(case: Case) -> None:
    """The default target is the largest predicted class over its region, and a given class can be asked."""
    ins = cv.Inspector(case.model, **case.options)
    assert ins.output_kind == "segmentation" and ins.default_cam_layer == "dec1"
    logits = dense_logits(case.model, "classes", rescale(case.image[None]))[0]
    for k in np.unique(logits.argmax(-1)):
        cam = ins.gradcam(case.image, target=cv.RegionTarget(int(k)))
        np.testing.assert_array_equal(cam.region > 0.5, logits.argmax(-1) == k)
        assert cam.score == pytest.approx(float(logits[..., k][logits.argmax(-1) == k].sum()), rel=1e-4)


def multi_label() -> Case:
    """Global average pooling and a 4-unit sigmoid head: each label's logit can be explained."""
    keras.utils.set_random_seed(11)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="feat")(inp)
    model = keras.Model(inp, layers.Dense(4, activation="sigmoid", name="labels")(layers.GlobalAveragePooling2D()(x)),
                        name="multi_label")
    return Case(model, rng_image(seed=11), "feat", rescale, top_logit("labels")(model), {"preprocess": "rescale"})


def each_label(case: Case) -> None:
    """LabelTarget(k) explains label k's logit, whatever the other labels do."""
    logits = dense_logits(case.model, "labels", rescale(case.image[None]))[0]
    ins = cv.Inspector(case.model, **case.options)
    for k in range(4):
        cam = ins.gradcam(case.image, target=cv.LabelTarget(k))
        assert cam.score == pytest.approx(float(logits[k]), abs=1e-4) and cam.target == f"label {k}"


def regression() -> Case:
    """Global average pooling and one linear unit: the raw output is explained."""
    keras.utils.set_random_seed(12)
    inp = keras.Input((32, 32, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="feat")(inp)
    model = keras.Model(inp, layers.Dense(1, name="value")(layers.GlobalAveragePooling2D()(x)), name="regression")

    def value(image: np.ndarray) -> float:
        return float(dense_logits(model, "value", rescale(image[None]))[0, 0])

    return Case(model, rng_image(seed=12), "feat", rescale, value, {"preprocess": "rescale"})


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, in numpy."""
    return 1.0 / (1.0 + np.exp(-np.asarray(z, np.float64)))


def words(markup: str) -> str:
    """The text of an HTML snippet, its tags (and their attributes) left out."""
    return re.sub(r"<[^>]+>", "", markup)


def labels_shown(case: Case, panel: ConvVizPanel, page: str) -> None:
    """The panel and the report speak of labels, each with its own sigmoid probability; a label is explained."""
    p = sigmoid(dense_logits(case.model, "labels", rescale(case.image[None]))[0])
    assert abs(p.sum() - 1.0) > 0.05  # independent labels: a softmax over them would sum to 1
    table = panel.chooser.table.value
    assert "labels</b> (each label's own sigmoid probability)" in table and "Top 4 predictions" not in table
    for k in range(4):
        assert f"<b>label {k}</b></td><td style='color:#666'>#{k}</td><td style='text-align:right'>{p[k]:.1%}" in table
    cam = panel.select("Grad-CAM")
    assert cam.classes.description == "Label" and cam.class_index.description == "or label"
    assert [text for text, _ in cam.classes.options][0] == f"label {int(p.argmax())} {p.max():.1%}"
    cam.choose(1)
    assert cam.current_cam().target == "label 1" and "(label 1)" in cam.score.value
    assert f"probability <b>{p[1]:.1%}</b> (the label's own sigmoid)" in cam.score.value
    assert "class" not in words(cam.score.value)
    assert "<th>Top labels</th>" in page and "Where the evidence for each label lies" in page


def output_shown(case: Case, panel: ConvVizPanel, page: str) -> None:
    """The header shows the output's value; the Grad-CAM tab explains the output (or what lowers it), no classes."""
    z = case.score(case.image)
    assert f"<b>Output</b> <b style='font-size:larger'>{z:.4g}</b>" in panel.chooser.table.value
    assert "class" not in words(panel.chooser.table.value)
    cam = panel.select("Grad-CAM")
    assert cam.classes.description == "Explain"
    assert cam.classes.options == (("what raises the output", 1), ("what lowers it", 0))
    assert cam.class_index.layout.display == "none"
    shown = cam.current_cam()
    assert shown.target == "the output" and shown.score == pytest.approx(z, rel=2e-2, abs=2e-3)
    assert "of <b>the output</b>" in cam.score.value and "class" not in words(cam.score.value)
    cam.classes.value = 0  # what lowers it: the map of -z
    assert cam.wait() and cam.current_cam().target == "the output, negated (what lowers it)"
    assert cam.current_cam().score == pytest.approx(-z, rel=2e-2, abs=2e-3)
    assert not cam.sanity.disabled  # the randomised copy's output is the same target: the check applies
    assert f"<th>Output</th><td>{z:.4g} (the raw value" in page and "Top-5" not in page
    assert "Where the evidence that raises the output lies" in page


KINDS = [
    Kind("functional convnet", functional),
    Kind("Sequential", sequential),
    Kind("nested sub-model", nested, extra=inner_names),
    Kind("legacy Keras-2 .h5", legacy_h5, core=False),  # reading a file, not maths
    Kind("KerasHub image classifier", keras_hub_classifier, extra=own_converter),
    Kind("softmax head", softmax_layer_head),
    Kind("several outputs", two_outputs),
    Kind("mixed precision", mixed_precision),
    Kind("model that normalises its own input", self_normalising, extra=sees_raw_pixels),
    Kind("vision transformer", vit, extra=token_grids),
    Kind("segmentation", segmentation, extra=region_explained),
    Kind("multi-label sigmoid head", multi_label, extra=each_label, views=labels_shown),
    Kind("regression head", regression, views=output_shown),
]


def _params(kinds: list[Kind], works: tuple[str, ...], mark_core: bool) -> list:
    """One pytest parameter per row that claims any of `works`; core rows marked `backends` when asked."""
    return [pytest.param(kind, id=kind.row, marks=[pytest.mark.backends] if mark_core and kind.core else [])
            for kind in kinds if set(works) & set(kind.works)]


def _close(got: Any, want: Any) -> None:
    """Equal up to float32 rounding (bfloat16 layers: to their rounding), relative to the larger values."""
    want = np.asarray(want, np.float64)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-3 * max(1e-6, float(np.abs(want).max())))


def methods_here(ins: cv.Inspector) -> list[str]:
    """Every registered CAM method that applies to the model on TensorFlow; on JAX and PyTorch, where each compiles
    for seconds, one gradient and one perturbation method stand for them (tests/test_cams.py runs each there)."""
    if keras.config.backend() == "tensorflow":
        return cv.cam_methods(ins)
    return ["gradcam", "scorecam"]


# ----- the checks ------------------------------------------------------------------------------------------
def check_activations(ins: cv.Inspector, case: Case) -> None:
    """Every layer's map is finite; the row's layer is the map the user's model computes."""
    acts = ins.activations(case.image)
    assert case.layer in acts and all(a.ndim == 3 and np.isfinite(a).all() for a in acts.values())
    _close(acts[case.layer], case.map_of(case.image[None])[0])


def check_filter_patterns(ins: cv.Inspector, case: Case) -> None:
    """Gradient ascent raises each filter's mean activation and draws a picture that is not blank."""
    size = ins.input_size[0] if ins.input_size else 32
    patterns = ins.filter_patterns(case.layer, [0, 1], size=size, steps=6)
    assert patterns.images.shape == (2, size, size, 3)
    assert (patterns.final_activation > patterns.start_activation).all()
    assert all(np.ptp(im) > 0 for im in patterns.images)


def check_cam_methods(ins: cv.Inspector, case: Case) -> None:
    """Every method that applies gives a finite map; Grad-CAM explains the score the oracle computes."""
    shape = None
    for method in methods_here(ins):
        cam = ins.gradcam(case.image, method=method, max_channels=8)
        assert np.isfinite(cam.heatmap).all() and np.isfinite(cam.raw).all(), method
        shape = shape or cam.heatmap.shape
        assert cam.heatmap.shape == shape, method
    cam = ins.gradcam(case.image)
    assert cam.score == pytest.approx(case.score(case.image), rel=2e-2, abs=2e-3)


def check_top_examples(ins: cv.Inspector, case: Case) -> None:
    """The top images of two channels are those with the highest peak of that channel, and the peaks agree."""
    size = ins.input_size or (32, 32)
    images = np.stack([rng_image(*size, seed=100 + i) for i in range(5)])
    top = ins.top_examples(case.layer, images, k=2, channels=[0, 1])
    peaks = case.map_of(images)[..., :2].reshape(5, -1, 2).max(axis=1)  # (5 images, 2 channels)
    for row in range(2):
        _close(top.values[row], np.sort(peaks[:, row])[::-1][:2])
        assert set(top.indices[row]) == set(np.argsort(-peaks[:, row], kind="stable")[:2])


CHECKS = {"activations": check_activations, "filter patterns": check_filter_patterns,
          "CAM methods": check_cam_methods, "top_examples": check_top_examples}


@pytest.fixture(scope="module")
def cases() -> dict[str, Case]:
    """Each row's model, built once per module."""
    return {}


def case_of(kind: Kind, cases: dict[str, Case]) -> Case:
    """The row's case, built on first use."""
    if kind.row not in cases:
        cases[kind.row] = kind.build()
    return cases[kind.row]


@pytest.mark.parametrize("kind", _params(KINDS, CORE_WORKS, mark_core=True))
def test_the_rows_maths_works_on_its_kind_of_model(kind: Kind, cases: dict[str, Case]) -> None:
    case = case_of(kind, cases)
    ins = cv.Inspector(case.model, **case.options)
    for work in CORE_WORKS:
        if work in kind.works:
            CHECKS[work](ins, case)
    if kind.extra:
        kind.extra(case)


@pytest.mark.parametrize("kind", _params(KINDS, VIEW_WORKS, mark_core=False))
def test_the_rows_panel_and_report_work_on_its_kind_of_model(kind: Kind, cases: dict[str, Case], tmp_path) -> None:
    case = case_of(kind, cases)
    panel = page = None
    if "panel" in kind.works:
        panel = ConvVizPanel(case.model, case.image, background=False, **case.options)
        for title in panel.titles:
            view = panel.select(title)
            assert not view.error, (title, view.error)
        assert panel.cam.overlay.value and panel.activations.grid.value
    if "report" in kind.works:
        ins = cv.Inspector(case.model, **case.options)
        build_report(ins, case.image, tmp_path / "report", n_filters=2, steps=2, pattern_modes=("plain",),
                     log=lambda _: None)
        page = (tmp_path / "report" / "index.html").read_text()
        assert "could not run" not in page and page.count("<img") >= 4
    if kind.views:
        kind.views(case, panel, page)


# ----- the README's table and these rows -------------------------------------------------------------------
DOCS_INDEX = README.parent / "docs" / "index.md"  # the documentation site's first page carries the same table


def table_rows(path: Path) -> dict[str, list[str]]:
    """A page's table of model kinds: its first cell -> the items of its "what works" cell."""
    table = path.read_text().split("| model kind | what works |", 1)[1].split("\n\n", 1)[0]
    rows = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        rows[re.sub(r"[*`]", "", cells[0]).strip()] = [w.strip() for w in re.sub(r"[*`]", "", cells[1]).split(",")
                                                       if w.strip()]
    return rows


def test_the_readme_table_and_the_rows_tested_are_the_same():
    rows = table_rows(README)
    assert list(rows) == [kind.row for kind in KINDS]
    for kind in KINDS:
        assert rows[kind.row] == [w for w in CORE_WORKS + VIEW_WORKS if w in kind.works], kind.row


def test_the_documentation_site_shows_the_readmes_table_word_for_word():
    def table(path: Path) -> str:
        text = path.read_text()
        return text[text.index("| model kind | what works |"):].split("\n\n", 1)[0]

    assert table(DOCS_INDEX) == table(README)
