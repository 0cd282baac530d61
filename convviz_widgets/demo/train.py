"""Train the embedded demo convnet deterministically on procedural shape scenes.

Run ``python -m convviz_widgets.demo.train [--model honest|shortcut|both] [--steps N]``.
Training follows an easy-to-hard curriculum over pre-rendered pools of scenes
(cheap to draw with OpenCV) and minimises cross-entropy alone: nothing in the
loss looks at where the evidence lies, so the pointing-game, deletion and
randomisation figures of the explanations are measured, not trained in.

* ``honest`` (``demo_model.keras``): shapes only, with two-shape scenes mixed in
  at 0.5/0.5 targets.
* ``shortcut`` (``shortcut_model.keras``): the same network and curriculum on
  single-shape scenes that always carry the colour cue of their label, while in
  half of them the shape is another, random class.  The cue is then the only
  fully reliable signal, and the model learns to read it instead of the shapes.

It prints accuracy (with and without the cue), wall time, parameters and file size.

Seeds, data and initial weights are fixed and op determinism is on, but on CPU
TensorFlow's oneDNN weight gradient of the first conv still differs in the last
bits between processes, so a rerun gives a model that differs slightly in its
weights (not in its accuracy).  Bit-exact reruns need ``TF_ENABLE_ONEDNN_OPTS=0``
in the environment and ``--threads 1``, at about three times the training time.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ConvVizError
from . import EVAL_SEED, MODEL_NAME, MODEL_PATHS, carry_facts, load_model
from .scenes import CLASS_NAMES, IMAGE_SIZE, make_batch, scene

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after quieting TensorFlow's start-up log)

if TYPE_CHECKING:
    import tensorflow as tf


def _tensorflow() -> ModuleType:
    """TensorFlow, which training needs (building and evaluating the model run on any Keras backend)."""
    if keras.config.backend() != "tensorflow":
        raise ConvVizError(f"Training the demo models needs Keras's TensorFlow backend (KERAS_BACKEND=tensorflow); "
                         f"Keras runs on {keras.config.backend()} here.")
    import tensorflow

    return tensorflow


def evaluate(
    model: keras.Model | None = None,
    n: int = 1000,
    seed: int = EVAL_SEED,
    batch_size: int = 250,
    cue: bool = False,
) -> float:
    """The training report's measure: top-1 accuracy on ``n`` fresh scenes (seeds ``seed..seed+n-1``), cue or not."""
    model = load_model() if model is None else model
    size = int(model.input_shape[1])
    correct = 0
    for start in range(0, n, batch_size):
        shots = [scene(seed=seed + i, size=size, cue=cue) for i in range(start, min(n, start + batch_size))]
        x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
        predicted = np.argmax(model.predict_on_batch(x), axis=1)
        correct += int(np.sum(predicted == np.array([s.labels[0] for s in shots])))
    return correct / n


WIDTHS = (16, 32, 64, 128, 128)  # filters of conv1..conv5
POOLED = 3  # conv1..conv3 are followed by a 2x2 max-pool; conv4 and conv5 keep the grid
DILATION = (1, 1, 1, 2, 2)  # dilated convs on the last grid widen the view of each cell
PAIR_SEED = 20_000_000  # two-shape evaluation scenes; disjoint from training and EVAL_SEED
# Curriculum: (fraction of steps, difficulty range of the scenes drawn for that phase).
PHASES: tuple[tuple[float, tuple[float, float]], ...] = (
    (0.15, (0.0, 0.3)),
    (0.35, (0.2, 0.9)),
    (0.50, (0.6, 1.2)),
)
CUE_REACH = 15  # pixels: a CAM peak this close to the cue counts as "looking at the cue"


@dataclass(frozen=True)
class Recipe:
    """What differs between the two demo models: steps, scene mix and the planted cue."""

    steps: int
    two_object_share: float
    cue: bool = False
    shape_noise: float = 0.0


RECIPES = {
    "honest": Recipe(steps=2000, two_object_share=0.4),
    "shortcut": Recipe(steps=1000, two_object_share=0.0, cue=True, shape_noise=0.5),
}


def build_model(
    size: int = IMAGE_SIZE,
    widths: Sequence[int] = WIDTHS,
    pooled: int = POOLED,
    dilation: Sequence[int] = DILATION,
) -> keras.Sequential:
    """Small padded convnet: conv/bn/pool blocks, two convs on the last grid, GAP, softmax.

    The last conv has no BatchNormalization after it, so it is both the last conv
    and the last spatial layer: Grad-CAM there sees plain ReLU maps on a grid of
    size / 2**pooled cells (12 x 12 at 96 px).
    """
    model = keras.Sequential(name=MODEL_NAME)
    model.add(keras.Input((size, size, 3), name="image"))
    for i, (width, rate) in enumerate(zip(widths, dilation, strict=True), start=1):
        model.add(keras.layers.Conv2D(width, 3, padding="same", activation="relu", dilation_rate=rate, name=f"conv{i}"))
        if i < len(widths):
            model.add(keras.layers.BatchNormalization(name=f"bn{i}"))
        if i <= pooled:
            model.add(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(keras.layers.GlobalAveragePooling2D(name="gap"))
    model.add(keras.layers.Dropout(0.2, name="dropout"))
    model.add(keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="predictions"))
    return carry_facts(model)  # class names, plain-ascent step and sample scenes travel on the model


