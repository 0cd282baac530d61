"""The panel on models and inputs that used to break it: headless bases, a single sigmoid unit, a linear head,
NaN/inf outputs, refused uploads, and the `output=` of a model with several outputs."""

from __future__ import annotations

import datetime

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet

from convviz_widgets import ConvVizError, Inspector, to_png
from convviz_widgets.images import load_image
from convviz_widgets.limits import limits
from convviz_widgets.widgets import CamView, ConvVizPanel
from convviz_widgets.widgets import base as base_module


def upload_value(name: str, content: bytes) -> tuple[dict, ...]:
    """What FileUpload.value holds after a user picks one file."""
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


def shown(panel: ConvVizPanel) -> tuple[bytes, ...]:
    """The pictures the panel shows now (header, activations grid, Grad-CAM overlay)."""
    return bytes(panel.chooser.picture.value), bytes(panel.activations.grid.value), bytes(panel.cam.overlay.value)


@pytest.fixture(scope="module")
def model8() -> keras.Model:
    """A tiny 8-class softmax convnet."""
    return small_convnet(size=32, classes=8, seed=1)


# ----- models without a class output ------------------------------------------------------------------------
def headless_vgg16() -> keras.Model:
    """VGG16 without its classifier, random weights, 64 px."""
    keras.utils.set_random_seed(0)
    return keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))


def headless_mobilenet() -> keras.Model:
    """MobileNet 0.25 without its classifier, random weights, 128 px."""
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNet(alpha=0.25, include_top=False, weights=None, input_shape=(128, 128, 3))


@pytest.mark.parametrize(("build", "size", "preprocess", "background"), [
    (headless_vgg16, 64, "caffe", False), (headless_mobilenet, 128, "tf", False), (headless_vgg16, 64, "caffe", True)])
def test_a_headless_model_shows_activations_and_filters_and_says_why_there_is_no_grad_cam(
        build, size: int, preprocess: str, background: bool) -> None:
    panel = ConvVizPanel(build(), rng_image(size, size, seed=2), preprocess=preprocess, background=background)
    assert panel.wait(120)
    assert "no classes" in repr(panel)
    header = panel.chooser
    assert header.error == "" and header.predictions == []
    assert "No predictions" in header.table.value and "no class output" in header.table.value
    assert panel.activations.error == "" and len(bytes(panel.activations.grid.value)) > 0

    cam = panel.select("Grad-CAM")
    assert panel.wait(60)
    notice = cam.notice.value
    assert cam.children == (cam.notice,) and cam.error == ""
    assert "no class output" in notice and "include_top=True" in notice and "classifier head" in notice
    assert "<br" not in notice and "\n" not in notice  # one line
    assert cam.class_index.max == 0 and cam.overlay.value == b""

    filters = panel.select("Filters")
    filters.count.value, filters.steps.value = 2, 2
    filters.render()
    assert filters.wait(120) and filters.error == "" and len(bytes(filters.grid.value)) > 0
    panel.set_image(rng_image(size, size, seed=3))  # a new image: still no error anywhere
    assert panel.wait(120) and header.error == "" and panel.activations.error == "" and cam.error == ""


def test_a_headless_cam_view_alone_says_why_instead_of_crashing() -> None:
    view = CamView(headless_vgg16(), rng_image(64, 64), preprocess="caffe", background=False)
    assert "no class output" in view.notice.value and view.error == "" and view.children == (view.notice,)


def test_a_single_sigmoid_unit_is_two_classes_and_both_are_explained() -> None:
    model = small_convnet(size=32, classes=1, activation="sigmoid", seed=4)
    panel = ConvVizPanel(model, rng_image(32, 32, seed=5), background=False)
    assert panel.chooser.table.value.count("<tr>") == 2 and panel.chooser.error == ""
    cam = panel.select("Grad-CAM")
    assert cam.class_index.max == 1 and len(cam.classes.options) == 2
    scores = {}
    for index in (0, 1):
        cam.class_index.value = index
        assert cam.error == "" and f"(class {index})" in cam.score.value
        scores[index] = cam.current_cam().score
    assert scores[0] == pytest.approx(-scores[1], rel=1e-5)  # class 0 is explained by the negated logit


# ----- what a head's outputs are called ------------------------------------------------------------------
def test_a_linear_head_shows_scores_not_probabilities(monkeypatch: pytest.MonkeyPatch) -> None:
    model = small_convnet(size=32, classes=4, activation="linear", seed=6)
    if not hasattr(Inspector, "score_label"):  # the head's own wording, where the Inspector does not give it
        monkeypatch.setattr(Inspector, "score_label", property(
            lambda self: "score" if self.graph.head.activation in ("linear", None) else "probability"),
            raising=False)
    panel = ConvVizPanel(model, rng_image(32, 32, seed=7), background=False)
    assert panel.inspector.score_label == "score"
    table = panel.chooser.table.value
    assert "(score)" in table and "%" not in table and "probability" not in table
    cam = panel.select("Grad-CAM")
    assert "probability" not in cam.score.value and "scores, not probabilities" in cam.score.value
    assert all("%" not in label for label, _ in cam.classes.options)
    assert all("score" in tip and "probability" not in tip for tip in cam.classes.tooltips)


