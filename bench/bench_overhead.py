"""Per-call overhead of a warm Grad-CAM on the real MobileNet 0.25/128, against a hand-written floor.

Workload: keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3)) with the ImageNet
weights from ../shared/data (or, when they are absent, the same network with seeded random
weights: the cost does not depend on the weight values), one 128x128 uint8 RGB image (seeded
noise), Grad-CAM of the top class at the default layer.

  floor  one hand-written tf.function on the already-preprocessed batch: forward to the feature
         map and the logits, the gradient of the top logit to the feature map, the channel
         weights (spatial mean of the gradient) and the weighted sum; `.numpy()` of the map.
  ours   `Inspector.gradcam(image)` on the uint8 image, warm: everything a user pays (preparing
         the image, preprocessing, the compiled call, ReLU and scaling, the CAM object).

The two alternate (order flipped every round), `--repeats` times each after a warm-up round;
medians of CPU time (`time.process_time`, all threads) are compared, wall time is shown too.
Target: ours <= 1.1x the floor in CPU time.  The maps are checked to agree.

Run:  .venv/bin/python bench/bench_overhead.py     (about 20 s on 2 cores; --repeats N, default 300)
Exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import alternate, footer, header, med_cpu, med_wall  # noqa: E402

import convviz_widgets as cv  # noqa: E402

TARGET = 1.1
SEED = 0
WEIGHTS = Path(__file__).resolve().parents[2] / "shared" / "data" / "mobilenet_2_5_128_tf.h5"


def load_mobilenet() -> tuple[keras.Model, str]:
    """The real ImageNet MobileNet 0.25/128 when its weights are here, else seeded random weights."""
    keras.utils.set_random_seed(SEED)
    if WEIGHTS.is_file():
        return keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(WEIGHTS)), \
            f"MobileNet 0.25/128, ImageNet weights ({WEIGHTS.name})"
    return keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=None), \
        "MobileNet 0.25/128, seeded random weights (the ImageNet weights file is not here)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=300, help="timed runs of each side (default 300)")
    args = parser.parse_args()

    header("bench_overhead: warm Grad-CAM vs a hand-written compiled floor")
    model, about = load_mobilenet()
    print(f"model: {about}")
    image = np.random.default_rng(SEED).integers(0, 256, (128, 128, 3), dtype=np.uint8)
    ins = cv.Inspector(model)
    layer = ins.default_cam_layer
    print(f"layer: {layer}; preprocess: {ins.preprocess_name}")

    features = keras.Model(model.inputs[0], [model.get_layer(layer).output, model.get_layer("predictions").input])

    @tf.function
    def floor(x: tf.Tensor) -> tf.Tensor:
        with tf.GradientTape() as tape:
            feats, logits = features(x, training=False)
            top = tf.reduce_max(logits[0])
        grads = tape.gradient(top, feats)
        weights = tf.reduce_mean(grads[0], axis=(0, 1))
        return tf.reduce_sum(feats[0] * weights, axis=-1)

    x = tf.constant(image[None].astype(np.float32) / 127.5 - 1.0)  # MobileNet's "tf" preprocessing
    cam = ins.gradcam(image)
    raw = floor(x).numpy()
    same = bool(np.allclose(cam.raw, raw, rtol=1e-4, atol=1e-5 * float(np.abs(raw).max())))
    print(f"maps agree (raw weighted sums, rtol 1e-4): {same}")

    ours, base = alternate(lambda: ins.gradcam(image), lambda: floor(x).numpy(), args.repeats)

    ratio_cpu = med_cpu(ours) / med_cpu(base)
    ratio_wall = med_wall(ours) / med_wall(base)
    print(f"floor (compiled forward + gradient + weighted sum): median {med_cpu(base) * 1e3:.2f} CPU-ms, "
          f"{med_wall(base) * 1e3:.2f} ms wall")
    print(f"ours  Inspector.gradcam(image), warm:              median {med_cpu(ours) * 1e3:.2f} CPU-ms, "
          f"{med_wall(ours) * 1e3:.2f} ms wall")
    print(f"ratio ours / floor: CPU {ratio_cpu:.3f}x   wall {ratio_wall:.3f}x   (medians of {args.repeats} each)")
    footer([(f"warm Grad-CAM {med_cpu(ours) * 1e3:.2f} CPU-ms = {ratio_cpu:.3f}x the compiled floor "
             f"(<= {TARGET}x)", ratio_cpu <= TARGET),
            (f"CAM equals the floor's map: {same}", same)])


if __name__ == "__main__":
    main()
