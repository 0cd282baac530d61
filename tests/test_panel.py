"""ConvVizPanel and its views, driven from Python as a user drives the controls (no browser)."""

from __future__ import annotations

import datetime
import io
import threading
import weakref
from types import SimpleNamespace

import ipywidgets as widgets
import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet, wait_until
from PIL import Image

from convviz_widgets import ConvVizError, Inspector, to_png
from convviz_widgets.metrics import pointing_game
from convviz_widgets.metrics import sanity as sanity_module
from convviz_widgets.widgets import ActivationsView, CamView, ConvVizPanel, FiltersView, Runner

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# ----- helpers and fixtures ---------------------------------------------------------------------------
def decode(png: bytes | memoryview) -> np.ndarray:
    """PNG bytes from an Image widget as a uint8 array (fails if they are not a PNG)."""
    data = bytes(png)
    assert data.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def counting(monkeypatch: pytest.MonkeyPatch, obj: object, name: str) -> list[dict]:
    """Record the keyword arguments of each call of obj.name (a function) while keeping its behaviour."""
    calls: list[dict] = []
    original = getattr(obj, name)

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(obj, name, wrapper)
    return calls


def weights_of(model: keras.Model) -> list[np.ndarray]:
    """Copies of every weight of a model."""
    return [np.array(w) for w in model.get_weights()]


def blocked(runner: Runner) -> threading.Event:
    """Hold a background runner's worker until the returned event is set (to see the busy state)."""
    gate = threading.Event()
    runner.submit(lambda: gate.wait(30), lambda _: None, lambda _: None)
    return gate


@pytest.fixture()
def fresh_copies(monkeypatch: pytest.MonkeyPatch) -> list[dict]:
    """An empty cache of randomised model copies; returns the record of copies made."""
    monkeypatch.setattr(sanity_module, "_COPIES", weakref.WeakKeyDictionary())
    return counting(monkeypatch, sanity_module, "randomized_copy")


def upload_value(name: str, content: bytes) -> tuple[dict, ...]:
    """What FileUpload.value holds after a user picks one file."""
    return ({"name": name, "type": "image/png", "size": len(content), "content": memoryview(content),
             "last_modified": datetime.datetime.now(datetime.timezone.utc)},)


@pytest.fixture(scope="module")
def model8() -> keras.Model:
    """The shared tiny convnet with 8 classes, so a class can lie outside the top 5."""
    return small_convnet(size=32, classes=8, seed=1)


@pytest.fixture()
def panel(model8: keras.Model, tmp_path) -> ConvVizPanel:
    """A synchronous panel on the tiny model and a random image."""
    return ConvVizPanel(model8, rng_image(48, 40, seed=3), background=False, save_dir=tmp_path)


@pytest.fixture(scope="module")
def demo_model() -> keras.Model:
    """The shipped demo convnet (part of the package: a missing file is a failure, not a skip)."""
    from convviz_widgets import demo

    return demo.load_model()


@pytest.fixture(scope="module")
def nested_model() -> keras.Model:
    """VGG16 (random weights, 64 px) nested in a Sequential with a Dense head."""
    keras.utils.set_random_seed(0)
    base = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    return keras.Sequential([keras.Input((64, 64, 3)), base, keras.layers.Flatten(),
                             keras.layers.Dense(4, activation="softmax", name="head")], name="nested_vgg")


# ----- the panel as a whole -------------------------------------------------------------------------------
def test_panel_is_a_findable_widget_with_three_tabs(panel: ConvVizPanel) -> None:
    assert isinstance(panel, widgets.VBox)
    assert "convviz-panel" in panel._dom_classes
    assert panel.tabs.titles == ("Activations", "Filters", "Grad-CAM")
    assert [type(v) for v in panel.tabs.children] == [ActivationsView, FiltersView, CamView]
    assert decode(panel.chooser.picture.value).shape[0] >= 192  # the 32 px input, enlarged
    table = panel.chooser.table.value
    assert table.count("<tr>") == 5 and "%" in table and "class " in table
    assert [p[0] for p in panel.chooser.predictions] == [p[0] for p in panel.inspector.predict(panel.chooser.rgb)]
    grid = decode(panel.activations.grid.value)
    assert grid.shape[1] >= 640 and panel.activations.error == ""


