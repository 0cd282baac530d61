"""Attention weights of a traced model, read without changing it, and the maths made of them.

Each `keras.layers.MultiHeadAttention` is found where the traced graph holds it: a layer of the functional
graph, or inside a block that a reader knows (a block of KerasHub's ViT encoder). Its weights softmax(QK^T / sqrt(d))
are recomputed symbolically from its own query and key projections applied to its traced inputs: the layer
is never called differently, never switched into returning its scores, and nothing on it is written, so
other threads can use the model meanwhile. The recomputation is the layer's maths in float32, unmasked: a
layer called with a mask or a causal mask is refused (`Attention.reason`).

Readers are a registry (`register_attention_reader`): a reader takes a graph node and returns the attention
sites in it, or None when it does not know the node's layer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from .graph import TRACE_LOCK, FlatGraph, Node, TokenGrid


@dataclass(frozen=True)
class Site:
    """One attention layer as the graph applies it: its name, the layer, and its query and key token counts."""

    name: str  # a node's qualified name, or a node's name and the path to the layer inside it
    layer: Any  # the MultiHeadAttention layer (the user's, read only)
    node: Node  # the graph node whose output holds the tokens after this attention (its own, or its block's)
    counts: tuple[int | None, int | None]  # (T, S): query and key tokens
    refused: str = ""  # why its weights cannot be read (a mask, cross-attention); "" when they can


@dataclass(frozen=True)
class Reading:
    """What a reader found in one node: its sites, and how to compute their weights from traced tensors.

    `weights(*inputs)` returns one (B, heads, T, S) tensor per site; it calls the user's layers (never changing
    them) and runs inside a layer of its own, so the layers' names need not be unique in the model built on it.
    """

    sites: list[Site]
    inputs: tuple[Any, ...]
    weights: Callable[..., list[Any]]


@dataclass
class Attention:
    """A graph's attention: its sites in model order, their weights (symbolic), and how their tokens read."""

    sites: list[Site] = field(default_factory=list)
    weights: list[Any] = field(default_factory=list)  # per readable site: (B, heads, T, T) float32, symbolic
    tokens: TokenGrid | None = None  # how the T tokens read as a grid (special tokens, then the patches)
    reason: str = ""  # why attention maps cannot be drawn for this model; "" when they can

    @property
    def names(self) -> list[str]:
        """The sites' names in model order."""
        return [s.name for s in self.sites]


Reader = Callable[[Node], "Reading | None"]
READERS: list[Reader] = []


def register_attention_reader(reader: Reader) -> Reader:
    """Add a reader of attention layers nested in a block type (a decorator); the first that answers wins."""
    READERS.append(reader)
    return reader


def is_attention(layer: Any) -> bool:
    """A Keras multi-head attention layer."""
    return isinstance(layer, keras.layers.MultiHeadAttention)


@register_attention_reader
def _graph_layer(node: Node) -> Reading | None:
    """A MultiHeadAttention that is itself a layer of the functional graph: its traced call's query and key."""
    if not is_attention(node.layer):
        return None
    args, kwargs = list(node.call_args), dict(node.call_kwargs)
    names = ["query", "value", "key"]
    call = {**dict(zip(names, args)), **{k: v for k, v in kwargs.items() if k in names}}
    query, value = call.get("query"), call.get("value")
    key = call.get("key") if call.get("key") is not None else value
    refused = ""
    masked = [k for k in ("attention_mask", "query_mask", "value_mask", "key_mask") if kwargs.get(k) is not None]
    if kwargs.get("use_causal_mask"):
        masked.append("use_causal_mask")
    if masked:
        refused = f"it is called with a mask ({', '.join(masked)}): its weights are read unmasked only"
    elif _unreadable(node.layer):
        refused = _unreadable(node.layer)
    elif query is None or key is not query:
        refused = "it attends from one sequence to another (cross-attention), not within the image's tokens"
    elif len(query.shape) != 3:
        refused = f"its query {tuple(query.shape)} is not a token sequence (batch, T, D)"
    layer = node.layer
    site = Site(node.name, layer, node, (_count(query), _count(key)), refused)
    return Reading([site], (query, key), lambda q, k: [attention_weights(layer, q, k)])


