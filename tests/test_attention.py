"""Attention: rollout (Abnar & Zuidema 2020) and each head's attention, against numpy rebuilt from the kernels;
CAM methods that do not apply to a model are hidden and refused with their reason."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import small_convnet
from vit_models import layer_tokens, small_vit

import convviz_widgets as cv
from convviz_widgets import ConvVizError
from convviz_widgets.widgets import ActivationsView, CamView


@pytest.fixture(scope="module")
def image(vit_scene: np.ndarray) -> np.ndarray:
    return vit_scene


# ----- the oracle: attention rebuilt in numpy from each layer's kernels -------------------------------------------
def _kernels(mha: keras.layers.Layer) -> dict[str, np.ndarray]:
    """The attention layer's weights by 'projection/kind' (query/kernel: (D, heads, d))."""
    return {"/".join(v.path.split("/")[-2:]): keras.ops.convert_to_numpy(v).astype(np.float64) for v in mha.weights}


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def numpy_attention(mha: keras.layers.Layer, y: np.ndarray) -> np.ndarray:
    """softmax(Q K^T / sqrt(d)) per head, (heads, T, T), from the tokens y (T, D) the layer attends over."""
    w = _kernels(mha)
    q = np.einsum("td,dnh->tnh", y, w["query/kernel"]) + w["query/bias"]
    k = np.einsum("td,dnh->tnh", y, w["key/kernel"]) + w["key/bias"]
    return _softmax(np.einsum("tnh,snh->nts", q, k) / np.sqrt(q.shape[-1]))


def vit_attention(model: keras.Model, image: np.ndarray, depth: int = 2) -> list[np.ndarray]:
    """Every block's attention (heads, T, T) of `small_vit`: its pre-norm output is the query and the key."""
    return [numpy_attention(model.get_layer(f"block{i}_attention"), layer_tokens(model, f"block{i}_norm1", image))
            for i in range(depth)]


def numpy_rollout(attentions: list[np.ndarray], row: int | None, lead: int, side: int) -> np.ndarray:
    """The paper's rollout: heads averaged, + I, rows renormalised, multiplied first to last; one row read."""
    count = attentions[0].shape[-1]
    rolled = np.eye(count)
    for a in attentions:
        mixed = a.mean(axis=0) + np.eye(count)
        rolled = (mixed / mixed.sum(axis=-1, keepdims=True)) @ rolled
    read = rolled.mean(axis=0) if row is None else rolled[row]
    return read[lead:].reshape(side, side)


# ----- rollout --------------------------------------------------------------------------------------------------
@pytest.mark.backends
def test_rollout_is_the_class_token_row_of_the_rolled_out_attention(vit, image) -> None:
    cam = cv.gradcam(vit, image, method="rollout")
    want = numpy_rollout(vit_attention(vit, image), row=0, lead=1, side=8)
    np.testing.assert_allclose(cam.raw, want, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(cam.heatmap, want / want.max(), rtol=2e-4, atol=1e-6)
    assert cam.layer == "block1_attention" and cam.method == "rollout"


@pytest.mark.backends
def test_rollout_without_a_class_token_reads_the_mean_over_tokens_and_is_finite(registers_vit, image) -> None:
    ins = cv.Inspector(registers_vit)
    assert ins.attention_readout[0] is None
    cam = ins.gradcam(image, method="rollout")
    want = numpy_rollout(vit_attention(registers_vit, image), row=None, lead=4, side=8)
    assert np.isfinite(cam.raw).all() and np.isfinite(cam.heatmap).all() and cam.heatmap.max() == 1.0
    np.testing.assert_allclose(cam.raw, want, rtol=2e-4, atol=1e-6)


def test_the_class_token_is_the_special_token_the_head_reads() -> None:
    # two register tokens, then the class token (token 2): the head reads token 2
    assert cv.Inspector(small_vit(registers=2, seed=4)).attention_readout[0] == 2


@pytest.mark.backends
def test_rollout_is_class_agnostic_and_says_so(vit, image) -> None:
    ins = cv.Inspector(vit)
    first, other = (ins.gradcam(image, method="rollout", class_index=k) for k in (0, 3))
    np.testing.assert_array_equal(first.heatmap, other.heatmap)
    assert first.class_index == 0 and other.class_index == 3  # only the reported score follows the class
    assert first.target.startswith("no class") and "class-agnostic" in cv.core.cams.get_method("rollout").tooltip


def test_rollout_of_a_batch_is_each_images_rollout(vit, image) -> None:
    images = [image, image[::-1], image[:, ::-1]]
    batch = cv.gradcam(vit, images, method="rollout")
    for one, cam in zip(images, batch):
        np.testing.assert_allclose(cam.raw, cv.gradcam(vit, one, method="rollout").raw, rtol=1e-5, atol=1e-7)


# ----- each head's attention --------------------------------------------------------------------------------------
@pytest.mark.backends
def test_head_pictures_are_each_heads_class_token_row_on_the_patch_grid(vit, image) -> None:
    heads = cv.Inspector(vit).attention_heads(image)
    assert list(heads) == ["block0_attention", "block1_attention"]
    for (name, got), attention in zip(heads.items(), vit_attention(vit, image)):
        want = np.moveaxis(attention[:, 0, 1:].reshape(2, 8, 8), 0, -1)  # (h, w, heads) from the class token's row
        np.testing.assert_allclose(got, want, rtol=2e-4, atol=1e-7, err_msg=name)


def test_the_activations_tab_shows_an_attention_layers_heads(vit, image) -> None:
    view = ActivationsView(vit, image, layer="block0_attention", background=False)
    assert view.show_what.layout.display is None and view.activation().shape == (8, 8, 32)  # channels first
    view.show_what.value = "heads"
    want = np.moveaxis(vit_attention(vit, image, depth=1)[0][:, 0, 1:].reshape(2, 8, 8), 0, -1)
    np.testing.assert_allclose(view.activation(), want, rtol=2e-4, atol=1e-7)
    assert "2 heads" in view.grid_caption.value and view.channel.max == 1 and view.card.layout.display == "none"
    view.layer.value = "final_norm"  # not an attention layer: no switch, its channels
    assert view.show_what.layout.display == "none" and view.activation().shape == (8, 8, 32)


# ----- where a method applies -----------------------------------------------------------------------------------------
def test_a_method_that_does_not_apply_is_hidden_and_refused_with_its_reason(image) -> None:
    convnet = small_convnet(seed=5)
    ins = cv.Inspector(convnet, preprocess="rescale")
    why = ins.cam_methods_skipped["rollout"]
    assert "MultiHeadAttention" in why
    assert "rollout" not in ins.cam_methods and "rollout" not in cv.cam_methods(ins)
    assert "rollout" in cv.cam_methods() and "gradcam" in ins.cam_methods
    with pytest.raises(ConvVizError, match="does not apply to this model: it has no keras.layers.MultiHeadAttention"):
        ins.gradcam(image, method="rollout")
    view = CamView(ins, image, background=False)
    assert "rollout" not in dict(view.method.options).values() and not view.error
    with pytest.raises(ConvVizError, match="does not apply"):
        CamView(ins, image, method="rollout", background=False)


def test_a_vit_offers_rollout_in_the_panel(vit, image) -> None:
    view = CamView(vit, image, method="rollout", background=False)
    assert view.method.value == "rollout" and not view.error
    assert "class-agnostic" in view.score.value


def test_a_masked_attention_layer_is_not_read_and_says_why() -> None:
    x = inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 4, strides=4)(x)
    x = keras.layers.Reshape((16, 8))(x)
    x = keras.layers.MultiHeadAttention(2, 4, name="causal")(x, x, use_causal_mask=True)
    outputs = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling1D()(x))
    ins = cv.Inspector(keras.Model(inputs, outputs))
    assert "mask" in ins.cam_methods_skipped["rollout"] and ins.attention_layers == []


