"""Train the embedded demo convnet deterministically on procedural shape scenes.

Run ``python -m convviz_widgets.demo.train [--out PATH] [--steps N]``.  Training
follows an easy-to-hard curriculum over pre-rendered pools of scenes (cheap to
draw with OpenCV), mixes in two-shape scenes with 0.5/0.5 targets, and adds a
weak localisation term (class evidence of the GAP head should sit on the shape
it names) so Grad-CAM's hottest cell lands on the right object rather than just
beside its edge.  It prints accuracy, wall time, parameter count and file size.

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
from pathlib import Path

import numpy as np

from . import EVAL_SEED, MODEL_NAME, MODEL_PATH, evaluate
from .scenes import CLASS_NAMES, IMAGE_SIZE, make_batch, scene

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402  (after quieting TensorFlow's start-up log)
import tensorflow as tf  # noqa: E402

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
    model.class_names = list(CLASS_NAMES)  # Inspector and the panel pick these up by themselves
    return model


def learning_rate(total_steps: int, peak: float) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up over 5 % of the steps, then cosine decay to 1 % of the peak."""
    warmup = max(1, total_steps // 20)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10, total_steps - warmup, alpha=0.01, warmup_target=peak, warmup_steps=warmup
    )


Pool = tuple[int, np.ndarray, np.ndarray, np.ndarray]  # steps, images, targets, coverage


def phase_pools(steps: int, batch_size: int, reuse: float, two_object_share: float, size: int) -> list[Pool]:
    """Pre-render one pool of scenes per curriculum phase (rendering once is far cheaper than per step)."""
    pools: list[Pool] = []
    first_seed = 0
    for i, (fraction, levels) in enumerate(PHASES):
        phase_steps = round(steps * fraction) if i < len(PHASES) - 1 else steps - sum(p[0] for p in pools)
        n = max(batch_size, int(phase_steps * batch_size / reuse))
        batch = make_batch(first_seed, n, difficulty=levels, two_object_share=two_object_share, size=size)
        pools.append((phase_steps, *batch))
        first_seed += n
    if first_seed >= EVAL_SEED:
        raise ValueError("training seeds would reach the evaluation seed range")
    return pools


def localisation_loss(cam: tf.Tensor, targets: tf.Tensor, coverage: tf.Tensor, margin: float = 1.0) -> tf.Tensor:
    """Penalty, per class present, for class evidence that lies off that class's own shape.

    ``cam`` (batch, grid, grid, classes) is the last conv map times the dense
    kernel: exactly what CAM / Grad-CAM draw for a GAP + Dense head.  Two parts:
    the share of positive evidence on cells the shape does not cover, and a
    hinge asking the map's peak to sit on a cell mostly covered by the shape
    (and to be positive there), so the heat-map's hottest spot points at it.
    """
    positive = tf.nn.relu(cam)
    off_share = tf.reduce_sum(positive * (1.0 - coverage), axis=(1, 2)) / (tf.reduce_sum(positive, axis=(1, 2)) + 1e-6)
    best = tf.reduce_max(coverage, axis=(1, 2), keepdims=True)
    inside = (coverage >= 0.5) | (coverage >= best)
    peak_in = tf.reduce_max(tf.where(inside, cam, -1e4), axis=(1, 2))
    peak_out = tf.reduce_max(tf.where(inside, -1e4, cam), axis=(1, 2))
    hinge = tf.nn.relu(margin + peak_out - peak_in) + tf.nn.relu(margin - peak_in)
    present = tf.cast(targets > 0, tf.float32)
    return tf.reduce_sum((off_share + hinge) * present) / tf.reduce_sum(present)