@register_attention_reader
def _keras_hub_vit_block(node: Node) -> Reading | None:
    """One block of KerasHub's ViT encoder, traced as a node of its own (`graph.CHAINS`): mha(ln_1(x), ln_1(x))."""
    block = node.layer
    if type(block).__name__ != "ViTEncoderBlock" or not type(block).__module__.startswith("keras_hub"):
        return None
    if len(node.inputs) != 1 or not is_attention(getattr(block, "mha", None)) or not hasattr(block, "layer_norm_1"):
        return None
    count = _count(node.inputs[0])
    site = Site(f"{node.name}/{block.mha.name}", block.mha, node, (count, count), _unreadable(block.mha))

    def weights(x: Any) -> list[Any]:
        y = block.layer_norm_1(x)
        return [attention_weights(block.mha, y, y)]

    return Reading([site], (node.inputs[0],), weights)


def _count(tokens: Any) -> int | None:
    """The token count T of a (batch, T, D) tensor (None when unknown or not a sequence)."""
    shape = tuple(tokens.shape) if tokens is not None else ()
    return None if len(shape) != 3 or shape[1] is None else int(shape[1])


class _ReadAttention(keras.layers.Layer):
    """Computes a reading's attention weights inside a layer of its own (named uniquely), from traced tensors."""

    def __init__(self, fn: Callable[..., list[Any]], name: str) -> None:
        super().__init__(name=name, dtype="float32")
        self.fn = fn

    def call(self, *inputs: Any) -> list[Any]:
        return list(self.fn(*inputs))


def attention_weights(layer: Any, query: Any, key: Any) -> Any:
    """softmax(Q K^T / sqrt(d)) per head, (B, heads, T, S) float32, from the layer's own query/key projections."""
    q = ops.cast(_projection(layer, "query")(query), "float32")  # (B, T, heads, d)
    k = ops.cast(_projection(layer, "key")(key), "float32")  # (B, S, heads, d)
    scale = 1.0 / float(np.sqrt(int(q.shape[-1])))
    return ops.softmax(ops.einsum("btnd,bsnd->bnts", q * scale, k), axis=-1)


def _projection(layer: Any, which: str) -> Any:
    """The attention layer's query or key projection (the public property where Keras has one, else its attribute)."""
    found = getattr(layer, f"{which}_dense", None)
    return found if found is not None else getattr(layer, f"_{which}_dense")


def _unreadable(layer: Any) -> str:
    """Why the plain softmax(QK^T / sqrt(d)) would not be this layer's attention; "" when it is."""
    config = layer.get_config()
    if config.get("sliding_window") is not None:
        return f"it attends within a sliding window of {config['sliding_window']} tokens (a mask)"
    if config.get("attention_axes") not in (None, 1, (1,), [1]):
        return f"it attends over axes {config['attention_axes']}, not along one token sequence"
    own = getattr(type(layer), "_compute_attention", None)
    if own is not None and own is not getattr(keras.layers.MultiHeadAttention, "_compute_attention", None):
        return f"{type(layer).__name__} computes its attention its own way (it overrides MultiHeadAttention's)"
    return ""


def attention(graph: FlatGraph) -> Attention:
    """The graph's attention sites and their symbolic weights, built once per graph (under the trace lock)."""
    with TRACE_LOCK:
        found = graph.derived.get("attention")
        if found is None:
            found = graph.derived["attention"] = _build(graph)
        return found


def _build(graph: FlatGraph) -> Attention:
    """Find every site (readers in registration order), check them, and recompute their weights."""
    readings: list[Reading] = []
    for node in graph.nodes:
        for reader in READERS:
            found = reader(node)
            if found is not None:
                readings.append(found)
                break
    sites = [s for r in readings for s in r.sites]
    out = Attention(sites)
    if not sites:
        out.reason = "it has no keras.layers.MultiHeadAttention layer to read attention from"
        return out
    refused = [s for s in sites if s.refused]
    if refused:
        out.reason = f"attention layer {refused[0].name!r} cannot be read: {refused[0].refused}"
        return out
    grids = {s.node.tokens for s in sites}
    if None in grids or len(grids) != 1:
        why = next((s.node.why_not_a_map() for s in sites if s.node.tokens is None), "")
        out.reason = (f"its attention layers' tokens do not read as one patch grid ({why})" if why else
                      "its attention layers work on token grids of different sizes")
        return out
    out.tokens = grids.pop()
    count = out.tokens.lead + out.tokens.h * out.tokens.w
    bad = [s.name for s in sites if s.counts != (count, count)]
    if bad:
        out.reason = f"attention layer {bad[0]!r} does not attend among the {count} image tokens"
        return out
    for i, reading in enumerate(readings):
        weights = _ReadAttention(reading.weights, f"convviz_attention_{i}")(*reading.inputs)
        out.weights += list(weights) if isinstance(weights, (list, tuple)) else [weights]
    return out


