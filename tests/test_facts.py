"""Facts about one layer's activations: the channel a view opens on, and which channels are dead."""

from __future__ import annotations

import numpy as np

from convviz_widgets.core.facts import channel_note, is_dead, layer_facts, most_active_channel


def _relu_maps(seed: int = 0, channels: int = 12) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.maximum(rng.normal(size=(7, 9, channels)) + rng.normal(size=channels), 0.0).astype(np.float32)


def test_the_start_channel_is_the_one_with_the_highest_mean_activation() -> None:
    for seed in range(5):
        act = _relu_maps(seed)
        act[..., 0] = 0.0  # dead, as conv1's channel 0 of the demo is
        means = [float(act[..., c].sum()) / (7 * 9) for c in range(act.shape[-1])]
        assert most_active_channel(act) == means.index(max(means))


def test_the_mean_wins_over_one_hot_pixel() -> None:
    act = np.zeros((10, 10, 3), np.float32)
    act[4, 4, 1] = 50.0  # one hot pixel: mean 0.5
    act[..., 2] = 1.0  # fires everywhere: mean 1.0
    assert most_active_channel(act) == 2


def test_all_dead_layers_open_on_channel_zero_and_ties_take_the_first() -> None:
    assert most_active_channel(np.zeros((4, 4, 5), np.float32)) == 0
    act = np.zeros((4, 4, 5), np.float32)
    act[..., 3] = act[..., 1] = 2.0
    assert most_active_channel(act) == 1


def test_a_nan_channel_is_never_the_start_channel() -> None:
    act = _relu_maps(1, channels=4)
    act[0, 0, 2] = np.nan
    finite = [act[..., c].mean() for c in (0, 1, 3)]
    assert most_active_channel(act) == (0, 1, 3)[int(np.argmax(finite))]


def test_dead_channels_are_labelled_dead_and_the_start_channel_is_named() -> None:
    act = _relu_maps(2)
    act[..., 5] = 0.0
    best = most_active_channel(act)
    assert is_dead(act, 5) and not is_dead(act, best)
    assert channel_note(act, 5) == "dead: never positive for this image"
    assert "most active" in channel_note(act, best)
    other = next(c for c in range(act.shape[-1]) if c not in (5, best) and act[..., c].max() > 0)
    assert channel_note(act, other) == ""


def test_on_a_signed_map_only_a_constant_channel_is_dead() -> None:
    # A transformer's residual stream or a norm's output: a channel below zero everywhere still carries the image.
    rng = np.random.default_rng(3)
    act = rng.normal(size=(8, 8, 6)).astype(np.float32)
    act[..., 1] = -np.abs(act[..., 1]) - 0.5  # never positive, but it varies
    act[..., 4] = -2.0  # constant: dead
    assert not is_dead(act, 1) and is_dead(act, 4)
    assert channel_note(act, 4) == "dead: constant over this image"
    facts = layer_facts(act)
    assert facts["dead"] == 1 and facts["dead_rule"] == "constant over this image"
    relu = _relu_maps(4)
    relu[..., 2] = 0.0
    never = int((relu.max(axis=(0, 1)) <= 0).sum())  # channel 2 and any the random offset left dead
    assert never >= 1 and layer_facts(relu)["dead"] == never
    assert layer_facts(relu)["dead_rule"] == "never positive for this image"
