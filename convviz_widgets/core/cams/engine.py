"""The CAM engine: one compiled function per (layer, method) that maps a batch of images to raw maps.

Gradient methods get their feature maps and gradients inside the compiled function, from one forward
pass on every backend: the model is traced with a probe on the layer (`graph.trace(probe=...)`), so
the gradient with respect to the feature map is the gradient with respect to an extra zero input. They
are computed in float32 (also for mixed-precision models) and the method's raw map is returned;
perturbation methods get the feature maps, then weigh channels with extra forward passes that this
engine compiles too. The same function checks that every feature map and the output are finite, so a
network that overflows is refused without a second pass.

The engine reads its Inspector only through public members (`graph`, `model`, `output_index`,
`preprocess_in_graph`, `input_batch`, `in_graph_input`, `bytes_per_image`, `check_finite`, `score_label`,
`class_names`, `grid`) and owns its state: the compiled functions, the probed traces and the checked images.
A token layer (batch, T, D) is read as its patch grid (`Node.map`), and so is its gradient.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from ...errors import ConvVizError
from ...images import pixel_key
from ...limits import fit_batch
from .. import backend as bk
from .. import batching, checks
from .. import cam as cam_maths
from ..cache import LRUCache
from ..graph import FlatGraph, Node, trace, visual_layers
from ..head import class_scores, head_values
from ..targets import Scoring, background_class, described, scorer
from .base import CamMethod, CamRequest, GraphMethod, PerturbationMethod

CAM_CACHE_SIZE = 12  # compiled functions kept per Inspector ((layer, method) pairs and helpers), oldest out
CHECKED_IMAGES = 64  # image digests remembered as checked in every layer


@dataclass(frozen=True)
class CamPass:
    """What one compiled pass returns for a batch of images."""

    maps: np.ndarray  # (B, h, w) raw maps, or (B, h, w, C) feature maps for perturbation methods
    scores: np.ndarray  # (B,) the explained class's score (logit)
    classes: np.ndarray  # (B,) the explained class
    head: np.ndarray  # (B, n) the head's values: probabilities, or scores for a linear head
    finite: np.ndarray  # (B,) every feature map and the output are finite
    weights: np.ndarray  # (B, C) channel weights of a weight method; (B, 0) for a map method
    region: np.ndarray | None = None  # (B, h, w) the mask a region target summed over


@dataclass(frozen=True)
class CamJob:
    """A checked request: images prepared at the model's size, the layer, the method and its settings."""

    images: Sequence[np.ndarray]
    classes: Sequence[int | None]
    node: Node
    method: CamMethod
    batch_size: int
    max_channels: int | None
    progress: Any
    targets: Sequence[Scoring] | None = None  # one checked target per image (None: `classes` as class targets)


