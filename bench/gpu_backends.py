"""The three views on whatever Keras backend and device this process finds, next to a hand-written floor.

Keras's backend is `KERAS_BACKEND` (tensorflow, jax or torch); the device is the backend's own choice (a
GPU when it sees one). For each piece of work the package's call and a floor written in the backend's own
idiom run alternately, `--repeats` times each after a warm-up, and the medians are printed side by side:

  work                               package call                                 the floor
  Grad-CAM, 1 image / 32 images      `Inspector.gradcam(image or list)`            forward to the CAM layer, gradient
                                                                                    of each image's top logit to it,
                                                                                    channel means, weighted sum, ReLU
  64 filter patterns, 64 px, 40 steps `Inspector.filter_patterns(layer, range(64))` the book's batched ascent: one
                                                                                    compiled step (mean activation of
                                                                                    each image's filter, gradient to
                                                                                    the pixels scaled to RMS 1, as
                                                                                    the package does, step) x 40,
                                                                                    from the package's start pictures
  top_examples, 2,000 demo scenes    `Inspector.top_examples(layer, scenes, k=9)`  compiled forward to the layer and
                                                                                    the spatial max, batches of 64,
                                                                                    running top 9 in numpy

Floors per backend (`model.stateless_call` + `jax.grad` under `jax.jit` on JAX; `torch.autograd.grad` on the
Keras model called eagerly on PyTorch; `tf.function` + `tf.GradientTape` on TensorFlow). The floors get their
input already preprocessed and on the device (Grad-CAM, patterns): a stricter floor than the package, which
takes uint8 images from the host. Every result is brought back to numpy on both sides (which waits for the
device); on top of that the clock is read only after `torch.cuda.synchronize()` / `block_until_ready`.

Model: `keras.applications.VGG16(weights=None)` (seeded random weights: the cost does not depend on their
values; nothing is downloaded) at 224 px with its classifier (linear, `classifier_activation=None`); with
`--size S` other than 224 its conv trunk at S px with a global-average-pool + 1000-unit linear head.
top_examples runs VGG16's trunk at the demo scenes' size (96 px, `--scenes` scenes drawn by
`convviz_widgets.demo.scene`), layer `block5_conv3`.

Run:  KERAS_BACKEND=jax python bench/gpu_backends.py           (a GPU: about a minute)
      KERAS_BACKEND=torch python bench/gpu_backends.py --quick  (CPU smoke run: a few minutes)
      --json FILE writes the table as JSON too.  Exits 0 whatever the figures.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

if "--installed" not in sys.argv:  # the source tree's package, unless the installed one is asked for
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets import demo  # noqa: E402
from convviz_widgets.core.filters import start_images  # noqa: E402

SEED = 0
CAFFE_MEAN_BGR = np.array([103.939, 116.779, 123.68], np.float32)
EXAMPLE_LAYER, EXAMPLE_K, EXAMPLE_BATCH = "block5_conv3", 9, 64


# ----- models ---------------------------------------------------------------------------------------
def vgg16(size: int) -> keras.Model:
    """VGG16 with seeded random weights and a linear head: the full network at 224 px, else its trunk + GAP + Dense."""
    keras.utils.set_random_seed(SEED)
    if size == 224:
        return keras.applications.VGG16(weights=None, classifier_activation=None)
    trunk = keras.applications.VGG16(weights=None, include_top=False, input_shape=(size, size, 3))
    x = keras.layers.GlobalAveragePooling2D(name="gap")(trunk.output)
    return keras.Model(trunk.input, keras.layers.Dense(1000, name="predictions")(x), name="vgg16")


def caffe(pixels: np.ndarray) -> np.ndarray:
    """VGG16's preprocessing in numpy: RGB -> BGR, minus the ImageNet mean."""
    return np.asarray(pixels, np.float32)[..., ::-1] - CAFFE_MEAN_BGR


PREPROCESS = {"caffe": caffe, "rescale": lambda pixels: np.asarray(pixels, np.float32) / 255.0}


