"""Pointing game of Grad-CAM on a small vision transformer trained briefly on the demo's scenes.

Workload: the ViT of tests/vit_models.py at 64 px (8x8 patches of 8 px, a class token, width 48, 2 blocks,
head on the class token after the final norm; with --pool mean: no class token, 4 register tokens and a
head on the mean of the tokens), trained from a fixed seed with Adam on single-shape demo scenes
(difficulty drawn in 0..1, seeds below the evaluation seeds) for --steps steps of 32 scenes (AdamW, peak
learning rate 2e-3 after a 10 % warm-up, cosine decay, gradients clipped at norm 1).

Measured on --n fresh single-shape scenes (seeds from the demo's EVAL_SEED, standard difficulty):
  accuracy   top-1 of the trained ViT
  pointing   share of scenes whose Grad-CAM (the true class, the package's default layer) peaks within
             15 px of the shape (`metrics.pointing_game`, the Zhang et al. tolerance)
  baselines  the same test for a map that peaks at the image centre and for a uniformly random peak
             (the mean over all pixels): at 64 px a 15 px tolerance covers much of the image, so the
             pointing figure means something only well above these. The same at 0 px (the peak on the
             shape itself) is printed too.

Run:  python bench/bench_vit_pointing.py [--steps 400] [--n 200] [--pool token|mean]
Prints the figures; exits 0 whatever they are (there is no target to meet here).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import numpy as np  # noqa: E402
from vit_models import small_vit  # noqa: E402

SIZE = 64
TOLERANCE = 15


def train_vit(steps: int, pool: str, batch: int = 32, seed: int = 0):
    """A small ViT trained on demo scenes for `steps` steps; returns (model, seconds spent training)."""
    import keras

    from convviz_widgets.demo.scenes import make_batch

    images, targets, _ = make_batch(seed, steps * batch // 4 + batch, difficulty=(0.0, 1.0), size=SIZE)
    registers, class_token = (4, False) if pool == "mean" else (0, True)
    model = small_vit(size=SIZE, patch=8, dim=48, depth=2, heads=4, registers=registers, class_token=class_token,
                      pool=pool, seed=seed)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=2e-3, warmup_steps=steps // 10)
    model.compile(optimizer=keras.optimizers.AdamW(schedule, weight_decay=0.05, clipnorm=1.0),
                  loss="categorical_crossentropy")
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(steps):
        pick = rng.integers(0, len(images), batch)
        flip = images[pick][:, :, ::-1] if rng.random() < 0.5 else images[pick]  # mirrored scenes: same classes
        model.train_on_batch(flip.astype(np.float32), targets[pick])
    return model, time.perf_counter() - start


def measure(model, n: int) -> dict[str, float]:
    """Accuracy, Grad-CAM pointing game and the two baselines on n fresh scenes."""
    import convviz_widgets as cv
    from convviz_widgets import metrics as mx
    from convviz_widgets.demo import EVAL_SEED
    from convviz_widgets.demo.scenes import scene
    from convviz_widgets.metrics.localization import as_mask, distance_to_mask

    shots = [scene(seed=EVAL_SEED + i, size=SIZE) for i in range(n)]
    ins = cv.Inspector(model)
    labels = [s.labels[0] for s in shots]
    cams = ins.gradcam([s.image for s in shots], class_index=labels)
    predicted = [int(np.argmax(ins.probabilities(s.image))) for s in shots]
    centre = np.zeros((SIZE, SIZE), np.float32)
    centre[SIZE // 2, SIZE // 2] = 1.0
    near = [distance_to_mask(as_mask(s.masks[0])) <= TOLERANCE for s in shots]
    return {
        "layer": ins.default_cam_layer,
        "accuracy": float(np.mean(np.array(predicted) == labels)),
        "pointing": float(np.mean([mx.pointing_game(c.heatmap, s.masks[0], tolerance=TOLERANCE)
                                   for c, s in zip(cams, shots)])),
        "blank maps": float(np.mean([not c.heatmap.any() for c in cams])),
        "centre baseline": float(np.mean([mx.pointing_game(centre, s.masks[0], tolerance=TOLERANCE)
                                          for s in shots])),
        "pointing at 0 px": float(np.mean([mx.pointing_game(c.heatmap, s.masks[0], tolerance=0)
                                           for c, s in zip(cams, shots)])),
        "centre at 0 px": float(np.mean([mx.pointing_game(centre, s.masks[0], tolerance=0) for s in shots])),
        "random-peak baseline": float(np.mean([m.mean() for m in near])),
    }


def main() -> None:
    """Train, measure, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--pool", choices=("token", "mean"), default="token")
    args = parser.parse_args()
    import keras

    model, seconds = train_vit(args.steps, args.pool)
    print(f"backend {keras.backend.backend()}: trained {args.steps} steps of 32 scenes in {seconds:.1f} s "
          f"(head: {args.pool})")
    for name, value in measure(model, args.n).items():
        print(f"  {name:22s} {value if isinstance(value, str) else f'{value:.3f}'}")


if __name__ == "__main__":
    main()
