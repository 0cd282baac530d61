"""No TensorFlow needed: on the JAX and PyTorch backends the package imports and every public call runs
in an environment where TensorFlow cannot be imported.

Each test starts a fresh interpreter with KERAS_BACKEND set and a `sitecustomize` on PYTHONPATH that
makes TensorFlow look uninstalled (Python's path finder is wrapped so that `import tensorflow`, any of its
submodules and `importlib.util.find_spec("tensorflow")` behave as if the package were not there), then
runs each public call on the demo model and reports every step's outcome, so one failure does not hide
the others. The model files it loads must predict there as they do on TensorFlow.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import BACKEND, MOBILENET_WEIGHTS, require_backend

import convviz_widgets as cv
from convviz_widgets.demo import MODEL_PATH as DEMO_FILE

ROOT = Path(__file__).resolve().parents[1]
OTHER_BACKENDS = ["jax", "torch"]
RESULT = "STEPS-JSON:"  # the line the child prints its outcomes on

# Installed as `sitecustomize` in the child: TensorFlow is not on the path for the whole process.
HIDE_TENSORFLOW = '''
import sys
from importlib.machinery import PathFinder


def _hidden(name):
    return name == "tensorflow" or name.startswith("tensorflow.")


class _PathFinderWithoutTensorFlow(PathFinder):
    """Python's own path finder, blind to TensorFlow (as if it were not installed)."""

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if _hidden(name) else super().find_spec(name, path, target)


sys.meta_path[:] = [_PathFinderWithoutTensorFlow if f is PathFinder else f for f in sys.meta_path]
'''

# The child: every public call, each a step whose outcome ("ok" or the error's last lines) is reported.
CHILD = r'''
import importlib.util
import json
import os
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np

steps = {}


def step(name):
    def run(fn):
        try:
            fn()
            steps[name] = "ok"
        except BaseException as err:  # noqa: BLE001 - every outcome is reported
            steps[name] = "".join(traceback.format_exception(err)[-6:])
        return fn
    return run


@step("tensorflow is hidden")
def _():
    assert importlib.util.find_spec("tensorflow") is None
    try:
        import tensorflow  # noqa: F401
    except ModuleNotFoundError:
        return
    raise AssertionError("tensorflow imported")


cv = None


@step("import convviz_widgets")
def _():
    global cv
    import convviz_widgets
    import keras

    cv = convviz_widgets
    assert keras.config.backend() == os.environ["KERAS_BACKEND"], keras.config.backend()


if cv is None:
    print("STEPS-JSON:" + json.dumps(steps))
    sys.exit(0)

from convviz_widgets import demo  # noqa: E402

model = demo.load_model()
image = demo.scene(label=2, seed=1).image
scenes = [demo.scene(seed=i) for i in range(12)]


def finite(a, lo=None, hi=None):
    a = np.asarray(a)
    assert a.size and np.isfinite(a).all(), a
    assert lo is None or a.min() >= lo, a.min()
    assert hi is None or a.max() <= hi, a.max()


@step("model files")
def _():
    for path, x, out in json.loads(os.environ["MODEL_FILES"]):
        np.save(out, np.asarray(cv.load_model(path).predict(np.load(x), verbose=0)))


@step("describe_device")
def _():
    text = cv.describe_device()
    assert text.startswith(("GPU: ", "CPU, ")), text


@step("predict")
def _():
    top = cv.predict(model, image, preprocess="rescale", top=3)
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2], top


@step("activations")
def _():
    acts = cv.activations(model, image, preprocess="rescale")
    assert {"conv1", "conv5"} <= set(acts), sorted(acts)
    for a in acts.values():
        finite(a)


for mode in ("plain", "regularized"):
    @step(f"filter patterns, {mode}")
    def _(mode=mode):
        fp = cv.filter_patterns(model, "conv2", range(3), preprocess="rescale", size=32, steps=3, seed=0,
                                progress=None, mode=mode)
        assert fp.images.shape == (3, 32, 32, 3) and fp.images.dtype == np.uint8, fp.images.shape