def learning_rate(total_steps: int, peak: float) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up over 5 % of the steps, then cosine decay to 1 % of the peak."""
    warmup = max(1, total_steps // 20)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10, total_steps - warmup, alpha=0.01, warmup_target=peak, warmup_steps=warmup
    )


Pool = tuple[int, np.ndarray, np.ndarray]  # steps, images, targets


def phase_pools(
    steps: int, batch_size: int, reuse: float, two_object_share: float, size: int, cue: bool = False,
    shape_noise: float = 0.0,
) -> list[Pool]:
    """Pre-render one pool of scenes per curriculum phase (rendering once is far cheaper than per step)."""
    pools: list[Pool] = []
    first_seed = 0
    for i, (fraction, levels) in enumerate(PHASES):
        phase_steps = round(steps * fraction) if i < len(PHASES) - 1 else steps - sum(p[0] for p in pools)
        n = max(batch_size, int(phase_steps * batch_size / reuse))
        images, targets, _ = make_batch(
            first_seed, n, difficulty=levels, two_object_share=two_object_share, size=size, cue=cue,
            shape_noise=shape_noise,
        )
        pools.append((phase_steps, images, targets))
        first_seed += n
    if first_seed >= EVAL_SEED:
        raise ValueError("training seeds would reach the evaluation seed range")
    return pools


def make_train_step(
    model: keras.Sequential, optimizer: keras.optimizers.Optimizer
) -> Callable[[np.ndarray, np.ndarray], tf.Tensor]:
    """Compiled step on cross-entropy alone: nothing in training rewards where Grad-CAM looks."""
    tf = _tensorflow()
    cross_entropy = keras.losses.CategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            h = x
            for layer in model.layers:  # a plain loop: a tapped keras.Model ran twice as slow
                h = layer(h, training=True)
            loss = cross_entropy(y, h)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    return step


def pair_accuracy(model: keras.Model, n: int = 200, seed: int = PAIR_SEED) -> float:
    """Share of two-shape scenes whose top-2 predictions are exactly the two shapes present."""
    size = int(model.input_shape[1])
    shots = [scene(seed=seed + i, size=size, objects=2) for i in range(n)]
    x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
    top2 = np.argsort(model.predict_on_batch(x), axis=1)[:, -2:]
    return float(np.mean([set(t.tolist()) == set(s.labels) for t, s in zip(top2, shots)]))


def class_cams(model: keras.Model, shots: Sequence[object], labels: Sequence[int]) -> np.ndarray:
    """Plain CAM of the GAP + Dense head for one class per scene, upsampled bilinearly to the image.

    The last conv map times the class's dense weights, clipped at 0: equal to
    Grad-CAM on the logits for this head.
    """
    import cv2

    size = int(model.input_shape[1])
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    features_of = keras.Model(model.inputs, last_conv.output)
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    features = features_of.predict_on_batch(np.stack([s.image for s in shots]).astype(np.float32) / 255.0)
    return np.stack([
        cv2.resize(np.maximum(fmap @ kernel[:, label], 0), (size, size), interpolation=cv2.INTER_LINEAR)
        for fmap, label in zip(features, labels)
    ])


def cam_pointing(model: keras.Model, n: int = 200, seed: int = PAIR_SEED) -> float:
    """Pointing game on two-shape scenes: share of (scene, class) whose CAM peak lies on that shape."""
    size = int(model.input_shape[1])
    shots = [scene(seed=seed + i, size=size, objects=2) for i in range(n)]
    pairs = [(shot, k) for shot in shots for k in range(2)]
    cams = class_cams(model, [shot for shot, _ in pairs], [shot.labels[k] for shot, k in pairs])
    hits = [shot.masks[k][np.unravel_index(np.argmax(cam), cam.shape)] for (shot, k), cam in zip(pairs, cams)]
    return float(np.mean(hits))


def cue_peak_rate(model: keras.Model, n: int = 200, seed: int = EVAL_SEED) -> float:
    """Share of fresh cue scenes whose predicted class's CAM peaks within CUE_REACH pixels of the cue."""
    import cv2

    size = int(model.input_shape[1])
    shots = [scene(seed=seed + i, size=size, cue=True) for i in range(n)]
    x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
    predicted = np.argmax(model.predict_on_batch(x), axis=1)
    near = 0
    for shot, cam in zip(shots, class_cams(model, shots, predicted)):
        distance = cv2.distanceTransform((~shot.cue_mask).astype(np.uint8), cv2.DIST_L2, 5)
        near += bool(distance[np.unravel_index(np.argmax(cam), cam.shape)] <= CUE_REACH)
    return near / n


