"""Input normalisation is read from the model's own layers, not guessed, and the reason is said."""

from __future__ import annotations

import html
import warnings

import keras
import numpy as np
import pytest

import convviz_widgets as cv
from convviz_widgets.core.preprocess import choose, read_input_layers

L = keras.layers
SIZE = 32


def _pixels(seed: int = 0, size: int = SIZE) -> np.ndarray:
    """Raw uint8 RGB pixels at the model's input size (no resizing between the test and the model)."""
    return np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)


def _trunk(name_prefix: str = "") -> list[keras.layers.Layer]:
    """Two convs and a head (a strong head, so that inputs scaled twice give visibly other probabilities)."""
    return [L.Conv2D(8, 3, activation="relu", name=f"{name_prefix}conv1"), L.MaxPooling2D(),
            L.Conv2D(8, 3, activation="relu", name=f"{name_prefix}conv2"), L.Flatten(),
            L.Dense(4, activation="softmax", kernel_initializer=keras.initializers.RandomNormal(stddev=0.5))]


def _augmented_model() -> keras.Model:
    """The tutorial model: Rescaling(1/255) and augmentation layers inside, then convs."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((SIZE, SIZE, 3)), L.Rescaling(1.0 / 255, name="rescaling"),
                             L.RandomFlip(name="random_flip"), L.RandomRotation(0.2, name="random_rotation"),
                             *_trunk()], name="tutorial")


def _oracle(model: keras.Model, pixels: np.ndarray, divide: float = 1.0) -> np.ndarray:
    """The model itself at inference on the raw pixels (optionally divided first)."""
    x = pixels[None].astype("float32") / divide
    return np.asarray(keras.ops.convert_to_numpy(model(x, training=False)))[0]


def _quiet_inspector(model: keras.Model, **kwargs: object) -> cv.Inspector:
    """An Inspector built while recording warnings (for the models that must not warn)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ins = cv.Inspector(model, **kwargs)
    assert not [w for w in caught if issubclass(w.category, UserWarning) and "twice" in str(w.message)]
    return ins


@pytest.mark.backends
def test_rescaling_and_augmentation_inside_give_the_models_own_prediction() -> None:
    model = _augmented_model()
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    raw = _pixels(1)
    expected = _oracle(model, raw)
    got = ins.probabilities(raw)
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert ins.predict(raw, top=1)[0][0] == int(np.argmax(expected))
    # the old guess (x/255 on top of the model's own 1/255) gives other values: the test can tell them apart
    assert np.abs(_oracle(model, raw, divide=255.0) - expected).max() > 1e-3


@pytest.mark.backends
def test_the_reason_names_the_rescaling_layer_and_the_inactive_augmentation() -> None:
    ins = _quiet_inspector(_augmented_model())
    reason = ins.preprocess_reason
    assert reason.startswith("the model rescales its own input (Rescaling 1/255 at layer 'rescaling')")
    assert "RandomFlip 'random_flip'" in reason and "RandomRotation 'random_rotation'" in reason
    assert "do nothing at inference" in reason


@pytest.mark.backends
def test_normalization_with_given_mean_and_variance_inside_is_found() -> None:
    keras.utils.set_random_seed(1)
    mean, std = [124.0, 116.0, 104.0], [58.0, 57.0, 57.5]
    inputs = keras.Input((SIZE, SIZE, 3))
    x = L.Normalization(mean=mean, variance=[s * s for s in std], name="norm")(inputs)
    for layer in _trunk():
        x = layer(x)
    model = keras.Model(inputs, x, name="standardises")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason.startswith("the model normalises its own input (Normalization (mean (124, 116, 104)")
    assert "at layer 'norm'" in ins.preprocess_reason
    raw = _pixels(2)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw), atol=1e-5)


