"""Score-CAM in the Grad-CAM tab: the channel count next to the method, progress, and Cancel."""

from __future__ import annotations

import time

import keras
import numpy as np
import pytest
from conftest import rng_image, wait_until

from convviz_widgets import Cancelled
from convviz_widgets.widgets import CamView
from convviz_widgets.widgets.cam import SCORECAM_CHANNELS


@pytest.fixture(scope="module")
def wide_model() -> keras.Model:
    """A small convnet whose CAM layer has 48 channels, more than Score-CAM's default."""
    keras.utils.set_random_seed(2)
    return keras.Sequential([
        keras.Input((32, 32, 3)),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv1"),
        keras.layers.MaxPooling2D(name="pool1"),
        keras.layers.Conv2D(48, 3, padding="same", activation="relu", name="conv2"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(4, activation="softmax", name="predictions"),
    ], name="wide_convnet")


def recorded_calls(monkeypatch: pytest.MonkeyPatch, view: CamView) -> list[dict]:
    """The keyword arguments of each Inspector.gradcam call of a view."""
    calls: list[dict] = []
    original = view.inspector.gradcam

    def wrapper(*args, **kwargs):
        calls.append(kwargs)
        return original(*args, **kwargs)

    monkeypatch.setattr(view.inspector, "gradcam", wrapper)
    return calls


def test_score_cam_uses_the_32_most_varied_channels_by_default_and_the_user_can_ask_for_all(
        wide_model: keras.Model, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    view = CamView(wide_model, rng_image(32, 32, seed=1), background=False, save_dir=tmp_path)
    calls = recorded_calls(monkeypatch, view)
    assert view.channels.value == SCORECAM_CHANNELS == 32 and view.channels.disabled
    assert view.progress_row.layout.display == "none"
    view.method.value = "scorecam"
    assert not view.channels.disabled and view.progress_row.layout.display is None
    assert calls[-1]["max_channels"] == 32 and view.progress.value == view.progress.max
    assert "from the 32 channels of largest variance" in view.score.value and view.error == ""
    top32 = view.current_cam().heatmap
    view.save_button.click()
    name = f"convviz-gradcam-conv2-class{view.class_index.value}-scorecam-top32-{view.image_tag()}.png"
    assert (tmp_path / name).is_file()

    view.channels.value = 0  # all channels
    assert calls[-1]["max_channels"] is None and len(calls) == 2
    assert "largest variance" not in view.score.value and "Score-CAM of" in view.score.value
    assert not np.array_equal(view.current_cam().heatmap, top32)
    view.channels.value = 48  # as many as the layer has: the same request as all, from the cache
    view.channels.value = 32
    assert len(calls) == 2 and np.array_equal(view.current_cam().heatmap, top32)
    view.method.value = "gradcam"  # computed before: from the cache
    assert view.channels.disabled and view.progress_row.layout.display == "none" and len(calls) == 2
    assert "Grad-CAM of" in view.score.value and "largest variance" not in view.score.value


def test_the_busy_text_says_how_many_masked_passes_score_cam_makes(wide_model: keras.Model) -> None:
    view = CamView(wide_model, rng_image(32, 32, seed=1), background=False)
    view.method.value = "scorecam"
    assert "32 masked forward passes" in view.busy_text and "32 of 48 channels" in view.busy_text
    view.channels.value = 0
    assert "48 masked forward passes" in view.busy_text and "all channels" in view.busy_text


def test_score_cam_shows_progress_and_cancel_stops_it_keeping_the_picture_shown(
        wide_model: keras.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    view = CamView(wide_model, rng_image(32, 32, seed=1), background=True)
    assert view.wait(60)
    original = view.inspector.gradcam
    slow = {"on": True}

    def gradcam(*args, progress=None, **kwargs):
        if kwargs.get("method") == "scorecam" and slow["on"]:
            for done in range(1, 1001):
                time.sleep(0.005)
                if progress(done, 1000) is False:
                    raise Cancelled(f"Score-CAM cancelled after {done} of 1000 masked images.")
        return original(*args, progress=progress, **kwargs) if progress else original(*args, **kwargs)

    monkeypatch.setattr(view.inspector, "gradcam", gradcam)
    steps: list[int] = []
    view.progress.observe(lambda change: steps.append(change["new"]), names="value")
    overlay, score = view.overlay.value, view.score.value
    view.method.value = "scorecam"
    wait_until(lambda: view.progress.value >= 3, what="three masked passes")
    assert not view.cancel_button.disabled and view.progress.max == 1000
    view.cancel_button.click()
    assert view.wait(60)
    assert "Score-CAM cancelled after" in view.status.value and "The picture shows Grad-CAM" in view.status.value
    assert view.overlay.value == overlay and view.score.value == score and view.error == ""
    assert view.cancel_button.disabled and view.progress.bar_style == "warning"
    assert any(0 < s < 1000 for s in steps)
    slow["on"] = False
    view.channels.value = 16  # asking again after Cancel computes it
    assert view.wait(60) and view.status.value == "" and view.error == ""
    assert "Score-CAM of" in view.score.value and "from the 16 channels" in view.score.value
    assert view.progress.bar_style == "success"


def test_every_perturbation_method_gets_the_channel_count_progress_and_cancel(
        wide_model: keras.Model, monkeypatch: pytest.MonkeyPatch) -> None:
    view = CamView(wide_model, rng_image(32, 32, seed=3), background=False)
    calls = recorded_calls(monkeypatch, view)
    view.method.value = "ablationcam"
    assert not view.channels.disabled and view.progress_row.layout.display is None
    assert view.progress.description == "Ablation-CAM" and view.progress.value == view.progress.max
    assert calls[-1]["max_channels"] == 32 and "from the 32 channels of largest variance" in view.score.value
    view.method.value = "layercam"  # a gradient method: no channel count, no progress bar
    assert view.channels.disabled and view.progress_row.layout.display == "none"
    assert "largest variance" not in view.score.value and view.error == ""


def test_turning_the_sanity_check_on_keeps_the_bar_of_the_map_already_computed(wide_model: keras.Model) -> None:
    view = CamView(wide_model, rng_image(32, 32, seed=4), background=False, method="scorecam")
    assert view.progress.value == view.progress.max == 32
    view.sanity.value = True  # only the randomised copy's map is computed now
    assert view.progress.value == view.progress.max == 32 and view.cancel_button.disabled and view.error == ""
