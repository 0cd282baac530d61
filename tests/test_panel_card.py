"""The channel card of the Activations tab, the channels behind a Grad-CAM map, and the header's device line."""

from __future__ import annotations

import io
import re
import threading

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import rng_image, small_convnet
from PIL import Image

import convviz_widgets as cv
from convviz_widgets.core import device as device_module
from convviz_widgets.render.cards import MARK
from convviz_widgets.widgets import ConvVizPanel, Runner

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def decode(png: bytes | memoryview) -> np.ndarray:
    """PNG bytes from an Image widget as a uint8 array (fails if they are not a PNG)."""
    data = bytes(png)
    assert data.startswith(PNG_SIGNATURE)
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def shown(picture) -> np.ndarray:
    """A visible Image widget's picture, checked to be more than one flat colour."""
    assert picture.layout.display is None, "the picture is hidden"
    array = decode(picture.value)
    assert array.reshape(-1, 3).std(axis=0).max() > 0, "the picture is one flat colour"
    return array


def blocked(runner: Runner) -> threading.Event:
    """Hold a background runner's worker until the returned event is set."""
    gate = threading.Event()
    runner.submit(lambda: gate.wait(30), lambda _: None, lambda _: None)
    return gate


@pytest.fixture(scope="module")
def model() -> keras.Model:
    """A 32 px, 3-class convnet (conv1, pool1, conv2, pool2, conv3) with fixed random weights."""
    return small_convnet(seed=3)


@pytest.fixture(scope="module")
def dataset() -> np.ndarray:
    """20 random pictures to search for examples."""
    return np.stack([rng_image(32, 32, seed=100 + i) for i in range(20)])


def logit_gradients(model: keras.Model, image: np.ndarray, class_index: int) -> tuple[np.ndarray, np.ndarray]:
    """conv3's output and the gradient of the class logit (the head without its softmax) with respect to it."""
    features = keras.Model(model.inputs, model.get_layer("conv3").output)
    dense = model.get_layer("predictions")
    x = tf.constant(image[None].astype(np.float32) / 255.0)  # the "rescale" preset
    with tf.GradientTape() as tape:
        feats = features(x)
        tape.watch(feats)
        logits = tf.matmul(tf.reshape(feats, (1, -1)), dense.kernel) + dense.bias
        score = logits[0, class_index]
    return feats.numpy()[0], tape.gradient(score, feats).numpy()[0]


# ----- the card ---------------------------------------------------------------------------------------
def test_choosing_a_channel_shows_map_pattern_marked_examples_and_evidence(model, dataset):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False, dataset=dataset)
    view, card = panel.activations, panel.activations.card
    assert card.layout.display == "none" and not card.patterns, "the card waits until a channel is chosen"
    view.layer.value = "conv2"
    view.channel.value = 5
    assert card.layout.display is None
    assert "Channel 5" in card.title.value and "conv2" in card.title.value
    overlay, raw = shown(card.overlay), shown(card.map)
    assert overlay.shape == raw.shape
    shown(card.pattern)

    expected = cv.filter_patterns(model, "conv2", [5], size=32, steps=40, step_size=1.0, seed=0, mode="plain")
    assert np.array_equal(card.patterns[("conv2", 5)].image, expected.images[0])  # the Filters tab's defaults

    conv2 = keras.Model(model.inputs, model.get_layer("conv2").output)  # the oracle: each image's channel maxima
    maxima = conv2(dataset.astype(np.float32) / 255.0).numpy().max(axis=(1, 2))  # (20 images, channels)
    found = card.examples["conv2"]
    k5 = found.channels.index(5)
    np.testing.assert_allclose(found.values[k5], np.sort(maxima[:, 5])[::-1][:9], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(maxima[found.indices[k5], 5], found.values[k5], rtol=1e-5, atol=1e-6)
    examples = shown(card.examples_image)
    assert (examples == MARK).all(axis=-1).sum() >= 9 * 4, "every example has its maximum marked"
    assert "9 of 20" in card.examples_caption.value
    assert "Grad-CAM tab explains layer <code>conv3</code>" in card.evidence_text.value


def test_the_card_follows_the_channel_and_caches_per_layer_and_channel(model, dataset, monkeypatch):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False, dataset=dataset)
    view, card = panel.activations, panel.activations.card
    searches = []
    original = panel.inspector.top_examples
    monkeypatch.setattr(panel.inspector, "top_examples",
                        lambda *a, **kw: searches.append(a[0]) or original(*a, **kw))
    view.layer.value = "conv1"
    view.channel.value = 1
    first = bytes(card.pattern.value)
    view.channel.value = 2
    assert bytes(card.pattern.value) != first
    view.channel.value = 1
    assert bytes(card.pattern.value) == first
    view.layer.value = "pool1"  # a pooling layer: its own output is the pattern's objective
    shown(card.pattern)
    assert ("pool1", 1) in card.patterns and "Filter pattern (32 px" in card.pattern_caption.value
    assert searches == ["conv1", "pool1"], "one dataset pass per layer, for all its channels"