def test_panel_accepts_an_inspector_but_not_options_beside_it(model8: keras.Model) -> None:
    inspector = Inspector(model8, preprocess="tf")
    panel = ConvVizPanel(inspector, rng_image(), background=False)
    assert panel.inspector is inspector and panel.activations.inspector is inspector
    with pytest.raises(ConvVizError, match="when building the Inspector"):
        ConvVizPanel(inspector, preprocess="caffe", background=False)


def test_hidden_tabs_do_no_model_work_until_shown(model8: keras.Model, monkeypatch) -> None:
    inspector = Inspector(model8)
    cams = counting(monkeypatch, inspector, "gradcam")
    panel = ConvVizPanel(inspector, rng_image(), background=False)
    assert cams == [] and panel.cam.overlay.value == b""
    panel.select("Grad-CAM")
    assert len(cams) == 1 and decode(panel.cam.overlay.value).shape[0] >= 256


def test_uploading_an_image_makes_it_current(panel: ConvVizPanel) -> None:
    before = panel.activations.grid.value
    panel.chooser.upload.value = upload_value("stripes.png", to_png(rng_image(64, 64, seed=9)))
    assert panel.chooser.source.value == "upload:stripes.png"
    assert ("Upload: stripes.png", "upload:stripes.png") in panel.chooser.source.options
    assert panel.activations.grid.value != before
    assert len(panel.chooser.upload.value) == 1  # the button reads "Upload (len(value))": the upload is counted


def test_an_error_shows_in_the_panel_and_the_next_action_works(panel: ConvVizPanel) -> None:
    picture = panel.chooser.picture.value
    panel.chooser.upload.value = upload_value("notes.png", b"this is not a picture")
    assert "not an image" in panel.chooser.error
    assert "convviz-error" in panel.chooser.message.value
    assert panel.chooser.picture.value == picture  # the last good image stays
    panel.set_image(rng_image(32, 32, seed=5))
    assert panel.chooser.error == "" and panel.chooser.picture.value != picture


def test_an_unexpected_error_in_a_callback_is_readable_and_recoverable(panel: ConvVizPanel, monkeypatch) -> None:
    panel.select("Grad-CAM")
    cam = panel.cam
    original = cam.inspector.gradcam

    def broken(*args, **kwargs):
        raise RuntimeError("the GPU caught fire")

    monkeypatch.setattr(cam.inspector, "gradcam", broken)
    cam.method.value = "gradcam++"
    assert cam.error == "RuntimeError: the GPU caught fire"
    monkeypatch.setattr(cam.inspector, "gradcam", original)
    cam.classes.value = cam.predictions[1][0]
    assert cam.error == "" and f"(class {cam.predictions[1][0]})" in cam.score.value


def test_the_panel_with_samples_when_no_image_is_given(model8: keras.Model) -> None:
    panel = ConvVizPanel(model8, background=False)  # the package's demo scenes are offered
    assert panel.chooser.source.value == "sample:0"
    first = panel.chooser.picture.value
    panel.chooser.source.value = "sample:3"
    assert panel.chooser.picture.value != first
    star = panel.chooser.picture.value
    panel.chooser.shuffle.click()  # the same class, the next seed
    assert panel.chooser.source.value == "sample:3" and panel.chooser.picture.value != star