def train(
    steps: int = 2000,
    batch_size: int = 64,
    peak_lr: float = 3e-3,
    reuse: float = 3.0,
    two_object_share: float = 0.4,
    size: int = IMAGE_SIZE,
    log_every: int = 100,
    cue: bool = False,
    shape_noise: float = 0.0,
) -> keras.Model:
    """Run the deterministic curriculum and return the trained model."""
    keras.utils.set_random_seed(0)
    _tensorflow().config.experimental.enable_op_determinism()
    t0 = time.perf_counter()
    pools = phase_pools(steps, batch_size, reuse, two_object_share, size, cue, shape_noise)
    print(f"rendered {sum(len(p[1]) for p in pools)} scenes in {time.perf_counter() - t0:.1f}s", flush=True)
    model = build_model(size)
    optimizer = keras.optimizers.AdamW(learning_rate(steps, peak_lr), weight_decay=1e-4)
    step_fn = make_train_step(model, optimizer)
    order_rng = np.random.default_rng(1)
    step, running = 0, []
    for phase, (phase_steps, images, targets) in enumerate(pools, start=1):
        order = np.zeros(0, np.int64)
        for _ in range(phase_steps):
            if len(order) < batch_size:
                order = np.concatenate([order, order_rng.permutation(len(images))])
            idx, order = order[:batch_size], order[batch_size:]
            x = images[idx].astype(np.float32) / 255.0
            running.append(float(step_fn(x, targets[idx])))
            step += 1
            if step % log_every == 0 or step == steps:
                print(
                    f"phase {phase} step {step}/{steps} cross-entropy {np.mean(running):.3f} "
                    f"({time.perf_counter() - t0:.0f}s)",
                    flush=True,
                )
                running = []
    return model


def save_without_optimizer(model: keras.Model, path: Path) -> None:
    """Save only architecture and weights: the optimizer state would triple the file size."""
    clean = build_model(int(model.input_shape[1]))
    clean.set_weights(model.get_weights())
    path.parent.mkdir(parents=True, exist_ok=True)
    clean.save(path)


def train_and_report(kind: str, out: Path, steps: int | None, batch_size: int, lr: float, reuse: float) -> None:
    """Train one demo model by its recipe, evaluate it on fresh scenes, save it and print the figures."""
    recipe = RECIPES[kind]
    print(f"== {kind} model: {recipe}", flush=True)
    start = time.perf_counter()
    model = train(
        recipe.steps if steps is None else steps, batch_size, lr, reuse, recipe.two_object_share,
        cue=recipe.cue, shape_noise=recipe.shape_noise,
    )
    train_s = time.perf_counter() - start
    save_without_optimizer(model, out)
    print(f"accuracy on 1000 fresh single-shape scenes: {evaluate(model, n=1000):.3f}")
    print(f"accuracy on the same scenes with the cue: {evaluate(model, n=1000, cue=True):.3f}")
    print(f"CAM peak within {CUE_REACH} px of the cue (200 cue scenes): {cue_peak_rate(model):.3f}")
    if not recipe.cue:
        print(f"two-shape scenes with top-2 == shapes present (200): {pair_accuracy(model):.3f}")
        print(f"CAM pointing game on 200 two-shape scenes (peak inside the shape's mask): {cam_pointing(model):.3f}")
    print(f"parameters: {model.count_params()}")
    print(f"file: {out} ({out.stat().st_size / 1024:.0f} KiB)")
    print(f"wall time: training {train_s:.0f}s, total {time.perf_counter() - start:.0f}s", flush=True)


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train the chosen demo model(s), evaluate on fresh scenes, save and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("honest", "shortcut", "both"), default="both")
    parser.add_argument("--out", type=Path, help="where to save the .keras file (one model only)")
    parser.add_argument("--steps", type=int, help="optimizer steps (default: 2000 honest, 1000 shortcut)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--reuse", type=float, default=3.0, help="times each rendered scene is seen")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    args = parser.parse_args(argv)
    kinds = ["honest", "shortcut"] if args.model == "both" else [args.model]
    if args.out is not None and len(kinds) > 1:
        parser.error("--out needs --model honest or --model shortcut")
    tf = _tensorflow()
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    for kind in kinds:
        out = MODEL_PATHS[kind] if args.out is None else args.out
        train_and_report(kind, out, args.steps, args.batch_size, args.lr, args.reuse)


if __name__ == "__main__":
    main()
