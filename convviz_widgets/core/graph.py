"""A flat view of any Keras model: every layer, nested sub-models included, as one graph.

Nested models (a `keras.applications` base inside a Sequential) hide their inner layers from
`model.get_layer`, so peer tools fail on them. We re-run the model's graph symbolically,
descending into sub-models, and record every layer's output under a qualified name such as
``vgg16/block5_conv3``. The layers (and so the weights) are the user's own; the user's model
is never changed, not even for a moment. Softmax/sigmoid heads are traced a second time through
a twin of the head layer that shares its weights and has no activation, so class scores are logits.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
from keras import ops

from ..errors import ConvVizError, suggest

CONV_TYPES = (
    keras.layers.Conv2D,
    keras.layers.SeparableConv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.Conv2DTranspose,
)
POOL_TYPES = (
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)
# Layers that keep the feature map's grid and mix nothing spatially: a CAM may sit after them.
_ELEMENTWISE_TYPES = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.PReLU,
    keras.layers.ELU,
    keras.layers.Add,
    keras.layers.Dropout,
    keras.layers.SpatialDropout2D,
)


# Layers that are a plain chain of their own sub-layers, traced through so that their inner outputs are shown:
# class name -> the attributes holding the chain, in call order (a list attribute: its layers in order). Matched
# by class name (the library is never imported); a layer without one of them stays one layer.
CHAINS: dict[str, tuple[str, ...]] = {
    "ViTEncoder": ("dropout", "encoder_layers", "layer_norm"),  # KerasHub's ViT: dropout, the blocks, the final norm
}

MAX_LEADING_TOKENS = 8  # class, distillation and register tokens before a vision transformer's patch tokens
# Token layers not worth listing: identities at inference.
_HIDDEN_TOKEN_TYPES = (keras.layers.Dropout,)


@dataclass(frozen=True)
class TokenGrid:
    """How a (batch, T, D) token output reads as a (batch, h, w, D) grid: `lead` special tokens, then h*w patches."""

    h: int
    w: int
    lead: int

    def read(self, tokens: Any) -> Any:
        """(B, T, D) -> (B, h, w, D), the leading special tokens dropped (keras.ops: symbolic or concrete)."""
        return ops.reshape(tokens[:, self.lead :, :], (-1, self.h, self.w, int(tokens.shape[-1])))

    def scale_patches(self, tokens: Any, keep: Any) -> Any:
        """(1, T, D) tokens times `keep` (n, D) on every patch token, the special tokens unchanged: (n, T, D)."""
        n, d = int(keep.shape[0]), int(tokens.shape[-1])
        ones = ops.ones((n, self.lead, d), keep.dtype)
        mask = ops.concatenate([ones, ops.repeat(keep[:, None, :], self.h * self.w, axis=1)], axis=1)
        return ops.repeat(tokens, n, axis=0) * ops.cast(mask, tokens.dtype)


class _GridRead(keras.layers.Layer):
    """A token layer's output read as its patch grid, as one operation named for its layer.

    Keras names an unnamed operation from a per-thread counter, so a slice made while a panel's worker thread
    traces the model could take the name of one of the user's own ("get_item") and no model could be built.
    """

    def __init__(self, tokens: TokenGrid, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.tokens = tokens

    def call(self, x: Any) -> Any:
        return self.tokens.read(x)

    def compute_output_shape(self, shape: tuple) -> tuple:
        return (shape[0], self.tokens.h, self.tokens.w, shape[-1])


@dataclass
class Node:
    """One layer application in the flat graph."""

    name: str
    layer: Any
    output: Any
    inputs: tuple[Any, ...]
    index: int
    # A (batch, T, D) output read as a grid (see `find_token_grid`); None for anything else.
    tokens: TokenGrid | None = None
    no_grid_reason: str = ""  # why a 3-D output could not be read as a grid
    part: int = 0  # which output of a layer with several (0: its first, the one a block is judged by)
    call_args: tuple = field(default=(), repr=False)  # the layer's call as traced: positional arguments
    call_kwargs: dict = field(default_factory=dict, repr=False)  # ... and keyword arguments
    _map: Any = field(default=None, repr=False)

    @property
    def input_ids(self) -> tuple[int, ...]:
        """Identities of the symbolic tensors this node consumes."""
        return tuple(id(t) for t in self.inputs)

    @property
    def kind(self) -> str:
        """'conv', 'pool', 'tokens' (a token layer read as a grid), 'block' (see `is_block`) or 'other'."""
        if isinstance(self.layer, CONV_TYPES):
            return "conv"
        if isinstance(self.layer, POOL_TYPES):
            return "pool"
        if self.tokens is not None and not isinstance(self.layer, _HIDDEN_TOKEN_TYPES):
            return "tokens"
        if self.part == 0 and is_block(self.layer, self.output):
            return "block"
        return "other"

    @property
    def shape(self) -> tuple:
        """Symbolic output shape, batch dimension first."""
        return tuple(self.output.shape)

    @property
    def grid(self) -> tuple[int | None, int | None] | None:
        """(h, w) of the feature map: a 4-D output's H, W (None if unknown), a token grid's h, w, else None."""
        if self.tokens is not None:
            return self.tokens.h, self.tokens.w
        if len(self.shape) == 4:
            h, w = self.shape[1:3]
            return (None if h is None else int(h), None if w is None else int(w))
        return None

    @property
    def is_spatial(self) -> bool:
        """True for a feature map: a 4-D (batch, H, W, C) output, or tokens read as a grid."""
        return self.grid is not None

    @property
    def map(self) -> Any:
        """The symbolic output as a (batch, h, w, C) feature map: the output itself, or its tokens as a grid."""
        if self.tokens is None:
            return self.output
        if self._map is None:
            read = _GridRead(self.tokens, name=f"convviz_grid_{self.name.replace('/', '__')}", dtype=self.output.dtype)
            self._map = read(self.output)
        return self._map

    def as_map(self, values: Any) -> Any:
        """A tensor shaped like this node's output (its gradient, say) as a (batch, h, w, C) feature map."""
        return values if self.tokens is None else self.tokens.read(values)

    def why_not_a_map(self) -> str:
        """Why this layer's output is not a feature map, in words (for error messages)."""
        if self.no_grid_reason:
            return self.no_grid_reason
        return (f"its output {self.shape} is neither a feature map (batch, H, W, C) nor tokens (batch, T, D) "
                "that read as a grid")

    @property
    def spatial_extent(self) -> int | None:
        """h*w of the feature map (None if unknown or not a feature map)."""
        grid = self.grid
        return None if grid is None or None in grid else int(grid[0]) * int(grid[1])

    @property
    def has_grid(self) -> bool:
        """True for a spatial map of more than one cell (an unknown size counts): where a CAM can be drawn."""
        return self.is_spatial and (self.spatial_extent or 2) > 1

    @property
    def channels(self) -> int:
        """Size of the last axis."""
        return int(self.shape[-1])


