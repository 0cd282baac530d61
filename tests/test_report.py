"""Tests for the report's Grad-CAM figures: captions and maps with no evidence to show."""

from __future__ import annotations

import numpy as np

from convviz_widgets import render
from convviz_widgets.core.cam import CAM
from convviz_widgets.report import cam_caption, cam_picture, no_evidence_note


def _cam(heatmap: np.ndarray, raw: np.ndarray, score: float = 4.13) -> CAM:
    return CAM(heatmap.astype(np.float32), 3, score, "conv5", raw=raw.astype(np.float32))


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(60, 220, (256, 256, 3)).astype(np.uint8)


def test_caption_pairs_probability_and_logit() -> None:
    heat = np.zeros((12, 12))
    heat[3, 4] = 1.0
    caption = cam_caption(1, "star", 0.934, _cam(heat, heat * 2.0))
    assert caption == "#1 star — p = 0.93, logit 4.1 at conv5"


def test_map_with_no_positive_evidence_is_said_to_be_so() -> None:
    cam = _cam(np.zeros((12, 12)), -np.ones((12, 12)), score=-2.0)
    assert no_evidence_note(cam) == "no positive evidence for this class"
    caption = cam_caption(3, "cross", 0.001, cam)
    assert caption == "#3 cross — p < 0.01, logit -2.0 at conv5 — no positive evidence for this class"


def test_uniform_positive_evidence_is_told_apart_from_none() -> None:
    cam = _cam(np.zeros((12, 12)), np.full((12, 12), 0.5))
    assert no_evidence_note(cam) == "evidence equal everywhere: no location for this class"


def test_blank_map_picture_is_the_dimmed_image_with_the_note_not_a_blank_overlay() -> None:
    photo = _photo()
    cam = _cam(np.zeros((12, 12)), -np.ones((12, 12)))
    picture = cam_picture(photo, cam)
    blank_overlay = render.overlay(photo, cam.heatmap)
    assert picture.shape == photo.shape and picture.dtype == np.uint8
    assert not np.array_equal(picture, blank_overlay)
    assert picture.mean() < photo.mean() * 0.75  # dimmed
    assert (picture == 255).all(axis=2).sum() > 50  # white note text drawn on it
    assert np.corrcoef(picture[..., 0].ravel(), photo[..., 0].ravel())[0, 1] > 0.5  # still the image


def test_map_with_evidence_is_the_ordinary_overlay() -> None:
    photo = _photo()
    heat = np.zeros((12, 12))
    heat[5, 5] = 1.0
    cam = _cam(heat, heat)
    assert no_evidence_note(cam) is None
    assert np.array_equal(cam_picture(photo, cam), render.overlay(photo, cam.heatmap))


def test_progress_labels_are_whole_and_bars_line_up() -> None:
    import io

    from convviz_widgets.report import LABEL_WIDTH, ProgressBar

    for label in ("gradcam", "filters conv1 plain", "filters mobilenet_1.00_224/conv_pw_13_relu regularized"):
        stream = io.StringIO()
        ProgressBar(label, 4, stream=stream)(4, 4)
        line = stream.getvalue()
        assert line.startswith(label)  # never cut ("filters conv1 pla")
        bar_at = line.index(" [")
        assert bar_at == max(LABEL_WIDTH, len(label))  # short labels padded so their bars line up


def _documented_tab_code() -> str:
    """The documented own-tab example (class TopThree), up to the lines that build a panel."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "howto" / "own-tab.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "class TopThree" in b)
    return block.split("\npanel = ")[0]


def test_the_documented_own_tab_writes_its_section_into_the_report(tmp_path) -> None:
    import keras

    import convviz_widgets as cv
    from convviz_widgets.report import build_report

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, activation="relu", name="c1"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(5, activation="softmax")],
                             name="five")
    names = ["ant", "bee", "cat", "dog", "eel"]
    image = np.random.default_rng(3).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    inspector = cv.Inspector(model, preprocess="rescale", class_names=names)
    with cv.scoped_registries():
        exec(compile(_documented_tab_code(), "own-tab.md TopThree", "exec"), {"__name__": "readme"})
        report = build_report(inspector, image, tmp_path, filter_layers=["c1"], n_filters=1, steps=1,
                              pattern_modes=("plain",), log=lambda _: None)
    assert "top3" not in [e.key for e in cv.widgets.view_entries()], "the tab is gone after the block"
    probs = np.asarray(model(image[None].astype("float32") / 255.0))[0]  # the oracle: the model itself, x/255
    expected = "<br>".join(f"{names[i]}: {probs[i]:.2f}" for i in np.argsort(-probs)[:3])
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert report.sections[-1][0] == "Top 3" and "<h2>Top 3</h2>" in page
    assert expected in page