def make_train_step(
    model: keras.Sequential, optimizer: keras.optimizers.Optimizer, loc_weight: float
) -> Callable[[np.ndarray, np.ndarray, np.ndarray], tuple[tf.Tensor, tf.Tensor]]:
    """Compiled step: cross-entropy plus a weak localisation term so Grad-CAM lands on the shapes."""
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    kernel = model.get_layer("predictions").kernel
    cross_entropy = keras.losses.CategoricalCrossentropy()

    @tf.function(reduce_retracing=True)
    def step(x: tf.Tensor, y: tf.Tensor, coverage: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        with tf.GradientTape() as tape:
            h = x
            for layer in model.layers:  # a plain loop: a tapped keras.Model ran twice as slow
                h = layer(h, training=True)
                if layer is last_conv:
                    features = h
            ce = cross_entropy(y, h)
            loc = localisation_loss(tf.einsum("bhwk,kc->bhwc", features, kernel), y, coverage)
            loss = ce + loc_weight * loc
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return ce, loc

    return step


def pair_accuracy(model: keras.Model, n: int = 200, seed: int = PAIR_SEED) -> float:
    """Share of two-shape scenes whose top-2 predictions are exactly the two shapes present."""
    size = int(model.input_shape[1])
    shots = [scene(seed=seed + i, size=size, objects=2) for i in range(n)]
    x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
    top2 = np.argsort(model.predict_on_batch(x), axis=1)[:, -2:]
    return float(np.mean([set(t.tolist()) == set(s.labels) for t, s in zip(top2, shots)]))


def cam_pointing(model: keras.Model, n: int = 200, seed: int = PAIR_SEED) -> float:
    """Pointing game on two-shape scenes: share of (scene, class) whose CAM peak lies on that shape.

    Uses the plain CAM of the GAP + Dense head (last conv map times the class's
    dense weights), upsampled bilinearly to the image; equal to Grad-CAM on logits.
    """
    import cv2

    size = int(model.input_shape[1])
    last_conv = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)][-1]
    features_of = keras.Model(model.inputs, last_conv.output)
    kernel = keras.ops.convert_to_numpy(model.get_layer("predictions").kernel)
    shots = [scene(seed=seed + i, size=size, objects=2) for i in range(n)]
    features = features_of.predict_on_batch(np.stack([s.image for s in shots]).astype(np.float32) / 255.0)
    hits = 0
    for shot, fmap in zip(shots, features):
        for label, mask in zip(shot.labels, shot.masks):
            cam = cv2.resize(np.maximum(fmap @ kernel[:, label], 0), (size, size), interpolation=cv2.INTER_LINEAR)
            hits += bool(mask[np.unravel_index(np.argmax(cam), cam.shape)])
    return hits / (2 * n)


def train(
    steps: int = 2000,
    batch_size: int = 64,
    peak_lr: float = 3e-3,
    reuse: float = 3.0,
    two_object_share: float = 0.4,
    loc_weight: float = 0.5,
    size: int = IMAGE_SIZE,
    log_every: int = 100,
) -> keras.Model:
    """Run the deterministic curriculum and return the trained model."""
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    t0 = time.perf_counter()
    pools = phase_pools(steps, batch_size, reuse, two_object_share, size)
    print(f"rendered {sum(len(p[1]) for p in pools)} scenes in {time.perf_counter() - t0:.1f}s", flush=True)
    model = build_model(size)
    optimizer = keras.optimizers.AdamW(learning_rate(steps, peak_lr), weight_decay=1e-4)
    step_fn = make_train_step(model, optimizer, loc_weight)
    order_rng = np.random.default_rng(1)
    step, running = 0, []
    for phase, (phase_steps, images, targets, coverage) in enumerate(pools, start=1):
        order = np.zeros(0, np.int64)
        for _ in range(phase_steps):
            if len(order) < batch_size:
                order = np.concatenate([order, order_rng.permutation(len(images))])
            idx, order = order[:batch_size], order[batch_size:]
            x = images[idx].astype(np.float32) / 255.0
            ce, loc = step_fn(x, targets[idx], coverage[idx].astype(np.float32))
            running.append((float(ce), float(loc)))
            step += 1
            if step % log_every == 0 or step == steps:
                ce_mean, loc_mean = np.mean(running, axis=0)
                print(
                    f"phase {phase} step {step}/{steps} cross-entropy {ce_mean:.3f} "
                    f"localisation {loc_mean:.3f} ({time.perf_counter() - t0:.0f}s)",
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train, evaluate on fresh scenes, save and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where to save the .keras file")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--reuse", type=float, default=3.0, help="times each rendered scene is seen")
    parser.add_argument("--two-object-share", type=float, default=0.4)
    parser.add_argument("--loc-weight", type=float, default=0.5, help="weight of the localisation term")
    parser.add_argument("--threads", type=int, default=0, help="TensorFlow intra-op threads (0: all cores)")
    args = parser.parse_args(argv)
    if args.threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.threads)

    start = time.perf_counter()
    model = train(args.steps, args.batch_size, args.lr, args.reuse, args.two_object_share, args.loc_weight)
    train_s = time.perf_counter() - start
    accuracy = evaluate(model, n=1000)
    pairs = pair_accuracy(model)
    pointing = cam_pointing(model)
    save_without_optimizer(model, args.out)
    model.summary()
    print(f"accuracy on 1000 fresh single-shape scenes: {accuracy:.3f}")
    print(f"two-shape scenes with top-2 == shapes present (200): {pairs:.3f}")
    print(f"CAM pointing game on 200 two-shape scenes (peak inside the shape's mask): {pointing:.3f}")
    print(f"parameters: {model.count_params()}")
    print(f"file: {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    print(f"wall time: training {train_s:.0f}s, total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
