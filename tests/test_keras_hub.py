"""KerasHub image classifiers (small configs, random weights, no preset downloaded): the API, the panel, the report.

Their backbones are functional models nested in the task; some of their layers are blocks of their own (KerasHub's
MBConv, inverted-residual and transformer blocks) that are shown as one layer each. The task's preprocessor (an
image converter that resizes and scales) is used when given, and when attached to the task.
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest

import convviz_widgets as cv

keras_hub = pytest.importorskip("keras_hub", reason="keras_hub is not installed (pip install \".[hub]\")")

import hub_models as hm  # noqa: E402  (after the skip: it builds keras_hub models)

FAMILIES = list(hm.FAMILIES)


def _raw(seed: int = 0, shape: tuple[int, int] = (hm.SIZE, hm.SIZE)) -> np.ndarray:
    """Raw uint8 RGB pixels."""
    return np.random.default_rng(seed).integers(0, 256, (*shape, 3), dtype=np.uint8)


def _hub_prediction(classifier: keras.Model, raw: np.ndarray) -> np.ndarray:
    """KerasHub's own answer: `classifier.predict` runs the task's preprocessor, then the model."""
    return np.asarray(classifier.predict(raw[None].astype("float32"), verbose=0))[0]


@pytest.fixture(scope="module")
def classifiers() -> dict[str, keras.Model]:
    """One small classifier per family, built lazily and kept for the module."""
    return {}


def _classifier(classifiers: dict[str, keras.Model], family: str) -> keras.Model:
    """The family's classifier from the module's store (built once)."""
    if family not in classifiers:
        classifiers[family] = hm.FAMILIES[family](keras_hub)
    return classifiers[family]


def _state(model: keras.Model) -> tuple[str, list[np.ndarray]]:
    """The model's config (preprocessor included) as text and a copy of its weights."""
    config = json.dumps(keras.saving.serialize_keras_object(model), sort_keys=True, default=str)
    return config, [np.array(keras.ops.convert_to_numpy(w)) for w in model.weights]


# HiResCAM sums gradient x activation over channels; at the input of a block that starts with a LayerNormalization
# (KerasHub's ViT default layer) that sum is 0 for every patch token (a norm ignores its input's scale), so it
# does not apply there (its map is blank: see the ViT test).
_NOT_APPLICABLE = {"vit": {"hirescam"}}


def _check_cams(ins: cv.Inspector, methods: list[str], raw: np.ndarray) -> None:
    """Each method's map of `raw` at the default layer: its grid, finite, and varying (not blank)."""
    node = ins.layer(ins.default_cam_layer)
    for method in methods:
        cam = ins.gradcam(raw, method=method, max_channels=8)
        assert cam.heatmap.shape == node.grid, method
        assert np.isfinite(cam.heatmap).all() and np.isfinite(cam.raw).all(), method
        assert np.ptp(cam.raw) > 1e-3 * np.abs(cam.raw).max(), method  # not blank: the map says where
    assert ins.gradcam(raw).heatmap.max() == 1.0


@pytest.mark.parametrize("family", FAMILIES)
def test_every_cam_method_gives_a_finite_map_that_varies(classifiers, family) -> None:
    ins = cv.Inspector(_classifier(classifiers, family))
    assert ("rollout" in ins.cam_methods) == (family == "vit")  # DeiT's attention is inside one opaque encoder
    methods = [m for m in ins.cam_methods if m not in _NOT_APPLICABLE.get(family, ())]
    _check_cams(ins, methods, _raw(1))


@pytest.mark.backends
@pytest.mark.parametrize("family", ["vit", "resnet", "efficientnet"])
def test_a_gradient_and_a_perturbation_cam_on_every_backend(classifiers, family) -> None:
    _check_cams(cv.Inspector(_classifier(classifiers, family)), ["gradcam", "scorecam"], _raw(1))