for method in cv.cam_methods(model, preprocess="rescale"):  # those that apply to this convnet
    @step(f"gradcam, {method}")
    def _(method=method):
        extra = {"max_channels": 8} if method == "scorecam" else {}
        cam = cv.gradcam(model, image, preprocess="rescale", method=method, **extra)
        finite(cam.heatmap, 0.0, 1.0)
        assert cam.heatmap.ndim == 2 and np.isfinite(cam.score)


@step("a batch of CAMs and activations")
def _():
    batch = np.stack([image, image[:, ::-1]])
    cams = cv.gradcam(model, batch, preprocess="rescale", class_index=[0, 1])
    assert len(cams) == 2
    for cam in cams:
        finite(cam.heatmap, 0.0, 1.0)
    single = cv.gradcam(model, batch[1], preprocess="rescale", class_index=1)
    assert np.allclose(cams[1].heatmap, single.heatmap, atol=1e-4)  # a batch equals single calls
    acts = cv.activations(model, batch, preprocess="rescale")
    alone = cv.activations(model, batch[1], preprocess="rescale")
    assert len(acts) == 2 and np.allclose(acts[1]["conv3"], alone["conv3"], atol=1e-4)


@step("top_examples on an array")
def _():
    images = np.stack([s.image for s in scenes])
    top = cv.top_examples(model, "conv5", images, k=3, channels=[0, 1], preprocess="rescale", progress=None)
    assert top.indices.shape == (2, 3) and (top.indices >= 0).all() and (top.indices < len(images)).all()
    finite(top.values)


@step("metrics: pointing game and deletion curve")
def _():
    from convviz_widgets.metrics import deletion_curve, pointing_game

    scene = scenes[0]
    ins = cv.Inspector(model, preprocess="rescale")
    cam = ins.gradcam(scene.image, class_index=int(scene.labels[0]))
    assert isinstance(pointing_game(cam.heatmap, scene.masks[0]), (bool, np.bool_))
    curve = deletion_curve(ins, scene.image, cam.heatmap, int(scene.labels[0]), steps=4)
    finite(curve.probabilities, 0.0, 1.0)


@step("sanity check")
def _():
    from convviz_widgets.metrics import randomization_check

    stages = randomization_check(cv.Inspector(model, preprocess="rescale"), image, layers=2)
    assert len(stages) == 2 and all(np.isfinite(s.ssim) for s in stages), stages


@step("CLI report")
def _():
    from convviz_widgets import cli

    out = Path(tempfile.mkdtemp()) / "report"
    code = cli.main(["report", "--model", "demo", "--out", str(out), "--filter-layers", "conv1", "--filters", "2",
                     "--steps", "2", "--cam-methods", "gradcam"])
    assert code == 0 and (out / "index.html").is_file(), code


@step("panel built headless")
def _():
    panel = cv.ConvVizPanel(model, image, background=False)
    assert panel.activations.error == "", panel.activations.error
    panel.select("Grad-CAM")
    assert panel.cam.error == "" and panel.cam.overlay.value, panel.cam.error


@step("tensorflow never imported")
def _():
    assert not [m for m in sys.modules if m == "tensorflow" or m.startswith("tensorflow.")]