# ----- timing ---------------------------------------------------------------------------------------
def sync() -> None:
    """Wait for the device to finish what was queued (PyTorch on CUDA; the others finish on to_numpy)."""
    if keras.config.backend() == "torch":
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()


def done(value: Any) -> Any:
    """Block until a (possibly nested) result is computed: JAX's block_until_ready, else nothing to do."""
    if keras.config.backend() == "jax":
        import jax

        jax.block_until_ready(value)
    return value


class PackageFailed(Exception):
    """The package's side raised: the floor was timed alone (`times`), `reason` says what went wrong."""

    def __init__(self, reason: str, times: tuple[list, list]) -> None:
        super().__init__(reason)
        self.reason, self.times = reason, times


def alternate(package: Callable[[], Any], floor: Callable[[], Any], repeats: int, warmup: int = 2
              ) -> tuple[list[tuple[float, float]], list[tuple[float, float]]]:
    """(wall, CPU) seconds of each side, run strictly alternately (order flipped every round) after a warm-up.

    When the package's side fails, the floor is still timed and `PackageFailed` carries its times.
    """
    try:
        done(package())
    except Exception as error:  # noqa: BLE001 - reported in the table, the floor still measured
        last = (str(error).strip().splitlines() or [""])[-1]
        reason = f"package failed: {type(error).__name__}: {' '.join(last.split())}"
        _, floor_times = alternate(lambda: None, floor, repeats, warmup)
        raise PackageFailed(reason, ([], floor_times)) from error
    arms, times = (package, floor), ([], [])
    for _ in range(warmup):
        for arm in arms:
            done(arm())
    for i in range(repeats):
        for which in ((0, 1) if i % 2 == 0 else (1, 0)):
            sync()
            c0, w0 = time.process_time(), time.perf_counter()
            done(arms[which]())
            sync()
            times[which].append((time.perf_counter() - w0, time.process_time() - c0))
    return times


def median(samples: list[tuple[float, float]], which: int = 0) -> float:
    """Median wall (0) or CPU (1) seconds; NaN for a side that did not run."""
    return float(statistics.median(s[which] for s in samples)) if samples else float("nan")


@dataclass
class Row:
    """One line of the table: medians in milliseconds, and how the two sides' results agree."""

    work: str
    package_ms: float
    floor_ms: float
    package_cpu_ms: float
    floor_cpu_ms: float
    agree: str

    @property
    def ratio(self) -> float:
        return self.package_ms / self.floor_ms