@dataclass
class Head:
    """What the model's output means and where its logits are."""

    activation: str  # "softmax", "sigmoid" or "linear"
    logits: Any
    units: int


@dataclass
class FlatGraph:
    """The traced model: input, nodes in execution order, logits."""

    input: Any
    output: Any
    nodes: list[Node] = field(default_factory=list)
    head: Head | None = None
    # With `trace(..., probe=LAYER)`: an extra input of that layer's output shape, added to its output
    # before anything downstream reads it, so d(output)/d(probe) at probe = 0 is d(output)/d(feature map).
    probe: Any = None
    # Symbolic tensors computed from this trace by other modules (attention weights, say), built once under
    # TRACE_LOCK: each build records nodes on the user's layers, as a trace does.
    derived: dict = field(default_factory=dict, repr=False)

    def names(self) -> list[str]:
        """Qualified layer names in model order."""
        return [n.name for n in self.nodes]

    def node(self, name: str) -> Node:
        """Find a node by qualified name (or an unambiguous inner name)."""
        for n in self.nodes:
            if n.name == name:
                return n
        tails = [n for n in self.nodes if n.name.rsplit("/", 1)[-1] == name]
        if len(tails) == 1:
            return tails[0]
        visual = [n.name for n in self.nodes if n.kind in ("conv", "pool")]
        raise ConvVizError(
            f"No layer named {name!r} in this model.{suggest(name, self.names())} "
            f"Conv/pool layers: {_short_list(visual)}."
        )

    def consumers(self, node: Node) -> list[Node]:
        """Nodes that take `node`'s output as an input."""
        out_id = id(node.output)
        return [n for n in self.nodes if out_id in n.input_ids]