class CamEngine:
    """Runs CAM jobs for one Inspector; owns the compiled functions (bounded) and the probed traces."""

    def __init__(self, inspector: Any) -> None:
        self.ins = inspector
        self.functions: LRUCache = LRUCache(CAM_CACHE_SIZE)  # (layer, method, deep[, size]) -> compiled CAM
        self._probes: dict[str, FlatGraph] = {}  # layer -> the model traced with a probe there (made once)
        self._probes_lock = threading.Lock()
        self._checked = _Seen(CHECKED_IMAGES)  # digests of images whose every layer was found finite

    def run(self, job: CamJob) -> list[cam_maths.CAM]:
        """CAMs of every image of the job, computed in batches that fit the memory budget."""
        out: list[cam_maths.CAM] = []
        for lo, hi in self._chunks(job):
            out += self._run_chunk(job, lo, hi)
        return out

    def _chunks(self, job: CamJob) -> list[tuple[int, int]]:
        """Index ranges of images of one shape, at most `batch_size` (and what the budget allows) each.

        A chunk is at most a compiled batch size (`batching.bucket`) that fits, so padding it never passes the
        budget: 5 images with room for 6 are one pass padded to 6, with room for 5 two passes (4 and 1).
        """
        rule = job.method
        step = job.batch_size if rule.batchable and not isinstance(rule, PerturbationMethod) else 1
        if step > 1 and len(job.images) > 1:
            per_image = self.ins.bytes_per_image(job.images[0].shape[:2], gradient=rule.needs_gradients)
            step = fit_batch(per_image, min(step, batching.bucket(len(job.images))), what="images of a batched CAM",
                             lower="batch_size or the image size")
        step = batching.bucket_below(step)
        keys = [s.key for s in _scorings(job)]
        ranges, lo = [], 0
        for i in range(1, len(job.images) + 1):
            if i == len(job.images) or i - lo >= step or job.images[i].shape != job.images[lo].shape \
                    or keys[i] != keys[lo]:
                ranges.append((lo, i))
                lo = i
        return ranges

    def _run_chunk(self, job: CamJob, lo: int, hi: int) -> list[cam_maths.CAM]:
        """One compiled pass over images lo..hi (padded to a compiled size), then weights or finished maps."""
        ins, node, rule = self.ins, job.node, job.method
        rgbs = list(job.images[lo:hi])
        scorings = _scorings(job)[lo:hi]
        n, size = len(rgbs), batching.bucket(len(rgbs))
        wanted = batching.pad_batch(np.array([s.wanted for s in scorings], np.int32), size)
        args = [wanted]
        if scorings[0].mode == "region":  # the user's masks (zeros where the predicted region is wanted)
            given = np.stack([np.zeros(rgbs[0].shape[:2], np.float32) if s.mask is None else s.mask
                              for s in scorings])
            args += [batching.pad_batch(given, size),
                     batching.pad_batch(np.array([s.mask is not None for s in scorings], np.float32), size)]
        perturb = isinstance(rule, PerturbationMethod)
        x = ins.input_batch(rgbs, in_graph=ins.preprocess_in_graph and not perturb)
        keys = [pixel_key(rgb) for rgb in rgbs]
        deep = not all(key in self._checked for key in keys)  # every layer checked once per image
        fn = self.function(node, rule, deep, rgbs[0].shape[:2], scorings[0])
        result = CamPass(*(np.asarray(t)[:n] for t in bk.to_numpy(tuple(fn(pad(x, size), *args)))))
        for i, ok in enumerate(result.finite):
            if not ok:
                ins.check_finite(rgbs[i])  # names the first layer that holds NaN/inf
                checks.finite(np.array([np.nan]), "the model's output for this image")
        if deep:
            self._checked.put_all(keys)
        out = []
        for i in range(n):
            k = int(result.classes[i])
            region = None if result.region is None else result.region[i]
            if region is not None and float(region.sum()) <= 0:
                raise ConvVizError(f"The model predicts class {k} ({ins.class_names[k]}) nowhere in this image, so "
                                   "its region is empty and there is nothing to explain. Choose another class or "
                                   "give a mask: target=RegionTarget(k, mask).")
            if perturb:
                feats = result.maps[i]
                request = CamRequest(ins, node, x[i : i + 1], feats, k, job.batch_size, job.max_channels, job.progress,
                                     self, scorings[i], region)
                weights = np.asarray(rule.channel_weights(request), np.float32)
                checks.finite(weights, f"the CAM weights at layer {node.name!r}")
                heat, raw = cam_maths.combine(feats, weights)
            else:
                checks.finite(result.maps[i], f"the class activation map at layer {node.name!r}")
                heat, raw = cam_maths.finish(result.maps[i])
                weights = result.weights[i] if result.weights.shape[-1] else None
            checks.finite(result.head[i], "the model's output for this image")
            named = 0 <= k < len(ins.class_names)
            probability = float(result.head[i][k]) if named and ins.score_label == "probability" else None
            what = described(scorings[i], k, ins.class_names)
            if rule.class_agnostic:  # the score is the target's; the map explains no target
                what = f"no class ({rule.label} is class-agnostic: the same map for any target); the score is of {what}"
            out.append(cam_maths.CAM(heat, k, float(result.scores[i]), node.name, rule.name,
                                     ins.class_names[k] if named else None, probability, raw, weights, what, region))
        return out

    # ----- compiled functions ---------------------------------------------------------------------------
    def function(self, node: Node, method: CamMethod, deep: bool = True, size: tuple[int, int] | None = None,
                 scoring: Scoring | None = None) -> Any:
        """The compiled CAM function f(batch, wanted classes (-1: top)) -> CamPass arrays, kept in `functions`.

        `deep`: its finiteness flag covers every conv/pool (and token) output (an overflow that a later ReLU hides
        still makes the output meaningless); without it, only the explained map and the output.
        `size`: the images' (h, w); a gradient method on a model that takes any size compiles one per size.
        `scoring`: what is explained (None: a class); a region target's function also takes (masks (B, H, W),
        whether each mask is given (B,)), and returns the region (B, h, w) last.
        """
        key: tuple = (node.name, method.name, deep)
        gradients = method.needs_gradients and not isinstance(method, PerturbationMethod)
        if gradients and self.ins.input_size is None:
            if size is None:
                raise ValueError("this model takes any image size: give the images' size")
            key += (tuple(int(s) for s in size),)
        scoring = scoring or Scoring(None, "index")
        key += scoring.key
        return self.functions.get_or_create(key, lambda: self._build(node, method, deep, size, scoring))

    def probe_graph(self, node: Node) -> FlatGraph:
        """The model traced with a probe at `node` (see `graph.trace`), made once per layer.

        Every trace leaves nodes on the user's layers for as long as the model lives, so it is never redone.
        """
        with self._probes_lock:
            graph = self._probes.get(node.name)
            if graph is None:
                graph = self._probes[node.name] = trace(self.ins.model, output=self.ins.output_index,
                                                        probe=node.name, grid=self.ins.grid)
            return graph

    def _scorer(self, scoring: Scoring) -> Any:
        """The target's maths for compiled code (see `targets.scorer`)."""
        return scorer(scoring.mode, self.ins.graph.head.activation, getattr(scoring.target, "fn", None),
                      background_class(self.ins))

    def _build(self, node: Node, method: CamMethod, deep: bool, size: tuple[int, int] | None,
               scoring: Scoring) -> Any:
        """Compile f(batch, wanted classes[, masks, given]) -> CamPass tensors for one input shape at a time."""
        ins = self.ins
        perturb = isinstance(method, PerturbationMethod)
        in_graph = ins.preprocess_in_graph and not perturb
        gradients = method.needs_gradients and not perturb
        drawn = isinstance(method, GraphMethod)  # the map is built from the graph by the method itself
        by_weights = not perturb and not drawn and type(method).raw_map is CamMethod.raw_map  # a weighted sum
        score_of = self._scorer(scoring)
        graph = self.probe_graph(node) if gradients else ins.graph
        target = graph.node(node.name)
        checked = [n.output for n in visual_layers(graph) if n.output is not target.output] if deep else []
        inputs = [graph.input, graph.probe] if gradients else graph.input
        own = [method.graph_map(ins, graph, target)] if drawn else []
        model = keras.Model(inputs, [target.map, graph.head.logits, *own, *checked])  # a token layer: its patch grid
        probe_shape = _feature_shape(graph, target, size) if gradients else ()
        probe_dtype = target.output.dtype  # a mixed-precision layer's own dtype

        def scored(delta: Any, x: Any, *wanted: Any) -> tuple[Any, tuple]:
            """The summed explained scores (images are independent: each gradient is its own), and the rest."""
            feats, logits, *rest = model([x, delta] if gradients else x, training=False)
            logits = ops.cast(logits, "float32")
            chosen, score, values, region = score_of(logits, *wanted)
            return ops.sum(score), (feats, logits, chosen, score, (values, region), rest)

        def split(rest: list) -> tuple[Any, list]:
            """A graph method's map, and the outputs checked for finiteness (its map among them)."""
            return (rest[0], rest) if drawn else (None, rest)

        def cam(x: Any, *wanted: Any) -> tuple:
            if in_graph:
                x = ins.in_graph_input(x)
            grads = None
            if gradients:
                zero = ops.zeros((_batch(x), *probe_shape), probe_dtype)
                _, (feats, logits, chosen, score, (values, region), rest), grads = \
                    bk.value_and_grad(scored)(zero, x, *wanted)
                grads = ops.cast(target.as_map(grads), "float32")
            else:
                _, (feats, logits, chosen, score, (values, region), rest) = scored(None, x, *wanted)
            own_map, rest = split(rest)
            finite = _all_finite([feats, logits, *rest])
            feats32 = ops.cast(feats, "float32")
            weights = ops.zeros((_batch(feats32), 0), "float32")
            if perturb:
                maps = feats32
            elif drawn:
                maps = ops.cast(own_map, "float32")
            elif by_weights:
                weights = ops.cast(method.weights(feats32, grads), "float32")
                maps = ops.sum(feats32 * weights[:, None, None, :], axis=-1)
            else:
                maps = ops.cast(method.raw_map(feats32, grads), "float32")
            out = (maps, score, chosen, values, finite, weights)
            return out if region is None else (*out, region)

        return bk.function(cam, ins.model.weights)

    # ----- the perturbation methods' forward passes -------------------------------------------------------
    def masked_values(self, request: CamRequest, blurred: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The explained value (n,) of x * m + blurred * (1 - m) for each mask m (Score-CAM): a class's head value
        (probability, or a linear head's score), or another target's score (a region fixed to the explained one).
        """
        scoring = request.scoring
        if scoring is None or scoring.mode == "index":
            return self.masked_head_values(request.x, blurred, masks)[:, request.class_index]
        fn = self.functions.get_or_create(("scorecam/masked", *scoring.key), lambda: self._build_masked(scoring))
        n = len(masks)
        return np.asarray(bk.to_numpy(fn(request.x, blurred, batching.pad_batch(masks, batching.bucket(n)),
                                         *self._fixed(request))))[:n]

    def ablated_values(self, request: CamRequest, keep: np.ndarray) -> np.ndarray:
        """The explained score (n,) with the feature map times each row of `keep` (n, C) (Ablation-CAM)."""
        scoring = request.scoring
        if scoring is None or scoring.mode == "index":
            return self.ablated_scores(request.node, request.x, request.feats, keep)[:, request.class_index]
        node = request.node
        fn = self.functions.get_or_create((node.name, "ablationcam/after", *scoring.key),
                                          lambda: self._build_after(node, scoring))
        n = len(keep)
        out = fn(request.x, np.asarray(request.feats, np.float32)[None],
                 batching.pad_batch(np.asarray(keep, np.float32), batching.bucket(n)), *self._fixed(request))
        return np.asarray(bk.to_numpy(out))[:n]

    @staticmethod
    def _fixed(request: CamRequest) -> list[np.ndarray]:
        """A region target's class and region, fixed to the explained image's (so a masked image's score sums there)."""
        if request.region is None:
            return []
        return [np.array([request.class_index], np.int32), np.asarray(request.region, np.float32)[None],
                np.ones(1, np.float32)]

    def _target_score(self, scoring: Scoring) -> Any:
        """f(logits (n, ...), *fixed) -> the target's score (n,), a region's class and mask the same for all n."""
        score_of = self._scorer(scoring)

        def score(logits: Any, *fixed: Any) -> Any:
            n = _batch(logits)
            if fixed:
                fixed = (ops.repeat(fixed[0], n, axis=0), ops.repeat(fixed[1], n, axis=0),
                         ops.repeat(fixed[2], n, axis=0))
            else:
                fixed = (ops.zeros((n,), "int32") - 1,)
            return score_of(ops.cast(logits, "float32"), *fixed)[1]

        return score

    def masked_head_values(self, x: Any, blurred: np.ndarray, masks: np.ndarray) -> np.ndarray:
        """The head's values (n, classes) of x * m + blurred * (1 - m) for each mask m (n, H, W, 1) (Score-CAM).

        `x`, `blurred`: one preprocessed image (1, H, W, C). One compiled pass, padded to a compiled size.
        """
        fn = self.functions.get_or_create(("scorecam/masked",), lambda: self._build_masked())
        n = len(masks)
        return np.asarray(bk.to_numpy(fn(x, blurred, batching.pad_batch(masks, batching.bucket(n)))))[:n]

    def _build_masked(self, scoring: Scoring | None = None) -> Any:
        """Compile f(x, blurred, masks[, fixed]) -> the head's values (or a target's scores) of the blended images."""
        graph = self.ins.graph
        model = keras.Model(graph.input, graph.head.logits)
        activation = graph.head.activation
        target = None if scoring is None else self._target_score(scoring)

        def masked(x: Any, blurred: Any, masks: Any, *fixed: Any) -> Any:
            blend = x * masks + blurred * (1.0 - masks)
            logits = ops.cast(model(blend, training=False), "float32")
            return head_values(logits, activation) if target is None else target(logits, *fixed)

        return bk.function(masked, self.ins.model.weights)

    def ablated_scores(self, node: Node, x: Any, feats: np.ndarray, keep: np.ndarray) -> np.ndarray:
        """Class scores (n, classes) with `node`'s feature map `feats` (h, w, C) times each row of `keep` (n, C).

        Only the layers after `node` run (paths that skip it still see the input `x`, (1, H, W, C));
        one compiled pass, padded to a compiled size (Ablation-CAM).
        """
        fn = self.functions.get_or_create((node.name, "ablationcam/after"), lambda: self._build_after(node))
        n = len(keep)
        out = fn(x, np.asarray(feats, np.float32)[None], batching.pad_batch(np.asarray(keep, np.float32),
                                                                             batching.bucket(n)))
        return np.asarray(bk.to_numpy(out))[:n]

    def _build_after(self, node: Node, scoring: Scoring | None = None) -> Any:
        """Compile f(x, feats, keep[, fixed]) -> class scores (or a target's scores) from (input, the ablated map)."""
        graph = self.ins.graph
        model = keras.Model([graph.input, node.output], graph.head.logits)
        activation = graph.head.activation
        dtype = node.output.dtype  # a mixed-precision layer's own dtype
        target_score = None if scoring is None else self._target_score(scoring)
        tokens = node.tokens
        trunk = keras.Model(graph.input, node.output) if tokens is not None else None

        def after(x: Any, feats: Any, keep: Any, *fixed: Any) -> Any:
            if tokens is not None:  # a token layer: its patch tokens scaled, the special tokens kept as they are
                ablated = tokens.scale_patches(trunk(x, training=False), keep)
            else:
                ablated = ops.cast(feats * keep[:, None, None, :], dtype)
            xs = ops.repeat(x, _batch(keep), axis=0)
            logits = ops.cast(model([xs, ablated], training=False), "float32")
            return class_scores(logits, activation) if target_score is None else target_score(logits, *fixed)

        return bk.function(after, self.ins.model.weights)


def _scorings(job: CamJob) -> list[Scoring]:
    """One checked target per image: the job's, or its classes as class targets."""
    if job.targets is not None:
        return list(job.targets)
    return [Scoring(None, "index", -1 if c is None else int(c)) for c in job.classes]


def pad(x: Any, size: int) -> Any:
    """A batch (numpy or a backend tensor) with copies of its first row up to `size` rows."""
    if isinstance(x, np.ndarray):
        return batching.pad_batch(x, size)
    extra = size - int(x.shape[0])
    return x if extra <= 0 else ops.concatenate([x, ops.repeat(x[:1], extra, axis=0)], axis=0)


def _batch(x: Any) -> Any:
    """The batch size of a tensor: static inside compiled code (each input shape compiles once)."""
    n = x.shape[0]
    return ops.shape(x)[0] if n is None else int(n)


def _feature_shape(graph: FlatGraph, target: Node, size: tuple[int, int] | None) -> tuple[int, ...]:
    """(h, w, C) of `target`'s output for images of `size` (worked out symbolically when the model takes any size)."""
    shape = tuple(target.output.shape[1:])
    if all(d is not None for d in shape):
        return tuple(int(d) for d in shape)
    sub = keras.Model(graph.input, target.output)
    return tuple(int(d) for d in sub.compute_output_shape((1, *size, int(graph.input.shape[-1])))[1:])


def _all_finite(tensors: list[Any]) -> Any:
    """(B,) whether each image's tensors hold only finite values."""
    flags = [ops.all(ops.isfinite(ops.reshape(t, (_batch(t), -1))), axis=1) for t in tensors]
    return ops.all(ops.stack(flags, axis=1), axis=1)


class _Seen:
    """A bounded set of keys, oldest out first."""

    def __init__(self, size: int) -> None:
        self._keys: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def __contains__(self, key: object) -> bool:
        return key in self._keys

    def put_all(self, keys: Sequence[str]) -> None:
        """Remember `keys` as the newest."""
        for key in keys:
            self._keys[key] = None
            self._keys.move_to_end(key)
        while len(self._keys) > self._size:
            self._keys.popitem(last=False)