@pytest.mark.backends
def test_an_adapted_normalization_says_which_pixel_range_it_was_made_for() -> None:
    data = np.random.default_rng(3).integers(0, 256, (16, SIZE, SIZE, 3)).astype("float32")
    for scale, preset, divide in ((1.0, "none", 1.0), (1.0 / 255, "rescale", 255.0)):
        keras.utils.set_random_seed(2)
        norm = L.Normalization(name="adapted")
        norm.adapt(data * scale)
        model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), norm, *_trunk()], name=f"adapted_{preset}")
        ins = _quiet_inspector(model)
        assert ins.preprocess_name == preset, ins.preprocess_reason
        assert ("pixels in 0..1" in ins.preprocess_reason) == (preset == "rescale")
        raw = _pixels(4)
        np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw, divide=divide), atol=1e-5)


@pytest.mark.backends
def test_a_never_adapted_normalization_is_not_taken_for_normalisation() -> None:
    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), L.Normalization(name="blank"), *_trunk()])
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "rescale"
    assert "no normalisation found in the model: assuming pixels / 255" in ins.preprocess_reason
    assert "'blank' changes nothing (never adapted)" in ins.preprocess_reason


@pytest.mark.backends
def test_a_nested_applications_like_base_is_read_inside() -> None:
    keras.utils.set_random_seed(4)
    base_in = keras.Input((SIZE, SIZE, 3))
    x = L.Rescaling(1.0 / 127.5, offset=-1.0, name="rescaling")(base_in)
    x = L.Conv2D(8, 3, activation="relu", name="stem")(x)
    x = L.Conv2D(8, 3, activation="relu", name="block")(x)
    base = keras.Model(base_in, x, name="backbone")  # a name no keras.applications family has
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, L.GlobalAveragePooling2D(),
                              L.Dense(3, activation="softmax")], name="classifier")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason == ("the model rescales its own input "
                                     "(Rescaling 1/127.5, offset -1 at layer 'backbone/rescaling')")
    raw = _pixels(5)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw), atol=1e-5)


def test_a_keras_applications_model_that_normalises_inside_is_found_by_its_layers_under_any_name() -> None:
    keras.utils.set_random_seed(5)
    base = keras.applications.MobileNetV3Small(weights=None, input_shape=(SIZE, SIZE, 3), include_top=False,
                                               minimalistic=True)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), base, L.GlobalAveragePooling2D(),
                              L.Dense(3, activation="softmax")], name="my_classifier")
    ins = _quiet_inspector(model)
    rescaling = next(n for n in ins.graph.nodes if isinstance(n.layer, L.Rescaling))
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason == (f"the model rescales its own input (Rescaling 1/127.5, offset -1 at layer "
                                     f"{rescaling.name!r})")


def test_keras_applications_recognised_by_name_keep_their_presets_with_the_reason() -> None:
    base = keras.applications.MobileNet(weights=None, alpha=0.25, input_shape=(SIZE, SIZE, 3), include_top=False)
    ins = _quiet_inspector(base)
    assert ins.preprocess_name == "tf"
    assert ins.preprocess_reason == f"recognised as keras.applications {base.name!r}"
    bare = keras.applications.MobileNetV3Small(weights=None, input_shape=(SIZE, SIZE, 3), include_top=False,
                                               minimalistic=True, include_preprocessing=False)
    ins = _quiet_inspector(bare)
    assert ins.preprocess_name == "tf"  # documented: without its Rescaling, MobileNetV3 takes [-1, 1]
    assert "include_preprocessing=False" in ins.preprocess_reason


@pytest.mark.backends
def test_rescaling_after_resizing_is_read_through_the_resizing() -> None:
    keras.utils.set_random_seed(6)
    model = keras.Sequential([keras.Input((48, 48, 3)), L.Resizing(SIZE, SIZE, name="resize"),
                              L.Rescaling(1.0 / 255, name="scale"), *_trunk()], name="resizes")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason == ("the model rescales its own input (Rescaling 1/255 at layer 'scale'); "
                                     "it resizes its input to 32x32 (Resizing) at layer 'resize'")
    raw = _pixels(7, size=48)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw), atol=1e-5)