# ----- KerasHub's ViT: the attention inside its encoder blocks ------------------------------------------------------
def test_rollout_reads_the_attention_inside_keras_hubs_vit_encoder(image) -> None:
    hub = pytest.importorskip("keras_hub", reason="keras_hub is not installed")
    keras.utils.set_random_seed(6)
    backbone = hub.models.ViTBackbone(image_shape=(32, 32, 3), patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=16, mlp_dim=32)
    model = hub.models.ViTImageClassifier(backbone=backbone, num_classes=3)
    ins = cv.Inspector(model, preprocess="none")
    small = image[::2, ::2]
    cam = ins.gradcam(small, method="rollout")
    # the oracle: the blocks run eagerly one by one, each block's attention rebuilt in numpy from its kernels
    embed, encoder = backbone.get_layer("vit_patching_and_embedding"), backbone.get_layer("vit_encoder")
    x = embed(small[None].astype(np.float32))
    attentions = []
    for block in encoder.encoder_layers:
        y = keras.ops.convert_to_numpy(block.layer_norm_1(x))[0].astype(np.float64)
        attentions.append(numpy_attention(block.mha, y))
        x = block(x)
    assert ins.attention_readout[0] == 0  # KerasHub's class token comes first
    np.testing.assert_allclose(cam.raw, numpy_rollout(attentions, row=0, lead=1, side=4), rtol=2e-4, atol=1e-6)
    heads = ins.attention_heads(small)
    assert [h.shape for h in heads.values()] == [(4, 4, 2), (4, 4, 2)]
    view = ActivationsView(ins, small, background=False)  # the blocks' attention: entries of their own, heads only
    view.layer.value = last = ins.attention_layers[-1]  # ".../vit_encoder/transformer_block_2/mha"
    assert view.show_what.disabled and view.show_what.value == "heads"
    np.testing.assert_allclose(view.activation(), heads[last])


# ----- the report ---------------------------------------------------------------------------------------------------
def test_the_report_skips_a_method_that_does_not_apply_and_writes_why(tmp_path, image) -> None:
    from convviz_widgets.report import build_report

    ins = cv.Inspector(small_convnet(seed=7), preprocess="rescale")
    build_report(ins, image, tmp_path, filter_layers=[ins.conv_layers[0]], n_filters=1, steps=1,
                 pattern_modes=("plain",), cam_methods=("gradcam", "rollout"), log=lambda _: None)
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert "Not drawn: Attention rollout does not apply to this model: it has no keras.layers.MultiHeadAttention" \
        in page
    assert "gradcam_top1.png" in page and "rollout" not in " ".join(p.name for p in tmp_path.iterdir())


def test_the_report_draws_rollout_once_for_a_vit_and_calls_it_class_agnostic(tmp_path, vit, image) -> None:
    from convviz_widgets.report import build_report

    report = build_report(cv.Inspector(vit), image, tmp_path, filter_layers=["patch_embed"], n_filters=1, steps=1,
                          pattern_modes=("plain",), cam_methods=("rollout",), log=lambda _: None)
    title, text, items = next(s for s in report.sections if s[0] == "Attention rollout")
    assert len(items) == 1 and "class-agnostic" in text
