"""Safe where it lives: several outputs, linear heads, NaN models and the memory budget."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet
from PIL import Image

import convviz_widgets as cv
from convviz_widgets import cli, limits
from convviz_widgets.core.api import inspector_for
from convviz_widgets.metrics import deletion_curve, randomization_check
from convviz_widgets.report import build_report


@pytest.fixture
def budget():
    """Set limits.memory_budget for one test and restore it afterwards."""
    saved = limits.memory_budget

    def set_budget(n_bytes: int | None) -> None:
        limits.memory_budget = n_bytes

    yield set_budget
    limits.memory_budget = saved


def two_headed(seed: int = 0) -> keras.Model:
    """A detector-like model: a box head of 4 linear units first, then a 3-class softmax head."""
    keras.utils.set_random_seed(seed)
    x = keras.Input((32, 32, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1")(x)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv2")(h)
    g = keras.layers.GlobalAveragePooling2D(name="gap")(h)
    box = keras.layers.Dense(4, name="box")(g)
    cls = keras.layers.Dense(3, activation="softmax", name="cls")(g)
    return keras.Model(x, [box, cls], name="two_headed")


@pytest.fixture(scope="module")
def heads():
    return two_headed()


@pytest.fixture(scope="module")
def image():
    return rng_image(32, 32, seed=1)


# ----- several outputs -----------------------------------------------------------------------------
def test_model_with_two_outputs_needs_output_and_lists_them(heads):
    with pytest.raises(cv.ConvVizError) as err:
        cv.Inspector(heads)
    text = str(err.value)
    assert "2 outputs" in text and "'box'" in text and "(None, 4)" in text and "'cls'" in text
    assert "output=" in text


@pytest.mark.parametrize("fn", ["predict", "gradcam", "activations"])
def test_api_functions_without_output_refuse_a_two_output_model(heads, image, fn):
    with pytest.raises(cv.ConvVizError, match="2 outputs"):
        getattr(cv, fn)(heads, image)


def test_output_by_name_and_index_explain_the_class_head(heads, image):
    by_name = cv.Inspector(heads, output="cls")
    by_index = inspector_for(heads, output=1)
    assert by_name.n_classes == by_index.n_classes == 3
    assert by_name.score_label == "probability"
    probs = np.asarray(heads(image[None].astype(np.float32) / 255.0)[1][0])
    top = cv.predict(heads, image, output="cls", top=3)
    assert [i for i, _, _ in top] == list(np.argsort(-probs, kind="stable"))
    assert top[0][2] == pytest.approx(float(probs.max()), rel=1e-4)
    cam = cv.gradcam(heads, image, output=1, class_index=2)
    assert cam.class_index == 2 and cam.probability == pytest.approx(float(probs[2]), rel=1e-4)
    assert set(cv.activations(heads, image, output="cls")) == {"conv1", "conv2"}


def test_box_head_is_explained_as_scores_not_probabilities(heads, image):
    ins = cv.Inspector(heads, output="box")
    assert ins.score_label == "score" and ins.n_classes == 4
    boxes = np.asarray(heads(image[None].astype(np.float32) / 255.0)[0][0])
    values = [v for _, _, v in ins.predict(image, top=4)]
    assert values == pytest.approx(sorted(boxes.tolist(), reverse=True), rel=1e-4, abs=1e-6)
    assert ins.gradcam(image, class_index=0).probability is None


@pytest.mark.parametrize("bad", ["boxes", 2, -1, 1.0, True])
def test_unknown_output_is_a_clear_error(heads, bad):
    with pytest.raises(cv.ConvVizError, match="output"):
        cv.Inspector(heads, output=bad)


def test_cli_report_needs_output_for_two_heads_and_takes_a_name_or_index(heads, tmp_path, capsys):
    model_path = tmp_path / "heads.keras"
    heads.save(model_path)
    img_path = tmp_path / "img.png"
    Image.fromarray(rng_image(32, 32, seed=2)).save(img_path)
    common = ["report", "--model", str(model_path), "--image", str(img_path), "--preprocess", "rescale",
              "--steps", "1", "--filters", "2", "--patterns", "plain"]
    assert cli.main([*common, "--out", str(tmp_path / "a")]) == 2
    assert "'box'" in capsys.readouterr().err
    assert cli.main([*common, "--out", str(tmp_path / "b"), "--output", "cls"]) == 0
    assert cli.main([*common, "--out", str(tmp_path / "c"), "--output", "0"]) == 0
    page = (tmp_path / "c" / "index.html").read_text()
    assert "score" in page and "%" not in page.split("Top-5")[1].split("</td>")[0]


# ----- linear heads ----------------------------------------------------------------------------------
def test_linear_head_is_labelled_score_in_predict_cam_and_report(image, tmp_path):
    model = small_convnet(activation="linear", seed=3)
    ins = cv.Inspector(model, preprocess="rescale")
    assert ins.score_label == "score"
    logits = np.asarray(model(image[None].astype(np.float32) / 255.0)[0])
    top = ins.predict(image, top=3)
    assert [v for _, _, v in top] == pytest.approx(sorted(logits.tolist(), reverse=True), rel=1e-4, abs=1e-6)
    assert ins.gradcam(image).probability is None
    report = build_report(ins, image, tmp_path, filter_layers=["conv1"], n_filters=2, steps=1,
                          pattern_modes=("plain",), log=lambda _: None)
    facts = dict(report.facts)
    assert "score" in facts["Top-5"] and "%" not in facts["Top-5"]
    captions = [c for _, _, items in report.sections for _, c in items if c.startswith("#1")]
    assert captions and "%" not in captions[0].split("—")[0]


def test_softmax_head_is_labelled_probability(tiny_model):
    assert cv.Inspector(tiny_model).score_label == "probability"


# ----- NaN models ------------------------------------------------------------------------------------
def _scaled(layers: str, factor: float, seed: int = 0) -> keras.Model:
    """A small convnet whose kernels (comma-separated layers) are multiplied by `factor` (NaN: trained into NaN)."""
    model = small_convnet(seed=seed)
    for layer in layers.split(","):
        kernel = model.get_layer(layer).kernel
        kernel.assign(np.asarray(kernel) * np.float32(factor))
    return model


@pytest.fixture(scope="module")
def overflowing():
    """Finite weights whose activations overflow to inf from conv2 on: NaN/inf appear only when run."""
    return cv.Inspector(_scaled("conv1,conv2", 1e25), preprocess="rescale")


@pytest.mark.parametrize("call", [
    lambda ins, img: ins.predict(img),
    lambda ins, img: ins.activations(img),
    lambda ins, img: ins.gradcam(img),
    lambda ins, img: ins.gradcam(img, method="gradcam++"),
    lambda ins, img: ins.gradcam(img, method="scorecam"),
    lambda ins, img: ins.filter_patterns("conv3", range(2), size=32, steps=2),
    lambda ins, img: deletion_curve(ins, img, None, 0, steps=4, order="random"),
    lambda ins, img: randomization_check(ins, img, layers=1),
], ids=["predict", "activations", "gradcam", "gradcam++", "scorecam", "filter_patterns", "deletion",
        "randomization"])
def test_nan_model_output_is_a_clear_error_in_every_entry_point(overflowing, image, call):
    with pytest.raises(cv.ConvVizError, match="NaN/inf"):
        call(overflowing, image)


def test_nan_activations_name_the_layer(overflowing, image):
    with pytest.raises(cv.ConvVizError, match="'conv2'"):
        overflowing.activations(image)
    assert np.isfinite(overflowing.activations(image, layers="conv1")["conv1"]).all()


@pytest.mark.parametrize("fn", ["predict", "activations", "gradcam"])
def test_nan_weights_are_refused_before_any_work(image, fn):
    model = _scaled("conv1", np.nan)  # compiled ReLUs would turn the NaN into silent zeros
    with pytest.raises(cv.ConvVizError, match="conv1.*NaN/inf"):
        getattr(cv, fn)(model, image)


def test_overflowing_head_refuses_predictions_but_shows_the_finite_feature_maps(image):
    ins = cv.Inspector(_scaled("conv3,predictions", 1e25), preprocess="rescale")
    with pytest.raises(cv.ConvVizError, match="output for this image is NaN/inf"):
        ins.predict(image)
    acts = ins.activations(image)
    assert all(np.isfinite(a).all() for a in acts.values())


# ----- memory budget ---------------------------------------------------------------------------------
def test_budget_message_gives_estimate_budget_and_what_to_lower(budget):
    budget(100 * 2**20)
    with pytest.raises(cv.ConvVizError) as err:
        limits.fit_batch(300 * 2**20, 8, what="filters", lower="size")
    text = str(err.value)
    assert "300 MB" in text and "100 MB" in text and "Lower size" in text and "CONVVIZ_MEMORY_BUDGET" in text
    assert limits.fit_batch(10 * 2**20, 100) == 10


def test_huge_pattern_size_is_refused_at_once_with_the_estimate(budget):
    from convviz_widgets import demo

    budget(1 * 2**30)  # a Binder-sized share
    ins = cv.Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
    per_filter, fixed = ins.pattern_memory("conv5", 16, 2048)
    assert per_filter > 2**30
    with pytest.raises(cv.ConvVizError) as err:
        ins.filter_patterns("conv5", range(16), size=2048)
    text = str(err.value)
    assert f"about {limits.size_text(per_filter + fixed)}" in text and "budget of 1.00 GB" in text
    assert "Lower size" in text
    assert not ins._patterns.steps  # refused before anything was compiled


def test_many_filters_run_in_chunks_that_equal_one_batch(tiny_model, budget):
    ins = cv.Inspector(tiny_model, preprocess="rescale")
    filters = [i % 8 for i in range(2000)]
    budget(64 * 2**30)
    whole = ins.filter_patterns("conv1", filters, size=8, steps=2, seed=4)
    per_filter, fixed = ins.pattern_memory("conv1", len(filters), 8)
    budget(int(fixed + 300 * per_filter))
    calls = []
    chunked = ins.filter_patterns("conv1", filters, size=8, steps=2, seed=4, progress=lambda d, t: calls.append(t))
    assert calls[-1] == 2 * 8  # 2000 filters in chunks of 256 (the largest compiled batch size within 300)
    assert np.array_equal(chunked.images, whole.images)
    np.testing.assert_allclose(chunked.final_activation, whole.final_activation, rtol=1e-5, atol=1e-6)


def test_regularized_chunks_equal_one_batch(tiny_model, budget):
    ins = cv.Inspector(tiny_model, preprocess="rescale")
    filters = [i % 8 for i in range(24)]
    budget(64 * 2**30)
    whole = ins.filter_patterns("conv1", filters, size=16, steps=2, seed=5, mode="regularized")
    per_filter, fixed = ins.pattern_memory("conv1", len(filters), 16, "regularized")
    budget(int(fixed + 10 * per_filter))
    chunked = ins.filter_patterns("conv1", filters, size=16, steps=2, seed=5, mode="regularized")
    assert np.abs(chunked.images.astype(int) - whole.images.astype(int)).max() <= 1


def test_batch_probabilities_split_into_chunks_give_the_same_values(tiny_model, budget):
    ins = cv.Inspector(tiny_model, preprocess="rescale")
    x = np.concatenate([np.asarray(ins.batch(rng_image(32, 32, seed=s))) for s in range(10)])
    budget(64 * 2**30)
    whole = ins.batch_probabilities(x)
    budget(int(3 * ins.bytes_per_image((32, 32))))
    np.testing.assert_allclose(ins.batch_probabilities(x), whole, rtol=1e-5, atol=1e-7)


def test_single_image_work_over_budget_is_refused_with_the_estimate(tiny_model, image, budget):
    ins = cv.Inspector(tiny_model, preprocess="rescale")
    budget(1000)
    with pytest.raises(cv.ConvVizError, match="The activations of this image needs about .* memory budget"):
        ins.activations(image)
    with pytest.raises(cv.ConvVizError, match="A class activation map of this image needs about"):
        ins.gradcam(image)
    with pytest.raises(cv.ConvVizError, match="The randomisation check needs about"):
        randomization_check(ins, image, layers=1)


def test_deletion_curve_lowers_its_batch_to_fit_the_budget(tiny_model, image, budget, monkeypatch):
    from convviz_widgets.metrics import _model, deletion

    ins = cv.Inspector(tiny_model, preprocess="rescale")
    budget(64 * 2**30)
    whole = deletion_curve(ins, image, None, 1, steps=8, order="random", batch_size=64)
    sizes = []

    def counting(inspector, images, class_index):
        sizes.append(len(images))
        return _model.class_probabilities(inspector, images, class_index)

    monkeypatch.setattr(deletion, "class_probabilities", counting)
    per_image = ins.bytes_per_image((32, 32)) + 3.0 * 4 * 32 * 32 * 3
    budget(int(2.5 * per_image))
    chunked = deletion_curve(ins, image, None, 1, steps=8, order="random", batch_size=64)
    assert sizes == [2, 2, 2, 2, 1]
    np.testing.assert_allclose(chunked.probabilities, whole.probabilities, rtol=1e-5, atol=1e-7)