def _short_list(names: Sequence[str], limit: int = 40) -> str:
    """Comma list of names, shortened in the middle when long."""
    if len(names) <= limit:
        return ", ".join(names)
    half = limit // 2
    return ", ".join([*names[:half], f"... ({len(names) - limit} more) ...", *names[-half:]])


class _PreActivation(keras.layers.Layer):
    """The logits under a softmax/sigmoid head: the head layer's own maths and weights, without its activation.

    It calls a twin of the layer (`_linear_twin`), never the user's layer with a switched activation:
    another thread (the user's own `model(x)`, the panel's worker) may run the model at the same moment.
    """

    def __init__(self, inner: keras.layers.Layer) -> None:
        super().__init__(name=f"{inner.name}_logits")
        self.inner = _linear_twin(inner)

    def call(self, inputs: Any) -> Any:
        return self.inner.call(inputs)


def _linear_twin(layer: keras.layers.Layer) -> keras.layers.Layer:
    """A shallow twin of `layer` with a linear activation: the same weights, settings and code, the layer untouched.

    The twin shares the layer's variables (so it sees later weight changes too) but has its own activation and
    its own (empty) lists of graph nodes; nothing is written to the user's layer.
    """
    twin = object.__new__(type(layer))  # no __init__, no Keras pickling: a plain copy of the attributes
    state = dict(layer.__dict__)
    state.update(activation=keras.activations.linear, _inbound_nodes=[], _outbound_nodes=[])
    twin.__dict__.update(state)
    return twin


def _activation_name(fn: Any) -> str:
    """Name of an activation function ('softmax', 'sigmoid', ...)."""
    return getattr(fn, "__name__", type(fn).__name__).lower()


def is_block(layer: Any, output: Any) -> bool:
    """A learned layer from outside Keras (a library's residual block, say) whose output is a (batch, H, W, C) map.

    Its inside cannot be traced (it is not a functional model), but its output is a feature map that learned
    convolutions made: it is shown, and a CAM may sit on it, like a conv layer's.
    """
    module = type(layer).__module__
    return (not (module == "keras" or module.startswith("keras.")) and not module.startswith("convviz_widgets")
            and bool(getattr(layer, "weights", None)) and len(output.shape) == 4)


def chain_parts(layer: Any) -> list[Any] | None:
    """The sub-layers of a layer registered in `CHAINS`, in call order; None for any other layer."""
    names = CHAINS.get(type(layer).__name__)
    if names is None:
        return None
    parts: list[Any] = []
    for attr in names:
        value = getattr(layer, attr, None)
        parts += list(value) if isinstance(value, (list, tuple)) else [value]
    if not parts or not all(isinstance(p, keras.layers.Layer) for p in parts):
        return None
    return parts


def is_nested_model(layer: Any) -> bool:
    """True for a Sequential or functional model used as a layer."""
    return isinstance(layer, keras.Model) and _has_graph(layer)


def _has_graph(model: keras.Model) -> bool:
    """Sequential and functional models have a graph we can walk; subclassed ones do not."""
    from keras.src.models.functional import Functional

    return isinstance(model, (keras.Sequential, Functional))


