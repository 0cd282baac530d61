"""A long session does not pile up widgets: each one lives in the kernel (and the page) until it is closed."""

from __future__ import annotations

import re
import warnings

import ipywidgets as widgets
import numpy as np
from conftest import rng_image, small_convnet

from convviz_widgets.widgets import ConvVizPanel


def _live_widgets() -> int:
    """Widgets the kernel holds now (ipywidgets keeps every open widget in a registry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return len(widgets.Widget.widgets)


def _channel(button: widgets.Button) -> int:
    """The channel a channel button names ('#12  +0.3')."""
    return int(re.match(r"#(\d+)", button.description).group(1))


def test_many_grad_cam_maps_make_no_new_widgets_and_buttons_open_the_latest_channels() -> None:
    panel = ConvVizPanel(small_convnet(classes=4), rng_image(32, 32, seed=1), background=False)
    cam = panel.select("Grad-CAM")
    layers = [value for _, value in cam.layer.options]
    images = [rng_image(32, 32, seed=s) for s in range(3)]
    cam.class_index.value = 1  # every pooled button exists after the first maps
    before = _live_widgets()
    for i in range(24):
        cam.class_index.value = i % 4
        cam.layer.value = layers[i % len(layers)]
        if i % 8 == 7:
            panel.set_image(images[i % 3])
    assert cam.channel_buttons.children, "the last map has channels that add to it"
    assert _live_widgets() - before <= 0
    # a reused button opens the channel it shows now, at the layer of the map shown now
    button = cam.channel_buttons.children[-1]
    want = _channel(button)
    button.click()
    view = panel.activations
    assert view.layer.value == cam.layer.value and view.channel.value == want
    assert np.isfinite(cam.current_cam().heatmap).all()
