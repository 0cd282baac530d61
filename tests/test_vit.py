"""Vision transformers: token layers (special tokens + a patch grid) read as (h, w, D) feature maps everywhere."""

from __future__ import annotations

import threading

import keras
import numpy as np
import pytest
from vit_models import layer_tokens, small_vit

import convviz_widgets as cv
from convviz_widgets import ConvVizError
from convviz_widgets.core import cams
from convviz_widgets.demo.scenes import scene


@pytest.fixture(scope="module")
def image(vit_scene: np.ndarray) -> np.ndarray:
    return vit_scene


@pytest.mark.backends
def test_token_layers_read_as_the_patch_grid_of_the_patch_embedding(vit, registers_vit) -> None:
    ins = cv.Inspector(vit)
    final = ins.layer("final_norm")
    assert (final.tokens.h, final.tokens.w, final.tokens.lead) == (8, 8, 1)  # 65 tokens: a class token + 8x8
    assert ins.layer("patch_tokens").tokens.lead == 0
    assert {"block0_attention", "block1_mlp1", "final_norm"} <= set(ins.layers)
    regs = cv.Inspector(registers_vit).layer("block1_add2").tokens
    assert (regs.h, regs.w, regs.lead) == (8, 8, 4)


@pytest.mark.backends
def test_default_cam_layer_is_the_last_norm_whose_patch_tokens_reach_the_head(vit, registers_vit, image) -> None:
    # With a class-token head the final norm's patch tokens are never read: the last block's first norm is.
    assert cv.Inspector(vit).default_cam_layer == "block1_norm1"
    assert cv.Inspector(registers_vit).default_cam_layer == "final_norm"
    # the oracle: moving the final norm's patch tokens leaves the class-token head's output unchanged
    final = vit.get_layer("final_norm").output
    after = keras.Model([vit.inputs[0], final], vit.output)
    tokens = layer_tokens(vit, "final_norm", image)
    moved = tokens.copy()
    moved[1:] += 1.0
    x = image[None].astype(np.float32)
    same = [keras.ops.convert_to_numpy(after([x, t[None]])) for t in (tokens, moved)]
    np.testing.assert_allclose(same[0], same[1], atol=1e-6)


@pytest.mark.backends
def test_activations_of_token_layers_are_their_patch_tokens_as_8x8_grids(vit, image) -> None:
    acts = cv.Inspector(vit).activations(image)
    for name in ("block0_attention", "block1_add2", "final_norm"):
        expected = layer_tokens(vit, name, image)[1:].reshape(8, 8, -1)  # the class token dropped, row-major patches
        np.testing.assert_allclose(acts[name], expected, rtol=1e-4, atol=1e-4)
    assert acts["block1_mlp1"].shape == (8, 8, 64)


@pytest.mark.backends
@pytest.mark.parametrize("which", ["vit", "registers_vit"])
def test_every_cam_method_gives_a_finite_map_of_the_patch_grid(which, image, request) -> None:
    ins = cv.Inspector(request.getfixturevalue(which))
    heatmaps = {}
    for method in cams.method_names():
        cam = ins.gradcam(image, method=method)
        assert cam.heatmap.shape == (8, 8), method
        assert np.isfinite(cam.heatmap).all() and np.isfinite(cam.raw).all(), method
        heatmaps[method] = cam.heatmap
    assert heatmaps["gradcam"].max() == 1.0  # not blank: the default layer's patch tokens reach the head


@pytest.mark.backends
def test_token_gradcam_equals_a_finite_difference_reference(vit, image) -> None:
    ins = cv.Inspector(vit)
    cam = ins.gradcam(image, layer="block1_norm1")
    tokens = layer_tokens(vit, "block1_norm1", image)  # (65, D)
    after = keras.Model([vit.inputs[0], vit.get_layer("block1_norm1").output], vit.output)
    x = image[None].astype(np.float32)
    k = int(np.argmax(keras.ops.convert_to_numpy(vit(x))[0]))
    assert cam.class_index == k
    eps, d = 1e-2, tokens.shape[1]
    shifted = np.repeat(tokens[None], 2 * d, axis=0)
    for c in range(d):  # the score's derivative w.r.t. channel c moved together on every patch token
        shifted[2 * c, 1:, c] += eps
        shifted[2 * c + 1, 1:, c] -= eps
    scores = keras.ops.convert_to_numpy(after([np.repeat(x, 2 * d, axis=0), shifted]))[:, k]
    weights = (scores[0::2] - scores[1::2]) / (2 * eps) / 64.0  # mean gradient over the 64 patch tokens
    raw = tokens[1:].reshape(8, 8, d) @ weights
    expected = np.maximum(raw, 0) / np.maximum(raw, 0).max()
    np.testing.assert_allclose(cam.heatmap, expected, atol=2e-3)


