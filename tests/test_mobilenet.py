"""The real ImageNet MobileNet (../shared/data) on scikit-image's cat photo."""

from __future__ import annotations

import numpy as np

import convviz_widgets as cv
from convviz_widgets import Inspector

CAT_CLASSES = set(range(281, 286)) | {287}  # tabby, tiger cat, Persian, Siamese, Egyptian cat; lynx
FACE = (slice(40, 300), slice(100, 370))  # rows, cols of chelsea.png (300x451) holding eyes and nose
BACKGROUND = (slice(0, 300), slice(390, 451))  # the blurred strip right of the cat


def test_mobilenet_top_class_is_a_cat(mobilenet, cat_image):
    preds = cv.predict(mobilenet, cat_image, top=5)  # preprocess recognised: "tf"
    assert preds[0][0] in CAT_CLASSES, preds
    assert sum(p for i, _, p in preds if i in CAT_CLASSES) > 0.8
    assert preds[0][1] in {"tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat", "lynx"}


def test_mobilenet_default_cam_layer_is_the_last_spatial_feature_map(mobilenet):
    ins = Inspector(mobilenet)
    assert ins.preprocess_name == "tf"
    assert ins.default_cam_layer == "conv_pw_13_relu"  # not the 1x1 classifier conv_preds
    assert ins.graph.head.activation == "softmax"


def test_mobilenet_gradcam_is_not_blank_and_lies_on_the_cats_face(mobilenet, cat_image):
    cam = cv.gradcam(mobilenet, cat_image)
    assert cam.class_index in CAT_CLASSES
    heat = cam.resized(*cat_image.shape[:2])
    assert heat.max() == 1.0 and heat.std() > 0.05  # not blank, not uniform
    ys, xs = np.mgrid[: heat.shape[0], : heat.shape[1]]
    com = ((heat * ys).sum() / heat.sum(), (heat * xs).sum() / heat.sum())
    assert 40 <= com[0] < 300 and 100 <= com[1] < 370, com
    assert heat[FACE].mean() > 1.5 * heat[BACKGROUND].mean()


def test_mobilenet_score_is_a_logit_not_a_saturated_probability(mobilenet, cat_image):
    cam = cv.gradcam(mobilenet, cat_image)
    assert cam.score > 1.0  # a probability could never exceed 1
    assert 0.0 < cam.probability < 1.0


def test_mobilenet_activations_and_filter_patterns(mobilenet, cat_image):
    acts = cv.activations(mobilenet, cat_image)
    assert len(acts) == 28 and acts["conv_pw_13"].shape == (4, 4, 256)
    fp = cv.filter_patterns(mobilenet, "conv_pw_5", range(8), size=96, steps=20)
    assert (fp.final_activation > fp.start_activation).all()
