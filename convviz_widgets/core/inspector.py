"""The Inspector binds a model once; activations, filter patterns and CAMs reuse its graph."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from ..errors import ConvVizError
from ..images import ImageSource, centre_crop, load_image, pixel_key, resize_rgb
from ..limits import check_fits, fit_batch
from . import attention as att_maths
from . import backend as bk
from . import batching, cams, checks
from . import cam as cam_rules
from . import feature_viz as fv
from . import filters as fp
from . import head as head_maths
from .batching import bucket, bucket_below
from .budget import Footprint
from .cache import LRUCache
from .cams.engine import CamEngine, CamJob
from .graph import (
    CONV_TYPES,
    FlatGraph,
    Node,
    check_model,
    default_cam_node,
    final_layer,
    is_nested_model,
    model_outputs,
    output_index,
    trace,
    visual_layers,
)
from .labels import resolve_class_names
from .model_io import load_model
from .patterns import PATTERN_CACHE_SIZE, PatternEngine
from .preprocess import PRESETS, Preprocess
from .preprocess import choose as choose_preprocess
from .targets import Scoring, as_target, background_class, plan
from .topk import ExamplesEngine

MAX_FREE_SIDE = 512  # longest side fed to a model that accepts any size (keeps huge photos cheap)
# Compiled functions kept per Inspector, least recently used dropped first (each holds a graph); the engines
# keep their own: CAM_CACHE_SIZE (core/cams/engine.py) and PATTERN_CACHE_SIZE (core/patterns.py).
ACTIVATION_CACHE_SIZE = 4  # batched forward passes per requested set of layers
_GRAY = np.array([0.299, 0.587, 0.114], np.float32)


class Inspector:
    """One model, traced once, with caches for what a viewer asks again and again.

    The engines (CAMs, filter patterns, dataset examples) use only its public members:
    model binding (`model`, `graph`, `layer`, `traced`, `output_index`), image preparation (`prepare`,
    `batch`, `input_batch`, `in_graph_input`, `preprocess_in_graph`, `check_channels`), the forward cache
    (`forward`) and the memory estimates (`footprint`, `bytes_per_image`).
    """

    model: keras.Model  # the user's model, never modified
    graph: FlatGraph  # the model traced once: its layers as nodes in model order, the input and the head

    def __init__(self, model: Any, *, preprocess: Preprocess = None, class_names: Any = None,
                 output: str | int | None = None, grid: tuple[int, int] | None = None) -> None:
        self.model = check_model(load_model(model))
        _check_weights(self.model)
        self.output_index = output_index(self.model, checks.output_selector(output))
        self.output_name = model_outputs(self.model)[self.output_index][0]
        self._grid = _check_grid(grid)
        self.graph: FlatGraph = trace(self.model, output=self.output_index, grid=self._grid)
        if not any(n.kind in ("conv", "block", "tokens") for n in self.graph.nodes):
            raise ConvVizError(
                "This model has no convolutional layer and no token layer that reads as a grid, so there are no "
                "feature maps to show. convviz_widgets explains convnets (Conv2D, SeparableConv2D, "
                "DepthwiseConv2D) and vision transformers (tokens of a patch grid; grid=(h, w) sets the grid)."
            )
        choice = choose_preprocess(preprocess, self.graph.nodes, self._model_names(), self.model)
        self.preprocess_name, self._preprocess, self._preprocess_reason = choice.name, choice.fn, choice.reason
        self._preprocess_size = choice.size  # a KerasHub converter's size, crop and interpolation (see `prepare`)
        self._crop_to_aspect, self._bilinear = choice.crop_to_aspect, choice.bilinear
        if choice.warning:
            warnings.warn(choice.warning, UserWarning, stacklevel=2)
        head = self.graph.head
        self.has_classes = len(head.logits.shape) == 2  # a headless base ends in a feature map
        self.output_kind = head_maths.output_kind(
            tuple(head.logits.shape), head.activation, head.units, self.input_size,
            isinstance(final_layer(self.model, self.output_index), CONV_TYPES))
        named = self.has_classes or self.output_kind == "segmentation"
        self.n_classes = (2 if head.units == 1 else head.units) if named else 0
        # several sigmoid units on a vector: independent labels, each with its own probability (not classes)
        self.multi_label = self.output_kind == "classes" and head.activation == "sigmoid" and head.units > 1
        if class_names is None:
            class_names = getattr(self.model, "class_names", None)  # e.g. the demo model carries its own
        self.class_names = resolve_class_names(class_names, self.n_classes) if named else []
        if self.multi_label and class_names is None and self.class_names[:1] == ["class 0"]:
            self.class_names = [f"label {i}" for i in range(self.n_classes)]
        self._lock = threading.RLock()  # panels may share an Inspector across threads
        # Compiled functions (core.backend) are kept in bounded caches; each compiles once per batch size,
        # and batches are padded to a few sizes (core.batching.bucket).
        self._forward_model: keras.Model | None = None  # every conv/pool output and the logits
        self._activation_fns: LRUCache = LRUCache(ACTIVATION_CACHE_SIZE)  # layer names (None: all) -> batched pass
        self._forward_cache: tuple[str, dict[str, np.ndarray], np.ndarray] | None = None
        self.cam_engine = CamEngine(self)  # owns the compiled CAM functions (at most CAM_CACHE_SIZE)
        self._patterns = PatternEngine(self, PATTERN_CACHE_SIZE)  # owns its objectives and compiled steps
        self.examples = ExamplesEngine(self)  # dataset examples: the engine and its compiled readouts
        self._head_values: Any = None  # compiled head values of a preprocessed batch (metrics)
        self._default_cam: Node | None = None
        self._readout: tuple[int | None, str] | None = None  # the attention row read (class token or mean)
        self._heads_fn: Any = None  # compiled per-head attention maps of every attention layer
        # Named presets are keras.ops: compiled functions take the uint8 pixels and preprocess inside.
        self._preprocess_in_graph = choice.in_graph or any(self._preprocess is f for f in PRESETS.values())
        self._footprint: Footprint | None = None
        self._traces: dict[tuple, FlatGraph] = {}  # (spatial, stop_at) -> a partial trace, made once (see `traced`)
        self._traces_lock = threading.Lock()

    # ----- facts about the model -------------------------------------------------------------
    def _model_names(self) -> list[str]:
        """The model's name and those of nested sub-models (to recognise keras.applications)."""
        names = [self.model.name]
        names += [layer.name for layer in self.model.layers if is_nested_model(layer)]
        return names

    @property
    def grid(self) -> tuple[int, int] | None:
        """The (h, w) patch grid given with `grid=` for reading token layers, or None (found from the model)."""
        return self._grid

    @property
    def preprocess_fn(self) -> Any:
        """The preprocessing function applied to float RGB batches in 0..255."""
        return self._preprocess

    @property
    def preprocess_reason(self) -> str:
        """Why `preprocess_name` was chosen: given, read from the model's own input layers, recognised by name,
        or the default guessed for a model with nothing to read."""
        return self._preprocess_reason

    @property
    def score_label(self) -> str:
        """What the head's values are: "probability" (softmax/sigmoid head) or "score" (linear head)."""
        return "probability" if self.graph.head.activation in ("softmax", "sigmoid") else "score"

    def batch_probabilities(self, x: Any) -> np.ndarray:
        """Class probabilities (scores for a linear head) (n, n_classes) of a preprocessed batch.

        The batch goes through the compiled forward pass in chunks that fit the memory budget.
        """
        self._require_classes()
        x = np.asarray(bk.to_numpy(x), np.float32)
        n = int(x.shape[0])
        per_image = self.bytes_per_image(tuple(int(d) for d in x.shape[1:3]))
        chunk = batching.bucket_below(fit_batch(per_image, batching.bucket(max(1, n)), what="images",
                                                lower="the batch size or the image size"))  # padded: within budget
        fn = self.head_values_fn()
        parts = [np.asarray(bk.to_numpy(fn(batching.pad_batch(x[lo:hi], batching.bucket(hi - lo)))))[: hi - lo]
                 for lo, hi in batching.chunks(n, chunk)]
        out = np.concatenate(parts) if parts else np.zeros((0, self.n_classes), np.float32)
        return _finite(out, "the batch's class values", "this batch")

    def head_values_fn(self) -> Any:
        """Compiled f(preprocessed float32 batch) -> the head's values (n, classes), built once.

        Probabilities, or a linear head's scores (`score_label`); each batch size compiles once, so pad
        batches to `core.batching.bucket` sizes.
        """
        with self._lock:
            if self._head_values is None:
                model = keras.Model(self.graph.input, self.graph.head.logits)
                activation = self.graph.head.activation
                self._head_values = bk.function(
                    lambda x: head_maths.head_values(ops.cast(model(x, training=False), "float32"), activation),
                    self.model.weights)
            return self._head_values

    def traced(self, spatial: tuple[int | None, int | None] | None, stop_at: str) -> FlatGraph:
        """The model traced at `spatial` up to the layer `stop_at`, made once per Inspector.

        Every trace leaves its symbolic graph in the Keras bookkeeping of the user's layers for as long as
        the model lives; tracing again for every objective or estimate that a bounded cache dropped let it
        grow with each panel action. At most one trace per (size, layer) is kept instead.
        """
        key = (spatial, stop_at)
        with self._traces_lock:
            graph = self._traces.get(key)
            if graph is None:
                graph = self._traces[key] = trace(self.model, spatial=spatial, stop_at=stop_at, grid=self._grid)
            return graph

    # ----- memory ------------------------------------------------------------------------------
    def footprint(self) -> Footprint:
        """Per-image element counts of the model's layers (traced once, lazily)."""
        with self._lock:
            if self._footprint is None:
                self._footprint = Footprint(self.graph, self.model, self.output_index)
            return self._footprint

    def bytes_per_image(self, hw: tuple[int, int] | None = None, *, gradient: bool = False,
                        upto: str | None = None, keep: set[str] | None = None) -> float:
        """Estimated bytes one image of (h, w) (default: the model's input size, else the largest side fed) takes.

        Forward only by default, keeping the outputs of the layers named in `keep`; `gradient=True`
        counts the layer outputs kept for the backward pass up to `upto` (the whole model when None).
        Used to size batches with `limits.fit_batch`.
        """
        hw = hw or self.input_size or (MAX_FREE_SIDE, MAX_FREE_SIDE)
        if gradient:
            return self.footprint().with_gradient(hw, upto)
        return self.footprint().forward(hw, keep)

    @property
    def input_size(self) -> tuple[int, int] | None:
        """(H, W) the model takes, else the size its preprocessing resizes to, or None when it accepts any size."""
        h, w = self.graph.input.shape[1:3]
        return self._preprocess_size if h is None or w is None else (int(h), int(w))

    @property
    def channels(self) -> int:
        """Colour channels the model takes (3, or 1 for grayscale models)."""
        return int(self.graph.input.shape[-1])

    @property
    def layers(self) -> list[str]:
        """Conv and pooling layers and token layers read as a grid, nested ones included, in model order."""
        return [n.name for n in visual_layers(self.graph)]

    @property
    def conv_layers(self) -> list[str]:
        """Convolutional layers only, in model order."""
        return [n.name for n in self.graph.nodes if n.kind == "conv" and n.is_spatial]

    @property
    def cam_layers(self) -> list[str]:
        """Layers a CAM can be drawn on and a person would pick: conv maps with a grid, plus the default CAM layer."""
        default = self.default_cam_layer
        return [n.name for n in self.graph.nodes
                if n.name == default or (n.kind in ("conv", "block", "tokens") and n.has_grid)]

    @property
    def default_cam_layer(self) -> str:
        """The last conv feature map with spatial extent (after its BN/activation); for a segmentation model,
        the last one before the output's own layer."""
        return self._default_cam_node().name

    def _default_cam_node(self) -> Node:
        """default_cam_node of the graph, found once (the graph never changes)."""
        if self._default_cam is None:
            graph = self.graph
            if self.output_kind == "segmentation":  # the output's own conv is the answer, not a feature map
                last = final_layer(self.model, self.output_index)
                graph = FlatGraph(graph.input, graph.output, [n for n in graph.nodes if n.layer is not last],
                                  graph.head)
            self._default_cam = default_cam_node(graph)
        return self._default_cam

    def layer(self, name: Any) -> Node:
        """A layer's node by qualified (or unambiguous inner) name or Keras layer, with a helpful error."""
        return self.graph.node(checks.layer_name(name))

    # ----- images --------------------------------------------------------------------------------
    def prepare(self, image: ImageSource) -> np.ndarray:
        """The image as the model sees it: uint8 RGB at the model's input size."""
        if self.input_size is not None and (self._crop_to_aspect or self._bilinear):
            rgb = load_image(image)
            rgb = centre_crop(rgb, self.input_size) if self._crop_to_aspect else rgb
            return resize_rgb(rgb, self.input_size, bilinear=self._bilinear)
        if self.input_size is not None:
            return load_image(image, size=self.input_size)  # a JPEG decodes straight at a reduced scale
        rgb = load_image(image)
        return resize_rgb(rgb, _capped_size(rgb.shape[:2], MAX_FREE_SIDE))

    def batch(self, rgb: np.ndarray) -> Any:
        """A preprocessed float32 batch (a backend tensor) of one prepared image, preprocessed eagerly."""
        self.check_channels()
        return ops.cast(self._preprocess(self._model_pixels(ops.convert_to_tensor(rgb[None]))), "float32")

    def check_channels(self) -> None:
        """Only RGB and grayscale models can be fed a picture."""
        if self.channels not in (1, 3):
            raise ConvVizError(
                f"The model takes {self.channels} channels; only RGB (3) or grayscale (1) images are supported."
            )


    @property
    def preprocess_in_graph(self) -> bool:
        """Whether the preprocessing runs inside compiled functions (a named preset, written in keras.ops).

        Then `input_batch` gives uint8 pixels and compiled code calls `in_graph_input`; a user's own
        function runs eagerly instead (it may be numpy), image by image.
        """
        return self._preprocess_in_graph

    def _model_pixels(self, pixels: Any) -> Any:
        """RGB pixels (any dtype, a batch) as float32 with the model's channels: the one grey conversion."""
        x = ops.cast(pixels, "float32")
        if self.channels == 1:
            x = ops.tensordot(x, ops.convert_to_tensor(_GRAY[:, None]), axes=[[3], [0]])
        return x

    def in_graph_input(self, pixels: Any) -> Any:
        """Inside a compiled function: uint8 RGB pixels (B, H, W, 3) -> the model's preprocessed float input."""
        return self._preprocess(self._model_pixels(pixels))


    def input_batch(self, rgbs: Sequence[np.ndarray] | np.ndarray, in_graph: bool | None = None) -> Any:
        """Prepared images of one size as a model batch: uint8 pixels (numpy) when preprocessing runs in the
        compiled function (`in_graph`, default `preprocess_in_graph`), else the preprocessed float32 batch
        (a backend tensor, preprocessed image by image)."""
        in_graph = self._preprocess_in_graph if in_graph is None else in_graph
        if in_graph:
            self.check_channels()
            return rgbs if isinstance(rgbs, np.ndarray) else np.stack(rgbs)
        if len(rgbs) == 1:
            return self.batch(rgbs[0])
        return ops.concatenate([self.batch(rgb) for rgb in rgbs], axis=0)


    # ----- one forward pass: every conv/pool output and the logits --------------------------------
    def forward(self, image: ImageSource) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every conv/pool layer's output (H, W, C) and the logits for one image, cached for the last image.

        The arrays are read-only (shared with the cache); nothing is checked for NaN/inf here
        (`check_finite` does).
        """
        rgb = self.prepare(image)
        key = pixel_key(rgb)
        with self._lock:
            return self._forward_locked(rgb, key)


    def _forward_locked(self, rgb: np.ndarray, key: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """forward's body, run under the lock so two threads never build or fill the cache at once."""
        if self._forward_cache is not None and self._forward_cache[0] == key:
            return self._forward_cache[1], self._forward_cache[2]
        outs = self._run(self._activation_fn(None), [rgb])
        acts = {n.name: o[0] for n, o in zip(visual_layers(self.graph), outs[:-1])}
        logits = outs[-1][0]
        self._forward_cache = (key, acts, logits)
        return acts, logits

    def _run(self, fn: Any, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        """`fn`'s outputs for prepared images of one size, as read-only numpy arrays (no copy where the backend
        allows); the batch is padded to a compiled size (`batching.bucket`) and the padding dropped."""
        n = len(rgbs)
        padded = rgbs + [rgbs[0]] * (bucket(n) - n)
        return [_read_only(o[:n]) for o in bk.to_numpy(list(fn(self.input_batch(padded))))]

    def _all_layers_model(self) -> keras.Model:
        """The multi-output model of every conv/pool output and the logits (built once, shared)."""
        with self._lock:
            if self._forward_model is None:
                outputs = [n.map for n in visual_layers(self.graph)] + [self.graph.head.logits]
                self._forward_model = keras.Model(self.graph.input, outputs)
            return self._forward_model

    def activations(self, image: ImageSource | Sequence[ImageSource], layers: Sequence[str] | None = None, *,
                    batch_size: int = 32) -> dict[str, np.ndarray] | list[dict[str, np.ndarray]]:
        """Every conv/pool layer's output (H, W, C) float32 for one image, in model order.

        Token layers of a vision transformer come as their patch grid (h, w, D), the special tokens dropped.
        Several images (a list, or an (N, H, W, 3) array) give a list of such dicts, one per image,
        computed `batch_size` images per compiled pass (fewer when the memory budget needs it). The arrays
        are read-only views of what was computed, not copies (one VGG16 image's layers hold 60 MB, a batch
        of 32 2 GB; the forward cache shares them): `.copy()` one to change it in place.
        """
        batch_size = checks.bounded(batch_size, "batch_size", checks.BATCH_SIZE)
        nodes = self._requested_nodes(layers)
        if is_batch(image):
            return self._batched_activations(list(image), nodes, batch_size)
        rgb = self.prepare(image)
        keep = {n.name for n in visual_layers(self.graph)}
        check_fits(self.footprint().forward(rgb.shape[:2], keep), what="The activations of this image",
                   lower="the image size")
        acts, _ = self.forward(rgb)
        if nodes is None:
            return {name: _finite_layer(name, act) for name, act in acts.items()}
        extra = tuple(n.name for n in nodes if n.name not in acts)
        if extra:
            with self._lock:
                outs = self._run(self._activation_fn(extra), [rgb])
            acts = {**acts, **{name: o[0] for name, o in zip(extra, outs)}}
        return {node.name: _finite_layer(node.name, acts[node.name]) for node in nodes}

    def _requested_nodes(self, layers: Any) -> list[Node] | None:
        """The checked layers of `layers=` (None: every conv/pool layer); each must be a feature map."""
        if layers is None:
            return None
        nodes = [self.layer(checks.layer_name(n, "layers")) for n in _as_list(layers)]
        for node in nodes:
            if not node.is_spatial:
                raise ConvVizError(f"Layer {node.name!r} is not a feature map (H, W, C): {node.why_not_a_map()}.")
        return nodes

    def _batched_activations(self, images: list[ImageSource], nodes: list[Node] | None, batch_size: int
                             ) -> list[dict[str, np.ndarray]]:
        """Activations of several images: grouped by prepared size, `batch_size` (or what fits) per pass."""
        rgbs = [self.prepare(im) for im in images]
        if nodes == []:
            return [{} for _ in rgbs]
        names = None if nodes is None else tuple(dict.fromkeys(n.name for n in nodes))
        keep = {n.name for n in visual_layers(self.graph)} if names is None else set(names)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, rgb in enumerate(rgbs):
            groups.setdefault(rgb.shape[:2], []).append(i)
        chunks = []  # every group is sized before any pass runs
        for hw, idx in groups.items():
            step = _padded_step(self.footprint().forward(hw, keep), min(batch_size, len(idx)))
            chunks += [idx[lo : lo + step] for lo in range(0, len(idx), step)]
        out: list[dict[str, np.ndarray]] = [{} for _ in rgbs]
        with self._lock:
            fn = self._activation_fn(names)
            for idx in chunks:
                outs = self._run(fn, [rgbs[i] for i in idx])
                for name, o in zip(self.layers if names is None else names, outs):
                    values = _finite_chunk(name, o, idx)  # read-only views: no copy of a big batch
                    for j, i in enumerate(idx):
                        out[i][name] = values[j]
        if nodes is None:
            return out
        return [{n.name: acts[n.name] for n in nodes} for acts in out]

    def _activation_fn(self, names: tuple[str, ...] | None) -> Any:
        """Compiled f(input batch) -> float32 outputs of `names` (None: every conv/pool layer, then the logits)."""
        return self._activation_fns.get_or_create(names, lambda: self._build_activation_fn(names))

    def _build_activation_fn(self, names: tuple[str, ...] | None) -> Any:
        """One multi-output pass: the shared all-layers model, or a model of exactly the named layers."""
        if names is None:
            model = self._all_layers_model()
        else:
            model = keras.Model(self.graph.input, [self.layer(n).map for n in names])  # token layers: their grid
        prepare = self.in_graph_input if self._preprocess_in_graph else None

        def forward(x: Any) -> list[Any]:
            if prepare is not None:
                x = prepare(x)
            outs = model(x, training=False)
            outs = outs if isinstance(outs, (list, tuple)) else [outs]
            return [ops.cast(o, "float32") for o in outs]

        return bk.function(forward, self.model.weights)

    # ----- predictions -----------------------------------------------------------------------------
    def _require_classes(self) -> None:
        """Predictions and CAMs need a class output, not a feature map."""
        if not self.has_classes:
            raise ConvVizError(
                f"This model has no class output: it ends in a feature map {tuple(self.graph.head.logits.shape)} "
                "(e.g. a keras.applications base with include_top=False). Activations and filter patterns "
                "work; for predictions and Grad-CAM add a classifier head or use include_top=True."
            )

    def probabilities(self, image: ImageSource) -> np.ndarray:
        """The head's values (n_classes,) for one image: probabilities, or scores for a linear head.

        `score_label` says which; a NaN/inf model output is a ConvVizError.
        """
        self._require_classes()
        logits = self.check_finite(image)
        return head_maths.probabilities(logits, self.graph.head.activation)

    def check_finite(self, image: ImageSource) -> np.ndarray:
        """Refuse an image whose forward pass holds NaN/inf anywhere; returns the logits.

        Compiled ReLUs turn NaN into zeros, so an overflow inside the network can leave a finite
        but meaningless output: every conv/pool output is checked, not only the last.
        """
        rgb = self.prepare(image)
        keep = {n.name for n in visual_layers(self.graph)}
        check_fits(self.footprint().forward(rgb.shape[:2], keep), what="A forward pass of this image",
                   lower="the image size")  # predict, the panel's header and every finiteness check are budgeted
        acts, logits = self.forward(rgb)
        for name, act in acts.items():
            _finite_layer(name, act)
        return _finite(logits, "the model's output for this image")

    def predicted_regions(self, image: ImageSource, top: int = 5) -> list[tuple[int, str, float]]:
        """A segmentation model's classes by the share of the pixels it predicts as them, as (index, name, share),
        largest first and a class named "background" last (as the default target does); classes predicted nowhere
        are left out."""
        if self.output_kind != "segmentation":
            raise ConvVizError("predicted_regions needs a segmentation model (an output of (batch, H, W, classes)).")
        top = checks.bounded(top, "top", checks.TOP)
        z = np.asarray(self.check_finite(image), np.float32)
        predicted = (z[..., 0] > 0).astype(np.int64) if z.shape[-1] == 1 else z.argmax(-1)
        shares = np.bincount(predicted.ravel(), minlength=self.n_classes) / predicted.size
        background = background_class(self)
        order = [int(k) for k in np.argsort(-shares, kind="stable") if shares[k] > 0]
        order = [k for k in order if k != background] + [k for k in order if k == background]
        order = order[:top]
        return [(k, self.class_names[k], float(shares[k])) for k in order]

    def predict(self, image: ImageSource, top: int = 5) -> list[tuple[int, str, float]]:
        """The top classes as (index, name, value), highest first; the value is a `score_label`."""
        top = checks.bounded(top, "top", checks.TOP)
        probs = self.probabilities(image)
        order = np.argsort(-probs, kind="stable")[:top]
        return [(int(i), self.class_names[i], float(probs[i])) for i in order]

    # ----- Grad-CAM ----------------------------------------------------------------------------------
    def gradcam(self, image: ImageSource | Sequence[ImageSource], *, class_index: Any = None,
                layer: str | None = None, method: str = "gradcam", batch_size: int = 32,
                max_channels: int | None = None, progress: fp.Progress | None = None, target: Any = None
                ) -> cam_rules.CAM | list[cam_rules.CAM]:
        """A class activation map for one image at a conv layer's resolution; a list for several images.

        `target`: what score is explained (`core.targets`): `ClassTarget(k)` (the default: the top class;
        `class_index=k` is its short form), `RegionTarget(k, mask)` (a segmentation model's default: the
        class predicted over the largest area), `LabelTarget(k)`, `OutputTarget(i)` (a one-unit linear head's
        default), or a callable f(outputs) -> (batch,) in `keras.ops`; `CAM.target` says what was explained.
        `image`: one image, or a list of images / an (N, H, W, 3) array (then `class_index` or `target` may be
        one per image); methods that can batch run `batch_size` images per compiled pass (fewer when the
        memory budget needs it). `method`: a registered method's name (`cams.method_names()`:
        "gradcam", "gradcam++", "scorecam", "hirescam", "xgradcam", "layercam", "eigencam",
        "ablationcam", "rollout" (attention rollout: vision transformers only, class-agnostic, reads every attention
        layer and not `layer`), and the user's own); one that does not apply to this model is refused with the reason
        (`cam_methods_skipped`). Perturbation methods (Score-CAM, Ablation-CAM) run at most
        `batch_size` extra images per forward pass, use only the `max_channels` channels of largest
        spatial variance (None or <= 0: all; the others weigh 0) and call `progress(done, total)`
        after each batch (False or `Cancelled` stops them).
        """
        rule = cams.method_for(method, self)
        batch_size = checks.bounded(batch_size, "batch_size", checks.BATCH_SIZE)
        max_channels = checks.max_channels(max_channels)
        node = rule.read_at(self, layer)  # a method that reads its own layers (rollout) does not use `layer`
        if node is None:
            node = self._cam_node(layer)
        elif layer is not None:
            self.layer(checks.layer_name(layer))  # still a layer of this model (a typo is refused)
        many = is_batch(image)
        images = list(image) if many else [image]
        if many and not images:
            raise ConvVizError("gradcam got an empty list of images; give at least one image.")
        if many and isinstance(class_index, (list, tuple, np.ndarray)) and len(class_index) != len(images):
            raise ConvVizError(f"class_index has {len(class_index)} entries for {len(images)} images; give one per "
                               "image, a single index for all, or None (each image's top class).")
        wanted = as_target(target, class_index)
        rgbs = [self.prepare(im) for im in images]
        scorings = self._targets_for(wanted, rgbs, many)
        for rgb in {r.shape[:2]: r for r in rgbs}.values():
            check_fits(self.bytes_per_image(rgb.shape[:2], gradient=rule.needs_gradients),
                       what="A class activation map of this image", lower="the image size")
        classes = [s.wanted if s.wanted >= 0 else None for s in scorings]
        job = CamJob(rgbs, classes, node, rule, batch_size, max_channels, progress, scorings)
        with self._lock:
            cams_out = self.cam_engine.run(job)
        return cams_out if many else cams_out[0]

    def _targets_for(self, target: Any, rgbs: list[np.ndarray], many: bool) -> list[Scoring]:
        """One checked target per image: one for all, or (several images) a list or tuple of one per image."""
        if many and isinstance(target, (list, tuple)):
            if len(target) != len(rgbs):
                raise ConvVizError(f"target has {len(target)} entries for {len(rgbs)} images; give one per image "
                                   "or one target for all.")
            return [plan(self, t, rgb.shape[:2]) for t, rgb in zip(target, rgbs)]
        return [plan(self, target, rgb.shape[:2]) for rgb in rgbs]

    def _classes_for(self, class_index: Any, n: int, many: bool) -> list[int | None]:
        """One checked class index (or None: the top class) per image."""
        if many and isinstance(class_index, (list, tuple, np.ndarray)):
            if len(class_index) != n:
                raise ConvVizError(f"class_index has {len(class_index)} entries for {n} images; give one per "
                                   "image, a single index for all, or None (each image's top class).")
            return [None if c is None else self.check_class(c) for c in class_index]
        return [None if class_index is None else self.check_class(class_index)] * n

    def _masked_image_bytes(self, size: tuple[int, int]) -> float:
        """Memory one Score-CAM masked image takes (see `cams.scorecam.masked_image_bytes`)."""
        from .cams.scorecam import masked_image_bytes

        return masked_image_bytes(self, size)

    def _cam_node(self, layer: Any) -> Node:
        """The target feature map: the default, or a validated user choice."""
        if layer is None:
            return self._default_cam_node()
        node = self.layer(checks.layer_name(layer))
        if not node.has_grid:
            why = node.why_not_a_map() if not node.is_spatial else "its map has a single cell"
            raise ConvVizError(
                f"Layer {node.name!r} ({type(node.layer).__name__}, output {node.shape}) has no spatial "
                f"feature map, so a CAM cannot be drawn there: {why}. Choose a conv layer such as "
                f"{self.default_cam_layer!r}."
            )
        return node

    # ----- CAM methods and attention -----------------------------------------------------------------------
    @property
    def cam_methods(self) -> list[str]:
        """The registered CAM methods that apply to this model, in list order."""
        return cams.method_names(self)

    @property
    def cam_methods_skipped(self) -> dict[str, str]:
        """The registered CAM methods that do not apply to this model, each with the reason."""
        return cams.not_applying(self)

    @property
    def attention_layers(self) -> list[str]:
        """The model's attention layers whose weights can be read (a block's inner ones too), in model order.

        Empty when attention maps cannot be drawn for this model (`cam_methods_skipped["rollout"]` says why).
        """
        found = att_maths.attention(self.graph)
        return [] if found.reason else found.names

    @property
    def attention_readout(self) -> tuple[int | None, str]:
        """Which attention row explains the output: (the class token's index, in words) or (None: the mean over
        tokens, in words). Found once (see `attention.readout`)."""
        with self._lock:
            if self._readout is None:
                found = att_maths.attention(self.graph)
                if found.reason:
                    raise ConvVizError(f"This model has no attention to read: {found.reason}.")
                self._readout = att_maths.readout(self.graph, found)
            return self._readout

    def attention_heads(self, image: ImageSource) -> dict[str, np.ndarray]:
        """Every attention layer's heads for one image: {layer: (h, w, heads)}, each head's attention weights
        from the class token (or the mean over tokens, `attention_readout`) to each patch, on the patch grid."""
        names = self.attention_layers
        if not names:
            raise ConvVizError(f"This model has no attention to show: {att_maths.attention(self.graph).reason}.")
        rgb = self.prepare(image)
        with self._lock:
            if self._heads_fn is None:
                self._heads_fn = self._build_heads_fn()
            outs = self._run(self._heads_fn, [rgb])
        return {name: _finite(o[0], f"the attention of layer {name!r}") for name, o in zip(names, outs)}

    def _build_heads_fn(self) -> Any:
        """Compiled f(input batch) -> each attention layer's per-head maps (B, h, w, heads), float32."""
        found = att_maths.attention(self.graph)
        index, _ = self.attention_readout
        row = att_maths.readout_row(index, found.tokens.lead + found.tokens.h * found.tokens.w)
        with att_maths.TRACE_LOCK:
            maps = [att_maths.head_maps(w, row, found.tokens) for w in found.weights]
        model = keras.Model(self.graph.input, maps)
        prepare = self.in_graph_input if self._preprocess_in_graph else None

        def heads(x: Any) -> list[Any]:
            if prepare is not None:
                x = prepare(x)
            outs = model(x, training=False)
            return [ops.cast(o, "float32") for o in (outs if isinstance(outs, (list, tuple)) else [outs])]

        return bk.function(heads, self.model.weights)

    def check_class(self, class_index: int) -> int:
        """Class indices must be whole numbers that exist in the model's output; returns it as an int."""
        class_index = checks.integer(class_index, "class_index")
        if not 0 <= class_index < self.n_classes:
            raise ConvVizError(
                f"Class index {class_index} is out of range: this model has {self.n_classes} classes "
                f"(0..{self.n_classes - 1})."
            )
        return class_index

    # ----- dataset examples ------------------------------------------------------------------------------
    def top_examples(self, layer: str, images: Any, *, k: int = 9, channels: Any = None, batch_size: int = 64,
                     progress: Any = None, recursive: bool = False) -> Any:
        """For each channel of `layer`, the k streamed images that excite it most (see `core.examples`)."""
        return self.examples.top_examples(layer, images, k=k, channels=channels, batch_size=batch_size,
                                          progress=progress, recursive=recursive)

    # ----- filter patterns ----------------------------------------------------------------------------
    def filter_patterns(self, layer: str, filters: int | Sequence[int], *, size: int = 64, steps: int = 40,
                        step_size: float = 1.0, seed: int = 0, progress: fp.Progress | None = None,
                        mode: str = "plain", regularization: fv.Regularization | None = None
                        ) -> fp.FilterPatterns:
        """Pictures that maximise each requested filter's mean activation, computed as one batch.

        mode="plain" is the book's L2-normalised gradient ascent in pixel space (`step_size` pixels
        a step); mode="regularized" optimises a decorrelated Fourier image with Adam under random
        jitter/scale/rotation (`regularization` holds its settings). See `core.patterns`.
        """
        return self._patterns.filter_patterns(layer, filters, size=size, steps=steps, step_size=step_size,
                                              seed=seed, progress=progress, mode=mode,
                                              regularization=regularization)

    def pattern_memory(self, layer: Any, n: int, size: int, mode: str = "plain") -> tuple[float, float]:
        """Estimated bytes of a filter-pattern request: (per filter in a batch, once for the whole request)."""
        return self._patterns.pattern_memory(layer, n, size, mode)

    def pattern_objective(self, layer: str, size: int) -> Any:
        """f(pixels (n, s, s, C) in 0..255, filters (n,)) -> each picture's own filter's mean activation (numpy)."""
        return self._patterns.pattern_objective(layer, size)


def _check_grid(grid: Any) -> tuple[int, int] | None:
    """`grid=`: None, or (h, w) two positive whole numbers."""
    if grid is None:
        return None
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence) or len(grid) != 2:
        raise ConvVizError(f"grid must be (h, w), the patch grid of the model's token layers; got {grid!r}.")
    h, w = (checks.integer(v, "grid", minimum=1) for v in grid)
    return h, w


