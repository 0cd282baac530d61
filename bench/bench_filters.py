"""Filter patterns: convviz_widgets vs the book's one-filter-at-a-time loop (DLwP ch. 5.4).

Workload (from the issue): VGG16 (weights=None, include_top=False), layer block3_conv1,
filters 0..63, 64x64 pixels, 40 steps of size 1, the package's seed-0 start images.

What is timed, all in one process, interleaved so that load from other jobs hits both sides:

  ours cold  first `convviz_widgets.filter_patterns(model, ...)` on the model: builds the
             Inspector, traces the graph and the tf.function, runs the 64-filter batch.
  ours warm  the same call again (compiled step reused); run twice, median reported.
  book       the book's loop as a user runs it: for each filter a fresh tf.function
             (loss = mean of that filter's channel of `keras.Model(model.input, layer.output)`,
             gradient w.r.t. the input, divided by its RMS + 1e-5, x += grads * 1.0),
             40 steps at batch 1, then the book's deprocess; tracing included, because the
             book builds a new gradient function per filter.  Run in two halves (filters 0-31,
             32-63) with our warm runs in between; the figure is the sum.
  matmul     float32 tf.matmul 2048x2048 in a tf.function, probed 5x before, between and
             after the runs above; median over all probes = the machine's yardstick.

The book loop gets the same preprocessing as the package (VGG16's "caffe" preset: RGB->BGR,
mean subtraction, ~0.5 % of a step) and the same start image per filter, so its final
activations can be compared with ours filter by filter.

FLOP counting ("nominal FLOPs of the book's algorithm"), per image and step:
  forward  F = sum over the convs up to and including block3_conv1, at ALL its 256 channels,
               of 2 * H_out * W_out * C_in * C_out * k_h * k_w
               (64x64 input: 14.2 + 302.0 + 151.0 + 302.0 + 151.0 = 920.1 MFLOP)
  backward B = the gradient w.r.t. each conv's input (Conv2DBackpropInput), which costs
               exactly the forward FLOPs of that conv: B = F, first layer included, because
               the algorithm needs d loss / d image.  No weight gradients: the algorithm does
               not need them and TensorFlow prunes them from the tf.function (no
               Conv2DBackpropFilter in the profile).  A training-style count ("backward =
               2x forward") would add the weight gradients that are never computed; we do not
               use it.
  Bias, ReLU, pooling, the loss and the update are memory-bound and < 0.2 % of the FLOPs:
  not counted.  Nominal total = 64 filters * 40 steps * 2F = 4.711 TFLOP.
  Effective GFLOP/s = nominal total / our wall time.  Our implementation does less than
  nominal (the target layer computes one channel per image, not 256), which is the point.

Headlines: speedup = book / ours COLD (both sides pay their own tracing: the conservative
figure); effective GFLOP/s = with ours WARM (steady-state compute).  The other variants are
printed too.  Targets: speedup >= 1.4x; effective GFLOP/s >= 85 % of the matmul's GFLOP/s.

Run:  .venv/bin/python bench/bench_filters.py          (about 3-4 minutes on 2 cores)
      .venv/bin/python bench/bench_filters.py --quick  (16 filters; a smoke test, no verdict)
      .venv/bin/python bench/bench_filters.py --model demo  (the demo convnet, layer conv3, all
                                                       64 filters; same targets, same report)
Exits 0 whether or not the targets are met.
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
from _common import MatmulProbe, Sample, footer, header, load_bench_model, med, med_cpu, med_wall, timed  # noqa: E402

import convviz_widgets as cv  # noqa: E402
from convviz_widgets.core import filters as fp  # noqa: E402

LAYERS = {"vgg16": "block3_conv1", "demo": "conv3"}  # demo: its third conv, all 64 filters
SIZE = 64  # the picture size; a model with a fixed input size (the demo) uses its own
STEPS = 40
STEP_SIZE = 1.0
SEED = 0
TARGET_SPEEDUP = 1.4
TARGET_EFFICIENCY = 0.85


def conv_flops(model: keras.Model, last: str, size: int) -> list[tuple[str, float]]:
    """Forward FLOPs (2 * MACs) of every Conv2D up to and including `last`, all channels."""
    probe = keras.Model(model.inputs[0], [c.output for c in model.layers if isinstance(c, keras.layers.Conv2D)])
    shapes = [tuple(o.shape) for o in probe.compute_output_spec(keras.KerasTensor((1, size, size, 3)))]
    out = []
    convs = [c for c in model.layers if isinstance(c, keras.layers.Conv2D)]
    for layer, shape in zip(convs, shapes):
        kh, kw, cin, cout = layer.kernel.shape
        out.append((layer.name, 2.0 * shape[1] * shape[2] * cin * cout * kh * kw))
        if layer.name == last:
            break
    return out


_CONV_OPS = ("Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative", "DepthwiseConv2dNativeBackpropInput")


def graph_flops(concrete) -> tuple[float, dict[str, float], int, int]:
    """FLOPs of the convolutions a traced function really runs.

    Only ops that the function's outputs depend on are counted (what TensorFlow keeps after
    pruning).  Returns (total, per op type, weight-gradient ops traced, weight-gradient ops kept).
    """
    graph = concrete.graph
    seen, stack = set(), [t.op for t in concrete.outputs]
    while stack:
        op = stack.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        stack.extend(t.op for t in op.inputs)
        stack.extend(op.control_inputs)
    per_type: dict[str, float] = {}
    filt_all = filt_kept = 0
    for op in graph.get_operations():
        if op.type in ("Conv2DBackpropFilter", "DepthwiseConv2dNativeBackpropFilter"):
            filt_all += 1
            filt_kept += op.name in seen
        if op.type not in _CONV_OPS or op.name not in seen:
            continue
        kernel = op.inputs[1].shape.as_list()  # (kh, kw, C_in, C_out or multiplier)
        big = op.outputs[0].shape.as_list() if op.type in ("Conv2D", "DepthwiseConv2dNative") \
            else op.inputs[2].shape.as_list()  # the conv's output (or its gradient)
        if None in kernel or None in big:
            raise RuntimeError(f"{op.name}: shape not static, cannot count FLOPs")
        kh, kw, cin, _ = kernel
        n, oh, ow, cout = big
        per_out = kh * kw * (cin if op.type.startswith("Conv2D") else 1)
        per_type[op.type] = per_type.get(op.type, 0.0) + 2.0 * n * oh * ow * cout * per_out
    return sum(per_type.values()), per_type, filt_all, filt_kept


def book_deprocess(x: np.ndarray) -> np.ndarray:
    """The book's deprocess_image (1st edition, ch. 5.4)."""
    x = x - x.mean()
    x /= x.std() + 1e-5
    x *= 0.1
    x += 0.5
    x = np.clip(x, 0, 1)
    x *= 255
    return np.clip(x, 0, 255).astype("uint8")


