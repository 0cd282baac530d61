"""Same pictures on every Keras backend: the demo model's CAMs, filter patterns and top examples.

Keras picks its backend once, at import, so each backend runs this file as a script in its own
interpreter (`KERAS_BACKEND=...`), which saves its results to an .npz; the tests compare JAX and
PyTorch with TensorFlow:

- every registered CAM method's normalised map (the CAM's `heatmap`, in [0, 1]): max abs difference <= 1e-3;
- filter patterns, both recipes, a few filters of two layers: final activations, median relative
  difference <= 2 %;
- `top_examples` over 100 demo scenes: the same image indices (a swap is accepted only between two
  images whose activations are equal to within float32 rounding, where the order is a coin toss).

A backend whose package is not installed is skipped with that reason; a part that fails on a backend
fails its tests with its error.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = "tensorflow"
OTHERS = ("jax", "torch")

SCENES = ((0, 1), (2, 2), (4, 3))  # (label, seed offset): three fixed demo scenes, each CAM'd for its own label
PATTERN_FILTERS = (0, 1, 2, 3)
PATTERN_SIZE, PATTERN_STEPS = 64, 20
PATTERN_MODES = ("plain", "regularized")
EXAMPLE_SCENES, EXAMPLE_K, EXAMPLE_LAYER = 100, 5, "conv5"

CAM_TOLERANCE = 1e-3  # max abs difference of maps scaled to [0, 1]
PATTERN_TOLERANCE = 0.02  # median relative difference of the final activations
TIE = 1e-4  # relative: two activations this close are a tie, either order is right

pytestmark = [pytest.mark.slow]


# ----- the script each backend runs -------------------------------------------------------------------
def compute(out: Path) -> None:
    """Compute everything compared here on the backend this interpreter runs, and save it to `out`.

    Each part (cams, patterns, examples) is computed on its own: a part that fails saves its error
    under `error/<part>`, and only the tests of that part fail with it.
    """
    import traceback

    import keras

    import convviz_widgets as cv
    from convviz_widgets import demo

    ins = cv.Inspector(demo.load_model(), preprocess=demo.PREPROCESS)
    saved: dict[str, np.ndarray] = {"backend": np.array(keras.config.backend())}
    for part, fn in (("cams", _cams), ("patterns", _patterns), ("examples", _examples)):
        try:
            saved.update(fn(cv, demo, ins))
        except Exception:  # noqa: BLE001 - the part's tests report it
            saved[f"error/{part}"] = np.array(traceback.format_exc()[-3000:])
    np.savez(out, **saved)


def _cams(cv, demo, ins) -> dict[str, np.ndarray]:  # noqa: ANN001 - modules and an Inspector
    """Every registered CAM method's maps of the fixed scenes, each for its own label."""
    images = np.stack([demo.scene(label=label, seed=demo.EVAL_SEED + s).image for label, s in SCENES])
    labels = [label for label, _ in SCENES]
    methods = list(cv.cam_methods(ins))
    saved = {"methods": np.array(methods)}
    for method in methods:
        cams = ins.gradcam(images, class_index=labels, method=method)
        saved[f"cam/{method}"] = np.stack([c.heatmap for c in cams]).astype(np.float32)
    return saved


def _patterns(cv, demo, ins) -> dict[str, np.ndarray]:  # noqa: ANN001
    """Both recipes' start and final activations for a few filters of an early and the last conv layer."""
    layers = (ins.conv_layers[1], ins.conv_layers[-1])
    saved = {"pattern_layers": np.array(layers)}
    for mode in PATTERN_MODES:
        for layer in layers:
            pats = ins.filter_patterns(layer, PATTERN_FILTERS, size=PATTERN_SIZE, steps=PATTERN_STEPS, mode=mode)
            saved[f"pattern/{mode}/{layer}/start"] = np.asarray(pats.start_activation, np.float32)
            saved[f"pattern/{mode}/{layer}/final"] = np.asarray(pats.final_activation, np.float32)
    return saved


def _examples(cv, demo, ins) -> dict[str, np.ndarray]:  # noqa: ANN001
    """top_examples of the last conv layer over the first demo scenes."""
    top = ins.top_examples(EXAMPLE_LAYER, demo.example_images(EXAMPLE_SCENES), k=EXAMPLE_K)
    return {"top/indices": np.asarray(top.indices), "top/values": np.asarray(top.values, np.float32)}


# ----- running it under each backend ------------------------------------------------------------------
def _missing(backend: str) -> str | None:
    """Why `backend` cannot run here (its package is not installed), or None."""
    package = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend]
    return None if importlib.util.find_spec(package) else f"{package} is not installed, so Keras cannot run on it"


