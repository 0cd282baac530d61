"""Small KerasHub image classifiers built from a config with random weights (no preset is downloaded).

Each builder returns the task (an `...ImageClassifier`) with its own preprocessor: an image converter that
resizes to the backbone's input size and scales the pixels as the family's presets do.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

SIZE = 32  # input side of every small classifier
CLASSES = 4
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
STANDARDISE = {"scale": [1 / (255 * s) for s in IMAGENET_STD],
               "offset": [-m / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]}
SYMMETRIC = {"scale": 1 / 127.5, "offset": -1.0}


def _classifier(hub: Any, family: str, backbone: Any, converter: dict, seed: int, **head: Any) -> Any:
    """The family's classifier on `backbone`, with a preprocessor whose converter resizes to SIZE and scales."""
    models = hub.models
    image_converter = getattr(hub.layers, f"{family}ImageConverter")(image_size=(SIZE, SIZE), **converter)
    preprocessor = getattr(models, f"{family}ImageClassifierPreprocessor")(image_converter=image_converter)
    keras.utils.set_random_seed(seed)
    return getattr(models, f"{family}ImageClassifier")(backbone=backbone, num_classes=CLASSES,
                                                       preprocessor=preprocessor, **head)


def vit(hub: Any, seed: int = 0) -> Any:
    """ViT: 8 px patches (a 4x4 grid and a class token), two blocks of width 16."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.ViTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
                                      hidden_dim=16, mlp_dim=32)
    return _classifier(hub, "ViT", backbone, SYMMETRIC, seed)


def deit(hub: Any, seed: int = 0) -> Any:
    """DeiT: a ViT with a class and a distillation token; its encoder is one layer with three outputs."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.DeiTBackbone(image_shape=(SIZE, SIZE, 3), patch_size=8, num_layers=2, num_heads=2,
                                       hidden_dim=16, intermediate_dim=32)
    return _classifier(hub, "DeiT", backbone, STANDARDISE, seed)


def resnet(hub: Any, seed: int = 0) -> Any:
    """ResNet (v1 basic blocks): two stages of one block."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.ResNetBackbone(
        input_conv_filters=[64], input_conv_kernel_sizes=[3], stackwise_num_filters=[64, 64],
        stackwise_num_blocks=[1, 1], stackwise_num_strides=[1, 2], block_type="basic_block",
        image_shape=(SIZE, SIZE, 3))
    return _classifier(hub, "ResNet", backbone, STANDARDISE, seed)


def efficientnet(hub: Any, seed: int = 0) -> Any:
    """EfficientNet: a fused and an unfused MBConv stage (squeeze-and-excite in the second)."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.EfficientNetBackbone(
        stackwise_width_coefficients=[1.0] * 2, stackwise_depth_coefficients=[1.0] * 2,
        stackwise_kernel_sizes=[3, 3], stackwise_num_repeats=[1, 1], stackwise_input_filters=[8, 8],
        stackwise_output_filters=[8, 16], stackwise_expansion_ratios=[1, 2],
        stackwise_squeeze_and_excite_ratios=[0.0, 0.25], stackwise_strides=[1, 2],
        stackwise_block_types=["fused", "unfused"], num_features=32, input_shape=(SIZE, SIZE, 3))
    return _classifier(hub, "EfficientNet", backbone, STANDARDISE, seed)


def mobilenet(hub: Any, seed: int = 0) -> Any:
    """MobileNetV3-style: depthwise stem block, two inverted-residual stages (squeeze-and-excite in the second)."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.MobileNetBackbone(
        stackwise_expansion=[[16], [24, 24]], stackwise_num_blocks=[1, 2], stackwise_num_filters=[[8], [16, 16]],
        stackwise_kernel_size=[[3], [3, 3]], stackwise_num_strides=[[2], [2, 1]],
        stackwise_se_ratio=[[None], [0.25, 0.25]], stackwise_activation=[["relu"], ["hard_swish", "hard_swish"]],
        stackwise_padding=[[1], [1, 1]], output_num_filters=32, depthwise_filters=8, depthwise_stride=2,
        depthwise_residual=False, last_layer_filter=32, input_num_filters=8, image_shape=(SIZE, SIZE, 3))
    return _classifier(hub, "MobileNet", backbone, SYMMETRIC, seed, num_features=32)


def cspnet(hub: Any, seed: int = 0) -> Any:
    """CSPNet (CSPDarkNet-style): a stem and two cross-stage-partial stages of dark blocks."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.CSPNetBackbone(
        stem_filters=8, stem_kernel_size=3, stem_strides=1, stackwise_depth=[1, 1], stackwise_strides=[2, 2],
        stackwise_num_filters=[16, 32], block_type="dark_block", stage_type="csp", expand_ratio=[2.0],
        bottle_ratio=[0.5], image_shape=(SIZE, SIZE, 3))
    return _classifier(hub, "CSPNet", backbone, STANDARDISE, seed)


def densenet(hub: Any, seed: int = 0) -> Any:
    """DenseNet: two dense blocks of one layer (growth 8) and a transition."""
    keras.utils.set_random_seed(seed)
    backbone = hub.models.DenseNetBackbone(stackwise_num_repeats=[1, 1], growth_rate=8, image_shape=(SIZE, SIZE, 3))
    return _classifier(hub, "DenseNet", backbone, STANDARDISE, seed)


FAMILIES: dict[str, Callable[..., Any]] = {
    "vit": vit,
    "deit": deit,
    "resnet": resnet,
    "efficientnet": efficientnet,
    "mobilenet": mobilenet,
    "cspnet": cspnet,
    "densenet": densenet,
}