@pytest.mark.backends
@pytest.mark.parametrize("family", FAMILIES)
def test_the_tasks_own_preprocessor_gives_the_prediction_of_classifier_predict(classifiers, family) -> None:
    classifier = _classifier(classifiers, family)
    raw = _raw(2)
    expected = _hub_prediction(classifier, raw)
    ins = cv.Inspector(classifier)  # the preprocessor attached to the task
    assert ins.preprocess_in_graph
    np.testing.assert_allclose(ins.probabilities(raw), expected, rtol=1e-4, atol=1e-3 * np.abs(expected).max())
    assert ins.predict(raw, top=1)[0][0] == int(np.argmax(expected))
    x = raw[None].astype("float32")
    converted = keras.ops.convert_to_numpy(classifier.preprocessor(x))  # KerasHub's own conversion
    for preprocess in (classifier.preprocessor, classifier, classifier.preprocessor.image_converter):
        given = cv.Inspector(classifier, preprocess=preprocess)
        assert given.preprocess_reason.startswith("given: the KerasHub image converter")
        np.testing.assert_allclose(keras.ops.convert_to_numpy(given.preprocess_fn(x)), converted, rtol=1e-5,
                                   atol=1e-5)
    # pixels / 255 (the guess for a model with nothing to read) gives other inputs: the test can tell them apart
    rescaled = keras.ops.convert_to_numpy(cv.Inspector(classifier, preprocess="rescale").preprocess_fn(x))
    assert np.abs(rescaled - converted).max() > 0.5


def test_the_reason_names_the_converter_its_scale_and_the_resize(classifiers) -> None:
    classifier = _classifier(classifiers, "vit")
    attached = cv.Inspector(classifier)
    assert attached.preprocess_name == "ViTImageConverter"
    assert attached.preprocess_reason == (
        "the model's own KerasHub preprocessor: its image converter ViTImageConverter (1/127.5, offset -1); this "
        "package resizes each image to 32x32 itself, cropping the centre to that aspect ratio first, bilinearly, as "
        "the converter does, so the picture shown is the one explained")
    given = cv.Inspector(classifier, preprocess=classifier.preprocessor).preprocess_reason
    assert given.startswith("given: the KerasHub image converter ViTImageConverter (1/127.5, offset -1)")
    resnet = cv.Inspector(_classifier(classifiers, "resnet")).preprocess_reason
    assert "ResNetImageConverter (× (0.01712, 0.01751, 0.01743), offset (-2.118, -2.036, -1.804))" in resnet


def test_a_wide_photo_is_cropped_to_its_centre_square_and_resized_as_the_converter_does(classifiers) -> None:
    classifier = _classifier(classifiers, "densenet")
    ins = cv.Inspector(classifier)
    wide = _raw(3, (40, 64))
    centre = wide[:, 12:52]  # the centred 40x40 window of a 40x64 photo
    np.testing.assert_array_equal(ins.prepare(wide), ins.prepare(centre))
    assert ins.prepare(wide).shape == (hm.SIZE, hm.SIZE, 3)
    # the same scores as KerasHub's own crop and bilinear resize, up to the rounding of the resized pixels to uint8
    np.testing.assert_allclose(ins.probabilities(wide), _hub_prediction(classifier, wide), atol=2e-3)


def test_a_backbone_that_takes_any_size_gets_the_converters_size(classifiers) -> None:
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.DenseNetBackbone(stackwise_num_repeats=[1, 1], growth_rate=8)  # (None, None, 3)
    converter = keras_hub.layers.DenseNetImageConverter(image_size=(48, 48), **hm.STANDARDISE)
    classifier = keras_hub.models.DenseNetImageClassifier(
        backbone=backbone, num_classes=3,
        preprocessor=keras_hub.models.DenseNetImageClassifierPreprocessor(image_converter=converter))
    ins = cv.Inspector(classifier)
    assert ins.input_size == (48, 48)
    raw = _raw(4, (48, 48))
    np.testing.assert_allclose(ins.probabilities(raw), _hub_prediction(classifier, raw), rtol=1e-4, atol=1e-4)
    assert ins.gradcam(_raw(5, (100, 80))).heatmap.shape == (6, 6)  # 48 px / 8 (two stride-2 convs, a pooling)