@pytest.mark.backends
def test_a_preset_that_scales_again_is_used_as_given_with_one_warning_in_words() -> None:
    model = _augmented_model()
    with pytest.warns(UserWarning) as caught:
        ins = cv.Inspector(model, preprocess="rescale")
        ins.predict(_pixels(8))
    twice = [str(w.message) for w in caught if "twice" in str(w.message)]
    assert twice == ["The model already rescales its input at layer 'rescaling'; preprocess='rescale' would divide "
                     "by 255 twice. Leave preprocess= out (or pass 'none') to give the model pixels in 0..255."]
    assert ins.preprocess_name == "rescale"
    assert ins.preprocess_reason.startswith("given: preprocess='rescale' (the model already rescales its input")
    raw = _pixels(8)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw, divide=255.0), atol=1e-5)
    for preset in ("tf", "torch", "caffe"):
        with pytest.warns(UserWarning, match=f"preprocess='{preset}' would"):
            cv.Inspector(model, preprocess=preset)
    assert _quiet_inspector(model, preprocess="none").preprocess_reason == "given: preprocess='none'"


@pytest.mark.backends
def test_a_model_without_normalisation_keeps_the_default_and_says_it_was_assumed() -> None:
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), *_trunk()], name="plain")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "rescale"
    assert ins.preprocess_reason == ("no normalisation found in the model: assuming pixels / 255; "
                                     "pass preprocess= to change")
    raw = _pixels(9)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw, divide=255.0), atol=1e-5)


@pytest.mark.backends
def test_a_layer_that_cannot_be_read_is_named_and_the_default_stays_a_guess() -> None:
    keras.utils.set_random_seed(8)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), L.Lambda(lambda t: t / 255.0, name="scale_fn"),
                              *_trunk()], name="opaque")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "rescale"
    assert ins.preprocess_reason.endswith("pass preprocess= to change; layers that could not be read: "
                                          "Lambda 'scale_fn'")


class TinyImageConverter(L.Layer):
    """Stands for a KerasHub image converter: matched by its class name, read from its config."""

    def __init__(self, scale: object = None, offset: object = None, image_size: object = None, **kwargs: object):
        super().__init__(**kwargs)
        self.scale, self.offset, self.image_size = scale, offset, image_size

    def call(self, x: object) -> object:
        return x * keras.ops.convert_to_tensor(self.scale) + keras.ops.convert_to_tensor(self.offset)

    def get_config(self) -> dict:
        return {**super().get_config(), "scale": self.scale, "offset": self.offset, "image_size": self.image_size}


@pytest.mark.backends
def test_an_image_converter_layer_is_read_by_its_class_name() -> None:
    keras.utils.set_random_seed(9)
    scale = [1 / (255 * 0.229), 1 / (255 * 0.224), 1 / (255 * 0.225)]
    offset = [-0.485 / 0.229, -0.456 / 0.224, -0.406 / 0.225]
    converter = TinyImageConverter(scale, offset, (SIZE, SIZE), name="converter")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), converter, *_trunk()], name="hub_like")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason.startswith("the model normalises its own input (TinyImageConverter (× (0.01712")
    assert "resizing to 32x32) at layer 'converter'" in ins.preprocess_reason
    raw = _pixels(10)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw), atol=1e-5)


@pytest.mark.backends
def test_a_keras_hub_image_converter_inside_the_model_is_read() -> None:
    keras_hub = pytest.importorskip("keras_hub", reason="keras_hub is not installed")
    keras.utils.set_random_seed(11)
    converter = keras_hub.layers.ResNetImageConverter(
        image_size=(SIZE, SIZE), scale=[1 / (255 * s) for s in (0.229, 0.224, 0.225)],
        offset=[-m / s for m, s in ((0.485, 0.229), (0.456, 0.224), (0.406, 0.225))], name="converter")
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), converter, *_trunk()], name="hub")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason.startswith("the model normalises its own input (ResNetImageConverter (")
    raw = _pixels(12)
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw), atol=1e-5)