# ----- floors, one per backend ----------------------------------------------------------------------
class Floors:
    """Hand-written compiled steps for one model on the backend Keras runs: Grad-CAM, ascent, max read-out."""

    def __init__(self, model: keras.Model) -> None:
        self.model = model
        self.backend = keras.config.backend()
        self.dense = model.layers[-1]  # the classifier: its input and weights give the logits

    def tensor(self, array: np.ndarray) -> Any:
        """An array placed on the backend's device once (the floors' inputs)."""
        return keras.ops.convert_to_tensor(np.ascontiguousarray(array))

    def gradcam(self, layer: str) -> Callable[[Any], np.ndarray]:
        """f(preprocessed batch on the device) -> ReLU'd Grad-CAM of each image's top logit, numpy (n, h, w)."""
        trunk = keras.Model(self.model.inputs[0], self.model.get_layer(layer).output)
        return getattr(self, f"_gradcam_{self.backend}")(trunk, self.head(layer))

    def head(self, layer: str) -> keras.Model:
        """The layers between `layer` and the classifier as a model of their own (the features under the Dense).

        Written for chain models (VGG16, the demo convnet): the layers after `layer` are called on a new input.
        """
        layers = self.model.layers
        start = next(i for i, lay in enumerate(layers) if lay.name == layer)
        x = h = keras.Input(tuple(self.model.get_layer(layer).output.shape[1:]))
        for lay in layers[start + 1 : -1]:
            h = lay(h)
        return keras.Model(x, h)

    def _gradcam_jax(self, trunk: keras.Model, head: keras.Model) -> Callable[[Any], np.ndarray]:
        import jax
        import jax.numpy as jnp

        def step(tv, ntv, hv, hn, dense, x):  # noqa: ANN001, ANN202 - JAX pytrees
            feats, _ = trunk.stateless_call(tv, ntv, x, training=False)

            def top(f):  # noqa: ANN001, ANN202
                h, _ = head.stateless_call(hv, hn, f, training=False)
                return jnp.sum(jnp.max(h @ dense[0] + dense[1], axis=-1))  # each image's own top logit

            grads = jax.grad(top)(feats)
            return jax.nn.relu(jnp.sum(feats * jnp.mean(grads, axis=(1, 2))[:, None, None, :], axis=-1))

        compiled = jax.jit(step)
        state = _values(trunk) + _values(head) + ([self.dense.kernel.value, self.dense.bias.value],)
        return lambda x: np.asarray(compiled(*state, x))

    def _gradcam_torch(self, trunk: keras.Model, head: keras.Model) -> Callable[[Any], np.ndarray]:
        import torch

        def cam(x: Any) -> np.ndarray:
            with torch.no_grad():
                feats = trunk(x, training=False)
            feats = feats.detach().requires_grad_(True)
            with torch.enable_grad():
                logits = head(feats, training=False) @ self.dense.kernel.value + self.dense.bias.value
                (grads,) = torch.autograd.grad(logits.max(dim=-1).values.sum(), feats)
            with torch.no_grad():
                maps = torch.relu((feats * grads.mean(dim=(1, 2))[:, None, None, :]).sum(dim=-1))
            return maps.cpu().numpy()

        return cam

    def _gradcam_tensorflow(self, trunk: keras.Model, head: keras.Model) -> Callable[[Any], np.ndarray]:
        import tensorflow as tf

        @tf.function
        def cam(x: Any) -> Any:
            feats = trunk(x, training=False)
            with tf.GradientTape() as tape:
                tape.watch(feats)
                logits = head(feats, training=False) @ self.dense.kernel + self.dense.bias
                top = tf.reduce_sum(tf.reduce_max(logits, axis=-1))
            grads = tape.gradient(top, feats)
            return tf.nn.relu(tf.reduce_sum(feats * tf.reduce_mean(grads, axis=(1, 2))[:, None, None, :], axis=-1))

        return lambda x: cam(x).numpy()

    def ascent(self, layer: str, steps: int, step_size: float = 1.0) -> Callable[[Any, Any], np.ndarray]:
        """f(start pixels (n, s, s, 3) on the device, filters (n,)) -> each filter's final mean activation."""
        features = keras.Model(self.model.inputs[0], self.model.get_layer(layer).output)
        return getattr(self, f"_ascent_{self.backend}")(features, steps, step_size)

    def _ascent_jax(self, features: keras.Model, steps: int, step_size: float) -> Callable[[Any, Any], np.ndarray]:
        import jax
        import jax.numpy as jnp

        mean_bgr = jnp.asarray(CAFFE_MEAN_BGR)

        def activation(tv, ntv, x, filters):  # noqa: ANN001, ANN202
            acts, _ = features.stateless_call(tv, ntv, jnp.flip(x, axis=-1) - mean_bgr, training=False)
            mine = jnp.take_along_axis(acts, filters[:, None, None, None], axis=-1)
            return jnp.mean(mine, axis=(1, 2, 3))

        def step(tv, ntv, x, filters):  # noqa: ANN001, ANN202
            grads = jax.grad(lambda p: jnp.sum(activation(tv, ntv, p, filters)))(x)
            grads = grads / jnp.maximum(jnp.max(jnp.abs(grads), axis=(1, 2, 3), keepdims=True), 1e-30)
            rms = jnp.sqrt(jnp.mean(grads**2, axis=(1, 2, 3), keepdims=True))
            return x + step_size * grads / jnp.maximum(rms, 1e-30)

        compiled, read = jax.jit(step), jax.jit(activation)
        tv, ntv = _values(features)

        def run(x: Any, filters: Any) -> np.ndarray:
            for _ in range(steps):
                x = compiled(tv, ntv, x, filters)
            return np.asarray(read(tv, ntv, x, filters))

        return run

    def _ascent_torch(self, features: keras.Model, steps: int, step_size: float) -> Callable[[Any, Any], np.ndarray]:
        import torch

        mean_bgr = self.tensor(CAFFE_MEAN_BGR)

        def activation(x: Any, filters: Any) -> Any:
            acts = features(torch.flip(x, dims=(-1,)) - mean_bgr, training=False)
            return torch.take_along_dim(acts, filters[:, None, None, None].long(), dim=-1).mean(dim=(1, 2, 3))

        def run(x: Any, filters: Any) -> np.ndarray:
            x = x.clone()
            for _ in range(steps):
                x.requires_grad_(True)
                with torch.enable_grad():
                    (grads,) = torch.autograd.grad(activation(x, filters).sum(), x)
                with torch.no_grad():
                    grads = grads / grads.abs().amax(dim=(1, 2, 3), keepdim=True).clamp_min(1e-30)
                    x = x + step_size * grads / grads.pow(2).mean(dim=(1, 2, 3), keepdim=True).sqrt().clamp_min(1e-30)
            with torch.no_grad():
                return activation(x, filters).cpu().numpy()

        return run

    def _ascent_tensorflow(self, features: keras.Model, steps: int, step_size: float
                           ) -> Callable[[Any, Any], np.ndarray]:
        import tensorflow as tf

        def activation(x: Any, filters: Any) -> Any:
            acts = features(tf.reverse(x, axis=[-1]) - CAFFE_MEAN_BGR, training=False)
            return tf.reduce_mean(tf.gather(acts, filters, axis=-1, batch_dims=1), axis=(1, 2))

        @tf.function
        def step(x: Any, filters: Any) -> Any:
            with tf.GradientTape() as tape:
                tape.watch(x)
                total = tf.reduce_sum(activation(x, filters))
            grads = tape.gradient(total, x)
            grads = grads / tf.maximum(tf.reduce_max(tf.abs(grads), axis=(1, 2, 3), keepdims=True), 1e-30)
            return x + step_size * grads / tf.maximum(tf.sqrt(tf.reduce_mean(grads**2, axis=(1, 2, 3), keepdims=True)),
                                                      1e-30)

        read = tf.function(activation)

        def run(x: Any, filters: Any) -> np.ndarray:
            for _ in range(steps):
                x = step(x, filters)
            return read(x, filters).numpy()

        return run

    def peaks(self, layer: str) -> Callable[[np.ndarray], np.ndarray]:
        """f(uint8 batch on the host) -> each image's spatial maximum per channel (n, C), numpy."""
        features = keras.Model(self.model.inputs[0], self.model.get_layer(layer).output)

        def maxima(x: Any) -> Any:
            acts = features(keras.ops.flip(keras.ops.cast(x, "float32"), axis=-1) - CAFFE_MEAN_BGR, training=False)
            return keras.ops.max(acts, axis=(1, 2))

        if self.backend == "jax":
            import jax

            tv, ntv = _values(features)

            def pure(tv, ntv, x):  # noqa: ANN001, ANN202
                x = jax.numpy.flip(x.astype("float32"), axis=-1) - CAFFE_MEAN_BGR
                acts, _ = features.stateless_call(tv, ntv, x, training=False)
                return acts.max(axis=(1, 2))

            compiled = jax.jit(pure)
            return lambda x: np.asarray(compiled(tv, ntv, x))
        if self.backend == "torch":
            import torch

            def eager(x: np.ndarray) -> np.ndarray:
                with torch.no_grad():
                    return keras.ops.convert_to_numpy(maxima(keras.ops.convert_to_tensor(x)))

            return eager
        import tensorflow as tf

        compiled_tf = tf.function(maxima)
        return lambda x: compiled_tf(x).numpy()


