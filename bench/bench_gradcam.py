"""Grad-CAM on VGG16 at 224x224: Inspector.gradcam vs one bare forward + backward pass.

Workload (from the issue): keras.applications.VGG16(weights=None, include_top=True), one
224x224 RGB image (uint8, seeded noise), default Grad-CAM (top class, default layer
block5_conv3).

  ours      `Inspector(model).gradcam(image)`, warm (the first call, which traces, is timed
            separately and reported as "cold").  Everything a user pays is inside: preparing
            the image, preprocessing, the compiled forward + backward to the feature map,
            the channel weights, the weighted sum, ReLU and scaling, the CAM object.
  baseline  a tf.function computing the top logit (the Dense layer's pre-softmax output) and its
            gradient w.r.t. the INPUT image, on the already-preprocessed batch: one full forward
            and one full backward pass, nothing else.  Grad-CAM only needs the gradient down to
            block5_conv3, so it should cost about one forward pass plus a little.

Both are run alternately, 15 times each after warm-up; medians (wall clock) are compared.
Target: ours warm <= 1.5x the baseline.

Run:  .venv/bin/python bench/bench_gradcam.py               (about half a minute on 2 cores)
      .venv/bin/python bench/bench_gradcam.py --model demo  (the demo convnet on a demo scene)
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
from _common import alternate, footer, header, load_bench_model, med_cpu, med_wall, timed  # noqa: E402

import convviz_widgets as cv  # noqa: E402

TARGET = 1.5
SEED = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each side (default 15)")
    parser.add_argument("--model", default="vgg16", choices=["vgg16", "demo"],
                        help="vgg16 at 224x224 (the issue's workload, default) or the demo convnet on a demo scene")
    args = parser.parse_args()

    header(f"bench_gradcam: {args.model} Grad-CAM")
    model, about = load_bench_model(args.model, include_top=True, seed=SEED)
    print(f"model: {about}")
    size = int(model.input_shape[1])
    if args.model == "demo":
        from convviz_widgets.demo import scene

        image = scene(seed=SEED, size=size).image
    else:
        image = np.random.default_rng(SEED).integers(0, 256, (size, size, 3), dtype=np.uint8)
    print(f"image: {image.shape} uint8")

    ins = cv.Inspector(model)  # VGG16 -> "caffe" preprocessing, demo -> "rescale" (the defaults)
    with timed() as t:
        cam = ins.gradcam(image)
    cold = t.sample
    print(f"ours cold (first call, tracing included): {cold.wall:.3f} s; layer {cam.layer}, class {cam.class_index}, "
          f"heatmap {cam.heatmap.shape}")

    # Baseline: top logit and d logit / d input, one forward + one backward.
    dense = model.get_layer("predictions")
    features = keras.Model(model.inputs[0], dense.input)

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.matmul(features(x, training=False), dense.kernel) + dense.bias
            top = tf.reduce_max(logits[0])
        return top, tape.gradient(top, x)

    x = ins.batch(ins.prepare(image))  # the same preprocessed batch the CAM sees
    top, grad = forward_backward(x)
    grad.numpy()
    assert grad.shape == x.shape

    # The CAM's class must be the baseline's top class: same model, same logits.
    same_class = int(tf.argmax(tf.matmul(features(x), dense.kernel) + dense.bias, axis=-1)[0]) == cam.class_index

    ours, base = alternate(lambda: ins.gradcam(image), lambda: forward_backward(x)[1].numpy(), args.repeats)

    ratio = med_wall(ours) / med_wall(base)
    per_pair = np.median([o.wall / b.wall for o, b in zip(ours, base)])
    print(f"baseline forward + backward to the input: median {med_wall(base) * 1e3:.1f} ms "
          f"[{med_cpu(base) * 1e3:.1f} CPU-ms]  (runs: {', '.join(f'{s.wall * 1e3:.3g}' for s in base)})")
    print(f"ours warm Inspector.gradcam(image):       median {med_wall(ours) * 1e3:.1f} ms "
          f"[{med_cpu(ours) * 1e3:.1f} CPU-ms]  (runs: {', '.join(f'{s.wall * 1e3:.3g}' for s in ours)})")
    print(f"ratio ours / baseline: {ratio:.2f}x (medians; median of per-round ratios {per_pair:.2f}x; "
          f"CPU {med_cpu(ours) / med_cpu(base):.2f}x)   <- headline: ratio of medians")
    print(f"CAM class = baseline's top class: {same_class}")
    footer([(f"Grad-CAM warm {med_wall(ours) * 1e3:.1f} ms = {ratio:.2f}x one forward + backward "
             f"(<= {TARGET}x)", ratio <= TARGET)])


if __name__ == "__main__":
    main()
