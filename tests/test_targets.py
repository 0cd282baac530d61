"""Targets: what score a CAM explains (a class, a class over a region, a label, a regression output, a function).

The oracles are written here: on models whose head after the CAM layer is linear in the feature map
(global average pooling then a dense layer, or a 1x1 conv), the gradient of the explained score with
respect to the map is known in closed form, so Grad-CAM's channel weights and the score are computed
with numpy from the layer's activations.
"""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet
from keras import layers, ops

import convviz_widgets as cv
from convviz_widgets import ClassTarget, ConvVizError, LabelTarget, OutputTarget, RegionTarget
from convviz_widgets.demo import scene

SIZE = 16


def gap_model(units: int, activation: str, seed: int, bias: float = 0.0) -> keras.Model:
    """conv -> "feat" (8 channels) -> global average pooling -> Dense(units, activation)."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    feat = layers.Conv2D(8, 3, padding="same", activation="relu", name="feat")(inp)
    out = layers.Dense(units, activation=activation, name="head",
                       bias_initializer=keras.initializers.Constant(bias))(layers.GlobalAveragePooling2D()(feat))
    return keras.Model(inp, out)


def seg_model(classes: int, seed: int) -> keras.Model:
    """conv -> "feat" (8 channels) -> a 1x1 conv with a softmax over `classes`: a segmentation map."""
    keras.utils.set_random_seed(seed)
    inp = keras.Input((SIZE, SIZE, 3))
    feat = layers.Conv2D(8, 3, padding="same", activation="relu", name="feat")(inp)
    return keras.Model(inp, layers.Conv2D(classes, 1, activation="softmax", name="classes")(feat))


def features(model: keras.Model, image: np.ndarray) -> np.ndarray:
    """The "feat" layer's output (h, w, C) in float64, for the image scaled by 1/255 (the "rescale" preset)."""
    sub = keras.Model(model.inputs[0], model.get_layer("feat").output)
    x = ops.convert_to_tensor(image[None].astype(np.float32) / 255.0)
    return np.asarray(ops.convert_to_numpy(sub(x)), np.float64)[0]


def kernel(model: keras.Model, name: str) -> tuple[np.ndarray, np.ndarray]:
    """A layer's (kernel as (C, units), bias) in float64."""
    k, b = (np.asarray(ops.convert_to_numpy(w), np.float64) for w in model.get_layer(name).weights)
    return k.reshape(-1, k.shape[-1]), b


def close(got: np.ndarray, want: np.ndarray) -> None:
    """Equal up to float32 rounding, relative to the larger values."""
    np.testing.assert_allclose(got, want, atol=2e-4 * max(1e-6, float(np.abs(want).max())), rtol=1e-3)


# ----- classes: target= and its short form -------------------------------------------------------------
@pytest.mark.backends
@pytest.mark.parametrize("method", ["gradcam", "scorecam"])
def test_a_class_target_is_class_index(method):
    model, image = small_convnet(seed=5), rng_image(seed=3)
    by_index = cv.gradcam(model, image, preprocess="rescale", class_index=2, method=method, max_channels=4)
    by_target = cv.gradcam(model, image, preprocess="rescale", target=ClassTarget(2), method=method, max_channels=4)
    assert by_target.class_index == by_index.class_index == 2
    close(by_target.raw, by_index.raw)
    assert by_target.score == pytest.approx(by_index.score, abs=1e-5)
    assert by_target.target == "class 2"
    top = cv.gradcam(model, image, preprocess="rescale", target=ClassTarget())
    assert top.class_index == cv.gradcam(model, image, preprocess="rescale").class_index


@pytest.mark.backends
def test_a_callable_target_is_the_class_target_it_computes():
    model, image = small_convnet(seed=6), rng_image(seed=4)

    def logit_one(outputs):
        return outputs[:, 1]

    by_fn = cv.gradcam(model, image, preprocess="rescale", target=logit_one)
    by_class = cv.gradcam(model, image, preprocess="rescale", target=ClassTarget(1))
    close(by_fn.raw, by_class.raw)
    assert by_fn.score == pytest.approx(by_class.score, abs=1e-5)
    assert by_fn.target == "logit_one(outputs)" and by_fn.class_index == -1 and by_fn.class_name is None