@pytest.mark.backends
def test_grid_argument_overrides_the_grid_found(vit, image) -> None:
    assert cv.Inspector(vit, grid=(4, 16)).gradcam(image, layer="final_norm", method="eigencam").heatmap.shape \
        == (4, 16)
    assert cv.gradcam(vit, image, grid=(16, 4), method="eigencam").heatmap.shape == (16, 4)
    with pytest.raises(ConvVizError, match="grid must be"):
        cv.Inspector(vit, grid=8)


@pytest.mark.backends
def test_a_token_layer_that_is_no_grid_is_refused_saying_why(vit, image) -> None:
    ins = cv.Inspector(vit, grid=(7, 7))  # 65 - 49 = 16 leading tokens: more than a ViT's special tokens
    with pytest.raises(ConvVizError, match=r"T=65 tokens of width D=32.*grid=7x7.*16 leading tokens"):
        ins.gradcam(image, layer="final_norm")
    twelve = small_vit(registers=12, class_token=False, pool="mean")  # 76 tokens: no patch grid fits
    ins = cv.Inspector(twelve)
    assert ins.default_cam_layer == "patch_tokens"  # only the 64 tokens before the registers read as a grid
    with pytest.raises(ConvVizError, match=r"T=76 .*conv grids tried: 8x8.*8x8, leaves 12 leading tokens"):
        ins.gradcam(image, layer="final_norm")


@pytest.mark.backends
def test_activations_of_an_unreadable_token_layer_are_refused_saying_why(vit, image) -> None:
    with pytest.raises(ConvVizError, match=r"not a feature map.*T=65.*grid=7x7"):
        cv.Inspector(vit, grid=(7, 7)).activations(image, layers=["final_norm"])


@pytest.mark.backends
def test_top_examples_of_a_token_channel_are_the_scenes_with_its_highest_patch_token(vit) -> None:
    images = np.stack([scene(seed=s, size=64).image for s in range(6)])
    top = cv.Inspector(vit).top_examples("block1_add2", images, k=2, channels=[0, 5])
    peaks = np.stack([layer_tokens(vit, "block1_add2", im)[1:].reshape(8, 8, -1) for im in images])  # (6, 8, 8, D)
    for row, c in enumerate((0, 5)):
        best = peaks[..., c].reshape(6, -1).max(axis=1)
        assert list(top.indices[row]) == list(np.argsort(-best, kind="stable")[:2])
        np.testing.assert_allclose(top.values[row], np.sort(best)[::-1][:2], rtol=1e-4)
        i = top.indices[row][0]
        assert peaks[i, top.positions[row][0][0], top.positions[row][0][1], c] == pytest.approx(best[i], rel=1e-4)


@pytest.mark.backends
def test_filter_pattern_of_a_token_channel_climbs_its_mean_over_the_patch_tokens(vit) -> None:
    ins = cv.Inspector(vit)
    pixels = np.stack([scene(seed=s, size=64).image for s in (0, 1)]).astype(np.float32)
    objective = ins.pattern_objective("block1_mlp1", 64)
    got = keras.ops.convert_to_numpy(objective(pixels, np.array([3, 7], np.int32)))
    expected = [layer_tokens(vit, "block1_mlp1", p.astype(np.uint8))[1:, c].mean() for p, c in zip(pixels, (3, 7))]
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    patterns = ins.filter_patterns("block1_mlp1", [3, 7], steps=8)
    assert patterns.images.shape == (2, 64, 64, 3)
    assert (patterns.final_activation > patterns.start_activation).all()


@pytest.mark.backends
def test_a_vit_is_read_from_a_worker_thread_as_the_panel_does(image) -> None:
    # Keras names unnamed operations from a per-thread counter: the patch grid read in a fresh thread must not
    # take the name of the model's own class-token slice ("get_item").
    model = small_vit(seed=4)
    ins = cv.Inspector(model)
    found: dict[str, object] = {}

    def work() -> None:
        try:
            found["acts"] = ins.activations(image)
            found["cam"] = ins.gradcam(image)
        except Exception as error:  # noqa: BLE001 - reported by the assertion below
            found["error"] = error

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert "error" not in found, found.get("error")
    expected = layer_tokens(model, "final_norm", image)[1:].reshape(8, 8, -1)
    np.testing.assert_allclose(found["acts"]["final_norm"], expected, rtol=1e-4, atol=1e-4)
    assert found["cam"].heatmap.shape == (8, 8)