@pytest.mark.backends
def test_the_vit_classifiers_blocks_are_4x4_token_grids_and_the_cam_sits_before_the_last_block(classifiers) -> None:
    classifier = _classifier(classifiers, "vit")
    ins = cv.Inspector(classifier)
    prefix = f"{classifier.backbone.name}/"
    assert ins.layers == [f"{prefix}vit_patching_and_embedding", f"{prefix}vit_encoder/transformer_block_1",
                          f"{prefix}vit_encoder/transformer_block_2", f"{prefix}vit_encoder/ln"]
    assert all(ins.layer(name).tokens.lead == 1 and ins.layer(name).grid == (4, 4) for name in ins.layers)
    # the head reads the class token after the last block's final norm: the last block's input is what it sees
    assert ins.default_cam_layer == f"{prefix}vit_encoder/transformer_block_1"
    raw = _raw(6)
    hires = ins.gradcam(raw, method="hirescam")  # sum_c x_c df/dx_c = 0 at a norm's input: blank, not rounding noise
    assert not hires.heatmap.any() and not hires.raw.any()
    acts = ins.activations(raw)
    encoder = classifier.backbone.get_layer("vit_encoder")
    x = classifier.preprocessor(raw[None].astype("float32"))
    x = encoder.dropout(classifier.backbone.get_layer("vit_patching_and_embedding")(x), training=False)
    for i, block in enumerate(encoder.encoder_layers, start=1):
        x = block(x, training=False)
        expected = np.asarray(keras.ops.convert_to_numpy(x))[0, 1:].reshape(4, 4, -1)  # class token dropped
        np.testing.assert_allclose(acts[f"{prefix}vit_encoder/transformer_block_{i}"], expected, rtol=1e-4, atol=1e-4)


def test_a_layer_with_several_outputs_shows_its_per_image_ones(classifiers) -> None:
    classifier = _classifier(classifiers, "deit")  # its encoder returns (tokens, hidden states, attention scores)
    ins = cv.Inspector(classifier)
    prefix = f"{classifier.backbone.name}/"
    assert ins.layers == [f"{prefix}deit_patching_and_embedding", f"{prefix}deit_encoder"]
    assert ins.layer(f"{prefix}deit_encoder").tokens.lead == 2  # the class and the distillation token
    # the encoder is one layer and the head reads only its two leading tokens: the patch embedding is what it sees
    assert ins.default_cam_layer == f"{prefix}deit_patching_and_embedding"


@pytest.mark.parametrize(("family", "blocks", "default"), [
    ("mobilenet", ["block_0_0", "block_1_0", "block_2_0", "block_2_1", "block_3_0"], "block_3_0"),
    ("efficientnet", ["block1a_", "block2a_"], "top_activation"),
])
def test_a_families_own_blocks_are_shown_as_layers(classifiers, family, blocks, default) -> None:
    classifier = _classifier(classifiers, family)
    ins = cv.Inspector(classifier)
    prefix = f"{classifier.backbone.name}/"
    assert [n for n in ins.layers if ins.layer(n).kind == "block"] == [prefix + b for b in blocks]
    assert ins.default_cam_layer == prefix + default
    acts = ins.activations(_raw(7), layers=[prefix + blocks[-1]])
    assert acts[prefix + blocks[-1]].ndim == 3 and np.isfinite(acts[prefix + blocks[-1]]).all()


@pytest.mark.parametrize("family", ["vit", "efficientnet"])
def test_the_users_classifier_is_untouched_by_every_view(classifiers, family) -> None:
    classifier = _classifier(classifiers, family)
    before = _state(classifier)
    ins = cv.Inspector(classifier, preprocess=classifier.preprocessor)
    layer = ins.layers[1]
    ins.activations(_raw(8))
    ins.gradcam(_raw(8), method="scorecam", max_channels=4)
    patterns = ins.filter_patterns(layer, [0, 1], size=hm.SIZE, steps=3)
    assert np.isfinite(patterns.images).all()
    top = ins.top_examples(layer, np.stack([_raw(s) for s in range(4)]), k=2, channels=[0])
    assert top.indices.shape == (1, 2)
    after = _state(classifier)
    assert after[0] == before[0]
    assert all(np.array_equal(a, b) for a, b in zip(after[1], before[1])) and len(after[1]) == len(before[1])
    assert _hub_prediction(classifier, _raw(9)).shape == (hm.CLASSES,)  # the task still predicts as before


def test_the_panel_and_the_report_run_on_a_keras_hub_classifier(classifiers, tmp_path) -> None:
    from convviz_widgets.report import build_report

    classifier = _classifier(classifiers, "resnet")
    panel = cv.ConvVizPanel(classifier, _raw(10), background=False)
    assert panel.activations.error == ""
    assert "Pixels in: <b>ResNetImageConverter</b>" in panel.chooser.preprocessing.value
    panel.select("Grad-CAM")
    assert panel.cam.overlay.value != b""
    ins = panel.inspector
    report = build_report(ins, _raw(10), tmp_path, filter_layers=[ins.conv_layers[0]], n_filters=1, steps=1,
                          pattern_modes=("plain",), log=lambda _: None)
    assert ("Preprocessing", f"'ResNetImageConverter': {ins.preprocess_reason}") in report.facts
    assert (tmp_path / "index.html").is_file()