# ----- a multi-label head, a regression head: closed-form oracles ----------------------------------------
@pytest.mark.backends
def test_a_label_target_explains_that_labels_logit():
    model, image = gap_model(4, "sigmoid", seed=7), rng_image(SIZE, SIZE, seed=5)
    a = features(model, image)
    w, b = kernel(model, "head")
    cam = cv.gradcam(model, image, preprocess="rescale", target=LabelTarget(2))
    h, wd = a.shape[:2]
    close(cam.weights, w[:, 2] / (h * wd))  # d logit_2 / d A(x, y, c) = W[c, 2] / (h w) everywhere
    assert cam.score == pytest.approx(float(a.mean(axis=(0, 1)) @ w[:, 2] + b[2]), abs=1e-4)
    assert cam.class_index == 2 and cam.target == "label 2"
    assert cam.probability == pytest.approx(1 / (1 + np.exp(-cam.score)), abs=1e-5)  # the label's own sigmoid


@pytest.mark.backends
def test_a_regression_head_explains_its_raw_output_even_when_negative():
    model, image = gap_model(1, "linear", seed=8, bias=-5.0), rng_image(SIZE, SIZE, seed=6)
    a = features(model, image)
    w, b = kernel(model, "head")
    want = float(a.mean(axis=(0, 1)) @ w[:, 0] + b[0])
    assert want < 0  # the old two-class reading would have explained -z here
    ins = cv.Inspector(model, preprocess="rescale")
    assert ins.output_kind == "regression"
    cam = ins.gradcam(image)  # the default of a one-unit linear head: OutputTarget()
    assert cam.score == pytest.approx(want, abs=1e-4) and cam.target == "the output"
    close(cam.weights, w[:, 0] / (a.shape[0] * a.shape[1]))
    assert cam.probability is None
    close(ins.gradcam(image, target=OutputTarget(0)).raw, cam.raw)


@pytest.mark.backends
def test_a_negated_output_target_explains_what_lowers_a_regression_output():
    model, image = gap_model(1, "linear", seed=20, bias=2.0), rng_image(SIZE, SIZE, seed=16)
    a = features(model, image)
    w, b = kernel(model, "head")
    value = float(a.mean(axis=(0, 1)) @ w[:, 0] + b[0])
    cam = cv.gradcam(model, image, preprocess="rescale", target=OutputTarget(negate=True))
    assert cam.score == pytest.approx(-value, abs=1e-4)  # minus the output
    close(cam.weights, -w[:, 0] / (a.shape[0] * a.shape[1]))  # its gradient: the output's, sign turned
    assert cam.target == "the output, negated (what lowers it)" and cam.probability is None
    with pytest.raises(ConvVizError, match="negate=True.*one-unit head"):
        cv.gradcam(gap_model(3, "linear", seed=21), image, preprocess="rescale", target=OutputTarget(1, negate=True))


def test_a_multi_label_heads_unnamed_entries_are_labels_and_a_sanity_check_keeps_the_label():
    from convviz_widgets.metrics import class_map, sanity_check

    model, image = gap_model(4, "sigmoid", seed=22), rng_image(SIZE, SIZE, seed=17)
    ins = cv.Inspector(model, preprocess="rescale")
    assert ins.multi_label and ins.class_names == ["label 0", "label 1", "label 2", "label 3"]
    assert not cv.Inspector(gap_model(1, "sigmoid", seed=22), preprocess="rescale").multi_label  # one unit: binary
    assert not cv.Inspector(small_convnet(seed=22), preprocess="rescale").multi_label  # softmax: classes
    named = cv.Inspector(model, preprocess="rescale", class_names=["a", "b", "c", "d"])
    assert named.class_names == ["a", "b", "c", "d"]
    cam = class_map(ins, ins.prepare(image), 2, "feat", "gradcam", None)
    assert cam.target == "label 2" and cam.class_index == 2
    other, _ = sanity_check(ins, ins.prepare(image), cam, depth=1)
    assert other.target == "label 2"  # the randomised copy explains the same label