def _values(model: keras.Model) -> tuple[list[Any], list[Any]]:
    """(trainable, non-trainable) variable values of a model, for `stateless_call` under jax.jit."""
    return [v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables]


def top_k_stream(peaks: Callable[[np.ndarray], np.ndarray], scenes: np.ndarray, k: int, batch: int) -> np.ndarray:
    """Indices (C, k) of the k scenes with the highest peak per channel, streamed in padded batches."""
    best_v: np.ndarray | None = None
    best_i: np.ndarray | None = None
    for start in range(0, len(scenes), batch):
        chunk = scenes[start : start + batch]
        real = len(chunk)
        if real < batch:  # one compiled shape: pad the last batch and drop the padding
            chunk = np.concatenate([chunk, np.zeros((batch - real, *chunk.shape[1:]), chunk.dtype)])
        values = peaks(chunk)[:real].T  # (C, real)
        index = np.broadcast_to(np.arange(start, start + real), values.shape)
        if best_v is not None:
            values, index = np.concatenate([best_v, values], axis=1), np.concatenate([best_i, index], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]
        best_v, best_i = np.take_along_axis(values, order, 1), np.take_along_axis(index, order, 1)
    assert best_i is not None
    return best_i


# ----- the four pieces of work ----------------------------------------------------------------------
def bench_gradcam(model: keras.Model, n: int, repeats: int, preprocess: str = "caffe",
                  images: np.ndarray | None = None, name: str = "") -> Row:
    """Grad-CAM of n images (each image's top class) at the model's default CAM layer (its last conv)."""
    size = int(model.inputs[0].shape[1])
    if images is None:
        images = np.random.default_rng(SEED).integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    ins = cv.Inspector(model, preprocess=preprocess)
    layer = ins.default_cam_layer
    floors = Floors(model)
    floor, x = floors.gradcam(layer), floors.tensor(PREPROCESS[preprocess](images))
    ask = images[0] if n == 1 else list(images)
    package = lambda: ins.gradcam(ask, batch_size=max(n, 1))  # noqa: E731
    work = f"Grad-CAM{name}, {n} image{'s' if n > 1 else ''}, {size} px"
    try:
        times = alternate(package, lambda: floor(x), repeats)
    except PackageFailed as failed:
        return row(work, failed.times, failed.reason)
    cams = package()
    heat = np.stack([c.heatmap for c in (cams if isinstance(cams, list) else [cams])])
    ref = floor(x)
    ref = ref / np.maximum(ref.reshape(n, -1).max(axis=1), 1e-12)[:, None, None]
    blank = int(np.sum(ref.reshape(n, -1).max(axis=1) <= 0))
    agree = f"max abs map diff {float(np.abs(heat - ref).max()):.1e}" + (f" ({blank} blank maps)" if blank else "")
    return row(work, times, agree)