def final_layer(model: keras.Model, index: int = 0) -> Any:
    """The layer that produces the model's output number `index`, looking inside nested models."""
    if isinstance(model, keras.Sequential):
        last = model.layers[-1]
    else:
        last = model.outputs[index]._keras_history.operation
    return final_layer(last) if is_nested_model(last) else last


def model_outputs(model: keras.Model) -> list[tuple[str, tuple]]:
    """(name, shape) of each of the model's outputs, in order."""
    outputs = list(model.outputs)
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(outputs):
        names = [o._keras_history.operation.name for o in outputs]
    return [(str(n), tuple(o.shape)) for n, o in zip(names, outputs)]


def _output_keys(model: keras.Model) -> dict[str, int]:
    """Every name that selects an output: its layer's name and, for dict outputs, its key."""
    keys = {name: i for i, (name, _) in enumerate(model_outputs(model))}
    struct = getattr(model, "_outputs_struct", None)
    if isinstance(struct, dict):
        flat = list(model.outputs)
        for key, tensor in struct.items():
            found = [i for i, t in enumerate(flat) if t is tensor]
            if found:
                keys[str(key)] = found[0]
    return keys


def describe_outputs(model: keras.Model) -> str:
    """The outputs as 'index: name shape' for messages."""
    return "; ".join(f"{i}: {name!r} {shape}" for i, (name, shape) in enumerate(model_outputs(model)))


def output_index(model: keras.Model, output: str | int | None) -> int:
    """The index of the chosen output; a model with several outputs needs `output=`."""
    n = len(model.outputs)
    if output is None:
        if n == 1:
            return 0
        raise ConvVizError(
            f"This model has {n} outputs ({describe_outputs(model)}). Choose the one to explain with "
            "output=NAME or output=INDEX (on the command line: --output NAME_OR_INDEX)."
        )
    if isinstance(output, str):
        keys = _output_keys(model)
        if output in keys:
            return keys[output]
        if output.isdigit():
            return output_index(model, int(output))
        raise ConvVizError(
            f"No output named {output!r}.{suggest(output, list(keys))} Outputs: {describe_outputs(model)}."
        )
    if not 0 <= int(output) < n:
        raise ConvVizError(f"output={output} is out of range: the model has {n} outputs ({describe_outputs(model)}).")
    return int(output)


# Tracing calls the user's layers on symbolic tensors, and Keras records each call in the layer's list of
# graph nodes (appending, then reading the list's length as the new node's index): two traces of one model at
# once could swap their nodes. Every trace of every model therefore runs under this lock (a trace takes
# milliseconds; the compiled work that follows does not need it).
_TRACE_LOCK = threading.RLock()
TRACE_LOCK = _TRACE_LOCK  # held by whoever calls the user's layers on a trace's symbolic tensors


_PROBE = "convviz_probe"  # names of the probe's input and sum (operation names must be unique in a model)


class _StopTrace(Exception):
    """Internal: the layer we needed has been traced."""