def test_the_panels_cam_tab_of_a_regression_head_explains_the_output_even_when_negative():
    from convviz_widgets import ConvVizPanel

    model, image = gap_model(1, "linear", seed=23, bias=-5.0), rng_image(SIZE, SIZE, seed=18)
    a = features(model, image)
    w, b = kernel(model, "head")
    value = float(a.mean(axis=(0, 1)) @ w[:, 0] + b[0])
    assert value < 0  # the two-class reading's top "class" was the negation here
    panel = ConvVizPanel(model, image, preprocess="rescale", background=False)
    assert f"<b>Output</b> <b style='font-size:larger'>{value:.4g}</b>" in panel.chooser.table.value
    view = panel.select("Grad-CAM")
    cam = view.current_cam()
    assert view.classes.value == 1 and cam.target == "the output" and cam.score == pytest.approx(value, abs=1e-4)
    assert f"the output's value <b>{value:.4g}</b>" in view.score.value
    view.choose(0)
    lowers = view.current_cam()
    assert lowers.target == "the output, negated (what lowers it)" and lowers.score == pytest.approx(-value, abs=1e-4)
    assert view.class_name.value == "the output, negated (what lowers it)"
    assert "of <b>the output, negated (what lowers it)</b>" in view.score.value
    assert [name.split("-gradcam")[0] for name in view.pictures()] == ["feat-output-negated"]  # saved files' names
    view.sanity.value = True
    assert view.wait()
    sanity = view.current_sanity()
    assert isinstance(sanity, tuple) and sanity[0].target == lowers.target  # the same target on the randomised copy


# ----- segmentation: a class over a region ---------------------------------------------------------------
@pytest.mark.backends
def test_a_region_target_sums_the_class_logits_over_the_predicted_mask():
    model, image = seg_model(3, seed=9), rng_image(SIZE, SIZE, seed=7)
    a = features(model, image)
    w, b = kernel(model, "classes")
    logits = a @ w + b  # (h, w, K): the 1x1 conv without its softmax
    ins = cv.Inspector(model, preprocess="rescale")
    assert ins.output_kind == "segmentation" and ins.default_cam_layer == "feat"
    predicted = logits.argmax(-1)
    k = int(np.bincount(predicted.ravel(), minlength=3).argmax())  # the default: the largest predicted class
    for target in (None, RegionTarget(k), ClassTarget(k)):
        cam = ins.gradcam(image, target=target)
        mask = predicted == k
        assert cam.class_index == k and cam.target.endswith("over its predicted region")
        np.testing.assert_array_equal(cam.region > 0.5, mask)
        assert cam.score == pytest.approx(float(logits[..., k][mask].sum()), rel=1e-4)
        close(cam.weights, w[:, k] * mask.sum() / mask.size)  # d S / d A(x, y, c) = M(x, y) W[c, k]


@pytest.mark.backends
def test_a_region_target_with_a_given_mask_sums_over_that_mask():
    model, image = seg_model(3, seed=10), rng_image(SIZE, SIZE, seed=8)
    a = features(model, image)
    w, b = kernel(model, "classes")
    mask = np.zeros((SIZE, SIZE), bool)
    mask[2:9, 4:12] = True
    cam = cv.gradcam(model, image, preprocess="rescale", target=RegionTarget(1, mask))
    assert cam.score == pytest.approx(float((a @ w[:, 1] + b[1])[mask].sum()), rel=1e-4)
    close(cam.weights, w[:, 1] * mask.sum() / mask.size)
    assert cam.target == "class 1 over the given mask"


@pytest.mark.backends
def test_every_method_explains_a_region_and_perturbation_methods_score_it():
    model, image = seg_model(3, seed=11), rng_image(SIZE, SIZE, seed=9)
    ins = cv.Inspector(model, preprocess="rescale")
    for method in ins.cam_methods:
        cam = ins.gradcam(image, target=RegionTarget(None), method=method)
        assert np.isfinite(cam.heatmap).all() and cam.target.endswith("over its predicted region"), method
    # Ablation-CAM by hand: zeroing channel c of the map changes the region's score by sum_M A_c W[c, k]
    a = features(model, image)
    w, b = kernel(model, "classes")
    cam = ins.gradcam(image, method="ablationcam")
    k, mask = cam.class_index, cam.region > 0.5
    score = float((a @ w[:, k] + b[k])[mask].sum())
    close(cam.weights, (a[mask] * w[:, k]).sum(axis=0) / score)