def test_a_softmax_head_shows_probabilities(model8: keras.Model) -> None:
    panel = ConvVizPanel(model8, rng_image(32, 32), background=False)
    assert "(probability)" in panel.chooser.table.value and "%" in panel.chooser.table.value
    assert "probability" in panel.select("Grad-CAM").score.value


# ----- NaN / inf outputs -------------------------------------------------------------------------------------
def overflowing(layer: str, weight: str) -> keras.Model:
    """The tiny convnet with one layer's kernel or bias set to 3e38: finite weights, but sums overflow to inf."""
    model = small_convnet(size=32, classes=3, seed=8)
    kernel, bias = model.get_layer(layer).get_weights()
    if weight == "kernel":
        kernel = np.full_like(kernel, 3e38)
    else:
        bias = np.full_like(bias, 3e38)
    model.get_layer(layer).set_weights([kernel, bias])
    return model


@pytest.mark.parametrize(("layer", "weight", "background"), [
    ("predictions", "kernel", False), ("predictions", "kernel", True), ("conv3", "bias", False)])
def test_a_model_whose_output_is_nan_or_inf_shows_a_clear_error_in_every_tab(layer: str, weight: str,
                                                                             background: bool) -> None:
    model = overflowing(layer, weight)
    output = np.asarray(model(rng_image(32, 32, seed=9)[None].astype("float32") / 255.0))
    assert not np.isfinite(output).all()  # the model really outputs NaN/inf for this image
    panel = ConvVizPanel(model, rng_image(32, 32, seed=9), background=background)
    assert panel.wait(60)
    views = {"header": panel.chooser, "Activations": panel.activations, "Grad-CAM": panel.select("Grad-CAM")}
    assert panel.wait(60)
    for where, view in views.items():
        assert "NaN" in view.error, f"{where} shows no error: {view.error!r}"
        assert "Traceback" not in view.error and "convviz-error" in view.message.value
    assert panel.cam.overlay.layout.display == "none" and panel.cam.score.value == ""
    panel.select("Activations")
    panel.activations.layer.value = "pool1"  # redrawing keeps the error in view
    assert "NaN" in panel.activations.error
    panel.cam.method.value = "gradcam++"  # so does asking for another map
    assert panel.wait(60) and "NaN" in panel.cam.error


# ----- refused uploads ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("background", [False, True])
def test_a_corrupt_upload_keeps_the_previous_image_and_says_why_in_the_header(model8: keras.Model,
                                                                               background: bool) -> None:
    panel = ConvVizPanel(model8, rng_image(32, 32, seed=1), background=background)
    panel.select("Grad-CAM")
    assert panel.wait(60)
    before, source, options = shown(panel), panel.chooser.source.value, panel.chooser.source.options
    index = panel.cam.predictions[-1][0]
    panel.chooser.upload.value = upload_value("notes.png", b"this is not a picture")
    panel.cam.class_index.value = index  # picked while the upload is read: it applies to the image kept
    assert panel.wait(60)
    header = panel.chooser
    assert "not an image" in header.error and "convviz-error" in header.message.value
    assert header.source.value == source and header.source.options == options  # the refused file is not listed
    assert shown(panel)[:2] == before[:2] and panel.activations.error == "" and panel.cam.error == ""
    assert f"(class {index})" in panel.cam.score.value
    panel.chooser.upload.value = upload_value("good.png", to_png(rng_image(32, 32, seed=2)))
    assert panel.wait(60) and header.error == "" and header.source.value == "upload:good.png"
    assert shown(panel)[0] != before[0]


def test_an_upload_over_the_pixel_limit_is_refused_before_decoding(model8: keras.Model,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    big = to_png(rng_image(64, 64, seed=3))  # 4096 pixels
    monkeypatch.setattr(limits, "max_pixels", 1000)
    with pytest.raises(ConvVizError, match="pixels"):  # the limit holds below the panel too
        load_image(big)
    monkeypatch.undo()
    panel = ConvVizPanel(model8, rng_image(32, 32, seed=1), background=False)
    before, source = shown(panel), panel.chooser.source.value
    monkeypatch.setattr(limits, "max_pixels", 1000)
    panel.chooser.upload.value = upload_value("huge.png", big)
    header = panel.chooser
    assert header.error != "" and "convviz-error" in header.message.value
    assert header.source.value == source and shown(panel)[:2] == before[:2]
    assert "upload:huge.png" not in [value for _, value in header.source.options]


# ----- output= ------------------------------------------------------------------------------------------------
def test_output_is_passed_to_the_inspector_only_when_given(model8: keras.Model, monkeypatch) -> None:
    calls: list[dict] = []
    original = base_module.inspector_for

    def recording(model, preprocess=None, class_names=None, **kwargs):
        calls.append(kwargs)
        return original(model, preprocess, class_names)

    monkeypatch.setattr(base_module, "inspector_for", recording)
    ConvVizPanel(model8, rng_image(), background=False)
    ConvVizPanel(model8, rng_image(), output="predictions", background=False)
    assert calls == [{}, {"output": "predictions"}]
    with pytest.raises(Exception, match="when building the Inspector"):
        ConvVizPanel(Inspector(model8), output="predictions", background=False)