# ----- Activations -------------------------------------------------------------------------------------------
def test_activations_rerender_from_cache_without_model_work(panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.activations
    calls = counting(monkeypatch, view.inspector, "activations")
    forward = counting(monkeypatch, view.inspector, "forward")
    seen = {bytes(view.grid.value)}
    view.layer.value = "pool1"
    seen.add(bytes(view.grid.value))
    view.cmap.value = "gray"
    seen.add(bytes(view.grid.value))
    view.per_row.value = 3
    seen.add(bytes(view.grid.value))
    view.channel.value = 5
    assert len(seen) == 4 and calls == [] and forward == []


def test_activation_controls_change_the_pictures_and_facts(panel: ConvVizPanel) -> None:
    view = panel.activations
    assert view.layer.options[0] == ("conv1  (32×32×8)", "conv1")
    view.layer.value = "conv3"
    act = view.activation()
    conv3 = keras.Model(panel.inspector.model.inputs, panel.inspector.model.get_layer("conv3").output)
    rgb = panel.chooser.rgb.astype(np.float32)[None]
    assert panel.inspector.preprocess_name == "rescale"
    np.testing.assert_allclose(act, conv3(rgb / 255.0).numpy()[0], rtol=1e-5, atol=1e-6)  # the "rescale" preset
    assert view.channel.max == 19 and view.channel_index.max == 19
    dead = int(np.sum(act.max(axis=(0, 1)) <= 0))
    assert f"dead channels: <b>{dead} of 20</b>" in view.facts.value
    assert f"{np.mean(act == 0):.1%}</b> of activations are zero" in view.facts.value
    assert "8 × 8 × 20" in view.facts.value
    view.per_row.value = 4
    four = decode(view.grid.value)
    view.per_row.value = 10  # two rows instead of four: wider and shorter
    ten = decode(view.grid.value)
    assert ten.shape[1] / ten.shape[0] > 2 * four.shape[1] / four.shape[0]
    channel = view.channel_picture.value
    view.channel_index.value = 7  # typing an index moves the slider and the picture
    assert view.channel.value == 7 and view.channel_picture.value != channel
    assert "Channel 7:" in view.channel_caption.value
    gray = view.grid.value
    view.cmap.value = "magma"
    assert view.grid.value != gray
    view.layer.value = "conv1"  # fewer channels than before? no: 8 < 20, the channel is clamped
    assert view.channel.value == 7 and view.channel.max == 7


def test_activations_view_works_alone_on_a_new_image(model8: keras.Model) -> None:
    view = ActivationsView(model8, rng_image(seed=1), layer="conv2", background=False)
    assert isinstance(view, widgets.VBox) and "convviz-activations" in view._dom_classes
    first = view.grid.value
    view.set_image(rng_image(seed=2))
    assert view.grid.value != first and view.layer.value == "conv2"


def test_big_layers_are_shrunk_for_display_but_saved_in_full(tmp_path) -> None:
    model = small_convnet(size=224, classes=3)
    view = ActivationsView(model, rng_image(224, 224), background=False, save_dir=tmp_path)
    shown = decode(view.grid.value)
    assert shown.shape[1] <= 1280
    assert "1/2 resolution" in view.grid_caption.value
    view.save_button.click()
    tag = view.image_tag()
    full = decode((tmp_path / f"convviz-activations-conv1-{tag}.png").read_bytes())
    assert full.shape[1] == 8 * 225 - 1  # 8 channels of 224 px, 1 px apart
    assert (tmp_path / f"convviz-activations-conv1-channel{view.channel.value}-{tag}.png").is_file()
    assert f"convviz-activations-conv1-{tag}.png" in view.saved.value


# ----- Filters --------------------------------------------------------------------------------------------
def test_filters_render_with_progress_and_cache(panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.select("Filters")
    calls = counting(monkeypatch, view.inspector, "filter_patterns")
    steps_seen: list[int] = []
    view.progress.observe(lambda change: steps_seen.append(change["new"]), names="value")
    view.layer.value = "conv2"
    view.count.value = 6
    view.steps.value = 5
    view.render_button.click()
    assert steps_seen[-5:] == [1, 2, 3, 4, 5] and view.progress.max == 5
    assert len(calls) == 1 and view.status.value == ""
    first = view.grid.value
    assert decode(first).shape[1] > 6 * 96  # six 32 px patterns, enlarged to 96 px, in one row
    assert "filters 0–5" in view.caption.value
    view.first.value = 3
    assert view.grid.value == first and "Press Render" in view.status.value
    view.render_button.click()
    second = view.grid.value
    assert second != first and len(calls) == 2
    view.first.value = 0  # going back is instant: from the cache, no model work
    assert view.grid.value == first and len(calls) == 2 and "filters 0–5" in view.caption.value
    view.save_button.click()
    assert "convviz-filters-conv2-0-5-32px-5steps.png" in view.saved.value


def test_cancel_stops_a_long_filter_render(model8: keras.Model) -> None:
    view = FiltersView(model8, layer="conv3", count=4, steps=500, background=True)
    view.render_button.click()
    wait_until(lambda: view.progress.value >= 2, what="two ascent steps")
    assert view.running and not view.cancel_button.disabled
    view.cancel_button.click()
    assert view.wait(60)
    assert view.status.value.startswith("Filter patterns cancelled after")
    assert view.progress.value < 500 and view.progress.bar_style == "warning"
    assert view.cache == {} and view.grid.value == b""
    assert not view.render_button.disabled and view.cancel_button.disabled
    view.steps.value = 3  # the next render works
    view.render_button.click()
    assert view.wait(60) and view.progress.value == 3 and decode(view.grid.value).size


def test_a_failing_filter_render_shows_the_error_and_recovers(model8: keras.Model, monkeypatch) -> None:
    view = FiltersView(model8, count=2, steps=2, background=False)
    original = view.inspector.filter_patterns
    monkeypatch.setattr(view.inspector, "filter_patterns", lambda *a, **k: 1 / 0)
    view.render()
    assert view.error == "ZeroDivisionError: division by zero" and view.progress.bar_style == "danger"
    monkeypatch.setattr(view.inspector, "filter_patterns", original)
    view.render()
    assert view.error == "" and decode(view.grid.value).size


def test_switching_to_regularised_patterns_renders_new_ones_and_plain_comes_back_from_cache(
        panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.select("Filters")
    assert [label for label, _ in view.mode.options] == ["Plain (book)", "Regularised"]
    assert view.mode.value == "plain" and view.step_size.value == 1.0 and not view.step_size.disabled
    calls = counting(monkeypatch, view.inspector, "filter_patterns")
    view.layer.value, view.count.value, view.steps.value = "conv2", 4, 3
    view.render_button.click()
    plain = view.grid.value
    assert calls[-1]["mode"] == "plain" and calls[-1]["step_size"] == 1.0
    assert "plain ascent, step 1" in view.caption.value
    view.mode.value = "regularized"  # a new recipe is a new cache entry: Render computes it
    assert view.step_size.disabled and "Press Render" in view.status.value and view.grid.value == plain
    view.render_button.click()
    regularised = view.grid.value
    assert regularised != plain and decode(regularised).shape == decode(plain).shape
    assert len(calls) == 2 and calls[-1]["mode"] == "regularized" and "regularised" in view.caption.value
    view.mode.value = "plain"  # back: from the cache, no model call
    assert view.grid.value == plain and len(calls) == 2 and not view.step_size.disabled
    view.mode.value = "regularized"
    assert view.grid.value == regularised and len(calls) == 2
    view.save_button.click()
    assert "convviz-filters-conv2-0-3-32px-3steps-regularized.png" in view.saved.value


def test_the_plain_step_size_is_part_of_the_cache_key_and_reaches_the_ascent(panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.select("Filters")
    calls = counting(monkeypatch, view.inspector, "filter_patterns")
    view.count.value, view.steps.value = 2, 2
    view.render_button.click()
    first = view.grid.value
    view.step_size.value = 4.0
    assert "Press Render" in view.status.value and view.grid.value == first
    view.render_button.click()
    assert calls[-1]["step_size"] == 4.0 and view.grid.value != first and "step 4" in view.caption.value
    view.step_size.value = 1.0
    assert view.grid.value == first and len(calls) == 2


def test_the_demo_model_gets_its_own_plain_step_size(demo_model: keras.Model, model8: keras.Model) -> None:
    from convviz_widgets.demo import FILTER_STEP_SIZE

    assert FiltersView(demo_model, background=False).step_size.value == FILTER_STEP_SIZE == 3.0
    assert FiltersView(model8, background=False).step_size.value == 1.0
    assert FiltersView(model8, step_size=2.5, mode="regularized", background=False).step_size.disabled


# ----- Grad-CAM ---------------------------------------------------------------------------------------------
def test_gradcam_controls(panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.select("Grad-CAM")
    inspector = view.inspector
    assert view.layer.value == inspector.default_cam_layer == "conv3"
    assert [value for _, value in view.classes.options] == [i for i, _, _ in view.predictions]
    label, index = view.classes.options[0]
    assert label.startswith(inspector.class_names[index]) and label.endswith("%")
    assert view.classes.value == index == view.class_index.value
    assert f"(class {index})" in view.score.value and "probability" in view.score.value

    overlay, heat = view.overlay.value, view.heatmap.value
    other = view.predictions[2][0]
    view.classes.value = other
    assert view.class_index.value == other and f"(class {other})" in view.score.value
    outside = next(i for i in range(8) if i not in [p[0] for p in view.predictions])
    view.class_index.value = outside  # any index, not only the top 5
    assert view.classes.value is None and f"(class {outside})" in view.score.value
    assert view.class_name.value == inspector.class_names[outside]
    view.method.value = "gradcam++"
    assert "Grad-CAM++ of" in view.score.value
    view.layer.value = "conv2"
    assert "<code>conv2</code> (16×16)" in view.score.value

    calls = counting(monkeypatch, inspector, "gradcam")
    overlay, heat = view.overlay.value, view.heatmap.value
    view.opacity.value = 0.9
    assert view.overlay.value != overlay and view.heatmap.value == heat
    view.cmap.value = "viridis"
    assert view.heatmap.value != heat
    view.layer.value = "conv3"  # back through maps computed before: from the cache
    view.method.value = "gradcam"
    view.class_index.value = index
    assert view.classes.value == index
    assert calls == [] and f"(class {index})" in view.score.value
    left, right = decode(view.overlay.value), decode(view.heatmap.value)
    assert left.shape == right.shape and left.shape[0] >= 256
    view.save_button.click()
    name = f"convviz-gradcam-conv3-class{index}-gradcam-{panel.cam.image_tag()}.png"
    saved = decode((panel.cam.save_dir / name).read_bytes())
    assert saved.shape[1] == 2 * left.shape[1] + 8


def test_cam_view_works_alone(model8: keras.Model) -> None:
    view = CamView(model8, rng_image(seed=4), method="gradcam++", background=False)
    assert "Grad-CAM++ of" in view.score.value and decode(view.heatmap.value).size


def test_choosing_score_cam_renders_a_different_heatmap(panel: ConvVizPanel, monkeypatch) -> None:
    view = panel.select("Grad-CAM")
    assert [label for label, _ in view.method.options][:3] == ["Grad-CAM", "Grad-CAM++", "Score-CAM"]
    calls = counting(monkeypatch, view.inspector, "gradcam")
    heat = view.heatmap.value
    view.method.value = "scorecam"
    assert calls[-1]["method"] == "scorecam" and view.heatmap.value != heat
    assert "Score-CAM of" in view.score.value and view.error == "" and view.status.value == ""
    view.method.value = "gradcam"  # back: from the cache
    assert view.heatmap.value == heat and len(calls) == 1


def test_score_cam_and_the_sanity_check_run_in_the_background_with_a_busy_state(model8: keras.Model,
                                                                                 fresh_copies) -> None:
    view = CamView(model8, rng_image(seed=4), background=True)
    assert view.wait(60)
    heat = view.heatmap.value
    gate = blocked(view.runner)
    view.method.value = "scorecam"
    assert "Score-CAM" in view.status.value and "masked forward passes" in view.status.value
    assert view.heatmap.value == heat  # the notebook is not blocked; the old picture stays meanwhile
    view.sanity.value = True
    assert "randomised" in view.status.value and "computing" in view.sanity_caption.value
    gate.set()
    assert view.wait(60) and view.status.value == "" and view.error == ""
    assert view.heatmap.value != heat and "Score-CAM of" in view.score.value
    assert decode(view.sanity_heatmap.value).shape == decode(view.heatmap.value).shape
    assert "Spearman" in view.sanity_text.value and len(fresh_copies) == 1


def test_sanity_check_shows_a_randomised_heatmap_and_correlation_and_keeps_the_model(
        model8: keras.Model, fresh_copies, tmp_path) -> None:
    before = weights_of(model8)
    view = CamView(model8, rng_image(seed=4), background=False, save_dir=tmp_path)
    assert view.sanity_figure.layout.display == "none" and view.sanity_text.value == ""
    assert view.depth.disabled and view.depth.value == 2  # predictions and conv3: down to the CAM layer
    assert view.depth.options[1] == ("top 2, down to conv3", 2)
    view.sanity.value = True
    random_png = decode(view.sanity_heatmap.value)
    assert random_png.shape == decode(view.heatmap.value).shape
    assert view.sanity_heatmap.value != view.heatmap.value and view.sanity_figure.layout.display is None
    text = view.sanity_text.value
    assert "Spearman" in text and "ρ = " in text and "top 2 layers" in text and "predictions, conv3" in text
    assert not view.depth.disabled and len(fresh_copies) == 1
    for a, b in zip(before, weights_of(model8), strict=True):
        np.testing.assert_array_equal(a, b)  # the user's model is never changed

    view.classes.value = view.predictions[1][0]  # another class: the same randomised copy
    view.method.value = "gradcam++"
    view.sanity.value = False
    assert view.sanity_figure.layout.display == "none" and view.sanity_text.value == ""
    view.sanity.value = True
    assert "Grad-CAM++" in view.sanity_text.value and len(fresh_copies) == 1
    view.depth.value = 4  # another depth: one more copy, made once
    assert "top 4 layers" in view.sanity_text.value and len(fresh_copies) == 2
    view.layer.value = "conv2"  # the user picked a depth: it stays
    assert view.depth.value == 4 and len(fresh_copies) == 2
    view.save_button.click()
    saved = decode(next(tmp_path.glob("convviz-gradcam-conv2-*-sanity-top4-*.png")).read_bytes())
    assert saved.shape[1] == 3 * random_png.shape[1] + 16
    for a, b in zip(before, weights_of(model8), strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_sanity_depth_follows_the_cam_layer_until_the_user_picks_one(demo_model: keras.Model) -> None:
    view = CamView(demo_model, background=False)
    assert view.layer.value == "conv5" and view.depth.value == 2  # predictions and conv5
    view.layer.value = "conv3"
    assert view.depth.value == 6  # ... bn4, conv4, bn3, conv3
    view.depth.value = 1
    view.layer.value = "conv2"
    assert view.depth.value == 1


def test_pointing_game_says_hit_on_a_clear_demo_scene_and_nothing_for_own_images(demo_model: keras.Model) -> None:
    from convviz_widgets import demo

    panel = ConvVizPanel(demo_model, background=False)
    view = panel.select("Grad-CAM")
    scene = panel.chooser.scene
    assert panel.chooser.source.value == "sample:0" and scene.labels == [0]
    assert view.predictions[0][0] == 0 and view.classes.value == 0  # the circle is the top class
    assert "Pointing game" in view.pointing.value and ">hit<" in view.pointing.value
    assert "15 px from the circle" in view.pointing.value and "Energy" in view.pointing.value
    absent = next(i for i in range(len(demo.CLASS_NAMES)) if i not in scene.labels)
    view.class_index.value = absent
    assert f"no <b>{demo.CLASS_NAMES[absent]}</b> in this scene" in view.pointing.value
    assert "hit" not in view.pointing.value and "miss" not in view.pointing.value
    panel.chooser.source.value = "sample:pair"  # two objects: the shown class's own mask counts
    assert view.classes.value in panel.chooser.scene.labels and "Pointing game" in view.pointing.value
    panel.set_image(rng_image(96, 96, seed=2))  # your own image: no masks, no pointing game
    assert panel.chooser.scene is None and view.pointing.value == ""


def test_pointing_game_says_miss_when_the_peak_is_far_from_the_object(model8: keras.Model) -> None:
    view = CamView(model8, rng_image(seed=4), background=False)
    peak = np.unravel_index(np.argmax(view.current_cam().resized(32, 32)), (32, 32))
    far = np.zeros((32, 32), bool)
    far[(peak[0] + 16) % 32, (peak[1] + 16) % 32] = True
    view.set_image(SimpleNamespace(image=rng_image(seed=4), labels=[view.classes.value], masks=[far]))
    assert not pointing_game(view.current_cam(), far) and ">miss<" in view.pointing.value
    assert view.scene is not None and view.error == ""


# ----- background mode ------------------------------------------------------------------------------------------
def test_background_panel_gives_the_same_pictures_and_keeps_the_latest_image(model8: keras.Model) -> None:
    sync = ConvVizPanel(model8, rng_image(seed=7), background=False)
    panel = ConvVizPanel(model8, rng_image(seed=6), background=True)
    panel.set_image(rng_image(seed=7))  # replaces the first before its work is shown
    assert panel.wait(60)
    assert panel.activations.grid.value == sync.activations.grid.value
    assert panel.chooser.predictions == sync.chooser.predictions
    panel.select("Grad-CAM")
    sync.select("Grad-CAM")
    assert panel.wait(60) and panel.cam.overlay.value == sync.cam.overlay.value


def test_runner_inline_and_background_report_errors() -> None:
    for background in (False, True):
        runner = Runner(background)
        got: list = []
        runner.submit(lambda: 2 + 2, got.append, got.append)
        runner.submit(lambda: 1 / 0, got.append, got.append)
        assert runner.wait(10)
        assert got[0] == 4 and isinstance(got[1], ZeroDivisionError)


# ----- the demo model and a nested model --------------------------------------------------------------------
def test_demo_model_panel(demo_model: keras.Model) -> None:
    from convviz_widgets import demo

    panel = ConvVizPanel(demo_model, background=False)
    assert panel.inspector.class_names == list(demo.CLASS_NAMES)
    assert panel.inspector.preprocess_name == demo.PREPROCESS
    assert any(name in panel.chooser.table.value for name in demo.CLASS_NAMES)
    picture = panel.chooser.picture.value
    panel.chooser.source.value = "sample:2"
    assert panel.chooser.picture.value != picture
    grid = panel.activations.grid.value
    panel.activations.layer.value = panel.inspector.layers[-1]
    assert panel.activations.grid.value != grid
    cam = panel.select("Grad-CAM")
    assert cam.classes.options[0][0].split()[0] in demo.CLASS_NAMES
    filters = panel.select("Filters")
    filters.count.value, filters.steps.value = 4, 3
    filters.render()
    assert decode(filters.grid.value).size


def test_the_demo_architecture_gets_demo_class_names_and_samples() -> None:
    from convviz_widgets import demo
    from convviz_widgets.demo import train

    keras.utils.set_random_seed(0)
    panel = ConvVizPanel(train.build_model(), background=False)  # untrained, but named like the shipped model
    assert panel.inspector.class_names == list(demo.CLASS_NAMES)
    assert panel.chooser.source.value == "sample:0"
    assert decode(panel.chooser.picture.value).shape[:2] == (192, 192)  # the 64 px scene, enlarged 3x
    assert panel.chooser.predictions[0][1] in demo.CLASS_NAMES
    assert panel.select("Grad-CAM").layer.value == panel.inspector.default_cam_layer


def test_nested_model_panel(nested_model: keras.Model) -> None:
    panel = ConvVizPanel(nested_model, rng_image(80, 80), preprocess="caffe", background=False)
    view = panel.activations
    assert view.layer.value == "vgg16/block1_conv1"
    grid = view.grid.value
    view.layer.value = "vgg16/block5_conv3"
    assert view.grid.value != grid and "4 × 4 × 512" in view.facts.value
    assert view.channel.max == 511
    cam = panel.select("Grad-CAM")
    assert cam.layer.value == "vgg16/block5_conv3" and "vgg16/block5_conv3" in cam.score.value
    filters = panel.select("Filters")
    filters.layer.value = "vgg16/block2_conv1"
    filters.count.value, filters.steps.value = 3, 2
    filters.render()
    assert filters.error == "" and "vgg16/block2_conv1" in filters.caption.value
