"""A panel given an atlas folder: the channel cards show the atlas's examples at once, with no pass over a dataset."""

from __future__ import annotations

import io
import json
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image

import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.core import Inspector
from convviz_widgets.errors import ConvVizError
from convviz_widgets.render.cards import MARK
from convviz_widgets.widgets import ConvVizPanel

N_SCENES = 32
K = 4
LAYER = "conv5"


@pytest.fixture(scope="module")
def model() -> keras.Model:
    return demo.load_model()


@pytest.fixture(scope="module")
def images() -> np.ndarray:
    return np.stack([demo.scene(seed=i).image for i in range(N_SCENES)])


@pytest.fixture(scope="module")
def folder(model, images, tmp_path_factory) -> Path:
    """An atlas of conv5 over 32 scenes, written in this process (no workers)."""
    out = tmp_path_factory.mktemp("atlas") / "atlas"
    cv.atlas(model, images, out, layers=[LAYER], k=K, preprocess="rescale", patterns=False)
    return out


@pytest.fixture
def no_dataset_pass(model, monkeypatch) -> list[str]:
    """Record every dataset pass a card starts (the model's scenes made, or a top-examples search)."""
    calls: list[str] = []
    monkeypatch.setattr(model, "example_images", lambda *a, **k: calls.append("scenes") or demo.example_images(8))
    real = Inspector.top_examples
    monkeypatch.setattr(Inspector, "top_examples", lambda self, *a, **k: calls.append("search") or real(self, *a, **k))
    return calls


def open_card(panel: ConvVizPanel, layer: str, channel: int):
    """Choose a layer and channel in the Activations tab: its card opens."""
    panel.activations.layer.value = layer
    panel.activations.channel.value = channel
    return panel.activations.card


def shown(picture) -> np.ndarray:
    assert picture.layout.display is None, "the picture is hidden"
    return np.asarray(Image.open(io.BytesIO(bytes(picture.value))).convert("RGB"))


def test_a_card_shows_the_atlas_examples_at_once_without_a_dataset_pass(model, images, folder, no_dataset_pass):
    panel = ConvVizPanel(model, images[0], background=False, atlas=folder)
    card = open_card(panel, LAYER, 3)
    saved = json.loads((folder / LAYER / "examples.json").read_text())["channels"]["3"]
    top = card.atlas_tops[LAYER]
    row = top.channels.index(3)
    assert top.indices[row].tolist() == [e["image"] for e in saved]
    np.testing.assert_array_equal(top.values[row], np.array([e["value"] for e in saved], np.float32))
    trunk = keras.Model(model.inputs, model.get_layer(LAYER).output)  # the oracle: each scene's channel-3 maximum
    maxima = np.asarray(trunk([images.astype(np.float32) / 255.0])).max(axis=(1, 2))[:, 3]
    np.testing.assert_allclose(top.values[row], np.sort(maxima)[::-1][:K], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maxima[top.indices[row]], top.values[row], rtol=1e-5, atol=1e-6)
    assert (shown(card.examples_image) == MARK).all(axis=-1).sum() >= K * 4, "every example has its maximum marked"
    assert f"{K} of {N_SCENES} dataset images" in card.examples_caption.value
    assert "From the atlas" in card.examples_caption.value
    assert no_dataset_pass == [], "the atlas's examples came without a dataset pass"


def test_a_layer_the_atlas_lacks_falls_back_to_searching_the_dataset(model, images, folder):
    panel = ConvVizPanel(model, images[0], background=False, atlas=folder, dataset=images[:8])
    card = open_card(panel, "conv3", 1)
    shown(card.examples_image)
    assert "9 of 8" not in card.examples_caption.value and "8 of 8 dataset images" in card.examples_caption.value
    assert "conv3" in card.examples and "From the atlas" not in card.examples_caption.value


def test_without_a_dataset_a_layer_the_atlas_lacks_says_so(model, images, folder, monkeypatch):
    monkeypatch.setattr(model, "example_images", None)
    panel = ConvVizPanel(model, images[0], background=False, atlas=folder)
    card = open_card(panel, "conv3", 1)
    assert card.examples_image.layout.display == "none"
    assert "The atlas holds no examples of this channel" in card.examples_caption.value
    assert not card.examples


def test_an_atlas_of_another_model_is_refused_in_words(folder):
    with pytest.raises(ConvVizError, match="made for another model"):
        ConvVizPanel(demo.load_model("shortcut"), background=False, atlas=folder)


def test_a_missing_empty_or_malformed_atlas_folder_is_refused(model, folder, tmp_path):
    with pytest.raises(ConvVizError, match="is not a folder"):
        ConvVizPanel(model, background=False, atlas=tmp_path / "nowhere")
    with pytest.raises(ConvVizError, match="holds no atlas"):
        ConvVizPanel(model, background=False, atlas=tmp_path)
    (tmp_path / LAYER).mkdir()
    (tmp_path / LAYER / "examples.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ConvVizError, match="cannot be read"):
        ConvVizPanel(model, background=False, atlas=tmp_path)
    (tmp_path / LAYER / "examples.json").write_text(json.dumps({"layer": LAYER, "channels": []}), encoding="utf-8")
    with pytest.raises(ConvVizError, match="not what `convviz atlas` writes"):
        ConvVizPanel(model, background=False, atlas=tmp_path)


def test_an_atlas_missing_a_channels_pictures_says_so_on_the_card(model, images, folder, tmp_path):
    import shutil

    copy = tmp_path / "atlas"
    shutil.copytree(folder, copy)
    (copy / LAYER / "img" / "c0003_1_whole.png").unlink()
    panel = ConvVizPanel(model, images[0], background=False, atlas=copy)
    card = open_card(panel, LAYER, 3)
    assert card.examples_image.layout.display == "none"
    caption = card.examples_caption.value
    assert "Examples from the atlas:" in caption and "c0003_1_whole.png" in caption