def _check_weights(model: keras.Model) -> None:
    """Refuse NaN/inf weights up front: compiled ReLUs turn NaN into silent zeros, so outputs would lie."""
    for variable in model.weights:
        if "float" in str(variable.dtype) and not _all_finite(variable):
            raise ConvVizError(
                f"The model's weight {variable.path!r} holds NaN/inf values, so the model's output for any "
                "image is NaN/inf or meaningless. Reload the weights from before training diverged."
            )


CHECK_SLICE = 16 * 2**20  # bytes of a weight checked at a time


def _all_finite(variable: Any) -> bool:
    """Whether a weight holds no NaN/inf, checked a slice of rows at a time.

    A whole-tensor check makes a boolean copy of the weight (98 MB for VGG16's first dense layer) that
    then stays in TensorFlow's memory pool; slices of the variable are read without copying the rest.
    """
    shape = tuple(int(d) for d in variable.shape)
    row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * np.dtype(str(variable.dtype)).itemsize if shape else 0
    if not shape or shape[0] * row_bytes <= CHECK_SLICE:
        return bool(keras.ops.all(keras.ops.isfinite(variable)))
    step = max(1, CHECK_SLICE // max(1, row_bytes))
    return all(bool(keras.ops.all(keras.ops.isfinite(variable[i : i + step]))) for i in range(0, shape[0], step))


def is_batch(images: Any) -> bool:
    """Several images: a list or tuple of them, or an (N, H, W, C) array."""
    return isinstance(images, (list, tuple)) or (isinstance(images, np.ndarray) and images.ndim == 4)


def _as_list(layers: Any) -> list[Any]:
    """One layer (name or object) or a sequence of them, as a list."""
    if isinstance(layers, (str, keras.layers.Layer)):
        return [layers]
    return list(layers)


_finite = checks.finite  # the one NaN/inf refusal, shared with the CAM engine


def _padded_step(per_image: float, requested: int) -> int:
    """Images per pass: `requested`, fewer when the pass padded to its compiled size (`bucket`) would not fit."""
    room = fit_batch(per_image, checks.BATCH_SIZE.high, what="images of a batched activations request",
                     lower="batch_size or the image size")
    step = min(requested, room)
    return step if bucket(step) <= room else bucket_below(room)


def _read_only(values: np.ndarray) -> np.ndarray:
    """A result array that cannot be written to (it is shared with the forward cache), without a copy."""
    values = np.asarray(values)
    if values.flags.writeable:
        values.flags.writeable = False
    return values


def _finite_layer(name: str, act: np.ndarray) -> np.ndarray:
    """A layer's activations, refused (naming the layer) when they hold NaN/inf."""
    return _finite(act, f"the activations of layer {name!r}")


def _finite_chunk(name: str, values: np.ndarray, index: Sequence[int]) -> np.ndarray:
    """A chunk's activations of one layer, refused (naming the layer and the image) when they hold NaN/inf."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        for j, i in enumerate(index):
            _finite(values[j], f"the activations of layer {name!r}", f"image {i} of the batch")
    return values


def _capped_size(hw: tuple[int, int], cap: int) -> tuple[int, int]:
    """Shrink (h, w) so the longer side is at most `cap`, keeping the aspect ratio."""
    h, w = int(hw[0]), int(hw[1])
    scale = min(1.0, cap / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))

