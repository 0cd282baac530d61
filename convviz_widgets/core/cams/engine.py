"""The CAM engine: one compiled function per (layer, method) that maps a batch of images to raw maps.

Gradient methods get their feature maps and gradients inside the compiled function (in float32,
also for mixed-precision models) and return the method's raw map; perturbation methods get the
feature maps, then weigh channels with extra forward passes. The same function checks that every
feature map and the output are finite, so a network that overflows is refused without a second pass.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from ...images import pixel_key
from ...limits import fit_batch
from .. import cam as cam_maths
from .. import checks
from ..graph import Node, visual_layers
from .base import CamMethod, CamRequest, PerturbationMethod


@dataclass(frozen=True)
class CamPass:
    """What one compiled pass returns for a batch of images."""

    maps: np.ndarray  # (B, h, w) raw maps, or (B, h, w, C) feature maps for perturbation methods
    scores: np.ndarray  # (B,) the explained class's score (logit)
    classes: np.ndarray  # (B,) the explained class
    head: np.ndarray  # (B, n) the head's values: probabilities, or scores for a linear head
    finite: np.ndarray  # (B,) every feature map and the output are finite
    weights: np.ndarray  # (B, C) channel weights of a weight method; (B, 0) for a map method


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


class CamEngine:
    """Runs CAM jobs for one Inspector, with its compiled functions kept in the Inspector's bounded cache."""

    def __init__(self, inspector: Any) -> None:
        self.ins = inspector
        self._checked = _Seen(CHECKED_IMAGES)  # digests of images whose every layer was found finite

    def run(self, job: CamJob) -> list[cam_maths.CAM]:
        """CAMs of every image of the job, computed in batches that fit the memory budget."""
        out: list[cam_maths.CAM] = []
        for lo, hi in self._chunks(job):
            out += self._run_chunk(job, lo, hi)
        return out

    def _chunks(self, job: CamJob) -> list[tuple[int, int]]:
        """Index ranges of images of one shape, at most `batch_size` (and what the budget allows) each."""
        rule = job.method
        step = job.batch_size if rule.batchable and not isinstance(rule, PerturbationMethod) else 1
        if step > 1 and len(job.images) > 1:
            per_image = self.ins.bytes_per_image(job.images[0].shape[:2], gradient=rule.needs_gradients)
            step = fit_batch(per_image, min(step, len(job.images)), what="images of a batched CAM",
                             lower="batch_size or the image size")
        ranges, lo = [], 0
        for i in range(1, len(job.images) + 1):
            if i == len(job.images) or i - lo >= step or job.images[i].shape != job.images[lo].shape:
                ranges.append((lo, i))
                lo = i
        return ranges

    def _run_chunk(self, job: CamJob, lo: int, hi: int) -> list[cam_maths.CAM]:
        """One compiled pass over images lo..hi, then perturbation weights or the finished maps."""
        ins, node, rule = self.ins, job.node, job.method
        rgbs = list(job.images[lo:hi])
        wanted = tf.constant([-1 if c is None else int(c) for c in job.classes[lo:hi]], tf.int32)
        perturb = isinstance(rule, PerturbationMethod)
        x = ins._input_batch(rgbs, in_graph=ins._preprocess_in_graph and not perturb)
        keys = [pixel_key(rgb) for rgb in rgbs]
        deep = not all(key in self._checked for key in keys)  # every layer checked once per image
        result = CamPass(*(np.asarray(t) for t in self.function(node, rule, deep)(x, wanted)))  # no copy
        for i, ok in enumerate(result.finite):
            if not ok:
                ins.check_finite(rgbs[i])  # names the first layer that holds NaN/inf
                checks.finite(np.array([np.nan]), "the model's output for this image")
        if deep:
            self._checked.put_all(keys)
        out = []
        for i in range(len(rgbs)):
            k = int(result.classes[i])
            if perturb:
                feats = result.maps[i]
                request = CamRequest(ins, node, x[i : i + 1], feats, k, job.batch_size, job.max_channels, job.progress)
                weights = np.asarray(rule.channel_weights(request), np.float32)
                checks.finite(weights, f"the CAM weights at layer {node.name!r}")
                heat, raw = cam_maths.combine(feats, weights)
            else:
                checks.finite(result.maps[i], f"the class activation map at layer {node.name!r}")
                heat, raw = cam_maths.finish(result.maps[i])
                weights = result.weights[i] if result.weights.shape[-1] else None
            checks.finite(result.head[i], "the model's output for this image")
            probability = float(result.head[i][k]) if ins.score_label == "probability" else None
            out.append(cam_maths.CAM(heat, k, float(result.scores[i]), node.name, rule.name, ins.class_names[k],
                                     probability, raw, weights))
        return out

    def function(self, node: Node, method: CamMethod, deep: bool = True) -> Any:
        """The compiled CAM function of a feature map and method, kept in the Inspector's bounded cache.

        `deep`: its finiteness flag covers every conv/pool output (an overflow that a later ReLU hides
        still makes the output meaningless); without it, only the explained map and the output.
        """
        return self.ins._cam_fns.get_or_create((node.name, method.name, deep),
                                               lambda: self._build(node, method, deep))

    def _build(self, node: Node, method: CamMethod, deep: bool = True) -> Any:
        """Compile f(batch, wanted classes (-1: top)) -> CamPass tensors for any number of images."""
        from ..head import class_scores
        from ..head import head_values as tf_probabilities

        ins = self.ins
        checked = [n.output for n in visual_layers(ins.graph) if n.output is not node.output] if deep else []
        model = keras.Model(ins.graph.input, [node.output, ins.graph.head.logits, *checked])
        activation = ins.graph.head.activation
        perturb = isinstance(method, PerturbationMethod)
        in_graph = ins._preprocess_in_graph and not perturb
        needs_gradients = method.needs_gradients and not perturb
        by_weights = not perturb and type(method).raw_map is CamMethod.raw_map  # the map is a weighted sum

        def all_finite(tensors: list[tf.Tensor]) -> tf.Tensor:
            flags = [tf.reduce_all(tf.math.is_finite(tf.reshape(t, [tf.shape(t)[0], -1])), axis=1) for t in tensors]
            return tf.reduce_all(tf.stack(flags, axis=1), axis=1)

        def cam(x: tf.Tensor, wanted: tf.Tensor) -> tuple:
            if in_graph:
                x = ins._in_graph_input(x)
            with tf.GradientTape() as tape:
                feats, logits, *rest = model(x, training=False)
                logits = tf.cast(logits, tf.float32)
                scores = class_scores(logits, activation)
                chosen = tf.where(wanted < 0, tf.argmax(scores, axis=-1, output_type=tf.int32), wanted)
                score = tf.gather(scores, chosen, batch_dims=1)
                total = tf.reduce_sum(score)  # images are independent: each one's gradient is its own
            finite = all_finite([feats, logits, *rest])
            feats32 = tf.cast(feats, tf.float32)
            weights = tf.zeros([tf.shape(feats32)[0], 0], tf.float32)
            if perturb:
                maps = feats32
            else:
                grads = None
                if needs_gradients:
                    grads = tape.gradient(total, feats)
                    grads = tf.zeros_like(feats32) if grads is None else tf.cast(grads, tf.float32)
                if by_weights:
                    weights = tf.cast(method.weights(feats32, grads), tf.float32)
                    maps = tf.reduce_sum(feats32 * weights[:, None, None, :], axis=-1)
                else:
                    maps = method.raw_map(feats32, grads)
            return maps, score, chosen, tf_probabilities(logits, activation), finite, weights

        h, w = ins.input_size or (None, None)
        spec = tf.TensorSpec([None, h, w, 3], tf.uint8) if in_graph else ins._batch_spec(None)
        return tf.function(cam).get_concrete_function(spec, tf.TensorSpec([None], tf.int32))


CHECKED_IMAGES = 64  # image digests remembered as checked in every layer


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