class _Tracer:
    """Re-runs a model symbolically, recording every layer's output under a qualified name."""

    def __init__(self, head_layer: Any, stop_at: str | None, probe: str | None = None) -> None:
        self.nodes: list[Node] = []
        self.head_layer = head_layer
        self.head: Head | None = None
        self.stop_at = stop_at
        self.probe_at = probe
        self.probe: Any = None
        self._seen: dict[str, int] = {}

    def run(self, model: keras.Model, x: Any, prefix: str) -> Any:
        """Trace `model` on symbolic tensor `x`."""
        if isinstance(model, keras.Sequential):
            for layer in model.layers:
                x = self.apply(layer, (x,), {}, prefix)
            return x
        return model._run_through_graph(
            [x], operation_fn=lambda op: (lambda *a, **k: self.apply(op, a, k, prefix))
        )

    def apply(self, op: Any, args: tuple, kwargs: dict, prefix: str) -> Any:
        """Apply one operation; descend into nested models; record layers."""
        if is_nested_model(op):
            if len(op.inputs) != 1:
                raise ConvVizError(
                    f"Nested model {op.name!r} has several inputs; only single-input models are supported."
                )
            inner = args[0] if not isinstance(args[0], (list, tuple)) else args[0][0]
            return self.run(op, inner, f"{prefix}{op.name}/")
        parts = chain_parts(op) if len(args) == 1 and not kwargs else None
        if parts is not None:  # a chain of sub-layers: each one traced and shown (`CHAINS`)
            x = args[0]
            for part in parts:
                x = self.apply(part, (x,), {}, f"{prefix}{op.name}/")
            return x
        out = op(*args, **kwargs)
        if isinstance(op, keras.layers.Layer) and not isinstance(op, keras.layers.InputLayer):
            if self._record(op, out, args, prefix, kwargs) == self.probe_at and isinstance(out, keras.KerasTensor):
                out = self._add_probe(out)
        if op is self.head_layer:
            self.head = _make_head(op, args, kwargs, out)
        return out

    def _add_probe(self, out: Any) -> Any:
        """The probed layer's output plus a new input of its shape: what every later layer reads."""
        self.probe = keras.Input(shape=tuple(out.shape[1:]), dtype=out.dtype, name=f"{_PROBE}_input")
        return keras.layers.Add(name=_PROBE, dtype=out.dtype)([out, self.probe])  # named: never a user layer's name

    def _record(self, layer: Any, out: Any, args: tuple, prefix: str, kwargs: dict | None = None) -> str:
        """Store a node, giving repeated uses of one layer distinct names; returns its name."""
        name = f"{prefix}{layer.name}"
        count = self._seen.get(name, 0)
        self._seen[name] = count + 1
        if count:
            name = f"{name}#{count + 1}"
        ins = tuple(t for t in keras.tree.flatten(args) if isinstance(t, keras.KerasTensor))
        outs = [t for t in keras.tree.flatten(out) if isinstance(t, keras.KerasTensor)]
        names = [name]
        for i, tensor in enumerate(outs):  # a layer with several outputs: one node each, "name", "name:1", ...
            if i and tensor.shape[:1] != (None,):
                continue  # not one value per image (an empty placeholder output, say)
            names.append(f"{name}:{i}")
            self.nodes.append(Node(names[-1] if i else name, layer, tensor, ins, len(self.nodes), part=i,
                                   call_args=tuple(args), call_kwargs=dict(kwargs or {})))
        if self.stop_at is not None and self.stop_at in names:
            raise _StopTrace
        return name


def _make_head(layer: Any, args: tuple, kwargs: dict, out: Any) -> Head:
    """Find the logits under a softmax/sigmoid output layer."""
    units = int(out.shape[-1]) if len(out.shape) >= 2 and out.shape[-1] is not None else 1
    if isinstance(layer, keras.layers.Softmax):
        return Head("softmax", args[0], units)
    act = _activation_name(getattr(layer, "activation", None))
    if act not in ("softmax", "sigmoid"):
        return Head("linear", out, units)
    if isinstance(layer, keras.layers.Activation):
        return Head(act, args[0], units)
    return Head(act, _PreActivation(layer)(args[0]), units)


def check_model(model: Any) -> keras.Model:
    """Refuse, with a clear message, models this package cannot look inside."""
    if not isinstance(model, keras.Model):
        raise ConvVizError(
            f"Expected a keras.Model (or a path for load_model); got {type(model).__name__}."
        )
    if not _has_graph(model):
        raise ConvVizError(
            f"{type(model).__name__} is a subclassed model: its layer connections are not recorded, "
            "so intermediate outputs cannot be read. Build it with the functional API or "
            "keras.Sequential (you can reuse its layers)."
        )
    try:
        inputs = model.inputs
    except (AttributeError, ValueError):
        inputs = None
    if not inputs:
        raise ConvVizError(
            "The model has no defined input yet. Start it with keras.Input(shape=(H, W, 3)) "
            "or call it once on a batch before inspecting it."
        )
    if len(inputs) != 1:
        raise ConvVizError(
            f"The model has {len(inputs)} inputs; convviz_widgets explains single-image models. "
            "Wrap it in a model that takes one image and fixes the other inputs."
        )
    if len(inputs[0].shape) != 4:
        raise ConvVizError(
            f"The model's input has shape {tuple(inputs[0].shape)}; an image model takes "
            "(batch, height, width, channels) in channels-last order."
        )
    return model


