"""Warm Grad-CAM on a ViT-B/16 at 224 px through the package, next to a hand-written compiled floor.

Model: the ViT of tests/vit_models.py at ViT-B/16's size (224 px, 16 px patches: a 14x14 grid and a class
token, 12 blocks of width 768 with 12 heads and an MLP of 3072, a linear 1000-class head on the class token
after the final norm), seeded random weights (the cost does not depend on their values; nothing is
downloaded). The model rescales its own input, so the package's preprocessing is "none".

  package  `Inspector.gradcam(image)` on a seeded uint8 noise image, warm (compiled, image checked once)
  floor    in the backend's own idiom, compiled: the model up to the default CAM layer (the last block's first
           norm, `block11_norm1`) and the residual stream beside it, the rest of the model from those two,
           the gradient of the top logit with respect to the layer's tokens, the class token dropped, the
           mean gradient over the 196 patch tokens as channel weights, the weighted sum, ReLU. TensorFlow:
           `tf.function` + `tf.GradientTape`; JAX: `stateless_call` + `jax.grad` under `jax.jit`; PyTorch:
           `torch.autograd.grad` on the Keras layers, eager. The floor gets float32 pixels already on the device.

The two sides run strictly alternately (order flipped every round) after a warm-up; medians of CPU time
(all threads) and wall time are printed with their ratios, and the maps are compared. Target (issue 19):
the package <= 1.2x the floor in CPU time. Runs on the backend `KERAS_BACKEND` names.

Run:  KERAS_BACKEND=jax python bench/bench_vit.py [--repeats 5]     (2 shared cores: about a minute)
Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from gpu_backends import PackageFailed, _values, alternate, median, versions  # noqa: E402
from vit_models import small_vit  # noqa: E402

import convviz_widgets as cv  # noqa: E402

TARGET = 1.2
SIZE, PATCH, DIM, DEPTH, HEADS, MLP, CLASSES = 224, 16, 768, 12, 12, 4, 1000
LAYER, RESIDUAL = f"block{DEPTH - 1}_norm1", f"block{DEPTH - 2}_add2"


def vit_b16() -> keras.Model:
    """ViT-B/16 at 224 px with seeded random weights and a linear head."""
    return small_vit(size=SIZE, patch=PATCH, dim=DIM, depth=DEPTH, heads=HEADS, classes=CLASSES, head="linear",
                     mlp=MLP, seed=0)


def last_block(model: keras.Model) -> keras.Model:
    """The model after the CAM layer as a model of its own: (residual stream, the layer's tokens) -> logits."""
    b = DEPTH - 1
    residual, tokens = (keras.Input(tuple(model.get_layer(n).output.shape[1:])) for n in (RESIDUAL, LAYER))
    get = model.get_layer
    y = get(f"block{b}_attention")(tokens, tokens)
    x = get(f"block{b}_add1")([residual, y])
    y = get(f"block{b}_mlp2")(get(f"block{b}_mlp1")(get(f"block{b}_norm2")(x)))
    x = get("final_norm")(get(f"block{b}_add2")([x, y]))
    return keras.Model([residual, tokens], get("predictions")(x[:, 0]))


def floor_gradcam(model: keras.Model) -> Callable[[Any], np.ndarray]:
    """f(float32 pixels (B, 224, 224, 3) on the device) -> ReLU'd Grad-CAM (B, 14, 14) of each top logit."""
    trunk = keras.Model(model.inputs[0], [model.get_layer(RESIDUAL).output, model.get_layer(LAYER).output])
    head = last_block(model)
    grid = SIZE // PATCH
    backend = keras.config.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function
        def cam(x: Any) -> Any:
            residual, tokens = trunk(x, training=False)
            with tf.GradientTape() as tape:
                tape.watch(tokens)
                top = tf.reduce_sum(tf.reduce_max(head([residual, tokens], training=False), axis=-1))
            grads = tape.gradient(top, tokens)[:, 1:]
            maps = tf.reduce_sum(tokens[:, 1:] * tf.reduce_mean(grads, axis=1)[:, None, :], axis=-1)
            return tf.reshape(tf.nn.relu(maps), (-1, grid, grid))

        return lambda x: cam(x).numpy()
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def step(tv, ntv, hv, hn, x):  # noqa: ANN001, ANN202 - JAX pytrees
            (residual, tokens), _ = trunk.stateless_call(tv, ntv, x, training=False)

            def top(t):  # noqa: ANN001, ANN202
                logits, _ = head.stateless_call(hv, hn, [residual, t], training=False)
                return jnp.sum(jnp.max(logits, axis=-1))

            grads = jax.grad(top)(tokens)[:, 1:]
            maps = jnp.sum(tokens[:, 1:] * jnp.mean(grads, axis=1)[:, None, :], axis=-1)
            return jax.nn.relu(maps).reshape(-1, grid, grid)

        compiled = jax.jit(step)
        state = _values(trunk) + _values(head)
        return lambda x: np.asarray(compiled(*state, x))
    import torch

    def cam(x: Any) -> np.ndarray:
        with torch.no_grad():
            residual, tokens = trunk(x, training=False)
        tokens = tokens.detach().requires_grad_(True)
        with torch.enable_grad():
            top = head([residual, tokens], training=False).max(dim=-1).values.sum()
            (grads,) = torch.autograd.grad(top, tokens)
        with torch.no_grad():
            maps = (tokens[:, 1:] * grads[:, 1:].mean(dim=1)[:, None, :]).sum(dim=-1)
            return torch.relu(maps).reshape(-1, grid, grid).cpu().numpy()

    return cam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each side (default 5)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each side first (default 1)")
    args = parser.parse_args()
    print(f"bench_vit: warm Grad-CAM on ViT-B/16 at {SIZE} px vs a hand-written floor, {keras.config.backend()}, "
          f"medians of {args.repeats}\n{versions()}\n{cv.describe_device()}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}", flush=True)
    start = time.perf_counter()
    model = vit_b16()
    print(f"model built in {time.perf_counter() - start:.1f} s: {model.count_params():,} parameters", flush=True)
    image = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    ins = cv.Inspector(model)
    assert ins.default_cam_layer == LAYER and ins.preprocess_name == "none", (ins.default_cam_layer,
                                                                               ins.preprocess_name)
    floor = floor_gradcam(model)
    x = keras.ops.convert_to_tensor(image[None].astype(np.float32))
    cold = {}
    for name, arm in (("package", lambda: ins.gradcam(image)), ("floor", lambda: floor(x))):
        t0 = time.perf_counter()
        arm()
        cold[name] = time.perf_counter() - t0
    print(f"first calls (tracing and compiling): package {cold['package']:.1f} s, floor {cold['floor']:.1f} s",
          flush=True)
    try:
        ours, theirs = alternate(lambda: ins.gradcam(image), lambda: floor(x), args.repeats, warmup=args.warmup)
    except PackageFailed as failed:
        print(failed.reason)
        return
    ref = floor(x)[0]
    live = int((ref > 0).sum())  # a blank map would agree trivially: say how much of it is above zero
    ref = ref / max(float(ref.max()), 1e-12)
    cam = ins.gradcam(image)
    diff = float(np.abs(cam.heatmap - ref).max())
    cpu, wall = median(ours, 1) / median(theirs, 1), median(ours) / median(theirs)
    print(f"load average at end: {os.getloadavg()[0]:.1f}\n")
    print("| backend | package CPU ms | floor CPU ms | CPU ratio | package wall ms | floor wall ms | wall ratio | "
          "maps | target <= 1.2x (CPU) |\n|---|---:|---:|---:|---:|---:|---:|---|---|")
    maps = f"max abs map diff {diff:.1e}; {live} of {ref.size} cells > 0"
    print(f"| {keras.config.backend()} | {median(ours, 1) * 1e3:.0f} | {median(theirs, 1) * 1e3:.0f} | {cpu:.2f}x | "
          f"{median(ours) * 1e3:.0f} | {median(theirs) * 1e3:.0f} | {wall:.2f}x | {maps} | "
          f"{'PASS' if cpu <= TARGET else 'FAIL'} |")
    print("\nCPU ms per run, package: " + ", ".join(f"{s[1] * 1e3:.0f}" for s in ours)
          + "; floor: " + ", ".join(f"{s[1] * 1e3:.0f}" for s in theirs))


if __name__ == "__main__":
    main()