@pytest.mark.backends
def test_a_batch_takes_one_target_for_all_or_one_per_image():
    model = small_convnet(seed=12)
    images = [rng_image(seed=s) for s in (20, 21, 22)]
    targets = [ClassTarget(0), lambda o: o[:, 2] - o[:, 1], ClassTarget(1)]
    batch = cv.gradcam(model, images, preprocess="rescale", target=targets)
    for image, target, cam in zip(images, targets, batch):
        one = cv.gradcam(model, image, preprocess="rescale", target=target)
        close(cam.raw, one.raw)
        assert cam.target == one.target
    same = cv.gradcam(model, images, preprocess="rescale", target=ClassTarget(2))
    assert [c.class_index for c in same] == [2, 2, 2]


# ----- bad targets ------------------------------------------------------------------------------------------
@pytest.mark.backends
def test_bad_targets_are_clear_errors():
    classifier, image = small_convnet(seed=13), rng_image(seed=10)
    seg = seg_model(3, seed=14)
    small = rng_image(SIZE, SIZE, seed=11)
    cases = [
        (classifier, image, {"target": ClassTarget(1), "class_index": 1}, "not both"),
        (classifier, image, {"target": "cat"}, "target must be"),
        (classifier, image, {"target": ClassTarget(7)}, r"3 classes \(0..2\)"),
        (classifier, image, {"target": LabelTarget(0)}, "softmax"),
        (classifier, image, {"target": RegionTarget(0)}, "segmentation output"),
        (classifier, image, {"target": OutputTarget()}, "OutputTarget\\(index\\)"),
        (classifier, image, {"target": lambda o: o}, r"one score per image"),
        (classifier, image, {"target": lambda o: o[:, 0] / "x"}, "failed on the model's output"),
        (seg, small, {"target": RegionTarget(1, np.zeros((SIZE, SIZE)))}, "empty"),
        (seg, small, {"target": RegionTarget(1, np.ones((SIZE, SIZE, 3)))}, r"\(H, W\)"),
        (seg, small, {"target": RegionTarget(1, np.full((SIZE, SIZE), 2.0))}, r"\[0, 1\]"),
        (seg, small, {"target": LabelTarget(1)}, "segmentation map"),
    ]
    for model, img, kwargs, message in cases:
        with pytest.raises(ConvVizError, match=message):
            cv.gradcam(model, img, preprocess="rescale", **kwargs)
    with pytest.raises(ConvVizError, match="2 entries for 3 images"):
        cv.gradcam(classifier, [image] * 3, preprocess="rescale", target=[ClassTarget(0)] * 2)


@pytest.mark.backends
def test_a_class_the_model_predicts_nowhere_is_refused_not_drawn_blank():
    model, image = seg_model(3, seed=15), rng_image(SIZE, SIZE, seed=12)
    head = model.get_layer("classes")
    head.bias.assign(np.array([0.0, 0.0, -1e4], np.float32))  # this test's own model: class 2 never wins
    a = features(model, image)
    w, b = kernel(model, "classes")
    assert not ((a @ w + b).argmax(-1) == 2).any()
    with pytest.raises(ConvVizError, match="nowhere in this image"):
        cv.gradcam(model, image, preprocess="rescale", target=RegionTarget(2))
    cv.gradcam(model, image, preprocess="rescale", target=RegionTarget(2, np.ones((SIZE, SIZE))))  # a mask: fine


def test_a_headless_model_needs_a_callable_target():
    keras.utils.set_random_seed(16)
    base = keras.Sequential([keras.Input((SIZE, SIZE, 3)), layers.Conv2D(4, 3, activation="relu", name="c1"),
                             layers.Conv2D(4, 3, activation="relu", name="c2")])
    image = rng_image(SIZE, SIZE, seed=13)
    with pytest.raises(ConvVizError, match="no class output.*target=f"):
        cv.gradcam(base, image, preprocess="rescale")
    cam = cv.gradcam(base, image, preprocess="rescale", layer="c1", target=lambda o: ops.mean(o[..., 0], axis=(1, 2)))
    assert np.isfinite(cam.heatmap).all() and cam.class_index == -1


