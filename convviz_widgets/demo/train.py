"""Train the embedded demo convnet deterministically on procedural shape scenes.

Run ``python -m convviz_widgets.demo.train [--out PATH] [--steps N]``.  Training
follows an easy-to-hard curriculum over pre-rendered pools of scenes (cheap to
draw with OpenCV), mixes in two-shape scenes with 0.5/0.5 targets so Grad-CAM
learns to point at each shape, and prints accuracy, wall time and file size.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from . import EVAL_SEED, MODEL_PATH, evaluate
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
    size: int = IMAGE_SIZE, widths: Sequence[int] = WIDTHS, pooled: int = POOLED
) -> keras.Sequential:
    """Small padded convnet: conv/bn/pool blocks, two convs on the last grid, GAP, softmax.

    The last conv has no BatchNormalization after it, so it is both the last conv
    and the last spatial layer: Grad-CAM there sees plain ReLU maps on a grid of
    size / 2**pooled cells (12 x 12 at 96 px).
    """
    model = keras.Sequential(name="convviz_demo")
    model.add(keras.Input((size, size, 3), name="image"))
    for i, width in enumerate(widths, start=1):
        model.add(
            keras.layers.Conv2D(
                width, 3, padding="same", activation="relu", dilation_rate=DILATION[i - 1], name=f"conv{i}"
            )
        )
        if i < len(widths):
            model.add(keras.layers.BatchNormalization(name=f"bn{i}"))
        if i <= pooled:
            model.add(keras.layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(keras.layers.GlobalAveragePooling2D(name="gap"))
    model.add(keras.layers.Dropout(0.2, name="dropout"))
    model.add(keras.layers.Dense(len(CLASS_NAMES), activation="softmax", name="predictions"))
    return model


def learning_rate(total_steps: int, peak: float) -> keras.optimizers.schedules.LearningRateSchedule:
    """Linear warm-up over 5 % of the steps, then cosine decay to 1 % of the peak."""
    warmup = max(1, total_steps // 20)
    return keras.optimizers.schedules.CosineDecay(
        peak / 10, total_steps - warmup, alpha=0.01, warmup_target=peak, warmup_steps=warmup
    )


def phase_pools(
    steps: int, batch_size: int, reuse: float, two_object_share: float, size: int
) -> list[tuple[int, np.ndarray, np.ndarray]]:
    """Pre-render one pool of scenes per curriculum phase: (steps, images, targets) each."""
    pools, first_seed = [], 0
    for i, (fraction, levels) in enumerate(PHASES):
        phase_steps = round(steps * fraction) if i < len(PHASES) - 1 else steps - sum(p[0] for p in pools)
        n = max(batch_size, int(phase_steps * batch_size / reuse))
        images, targets = make_batch(
            first_seed, n, difficulty=levels, two_object_share=two_object_share, size=size
        )
        pools.append((phase_steps, images, targets))
        first_seed += n
    if first_seed >= EVAL_SEED:
        raise ValueError("training seeds would reach the evaluation seed range")
    return pools


def pair_accuracy(model: keras.Model, n: int = 200, seed: int = PAIR_SEED) -> float:
    """Share of two-shape scenes whose top-2 predictions are exactly the two shapes present."""
    size = int(model.input_shape[1])
    shots = [scene(seed=seed + i, size=size, objects=2) for i in range(n)]
    x = np.stack([s.image for s in shots]).astype(np.float32) / 255.0
    top2 = np.argsort(model.predict_on_batch(x), axis=1)[:, -2:]
    return float(np.mean([set(t.tolist()) == set(s.labels) for t, s in zip(top2, shots)]))


def train(
    steps: int = 2000,
    batch_size: int = 64,
    peak_lr: float = 3e-3,
    reuse: float = 3.0,
    two_object_share: float = 0.4,
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
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate(steps, peak_lr), weight_decay=1e-4),
        loss="categorical_crossentropy",
    )
    order_rng = np.random.default_rng(1)
    step, running = 0, []
    for phase, (phase_steps, images, targets) in enumerate(pools, start=1):
        order = np.zeros(0, np.int64)
        for _ in range(phase_steps):
            if len(order) < batch_size:
                order = np.concatenate([order, order_rng.permutation(len(images))])
            idx, order = order[:batch_size], order[batch_size:]
            x = images[idx].astype(np.float32) / 255.0
            running.append(float(model.train_on_batch(x, targets[idx])))
            step += 1
            if step % log_every == 0 or step == steps:
                print(
                    f"phase {phase} step {step}/{steps} loss {np.mean(running):.3f} "
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


def main(argv: Sequence[str] | None = None) -> None:
    """Command-line entry: train, evaluate on fresh scenes, save and report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=MODEL_PATH, help="where to save the .keras file")
    parser.add_argument("--steps", type=int, default=2000, help="optimizer steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=3e-3, help="peak learning rate")
    parser.add_argument("--reuse", type=float, default=3.0, help="times each rendered scene is seen")
    parser.add_argument("--two-object-share", type=float, default=0.4)
    args = parser.parse_args(argv)

    start = time.perf_counter()
    model = train(args.steps, args.batch_size, args.lr, args.reuse, args.two_object_share)
    train_s = time.perf_counter() - start
    accuracy = evaluate(model, n=1000)
    pairs = pair_accuracy(model)
    save_without_optimizer(model, args.out)
    model.summary()
    print(f"accuracy on 1000 fresh single-shape scenes: {accuracy:.3f}")
    print(f"two-shape scenes with top-2 == shapes present (200): {pairs:.3f}")
    print(f"parameters: {model.count_params()}")
    print(f"file: {args.out} ({args.out.stat().st_size / 1024:.0f} KiB)")
    print(f"wall time: training {train_s:.0f}s, total {time.perf_counter() - start:.0f}s")


if __name__ == "__main__":
    main()