def readout(graph: FlatGraph, att: Attention) -> tuple[int | None, str]:
    """Which row of the attention explains the output: (the class token's index, words) or (None, words).

    The class token is the one special token the head reads, found by moving each token after the last attention
    layer and watching the output (one eager pass): a head that reads exactly one special token and no patch
    token reads a class token. Otherwise (mean pooling, register tokens only, no head) the mean over all tokens.
    """
    tokens = att.tokens
    count = tokens.lead + tokens.h * tokens.w
    mean = (None, f"the mean over all {count} tokens (the model has no class token that the head alone reads)")
    if tokens.lead == 0 or graph.head is None or None in graph.input.shape[1:]:
        return mean
    node = att.sites[-1].node
    model = keras.Model([graph.input, node.output], graph.head.logits)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, *(int(d) for d in graph.input.shape[1:]))).astype("float32")
    base = rng.normal(size=(1, count, int(node.output.shape[-1]))).astype("float32")
    moved = np.repeat(base, tokens.lead + 2, axis=0)
    for i in range(tokens.lead):
        moved[i + 1, i] += rng.normal(size=moved.shape[-1])
    moved[-1, tokens.lead :] += rng.normal(size=moved[-1, tokens.lead :].shape)
    out = ops.convert_to_numpy(model([np.repeat(x, len(moved), axis=0), moved.astype(str(node.output.dtype))],
                                     training=False)).astype("float32")
    out = out.reshape(len(moved), -1)
    changed = np.abs(out[1:] - out[:1]).max(axis=1) > 1e-6 * (1.0 + np.abs(out[0]).max())
    read = [i for i in range(tokens.lead) if changed[i]]
    if len(read) == 1 and not changed[-1]:
        return read[0], f"the class token (token {read[0]}, the one the head reads)"
    return mean


def readout_row(index: int | None, count: int) -> np.ndarray:
    """(T,) weights of the rows read: one-hot at the class token, else uniform (the mean over tokens)."""
    if index is None:
        return np.full(count, 1.0 / count, np.float32)
    row = np.zeros(count, np.float32)
    row[index] = 1.0
    return row


def rollout(weights: list[Any], row: np.ndarray, tokens: TokenGrid) -> Any:
    """Attention rollout (Abnar & Zuidema 2020) read at `row`: (B, h, w).

    Per layer the heads' weights are averaged (as the paper does: a head-wise max or min would favour single
    heads), the identity added for the residual path and the rows renormalised; the layers are multiplied from
    the first to the last. Only the `row` weights of the product are needed, so they are carried down from the
    last layer (a vector times a matrix per layer, not a matrix product). The special tokens are dropped.
    """
    count = int(row.shape[0])
    eye = ops.eye(count, dtype="float32")
    v = None
    for w in reversed(weights):
        mixed = ops.mean(w, axis=1) + eye  # (B, T, T)
        mixed = mixed / ops.sum(mixed, axis=-1, keepdims=True)
        v = ops.einsum("t,bts->bs", ops.convert_to_tensor(row), mixed) if v is None else \
            ops.einsum("bt,bts->bs", v, mixed)
    return ops.reshape(v[:, tokens.lead :], (-1, tokens.h, tokens.w))


def head_maps(weights: Any, row: np.ndarray, tokens: TokenGrid) -> Any:
    """Each head's attention read at `row` (the class token's, or the mean of every token's): (B, h, w, heads)."""
    v = ops.einsum("t,bnts->bns", ops.convert_to_tensor(row), weights)
    patches = v[:, :, tokens.lead :]
    return ops.transpose(ops.reshape(patches, (-1, int(weights.shape[1]), tokens.h, tokens.w)), (0, 2, 3, 1))