# ----- a small U-Net trained on the demo scenes' masks -------------------------------------------------------
SEG_SIZE, SHAPES = 48, (0, 4)  # circle and cross; class 0 of the network is the background


def seg_scene(seed: int, i: int):
    """A demo scene with a circle, a cross, or both (every other scene)."""
    labels = list(SHAPES) if i % 2 else SHAPES[seed % 2]
    return scene(labels, seed=seed, size=SEG_SIZE, objects=1 + i % 2, difficulty=0.3)


def label_map(sc) -> np.ndarray:
    """The scene's per-pixel class (0 background, 1 circle, 2 cross) from its exact shape masks."""
    y = np.zeros(sc.image.shape[:2], np.int32)
    for label, mask in zip(sc.labels, sc.masks):
        y[mask] = SHAPES.index(label) + 1
    return y


@pytest.fixture(scope="module")
def unet() -> keras.Model:
    """A three-level U-Net trained for a few epochs on 448 scenes (foreground pixels weighted 3x)."""
    keras.utils.set_random_seed(0)
    inp = keras.Input((SEG_SIZE, SEG_SIZE, 3))
    c1 = layers.Conv2D(16, 3, padding="same", activation="relu", name="enc1")(inp)
    c2 = layers.Conv2D(32, 3, padding="same", activation="relu", name="enc2")(layers.MaxPooling2D()(c1))
    c3 = layers.Conv2D(48, 3, padding="same", activation="relu", name="mid")(layers.MaxPooling2D()(c2))
    d2 = layers.Conv2D(32, 3, padding="same", activation="relu", name="dec2")(
        layers.Concatenate()([layers.UpSampling2D()(c3), c2]))
    d1 = layers.Conv2D(16, 3, padding="same", activation="relu", name="dec1")(
        layers.Concatenate()([layers.UpSampling2D()(d2), c1]))
    model = keras.Model(inp, layers.Conv2D(3, 1, activation="softmax", name="classes")(d1))
    scenes = [seg_scene(s, s) for s in range(448)]
    x = np.stack([s.image for s in scenes]).astype(np.float32) / 255.0
    y = np.stack([label_map(s) for s in scenes])
    model.compile(keras.optimizers.Adam(5e-3), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(x, y, sample_weight=np.where(y > 0, 3.0, 1.0), batch_size=16, epochs=7, verbose=0)
    print(f"U-Net trained in {time.perf_counter() - start:.1f} s")
    return model


def test_a_trained_unets_region_cam_lies_in_the_region(unet):
    ins = cv.Inspector(unet, preprocess="rescale", class_names=["background", "circle", "cross"])
    assert ins.output_kind == "segmentation" and ins.default_cam_layer == "dec1"
    inside: dict[str, list[float]] = {"gradcam": [], "hirescam": []}
    shares, ious = [], []
    for i in range(30):
        sc = seg_scene(10_000_000 + i, i)
        truth = label_map(sc)
        for label, mask in zip(sc.labels, sc.masks):
            k = SHAPES.index(label) + 1
            for method, fractions in inside.items():
                cam = ins.gradcam(sc.image, target=RegionTarget(k), method=method)
                heat = cam.resized(SEG_SIZE, SEG_SIZE)
                fractions.append(float(heat[mask].sum() / heat.sum()))
            predicted = cam.region > 0.5
            ious.append(float((predicted & (truth == k)).sum() / (predicted | (truth == k)).sum()))
            shares.append(float(mask.mean()))
    grad, hires, share = np.mean(inside["gradcam"]), np.mean(inside["hirescam"]), np.mean(shares)
    print(f"region IoU {np.mean(ious):.3f}; CAM mass inside the true shape: Grad-CAM {grad:.3f}, "
          f"HiResCAM {hires:.3f}; the shape's share of the image {share:.3f}")
    assert np.mean(ious) > 0.6  # the network segments: the explanation is of a working model
    # Measured on TensorFlow: Grad-CAM 0.39 (2.4x the shape's share 0.165: its averaged gradients spread the
    # map over features the whole image shares), HiResCAM 0.84. The bounds leave a margin below both.
    assert grad > 1.7 * share
    assert hires > 0.7


# ----- the command line --------------------------------------------------------------------------------------
def _report(tmp_path, model: keras.Model, *args: str) -> tuple[int, str]:
    """`convviz report` of a saved model on one image with the given options; (exit status, index.html or "")."""
    from PIL import Image

    from convviz_widgets import cli

    model_path, img_path, out = tmp_path / "m.keras", tmp_path / "img.png", tmp_path / "report"
    model.save(model_path)
    Image.fromarray(rng_image(SIZE, SIZE, seed=14)).save(img_path)
    code = cli.main(["report", "--model", str(model_path), "--image", str(img_path), "--preprocess", "rescale",
                     "--out", str(out), "--steps", "2", "--filters", "2", "--patterns", "plain", *args])
    return code, (out / "index.html").read_text() if code == 0 else ""


def test_the_report_explains_the_target_it_is_given(tmp_path, capsys):
    model = gap_model(4, "sigmoid", seed=17)
    code, page = _report(tmp_path, model, "--target", "label:3")
    assert code == 0 and "label 3" in page and (tmp_path / "report" / "gradcam_target.png").is_file()
    want = cv.gradcam(model, rng_image(SIZE, SIZE, seed=14), preprocess="rescale", target=LabelTarget(3)).score
    assert f"score {want:.2f}" in page
    code, page = _report(tmp_path, model, "--target", "class:1", "--overwrite")
    assert code == 0 and "class 1" in page


def test_a_bad_target_on_the_command_line_is_one_error_line(tmp_path, capsys):
    code, _ = _report(tmp_path, small_convnet(size=SIZE, seed=18), "--target", "pixel:3")
    assert code == 2 and "class[:N], label:N" in capsys.readouterr().err
    code, _ = _report(tmp_path, small_convnet(size=SIZE, seed=18), "--target", "label:1")
    assert code == 2 and "softmax" in capsys.readouterr().err


def test_the_command_lines_target_help_says_what_each_target_explains_and_the_defaults(capsys):
    from convviz_widgets import cli

    assert cli.main(["report", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps the help text
    for words in ("label N of a multi-label sigmoid head", "a regression head's raw value",
                  "class N over its predicted region", "a multi-label head: its top labels",
                  "a regression head's output"):
        assert words in text, words


def test_the_panels_cam_tab_of_a_segmentation_model_shows_the_region_of_the_class_picked(unet):
    from convviz_widgets import CamView

    names = ["background", "circle", "cross"]
    sc = seg_scene(10_000_001, 1)  # a circle and a cross
    view = CamView(cv.Inspector(unet, preprocess="rescale", class_names=names), sc.image, background=False)
    shares = dict((k, share) for k, _, share in view.predictions)
    assert view.enabled and set(shares) >= {1, 2} and view.figures.region_figure.layout.display is None
    assert view.predictions[-1][0] == 0 and view.current_cam().class_index != 0  # the background comes last
    view.choose(2)
    cam = view.current_cam()
    want = cv.gradcam(unet, sc.image, preprocess="rescale", target=RegionTarget(2))
    assert cam.class_index == 2 and cam.target == "class 2 (cross) over its predicted region"
    np.testing.assert_array_equal(cam.region, want.region)
    assert "cross" in view.figures.region_caption.value and "summed over its region" in view.score.value


def test_the_panels_header_lists_a_segmentation_models_classes_by_their_area_and_offers_no_class_check():
    from convviz_widgets import ConvVizPanel

    model, image = seg_model(3, seed=19), rng_image(SIZE, SIZE, seed=15)
    a = features(model, image)
    w, b = kernel(model, "classes")
    shares = np.bincount((a @ w + b).argmax(-1).ravel(), minlength=3) / (SIZE * SIZE)
    panel = ConvVizPanel(model, image, preprocess="rescale", background=False)
    table = panel.chooser.table.value
    assert "Predicted regions" in table and "No predictions" not in table
    cam = panel.select("Grad-CAM")
    assert cam.controls.sanity.disabled and cam.controls.depth.layout.display == "none"  # no class maps to compare
    for k in np.flatnonzero(shares):
        assert f"#{k}</td><td style='text-align:right'>{shares[k]:.1%}" in table