def book_pattern(feature_extractor: keras.Model, preprocess, filter_index: int, start: np.ndarray,
                 count_only: bool = False):
    """The book's generate_pattern for one filter; returns (raw pixels, picture, first-call time)."""

    @tf.function  # a fresh gradient function per filter, as in the book
    def iterate(image):
        with tf.GradientTape() as tape:
            tape.watch(image)
            activation = feature_extractor(preprocess(image))
            loss = tf.reduce_mean(activation[:, :, :, filter_index])
        grads = tape.gradient(loss, image)
        grads /= tf.sqrt(tf.reduce_mean(tf.square(grads))) + 1e-5
        return loss, grads

    if count_only:
        return iterate.get_concrete_function(tf.TensorSpec(start.shape, tf.float32))
    image = start.copy()
    first = None
    for i in range(STEPS):
        if i == 0:
            with timed() as t:
                _, grads = iterate(tf.constant(image))
                grads = grads.numpy()
            first = t.sample
        else:
            _, grads = iterate(tf.constant(image))
            grads = grads.numpy()
        image += grads * STEP_SIZE
    return image, book_deprocess(image[0]), first


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 filters, one warm run: a smoke test")
    parser.add_argument("--model", default="vgg16", choices=["vgg16", "demo"],
                        help="vgg16 (the issue's workload, default) or the package's demo convnet (conv3)")
    args = parser.parse_args()
    layer_name = LAYERS[args.model]
    n_filters = 16 if args.quick else 64
    filters = list(range(n_filters))

    header(f"bench_filters: {args.model} {layer_name} filter patterns")
    # VGG16 without its top has the book's (None, None, 3) input.
    model, about = load_bench_model(args.model, include_top=False, seed=SEED)
    print(f"model: {about}")
    fixed = model.input_shape[1]
    size = SIZE if fixed is None else int(fixed)
    print(f"workload: {layer_name}, {n_filters} filters, {size}x{size}, {STEPS} steps, step {STEP_SIZE}, seed {SEED}")

    flops = conv_flops(model, layer_name, size)
    fwd = sum(f for _, f in flops)
    per_image_step = 2.0 * fwd  # forward + input-gradient backward
    nominal = per_image_step * STEPS * n_filters
    print("nominal FLOPs per image and step (forward; the input-gradient backward costs the same):")
    for name, f in flops:
        print(f"  {name:14s} {f / 1e6:8.1f} MFLOP")
    print(f"  forward F = {fwd / 1e6:.1f} MFLOP; F + backward = {per_image_step / 1e6:.1f} MFLOP; "
          f"total = {n_filters} x {STEPS} x {per_image_step / 1e6:.1f} MFLOP = {nominal / 1e12:.3f} TFLOP")
    sys.stdout.flush()

    mm = MatmulProbe()
    mm.probe()

    # ----- ours, cold (first call on this model: Inspector, tracing, run) ---------------------
    with timed() as t:
        cold_res = cv.filter_patterns(model, layer_name, filters, size=size, steps=STEPS, step_size=STEP_SIZE,
                                      seed=SEED)
    ours_cold = t.sample
    print(f"ours cold: {ours_cold.wall:.2f} s wall, {ours_cold.cpu:.2f} s CPU")
    sys.stdout.flush()
    mm.probe()

    # ----- the book, in halves, with our warm runs in between ----------------------------------
    feature_extractor = keras.Model(model.inputs[0], model.get_layer(layer_name).output)  # as the book does
    preprocess = cv.Inspector(model)._preprocess  # the package's preset for VGG16 ("caffe")
    x0 = fp.start_images(n_filters, size, 3, SEED)  # the package's start images, one per filter
    halves = [filters[: n_filters // 2], filters[n_filters // 2:]]
    book_images = np.zeros_like(x0)
    book_samples: list[Sample] = []
    first_calls: list[Sample] = []
    warm: list[Sample] = []
    warm_res = []
    runs = 1 if args.quick else 2
    for h, half in enumerate(halves):
        with timed() as t:
            for i in half:
                raw, _, first = book_pattern(feature_extractor, preprocess, i, x0[i : i + 1].copy())
                book_images[i] = raw[0]
                first_calls.append(first)
        book_samples.append(t.sample)
        print(f"book filters {half[0]}-{half[-1]}: {t.sample.wall:.2f} s wall, {t.sample.cpu:.2f} s CPU")
        sys.stdout.flush()
        mm.probe()
        if h < runs:
            with timed() as t:
                warm_res.append(cv.filter_patterns(model, layer_name, filters, size=size, steps=STEPS,
                                                   step_size=STEP_SIZE, seed=SEED))
            warm.append(t.sample)
            print(f"ours warm: {t.sample.wall:.2f} s wall, {t.sample.cpu:.2f} s CPU")
            sys.stdout.flush()
            mm.probe()

    book = Sample(sum(s.wall for s in book_samples), sum(s.cpu for s in book_samples))
    warm_wall, warm_cpu = med_wall(warm), med_cpu(warm)

    # ----- correctness: same start image, same maths -> the same final activations -------------
    @tf.function
    def diag_act(x):
        a = tf.reduce_mean(feature_extractor(preprocess(x)), axis=[1, 2])
        return tf.gather(a, tf.constant(filters)[:, None], batch_dims=1)[:, 0]

    book_start = diag_act(tf.constant(x0)).numpy()
    book_final = diag_act(tf.constant(book_images)).numpy()
    ours = warm_res[-1]
    deterministic = all(np.array_equal(r.images, cold_res.images) for r in warm_res)
    live = book_start > 0  # a filter that is dead (ReLU 0 everywhere) has no gradient to climb
    rel = np.abs(ours.final_activation - book_final) / np.maximum(np.abs(book_final), 1e-6)
    grew = ours.final_activation[live] >= 2.0 * np.maximum(ours.start_activation[live], 1e-3)
    start_match = np.max(np.abs(ours.start_activation - book_start) / np.maximum(book_start, 1e-6))
    print("-- correctness (ours vs the book loop, same start images) --")
    print(f"start activation: max relative difference {start_match:.2e}")
    gain = ours.final_activation[live] / np.maximum(ours.start_activation[live], 1e-6)
    print(f"final activation: book median {np.median(book_final):.3f}, "
          f"ours median {np.median(ours.final_activation):.3f}; "
          f"relative difference median {np.median(rel[live]):.2e}, max {np.max(rel[live]) if live.any() else 0:.2e}")
    print(f"final / start (ours, live filters): min {np.min(gain) if live.any() else 0:.1f}x, "
          f"median {np.median(gain) if live.any() else 0:.1f}x; "
          f"{int((~live).sum())} dead filter(s) (zero start activation, zero gradient) in both")
    worst = np.argsort(-np.where(live, rel, 0))[:4]
    for i in worst:
        print(f"  filter {filters[i]:3d}: start {book_start[i]:.4f}  book final {book_final[i]:.4f}  "
              f"ours final {ours.final_activation[i]:.4f}  rel diff {rel[i]:.2e}")
    print(f"deterministic (cold and warm runs give identical pictures): {deterministic}")
    agree = not live.any() or float(np.median(rel[live])) < 0.02
    rose = bool((ours.final_activation >= ours.start_activation).all())
    correct = bool(grew.all()) and agree and deterministic

    # ----- raw FLOPs: what each side really executes, counted from the traced graphs -----------
    raw_note = ""
    try:
        insp = cv.core.inspector_for(model)
        # private: bench only; the compiled step and read-out for exactly these filters and size, traced
        # again here as concrete functions of the same maths to count the ops they run
        step_fn, measure_fn = insp._patterns._plain_fns(insp.layer(layer_name).name, size, len(filters))
        images = tf.TensorSpec([len(filters), size, size, 3], tf.float32)
        indices = tf.TensorSpec([len(filters)], tf.int32)
        step_flops, step_types, filt_all, filt_kept = graph_flops(
            tf.function(step_fn.python_function).get_concrete_function(images, indices, tf.TensorSpec([], tf.float32)))
        measure_flops, _, _, _ = graph_flops(tf.function(measure_fn.python_function).get_concrete_function(images,
                                                                                                         indices))
        raw_ours = STEPS * step_flops + measure_flops
        book_step_flops, _, book_filt_all, book_filt_kept = graph_flops(
            book_pattern(feature_extractor, preprocess, 0, x0[:1], count_only=True))
        raw_book = STEPS * n_filters * book_step_flops
        print("-- FLOPs counted from the traced graphs (ops the outputs depend on) --")
        print(f"ours, one step for {n_filters} images: {step_flops / 1e9:.1f} GFLOP = "
              + ", ".join(f"{k} {v / 1e9:.2f}" for k, v in sorted(step_types.items()))
              + f"; final read-out {measure_flops / 1e9:.1f} GFLOP; run total {raw_ours / 1e12:.3f} TFLOP "
              f"({raw_ours / nominal:.0%} of nominal)")
        print(f"book, one step for 1 image: {book_step_flops / 1e6:.1f} MFLOP (nominal says "
              f"{per_image_step / 1e6:.1f}); run total {raw_book / 1e12:.3f} TFLOP")
        print(f"weight-gradient ops (Conv2DBackpropFilter) traced / kept: ours {filt_all}/{filt_kept}, "
              f"book {book_filt_all}/{book_filt_kept}  (kept = 0: TensorFlow prunes them)")
    except Exception as err:  # noqa: BLE001 - the count uses private API; timing stands without it
        raw_ours = raw_book = None
        raw_note = f" (raw FLOPs unavailable: {type(err).__name__}: {err})"

    # ----- figures -----------------------------------------------------------------------------
    first_wall = med([s.wall for s in first_calls])
    book_step = (book.wall - sum(s.wall for s in first_calls)) / (n_filters * (STEPS - 1))
    print("-- timing (wall clock; CPU seconds of this process in brackets) --")
    print(f"matmul 2048^2 float32: {mm.gflops_wall():.1f} GFLOP/s median (best {mm.gflops_best():.1f}; "
          f"{mm.gflops_cpu():.1f} GFLOP per CPU-second), {len(mm.samples)} probes")
    print(f"book loop, {n_filters} filters, tracing included: {book.wall:.2f} s  [{book.cpu:.2f} CPU-s]  "
          f"(first call per filter, i.e. tracing + 1 step: median {first_wall:.3f} s; "
          f"later steps: {book_step * 1e3:.1f} ms each)")
    print(f"ours cold (Inspector + tracing + run): {ours_cold.wall:.2f} s  [{ours_cold.cpu:.2f} CPU-s]")
    print(f"ours warm: median {warm_wall:.2f} s  [{warm_cpu:.2f} CPU-s]  runs: "
          + ", ".join(f"{s.wall:.2f}" for s in warm))
    sp_cold, sp_warm = book.wall / ours_cold.wall, book.wall / warm_wall
    sp_cold_cpu, sp_warm_cpu = book.cpu / ours_cold.cpu, book.cpu / warm_cpu
    print(f"speedup book / ours cold: {sp_cold:.2f}x wall  [{sp_cold_cpu:.2f}x CPU]   <- headline")
    print(f"speedup book / ours warm: {sp_warm:.2f}x wall  [{sp_warm_cpu:.2f}x CPU]")
    eff_warm = nominal / warm_wall / 1e9
    eff_cold = nominal / ours_cold.wall / 1e9
    eff_book = nominal / book.wall / 1e9
    eff_warm_cpu = nominal / warm_cpu / 1e9
    print(f"effective GFLOP/s (nominal {nominal / 1e12:.3f} TFLOP / wall): ours warm {eff_warm:.1f} "
          f"= {eff_warm / mm.gflops_wall():.0%} of matmul   <- headline; ours cold {eff_cold:.1f} "
          f"({eff_cold / mm.gflops_wall():.0%}); book {eff_book:.1f} ({eff_book / mm.gflops_wall():.0%})")
    print(f"per CPU-second: ours warm {eff_warm_cpu:.1f} GFLOP/CPU-s = {eff_warm_cpu / mm.gflops_cpu():.0%} "
          f"of matmul's {mm.gflops_cpu():.1f}")
    if raw_ours is not None:
        print(f"raw GFLOP/s (FLOPs actually executed / wall): ours warm {raw_ours / warm_wall / 1e9:.1f} "
              f"= {raw_ours / warm_wall / 1e9 / mm.gflops_wall():.0%} of matmul "
              f"[{raw_ours / warm_cpu / 1e9:.1f} GFLOP/CPU-s = {raw_ours / warm_cpu / 1e9 / mm.gflops_cpu():.0%}]; "
              f"book {raw_book / book.wall / 1e9:.1f} [{raw_book / book.cpu / 1e9:.1f} GFLOP/CPU-s, tracing included]")
    else:
        print("raw GFLOP/s: n/a" + raw_note)

    if args.quick:
        print("(--quick: smoke test only, no verdict)")
        return
    if args.model != "vgg16":
        # The targets are set for VGG16 block3_conv1; a small model is reported, not judged,
        # except for correctness.  (With x/255 preprocessing a 1-pixel step is small, so
        # activations grow slowly: the book's loop gives the same numbers.)
        footer([
            (f"speedup vs the book loop, ours cold: {sp_cold:.2f}x (warm: {sp_warm:.2f}x); "
             "targets are set for VGG16", None),
            (f"effective GFLOP/s, ours warm: {eff_warm:.1f} = {eff_warm / mm.gflops_wall():.0%} of matmul", None),
            ("correctness: no filter's activation falls, median relative difference to the book < 2 %, "
             "deterministic", rose and agree and deterministic),
        ])
        return
    footer([
        (f"speedup vs the book loop, ours cold: {sp_cold:.2f}x >= {TARGET_SPEEDUP}x "
         f"(warm: {sp_warm:.2f}x)", sp_cold >= TARGET_SPEEDUP),
        (f"effective GFLOP/s, ours warm: {eff_warm:.1f} = {eff_warm / mm.gflops_wall():.0%} of matmul "
         f">= {TARGET_EFFICIENCY:.0%}", eff_warm >= TARGET_EFFICIENCY * mm.gflops_wall()),
        ("correctness: every live filter's final activation >= 2x its start, median relative "
         "difference to the book < 2 %, deterministic", correct),
    ])


if __name__ == "__main__":
    main()