def _run(backend: str, out: Path) -> dict[str, np.ndarray]:
    """Run this file as a script under `backend` and load what it saved."""
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
               PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p))
    proc = subprocess.run([sys.executable, __file__, str(out)], env=env, capture_output=True, text=True,
                          timeout=900)
    if proc.returncode != 0:
        pytest.fail(f"the {backend} backend failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory):
    """backend -> its saved results, computed on first use (each backend once per test run)."""
    cache: dict[str, dict[str, np.ndarray]] = {}
    folder = tmp_path_factory.mktemp("backends")

    def get(backend: str, part: str) -> dict[str, np.ndarray]:
        reason = _missing(backend)
        if reason:
            pytest.skip(reason)
        if backend not in cache:
            cache[backend] = _run(backend, folder / f"{backend}.npz")
            assert str(cache[backend]["backend"]) == backend, "KERAS_BACKEND did not choose the backend"
        if f"error/{part}" in cache[backend]:
            pytest.fail(f"{part} failed on the {backend} backend:\n{cache[backend][f'error/{part}']}")
        return cache[backend]

    return get


# ----- the comparisons ------------------------------------------------------------------------------
@pytest.mark.parametrize("backend", OTHERS)
def test_every_cam_method_draws_the_same_map_as_tensorflow(results, backend: str) -> None:
    ref, other = results(REFERENCE, "cams"), results(backend, "cams")
    assert list(other["methods"]) == list(ref["methods"])
    worst = {}
    for method in ref["methods"]:
        a, b = ref[f"cam/{method}"], other[f"cam/{method}"]
        assert a.shape == b.shape, f"{method}: map shape {b.shape} on {backend}, {a.shape} on {REFERENCE}"
        assert np.isfinite(b).all() and b.min() >= 0.0 and b.max() <= 1.0, f"{method}: not a [0, 1] map on {backend}"
        assert a.reshape(len(a), -1).max(axis=1).min() > 0.5, f"{method}: a blank reference map"
        worst[str(method)] = float(np.abs(a - b).max())
    bad = {m: d for m, d in worst.items() if d > CAM_TOLERANCE}
    assert not bad, f"max abs difference of the normalised maps on {backend} vs {REFERENCE} (> {CAM_TOLERANCE}): {bad}"


@pytest.mark.parametrize("mode", PATTERN_MODES)
@pytest.mark.parametrize("backend", OTHERS)
def test_filter_patterns_reach_the_same_activations_as_tensorflow(results, backend: str, mode: str) -> None:
    ref, other = results(REFERENCE, "patterns"), results(backend, "patterns")
    for layer in ref["pattern_layers"]:
        start_a, start_b = ref[f"pattern/{mode}/{layer}/start"], other[f"pattern/{mode}/{layer}/start"]
        final_a, final_b = ref[f"pattern/{mode}/{layer}/final"], other[f"pattern/{mode}/{layer}/final"]
        assert final_a.shape == final_b.shape == (len(PATTERN_FILTERS),)
        assert np.isfinite(final_b).all(), f"{mode} {layer}: non-finite activations on {backend}"
        live = np.abs(final_a) > 1e-6  # a dead filter stays at 0 everywhere: nothing to compare
        assert np.all(np.abs(final_b[~live]) <= 1e-5), f"{mode} {layer}: a filter dead on {REFERENCE} moved"
        assert live.any(), f"{mode} {layer}: every filter is dead; choose other filters"
        relative = np.abs(final_b[live] - final_a[live]) / np.abs(final_a[live])
        assert float(np.median(relative)) <= PATTERN_TOLERANCE, (
            f"{mode} {layer}: final activations differ by a median {np.median(relative):.2%} on {backend} "
            f"({final_b} vs {final_a} on {REFERENCE}); starts {start_b} vs {start_a}")


@pytest.mark.parametrize("backend", OTHERS)
def test_top_examples_pick_the_same_images_as_tensorflow(results, backend: str) -> None:
    ref, other = results(REFERENCE, "examples"), results(backend, "examples")
    idx_a, idx_b = ref["top/indices"], other["top/indices"]
    assert idx_a.shape == idx_b.shape
    np.testing.assert_allclose(other["top/values"], ref["top/values"], rtol=1e-3, atol=1e-5)
    # where the order differs, the two images must tie: the activation each backend gives its pick is the same
    value_of = {}  # (channel, image) -> reference activation, for images in the reference's top k
    for c, (row_i, row_v) in enumerate(zip(idx_a, ref["top/values"])):
        value_of.update({(c, int(i)): float(v) for i, v in zip(row_i, row_v)})
    for c, r in zip(*np.nonzero(idx_a != idx_b)):
        picked, expected = int(idx_b[c, r]), float(ref["top/values"][c, r])
        # the reference's activation for that image when it is in its top k, else the backend's own
        value = value_of.get((int(c), picked), float(other["top/values"][c, r]))
        assert abs(value - expected) <= TIE * max(abs(expected), 1e-3), (
            f"channel {c}, rank {r}: {backend} picks image {picked}, {REFERENCE} image {idx_a[c, r]} "
            f"(activation {expected:.6g}), not a tie")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    compute(Path(sys.argv[1]))