def bench_patterns(model: keras.Model, layer: str, count: int, size: int, steps: int, repeats: int) -> Row:
    """`count` filter patterns of `layer` (plain ascent, step 1 pixel level) vs the batched book loop."""
    ins = cv.Inspector(model, preprocess="caffe")
    floors = Floors(model)
    run = floors.ascent(layer, steps)
    start = start_images(count, size, 3, SEED)  # the package's start pictures: the results must agree
    x, filters = floors.tensor(start), floors.tensor(np.arange(count, dtype=np.int32))
    package = lambda: ins.filter_patterns(layer, range(count), size=size, steps=steps)  # noqa: E731
    work = f"{count} filter patterns, {layer}, {size} px, {steps} steps"
    try:
        times = alternate(package, lambda: run(x, filters), repeats, warmup=1)
    except PackageFailed as failed:
        return row(work, failed.times, failed.reason)
    ours, theirs = package().final_activation, run(x, filters)
    live = np.abs(theirs) > 1e-6
    rel = float(np.median(np.abs(ours[live] - theirs[live]) / np.abs(theirs[live]))) if live.any() else float("nan")
    agree = f"final activations: median rel. diff {rel:.2%}"
    return row(work, times, agree)


def bench_examples(scenes: np.ndarray, repeats: int) -> Row:
    """top_examples (k=9, batches of 64) of VGG16's trunk over demo scenes vs a compiled forward + numpy top-k."""
    model = vgg16(scenes.shape[1])
    ins = cv.Inspector(model, preprocess="caffe")
    peaks = Floors(model).peaks(EXAMPLE_LAYER)
    package = lambda: ins.top_examples(EXAMPLE_LAYER, scenes, k=EXAMPLE_K, batch_size=EXAMPLE_BATCH)  # noqa: E731
    floor = lambda: top_k_stream(peaks, scenes, EXAMPLE_K, EXAMPLE_BATCH)  # noqa: E731
    work = f"top_examples, {len(scenes)} scenes, {scenes.shape[1]} px, {EXAMPLE_LAYER}"
    try:
        times = alternate(package, floor, repeats, warmup=1)
    except PackageFailed as failed:
        return row(work, failed.times, failed.reason)
    same = float(np.mean(package().indices == floor()))
    return row(work, times, f"same indices {same:.1%}")


