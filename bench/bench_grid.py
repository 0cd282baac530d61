"""Activation grid: render.activation_grid vs the book's per-channel Python loop (DLwP ch. 5.4).

Workload (from the issue): one (28, 28, 512) float32 activation (ReLU of seeded normal noise,
a few channels left all-zero as real ReLU maps have), 16 images per row.

  book  the book's code, verbatim in spirit: for each channel of each full row of 16,
        channel_image -= mean; /= std; *= 64; += 128; clip to 0..255; astype uint8; written
        into a float64 display grid (np.zeros).  Like the book it drops the last partial row
        (512 = 32 x 16, so nothing is dropped here) and works on a copy of the activation (the
        book's code edits the activation in place).  It stops at the grey grid: the book then
        hands it to plt.imshow, which is not timed.
  ours  `convviz_widgets.render.activation_grid(act)` with its defaults (16 per row, 1-pixel
        margins, viridis colour map): it does more than the book (colour mapping to uint8 RGB,
        margins, flat channels shown as mid-grey instead of NaN).

Alternated 30 times each after warm-up; medians compared.  Target: ours >= 5x faster.
A correctness check compares our grey levels with the book's where the book's are finite.

Run:  .venv/bin/python bench/bench_grid.py               (a few seconds)
      .venv/bin/python bench/bench_grid.py --model demo  (the demo convnet's conv maps on a demo
                                                          scene; reported as INFO, no target)
Exits 0 whether or not the target is met.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is imported

import platform  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from _common import Sample, footer, med_cpu, med_wall, timed  # noqa: E402

from convviz_widgets import render  # noqa: E402

TARGET = 5.0
SHAPE = (28, 28, 512)
IMAGES_PER_ROW = 16


def book_grid(layer_activation: np.ndarray, images_per_row: int = IMAGES_PER_ROW) -> np.ndarray:
    """The book's loop over channels (layer_activation is (1, size, size, n_features))."""
    n_features = layer_activation.shape[-1]
    size = layer_activation.shape[1]
    n_cols = n_features // images_per_row  # the last partial row is dropped, as in the book
    display_grid = np.zeros((size * n_cols, images_per_row * size))
    for col in range(n_cols):
        for row in range(images_per_row):
            channel_image = layer_activation[0, :, :, col * images_per_row + row]
            channel_image -= channel_image.mean()
            channel_image /= channel_image.std()
            channel_image *= 64
            channel_image += 128
            channel_image = np.clip(channel_image, 0, 255).astype("uint8")
            display_grid[col * size : (col + 1) * size, row * size : (row + 1) * size] = channel_image
    return display_grid


def compare(act: np.ndarray, repeats: int, label: str, targeted: bool = True) -> list[tuple[str, bool | None]]:
    """Time the book's loop and activation_grid on one (H, W, C) activation, alternately."""
    batch = act[None]
    render.activation_grid(act)  # warm-up (colour table built once)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the book divides dead channels by 0 -> NaN
        book_out = book_grid(batch.copy())
        ours_out = render.activation_grid(act)
        book: list[Sample] = []
        ours: list[Sample] = []
        for i in range(repeats):
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                if which == 0:
                    with timed() as t:
                        render.activation_grid(act)
                    ours.append(t.sample)
                else:
                    data = batch.copy()  # the book edits its input in place; the copy is not timed
                    with timed() as t:
                        book_grid(data)
                    book.append(t.sample)

    # Correctness: our grey levels (before the colour map) vs the book's, on live channels.
    grey = render.normalize_channels(act)
    size = act.shape[0]
    width = act.shape[1]
    diffs = [0]
    for c in range((act.shape[-1] // IMAGES_PER_ROW) * IMAGES_PER_ROW):
        r, k = divmod(c, IMAGES_PER_ROW)
        b = book_out[r * size : (r + 1) * size, k * width : (k + 1) * width]
        if np.isfinite(b).all() and act[..., c].std() > 0:
            diffs.append(int(np.abs(grey[..., c].astype(int) - b.astype(int)).max()))
    max_diff = max(diffs)

    ratio = med_wall(book) / med_wall(ours)
    print(f"[{label}] activation {act.shape}")
    print(f"  book loop (grey grid {book_out.shape}, float64): median {med_wall(book) * 1e3:.2f} ms "
          f"[{med_cpu(book) * 1e3:.2f} CPU-ms]")
    print(f"  ours activation_grid (RGB grid {ours_out.shape}, uint8): median {med_wall(ours) * 1e3:.2f} ms "
          f"[{med_cpu(ours) * 1e3:.2f} CPU-ms]")
    print(f"  speedup book / ours: {ratio:.1f}x (CPU {med_cpu(book) / med_cpu(ours):.1f}x)")
    print(f"  grey levels vs the book on {len(diffs) - 1} live channels: max difference {max_diff} "
          "(ours rounds, the book truncates: <= 1 expected)")
    if not targeted:  # the 5x target is set for the (28, 28, 512) map; other shapes are reported only
        return [(f"[{label}] activation_grid {ratio:.1f}x faster than the book's loop (no target for this shape; "
                 f"grey levels max difference {max_diff})", None)]
    return [(f"[{label}] activation_grid {ratio:.1f}x faster than the book's loop (>= {TARGET}x)", ratio >= TARGET),
            (f"[{label}] same grey levels as the book (max difference {max_diff} <= 1)", max_diff <= 1)]


def demo_activations() -> list[tuple[str, np.ndarray]]:
    """Every conv layer's activation of the demo convnet on a demo scene."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import load_bench_model

    import convviz_widgets as cv
    from convviz_widgets.demo import scene

    model, about = load_bench_model("demo", include_top=True)
    print(f"model: {about}")
    ins = cv.Inspector(model)
    acts = ins.activations(scene(seed=0, size=int(model.input_shape[1])).image)
    return [(f"demo {name}", np.asarray(acts[name], np.float32)) for name in ins.conv_layers]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30, help="timed runs of each side (default 30)")
    parser.add_argument("--model", default="synthetic", choices=["synthetic", "demo"],
                        help="synthetic (28, 28, 512) map (the issue's workload, default) or the demo "
                             "convnet's conv activations on a demo scene")
    args = parser.parse_args()

    print("== bench_grid: activation grid vs the book's per-channel loop ==")
    print(f"python {platform.python_version()}  numpy {np.__version__}")
    if args.model == "demo":
        cases = demo_activations()
    else:
        rng = np.random.default_rng(0)
        act = np.maximum(rng.standard_normal(SHAPE, dtype=np.float32), 0.0)
        act[..., ::97] = 0.0  # a few dead channels, as ReLU layers have
        cases = [("synthetic", act)]
    verdicts = []
    for label, act in cases:
        verdicts += compare(act, args.repeats, label, targeted=args.model == "synthetic")
    footer(verdicts)


if __name__ == "__main__":
    main()