def test_without_a_dataset_the_card_says_how_to_give_one(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False)
    card = panel.activations.card
    panel.activations.channel.value = 2
    assert card.examples_image.layout.display == "none"
    assert "ConvVizPanel(model, image, dataset=images_or_folder)" in card.examples_caption.value
    shown(card.pattern)
    assert not card.examples


def test_the_demo_model_brings_its_scenes_as_the_dataset():
    from convviz_widgets import demo

    panel = ConvVizPanel(demo.load_model(), background=False)
    panel.activations.layer.value = "conv5"
    panel.activations.channel.value = 3
    card = panel.activations.card
    shown(card.examples_image)
    assert f"9 of {demo.EXAMPLE_SCENES} dataset images" in card.examples_caption.value


def test_the_tab_and_its_card_open_on_the_most_active_channel_and_dead_channels_say_so():
    from convviz_widgets import demo

    model = demo.load_model()
    panel = ConvVizPanel(model, background=False)
    view, card = panel.activations, panel.activations.card
    x = tf.constant(panel.chooser.rgb[None].astype(np.float32) / 255.0)  # the demo's rescale
    conv1 = model.get_layer("conv1")(x)
    means = np.asarray(conv1)[0].mean(axis=(0, 1))
    best = int(np.argmax(means))
    assert means[0] == 0.0 and best != 0  # channel 0, where the tab used to open, is dead for this image
    assert view.layer.value == "conv1" and view.channel.value == best
    assert "most active" in view.channel_caption.value
    view.layer.value = "conv2"  # until a channel is chosen, each layer opens on its own most active one
    pooled = model.get_layer("pool1")(model.get_layer("bn1")(conv1, training=False))
    conv2 = np.asarray(model.get_layer("conv2")(pooled))[0]
    assert view.channel.value == int(np.argmax(conv2.mean(axis=(0, 1))))
    view.layer.value = "conv1"
    view.card_open.click()
    assert f"Channel {best}</b>" in card.title.value and "most active" in card.title.value
    shown(card.overlay), shown(card.pattern)
    view.channel.value = 0  # still reachable, and labelled
    assert "dead" in card.title.value and "dead" in view.channel_caption.value
    view.layer.value = "pool1"  # a chosen channel is kept (pool1's channel 0 is conv1's, batch-normalised and pooled)
    assert view.channel.value == 0 and "Channel 0</b> of <code>pool1" in card.title.value


def test_a_one_shot_iterator_is_refused_with_what_to_pass(model, dataset):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False, dataset=iter(list(dataset)))
    panel.activations.channel.value = 1
    assert "can be read only once" in panel.activations.card.examples_caption.value


def test_examples_search_in_the_background_with_progress_and_cancel(model, dataset):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), dataset=dataset)
    assert panel.wait()
    card = panel.activations.card
    gate = blocked(panel.runner)
    panel.activations.channel.value = 4
    assert card.running and card.progress.layout.display is None
    card.cancel()  # still queued behind the gate: it never starts
    gate.set()
    assert panel.wait()
    assert "Cancelled" in card.examples_caption.value and card.find_button.layout.display is None
    assert card.examples_image.layout.display == "none"
    card.find_button.click()
    assert panel.wait()
    shown(card.examples_image)
    assert card.progress.value == card.progress.max == len(dataset)
    assert not card.running