def trace(model: keras.Model, spatial: tuple[int | None, int | None] | None = None,
          stop_at: str | None = None, output: str | int | None = None, probe: str | None = None,
          grid: tuple[int, int] | None = None) -> FlatGraph:
    """Trace `model` into a FlatGraph; `spatial=(None, None)` allows any image size up to `stop_at`.

    `output` chooses the output (name or index) whose head is explained; a model with several
    outputs needs it unless the trace stops at a layer before the outputs. `probe`: a layer whose
    output every later layer reads plus `FlatGraph.probe`, an extra input of its shape (zero for the
    plain result): the gradient with respect to it is the gradient with respect to the feature map,
    on every backend (JAX differentiates only with respect to inputs). The layer's node keeps its own output.
    `grid=(h, w)`: how token layers read as a grid (see `find_token_grid`); None: found from the patch embedding.
    """
    check_model(model)
    index = output_index(model, output) if stop_at is None or output is not None else 0
    shape = tuple(model.inputs[0].shape[1:])
    if spatial is not None:
        shape = (*spatial, shape[-1])
    with _TRACE_LOCK:
        x = keras.Input(shape=shape, name="convviz_image")
        tracer = _Tracer(final_layer(model, index), stop_at, probe)
        try:
            out = tracer.run(model, x, "")
        except _StopTrace:
            out = tracer.nodes[-1].output
    if isinstance(out, (list, tuple, dict)):
        out = keras.tree.flatten(out)[index]
    head = tracer.head if stop_at is None else None
    if stop_at is None and head is None:
        head = Head("linear", out, int(out.shape[-1]) if len(out.shape) >= 2 else 1)
    if probe is not None and tracer.probe is None:
        raise ConvVizError(f"No layer named {probe!r} with one output to probe in this model.")
    assign_token_grids(tracer.nodes, grid)
    return FlatGraph(x, out, tracer.nodes, head, tracer.probe)


def assign_token_grids(nodes: list[Node], grid: tuple[int, int] | None = None) -> None:
    """Give every (batch, T, D) node its token grid or the reason it has none (patch grids: the conv maps before)."""
    patches: list[tuple[int, int]] = []
    for node in nodes:
        shape = node.shape
        if len(shape) == 4 and node.kind == "conv" and None not in shape[1:3]:
            patches.append((int(shape[1]), int(shape[2])))
        if len(shape) == 3:
            node.tokens, node.no_grid_reason = find_token_grid(shape[1], shape[2], patches, grid)


def find_token_grid(count: int | None, width: int | None, patches: Sequence[tuple[int, int]],
                    grid: tuple[int, int] | None = None) -> tuple[TokenGrid | None, str]:
    """How T = `count` tokens of width D read as a grid: (the grid, "") or (None, why not).

    The tokens are 0..MAX_LEADING_TOKENS special tokens (class, distillation, registers) and then h*w
    patch tokens. `grid` (the user's) decides alone; else the latest conv map before the layer whose
    h*w fits (a patch embedding, `patches`), else the largest square that fits.
    """
    if count is None:
        return None, f"its token count is unknown (tokens of width {width}): the model takes any image size"
    count = int(count)
    what = f"its output has T={count} tokens of width D={width}"
    if grid is not None:
        h, w = grid
        lead = count - h * w
        if 0 <= lead <= MAX_LEADING_TOKENS:
            return TokenGrid(h, w, lead), ""
        return None, (f"{what}, and grid={h}x{w} has {h * w} cells: that leaves {lead} leading tokens, "
                      f"not 0..{MAX_LEADING_TOKENS} (class, distillation, register tokens)")
    for h, w in reversed(patches):
        if 0 <= count - h * w <= MAX_LEADING_TOKENS:
            return TokenGrid(h, w, count - h * w), ""
    side = math.isqrt(count)
    if side >= 2 and count - side * side <= MAX_LEADING_TOKENS:
        return TokenGrid(side, side, count - side * side), ""
    tried = ", ".join(f"{h}x{w}" for h, w in dict.fromkeys(patches)) or "none"
    return None, (f"{what}: no patch embedding before it fits (conv grids tried: {tried}) and the largest square, "
                  f"{side}x{side}, leaves {count - side * side} leading tokens, not 0..{MAX_LEADING_TOKENS}. "
                  "Give the grid yourself with grid=(h, w)")