def row(work: str, times: tuple[list, list], agree: str) -> Row:
    """A table row from the two sides' (wall, CPU) samples."""
    ours, floor = times
    return Row(work, median(ours) * 1e3, median(floor) * 1e3, median(ours, 1) * 1e3, median(floor, 1) * 1e3, agree)


# ----- report ---------------------------------------------------------------------------------------
def versions() -> str:
    """Python, Keras, the backend's framework and the package, as one line."""
    backend = keras.config.backend()
    module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
    return (f"Python {platform.python_version()}, Keras {keras.__version__}, {backend} {module.__version__}, "
            f"convviz_widgets {cv.__version__}, numpy {np.__version__}")


def print_table(rows: list[Row], repeats: int) -> None:
    print(f"\nmedians of {repeats} runs each, alternating:")
    print("| work | package ms | floor ms | ratio | package CPU ms | floor CPU ms | agreement |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        cells = [r.work, _cell(r.package_ms, ".2f"), _cell(r.floor_ms, ".2f"), _cell(r.ratio, ".2f", "x"),
                 _cell(r.package_cpu_ms, ".1f"), _cell(r.floor_cpu_ms, ".1f"), r.agree[:160]]
        print("| " + " | ".join(cells) + " |", flush=True)


def _cell(value: float, spec: str, suffix: str = "") -> str:
    """A number for the table; '-' for a side that did not run (NaN)."""
    return "-" if value != value else f"{value:{spec}}{suffix}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="CPU smoke run: 3 repeats, VGG16 at 64 px, 16 patterns of 10 steps, 128 scenes")
    parser.add_argument("--repeats", type=int, help="timed runs of each side (default 20; --quick 3)")
    parser.add_argument("--size", type=int, help="VGG16 input size for Grad-CAM and patterns (default 224)")
    parser.add_argument("--layer", default="block4_conv1", help="filter-pattern layer (default block4_conv1)")
    parser.add_argument("--scenes", type=int, help="demo scenes for top_examples (default 2000)")
    parser.add_argument("--works", default="cam1,cam32,patterns,examples", help="comma-separated subset")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--installed", action="store_true", help="import the installed package, not this tree's")
    args = parser.parse_args()
    repeats = args.repeats or (3 if args.quick else 20)
    size = args.size or (64 if args.quick else 224)
    count, steps = (16, 10) if args.quick else (64, 40)
    n_scenes = args.scenes or (128 if args.quick else 2000)
    works = set(args.works.split(","))

    print(f"device: {cv.describe_device()}")
    print(versions())
    print(f"backend: {keras.config.backend()}; repeats {repeats}; VGG16 {size} px", flush=True)
    model = vgg16(size)
    rows = []
    if "cam1" in works:
        rows.append(bench_gradcam(model, 1, repeats))
    if "cam32" in works:
        rows.append(bench_gradcam(model, 8 if args.quick else 32, repeats))
    if "patterns" in works:
        rows.append(bench_patterns(model, args.layer, count, 64, steps, repeats))
    if "examples" in works:
        scenes = np.stack([demo.scene(seed=i).image for i in range(n_scenes)])
        rows.append(bench_examples(scenes, max(1, repeats // 4) if args.quick else repeats))
    print_table(rows, repeats)
    if args.json:
        args.json.write_text(json.dumps({"device": cv.describe_device(), "versions": versions(),
                                         "backend": keras.config.backend(),
                                         "rows": [asdict(r) | {"ratio": r.ratio} for r in rows]}, indent=1))


if __name__ == "__main__":
    main()