# ----- the channels behind a Grad-CAM map --------------------------------------------------------------
def test_cam_channel_buttons_are_the_top_positive_contributions_and_open_the_card(model):
    image = rng_image(32, 32, seed=1)
    panel = ConvVizPanel(model, image, background=False)
    cam_view = panel.select("Grad-CAM")
    assert cam_view.layer.value == "conv3"
    cam = cam_view.current_cam()
    feats, grads = logit_gradients(model, image, cam.class_index)
    weights = grads.mean(axis=(0, 1))
    assert np.allclose(cam.weights, weights, rtol=1e-4, atol=1e-7)
    shares = weights * feats.mean(axis=(0, 1))
    expected = [int(k) for k in np.argsort(-shares, kind="stable")[:8] if shares[k] > 0]
    assert expected, "this model's map has channels that add to it"
    buttons = cam_view.channel_buttons.children
    assert [int(re.match(r"#(\d+)", b.description).group(1)) for b in buttons] == expected

    buttons[0].click()
    view = panel.activations
    assert panel.tabs.selected_index == 0 and view.layer.value == "conv3" and view.channel.value == expected[0]
    card = view.card
    assert f"Channel {expected[0]}" in card.title.value
    shown(card.overlay)
    shown(card.pattern)
    evidence = card.evidence_text.value
    assert f"weight <b>{weights[expected[0]]:+.3g}</b>" in evidence
    assert f"contribution <b>{shares[expected[0]]:+.3g}</b>" in evidence and "rank 1 of 20" in evidence


def test_the_card_asks_for_the_grad_cam_tab_until_its_map_exists(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False)
    panel.activations.layer.value = "conv3"
    panel.activations.card_open.click()  # the channel as it stands
    assert f"Channel {panel.activations.channel.value}</b>" in panel.activations.card.title.value
    assert "open the Grad-CAM tab" in panel.activations.card.evidence_text.value
    panel.select("Grad-CAM")  # the map is drawn: the card's line follows
    assert "contribution" in panel.activations.card.evidence_text.value


def test_a_clicked_channel_lands_on_its_card_in_background_mode(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=2))
    assert panel.wait()
    cam_view = panel.select("Grad-CAM")
    assert panel.wait()
    button = cam_view.channel_buttons.children[-1]
    channel = int(re.match(r"#(\d+)", button.description).group(1))
    button.click()
    assert panel.wait()
    card = panel.activations.card
    assert panel.activations.channel.value == channel and f"Channel {channel}" in card.title.value
    shown(card.map)
    shown(card.pattern)
    assert "contribution" in card.evidence_text.value


# ----- the device line ----------------------------------------------------------------------------------
def test_the_header_says_which_device_computes(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False)
    text = cv.describe_device()
    assert text in panel.chooser.device.value
    if tf.config.list_physical_devices("GPU"):
        assert text.startswith("GPU: ")
    else:
        assert re.fullmatch(r"CPU, \d+ threads?", text)


def test_a_gpu_is_named_by_its_device_details(monkeypatch):
    from convviz_widgets.core.backend import _tensorflow as tf_backend  # this file runs on the TensorFlow backend

    fake = tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")
    monkeypatch.setattr(tf_backend.tf.config, "list_physical_devices", lambda kind=None: [fake, fake])
    monkeypatch.setattr(tf_backend.tf.config.experimental, "get_device_details",
                        lambda d: {"device_name": "NVIDIA H200", "compute_capability": (9, 0)})
    assert device_module.describe_device() == "GPU: NVIDIA H200 (1 of 2 GPUs)"


def test_a_cam_layer_after_the_last_conv_is_shown_in_activations_and_its_buttons_land_there(dataset):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1")(inputs)
    x = keras.layers.MaxPooling2D(name="p1")(x)
    x = keras.layers.Conv2D(16, 3, padding="same", name="c2")(x)
    x = keras.layers.ReLU(name="r2")(x)  # the Grad-CAM layer: not a conv/pool layer
    x = keras.layers.GlobalAveragePooling2D()(x)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="predictions")(x))
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False, dataset=dataset)
    assert "r2" in [value for _, value in panel.activations.layer.options]
    cam_view = panel.select("Grad-CAM")
    assert cam_view.layer.value == "r2" and cam_view.channel_buttons.children
    cam_view.channel_buttons.children[0].click()
    card = panel.activations.card
    assert panel.activations.layer.value == "r2" and "(ReLU)" in card.title.value
    shown(card.pattern)
    shown(card.examples_image)
    assert "rank 1 of 16" in card.evidence_text.value


def test_a_model_without_a_class_output_still_gets_its_card():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Conv2D(4, 3, name="only")], name="headless")
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False)
    panel.activations.channel.value = 1
    card = panel.activations.card
    shown(card.map)
    shown(card.pattern)
    assert "no class output" in card.evidence_text.value