@pytest.mark.backends
def test_a_given_image_converter_that_scales_again_gets_a_warning_in_words() -> None:
    keras_hub = pytest.importorskip("keras_hub", reason="keras_hub is not installed")
    model = _augmented_model()
    converter = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE), scale=1 / 255)
    with pytest.warns(UserWarning) as caught:
        ins = cv.Inspector(model, preprocess=converter)
        ins.predict(_pixels(13))
    twice = [str(w.message) for w in caught if "twice" in str(w.message)]
    assert twice == ["The model already rescales its input at layer 'rescaling'; the given ResNetImageConverter "
                     "scales the pixels too, so they would be normalised twice. Leave preprocess= out (or pass "
                     "'none') to give the model pixels in 0..255."]
    assert "(the model already rescales its input" in ins.preprocess_reason
    raw = _pixels(13)  # used as given: the pixels are divided by 255 before the model divides them again
    np.testing.assert_allclose(ins.probabilities(raw), _oracle(model, raw, divide=255.0), atol=1e-5)
    identity = keras_hub.layers.ResNetImageConverter(image_size=(SIZE, SIZE))  # no scale: nothing done twice
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cv.Inspector(model, preprocess=identity)


@pytest.mark.backends
def test_a_centre_crop_before_the_rescaling_is_noted() -> None:
    keras.utils.set_random_seed(12)
    model = keras.Sequential([keras.Input((40, 40, 3)), L.CenterCrop(SIZE, SIZE, name="crop"),
                              L.Rescaling(1.0 / 255, name="scale"), *_trunk()], name="crops")
    ins = _quiet_inspector(model)
    assert ins.preprocess_name == "none"
    assert ins.preprocess_reason == ("the model rescales its own input (Rescaling 1/255 at layer 'scale'); "
                                     "it crops the centre to 32x32 (CenterCrop) at layer 'crop'")


def test_reading_stops_at_the_first_learned_layer() -> None:
    keras.utils.set_random_seed(10)
    model = keras.Sequential([keras.Input((SIZE, SIZE, 3)), L.Conv2D(4, 3, name="first"),
                              L.Rescaling(1.0 / 255, name="late"), *_trunk()])
    nodes = cv.Inspector(model, preprocess="none").graph.nodes
    found = read_input_layers(nodes)
    assert found.first_learned == "first" and found.steps == ()
    assert choose(None, nodes).name == "rescale"  # a Rescaling after a conv is the network's, not the input's


def test_the_panel_header_shows_the_choice_and_its_reason() -> None:
    from convviz_widgets.widgets import ImageChooser

    chooser = ImageChooser(_augmented_model(), background=False)
    reason = chooser.inspector.preprocess_reason
    value = chooser.preprocessing.value
    assert "Pixels in: <b>none</b>" in value
    assert html.escape("the model rescales its own input (Rescaling 1/255 at layer 'rescaling')") in value
    assert f"title='{html.escape(reason, quote=True)}'" in value  # the whole reason as the tooltip


def test_the_report_writes_the_choice_and_its_reason(tmp_path) -> None:
    from convviz_widgets.report import build_report

    ins = _quiet_inspector(_augmented_model())
    report = build_report(ins, _pixels(11), tmp_path, filter_layers=["conv1"], n_filters=1, steps=1,
                          pattern_modes=("plain",), log=lambda _: None)
    assert ("Preprocessing", f"'none': {ins.preprocess_reason}") in report.facts
    page = (tmp_path / "index.html").read_text(encoding="utf-8")
    assert html.escape(f"'none': {ins.preprocess_reason}") in page
