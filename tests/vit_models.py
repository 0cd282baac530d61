"""Small vision transformers built in code for the token-model tests and the ViT bench.

A patch-embedding Conv2D (kernel = stride = `patch`), a Reshape to tokens, leading special tokens (a class
token and/or register tokens, learned), a learned position embedding, pre-norm transformer blocks
(LayerNormalization, keras.layers.MultiHeadAttention, MLP, residual adds), a final LayerNormalization and a
head on the class token or on the mean of the tokens.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops


class LeadingTokens(keras.layers.Layer):
    """Prepends `count` learned tokens (class, register) to a (batch, N, D) token sequence."""

    def __init__(self, count: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = count

    def build(self, input_shape: tuple) -> None:
        self.tokens = self.add_weight(shape=(1, self.count, int(input_shape[-1])), initializer="random_normal",
                                      name="tokens")

    def call(self, x):
        lead = ops.repeat(ops.cast(self.tokens, x.dtype), ops.shape(x)[0], axis=0)
        return ops.concatenate([lead, x], axis=1)

    def get_config(self) -> dict:
        return {**super().get_config(), "count": self.count}


class PositionEmbedding(keras.layers.Layer):
    """Adds a learned embedding per token position."""

    def build(self, input_shape: tuple) -> None:
        self.positions = self.add_weight(shape=(1, int(input_shape[1]), int(input_shape[2])),
                                         initializer="random_normal", name="positions")

    def call(self, x):
        return x + ops.cast(self.positions, x.dtype)


def small_vit(size: int = 64, patch: int = 8, dim: int = 32, depth: int = 2, heads: int = 2, classes: int = 5,
              registers: int = 0, class_token: bool = True, pool: str = "token", seed: int = 0,
              head: str = "softmax", stem: int = 0, mlp: int = 2) -> keras.Model:
    """A functional ViT: (size/patch)^2 patches, a class token and `registers` register tokens, `depth` blocks.

    `pool="token"`: the head reads the class token after the final norm; `pool="mean"`: the mean of all tokens.
    `head`: the output's activation ("softmax", or "linear" for scores). `stem`: that many 3x3 stride-2 ReLU
    convolutions before the patch embedding (a hybrid ViT; the patch embedding then covers patch / 2**stem px).
    `mlp`: the MLP's width as a multiple of `dim` (ViT-B/16: 4).
    """
    keras.utils.set_random_seed(seed)
    x = inputs = keras.Input((size, size, 3), name="pixels")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="rescale")(x)
    for i in range(stem):
        x = keras.layers.Conv2D(dim // 2, 3, strides=2, padding="same", activation="relu", name=f"stem{i}")(x)
    x = keras.layers.Conv2D(dim, patch // 2**stem, strides=patch // 2**stem, name="patch_embed")(x)
    x = keras.layers.Reshape(((size // patch) ** 2, dim), name="patch_tokens")(x)
    lead = registers + int(class_token)
    if lead:
        x = LeadingTokens(lead, name="special_tokens")(x)
    x = PositionEmbedding(name="positions")(x)
    for i in range(depth):
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm1")(x)
        y = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"block{i}_attention")(y, y)
        x = keras.layers.Add(name=f"block{i}_add1")([x, y])
        y = keras.layers.LayerNormalization(epsilon=1e-6, name=f"block{i}_norm2")(x)
        y = keras.layers.Dense(mlp * dim, activation="gelu", name=f"block{i}_mlp1")(y)
        y = keras.layers.Dense(dim, name=f"block{i}_mlp2")(y)
        x = keras.layers.Add(name=f"block{i}_add2")([x, y])
    x = keras.layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    if pool == "mean":
        x = keras.layers.GlobalAveragePooling1D(name="mean_tokens")(x)
    else:
        x = x[:, registers]  # the class token comes last among the special tokens
    outputs = keras.layers.Dense(classes, activation=head, name="predictions")(x)
    return keras.Model(inputs, outputs, name="small_vit")


def layer_tokens(model: keras.Model, layer: str, image: np.ndarray) -> np.ndarray:
    """A layer's (T, D) tokens for one image, read from the user's model directly (the tests' oracles start here)."""
    sub = keras.Model(model.inputs[0], model.get_layer(layer).output)
    return keras.ops.convert_to_numpy(sub(image[None].astype(np.float32)))[0].astype(np.float64)