print("STEPS-JSON:" + json.dumps(steps))
'''


def run_without_tensorflow(backend: str, folder: Path, code: str, **env: str) -> subprocess.CompletedProcess:
    """`code` in a fresh interpreter on `backend`, with TensorFlow hidden and this checkout first on the path."""
    hide = folder / "hide"
    hide.mkdir(exist_ok=True)
    (hide / "sitecustomize.py").write_text(HIDE_TENSORFLOW, encoding="utf-8")
    env = {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": os.pathsep.join([str(hide), str(ROOT)]),
           "MPLBACKEND": "Agg", **env}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=folder, env=env,
                          capture_output=True, text=True, timeout=900)


def steps_of(done: subprocess.CompletedProcess) -> dict[str, str]:
    """The child's step outcomes (fails with its output when it printed none)."""
    lines = [line for line in done.stdout.splitlines() if line.startswith(RESULT)]
    assert lines, f"exit {done.returncode}\nstdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len(RESULT):])


def failures(steps: dict[str, str], names: list[str] | None = None) -> str:
    """The failed steps (of `names`, else all) with their errors, or '' when all passed."""
    failed = {n: o for n, o in steps.items() if o != "ok" and (names is None or n in names)}
    return "\n\n".join(f"--- {name}:\n{outcome}" for name, outcome in failed.items())


def test_the_hiding_makes_tensorflow_look_uninstalled(tmp_path):
    done = run_without_tensorflow("jax", tmp_path, """
        import importlib.util, sys
        assert importlib.util.find_spec("tensorflow") is None
        for name in ("tensorflow", "tensorflow.python", "tf_keras"):
            try:
                __import__(name)
            except ModuleNotFoundError as err:
                print(name, "missing:", err.name)
        import numpy
        print("numpy", numpy.__name__)
    """)
    assert done.returncode == 0, done.stderr
    assert "tensorflow missing: tensorflow" in done.stdout and "tensorflow.python missing: tensorflow" in done.stdout
    assert "tf_keras missing" in done.stdout  # a package that needs TensorFlow fails too
    assert "numpy numpy" in done.stdout  # everything else imports as usual


@pytest.fixture(scope="module")
def model_files(tmp_path_factory) -> list[tuple[Path, Path]]:
    """(model file, inputs .npy): the demo's .keras file; the ImageNet MobileNet saved whole as .h5 when it is here."""
    folder = tmp_path_factory.mktemp("model-files")
    rng = np.random.default_rng(7)
    files = [(DEMO_FILE, rng.uniform(0, 1, (3, 96, 96, 3)))]
    if MOBILENET_WEIGHTS.exists():
        net = keras.applications.MobileNet(alpha=0.25, input_shape=(128, 128, 3), weights=str(MOBILENET_WEIGHTS))
        net.save(folder / "mobilenet.h5")
        files.append((folder / "mobilenet.h5", rng.uniform(-1, 1, (3, 128, 128, 3))))
    for i, (_, x) in enumerate(files):
        np.save(folder / f"x{i}.npy", x.astype("float32"))
    return [(path, folder / f"x{i}.npy") for i, (path, _) in enumerate(files)]


@pytest.fixture(scope="module", params=OTHER_BACKENDS)
def child(request, model_files, tmp_path_factory) -> tuple[str, dict[str, str], subprocess.CompletedProcess, list]:
    """The child run on one backend without TensorFlow: (backend, step outcomes, the process, model files' outputs)."""
    backend = request.param
    require_backend(backend)
    folder = tmp_path_factory.mktemp(f"no-tensorflow-{backend}")
    files = [(str(path), str(x), str(folder / f"y{i}.npy")) for i, (path, x) in enumerate(model_files)]
    done = run_without_tensorflow(backend, folder, CHILD, MODEL_FILES=json.dumps(files))
    return backend, steps_of(done), done, files


@pytest.mark.slow
def test_every_public_call_runs_without_tensorflow(child):
    backend, steps, done, _ = child
    assert "gradcam, gradcam" in steps or failures(steps), steps  # the CAM methods were reached (or why not is shown)
    assert not failures(steps), f"on {backend}:\n" + failures(steps)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.slow
def test_model_files_predict_without_tensorflow_as_on_tensorflow(child):
    backend, steps, _, files = child
    if BACKEND != "tensorflow":
        pytest.skip(f"compares {backend} with TensorFlow: run under KERAS_BACKEND=tensorflow, not {BACKEND}")
    if not MOBILENET_WEIGHTS.exists():
        print(f"the ImageNet MobileNet weights are not here ({MOBILENET_WEIGHTS}): the demo file alone is compared")
    assert steps.get("model files") == "ok", failures(steps, ["import convviz_widgets", "model files"]) or steps
    for path, x, out in files:
        want = cv.load_model(path).predict(np.load(x), verbose=0)
        got = np.load(out)
        assert got.shape == want.shape, path
        np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{Path(path).name} on {backend}")
        assert (got.argmax(-1) == want.argmax(-1)).all(), path