def visual_layers(graph: FlatGraph) -> list[Node]:
    """Conv and pooling layers with a spatial output, and token layers read as a grid, in model order."""
    return [n for n in graph.nodes if n.kind in ("conv", "block", "pool", "tokens") and n.is_spatial]


def default_cam_node(graph: FlatGraph) -> Node:
    """The last feature map to explain: a transformer's last normalised tokens that the head reads, else the last
    conv feature map with spatial extent, after its BN/activation if any."""
    convs = [n for n in graph.nodes if n.kind in ("conv", "block") and n.has_grid]
    after = convs[-1].index if convs else -1
    tokens = [n for n in graph.nodes if n.kind == "tokens" and n.has_grid and n.index > after]
    if tokens:
        return _default_token_node(graph, tokens)
    if not convs:
        raise ConvVizError(
            "This model has no convolutional layer with a spatial output and no token layer that reads as a grid: "
            "there is no feature map to explain."
        )
    node = convs[-1]
    while True:
        nxt = graph.consumers(node)
        if len(nxt) != 1 or not isinstance(nxt[0].layer, _ELEMENTWISE_TYPES) or nxt[0].shape[1:3] != node.shape[1:3]:
            return node
        node = nxt[0]


def _default_token_node(graph: FlatGraph, tokens: list[Node]) -> Node:
    """The last LayerNormalization over tokens whose patch tokens reach the head, else the last such token layer.

    A head that reads the class token after a final per-token norm never sees that norm's patch tokens (their
    gradient is zero): then the norm before the last attention is the one that counts, or, when the blocks hold
    their norms inside (KerasHub's ViT), the output of the block before the last.
    """
    norms = [n for n in tokens if isinstance(n.layer, keras.layers.LayerNormalization)]
    for node in [*reversed(norms), *reversed(tokens)]:  # a block's norms may be inside it: then its output
        if patch_tokens_reach_head(graph, node):
            return node
    return (norms or tokens)[-1]


def patch_tokens_reach_head(graph: FlatGraph, node: Node) -> bool:
    """Whether changing `node`'s patch tokens changes the head's output (one eager pass of random values)."""
    if node.tokens is None or graph.head is None or None in graph.input.shape[1:]:
        return True
    try:
        model = keras.Model([graph.input, node.output], graph.head.logits)
    except ValueError:  # a layer's other output (its hidden states, say): the head's path does not go through it
        return False
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, *(int(d) for d in graph.input.shape[1:]))).astype("float32")
    tokens = rng.normal(size=(1, *(int(d) for d in node.output.shape[1:]))).astype("float32")
    moved = tokens.copy()
    moved[:, node.tokens.lead :] += rng.normal(size=moved[:, node.tokens.lead :].shape).astype("float32")
    dtype = str(node.output.dtype)
    a, b = (ops.convert_to_numpy(model([x, t.astype(dtype)], training=False)).astype("float32")
            for t in (tokens, moved))
    return bool(np.abs(a - b).max() > 1e-6 * (1.0 + np.abs(a).max()))
