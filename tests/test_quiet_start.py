"""Importing the package and the first computation print none of TensorFlow's C++ start-up lines.

Real errors written to the same descriptor still reach the user.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_backend

from convviz_widgets import _quiet

ROOT = Path(__file__).resolve().parents[1]
START_UP_SNIPPETS = ("absl::InitializeLog", "oneDNN custom operations", "Could not find cuda drivers", "cuInit",
                     "This TensorFlow binary is optimized", "To enable the following instructions")


def _run(code: str, *args: str) -> subprocess.CompletedProcess:
    """A fresh interpreter in the repository root (so this checkout is imported), TF logging env unset."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TF_CPP")}
    return subprocess.run([sys.executable, *(["-c", code] if code else []), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_import_and_first_gradcam_print_no_start_up_lines():
    done = _run("from convviz_widgets import demo\n"
                "import convviz_widgets as cv\n"
                "cam = cv.gradcam(demo.load_model(), demo.scene(seed=0).image)\n"
                "print('heatmap', cam.heatmap.shape)")
    assert done.returncode == 0, done.stderr
    assert "heatmap" in done.stdout
    assert not [s for s in START_UP_SNIPPETS if s in done.stderr], done.stderr


def test_cli_error_is_one_line_without_start_up_lines(tmp_path):
    done = _run("", "-m", "convviz_widgets.cli", "report", "--model", str(tmp_path / "none.h5"),
                "--image", "x.png", "--out", str(tmp_path / "r"))
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()]
    assert done.stderr.startswith("convviz: error: argument --model: Model file not found")


def test_real_errors_written_during_start_up_still_show(capfd):
    start_up = (b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                b"I0000 00:00:1795856567.537323    5358 port.cc:153] oneDNN custom operations are on. You may see\n"
                b"E0000 00:00:1795856575.152193    5667 cuda_platform.cc:52] failed call to cuInit: INTERNAL: x\n")
    real = b"E0000 00:00:1795856575.152193    5667 loader.cc:7] could not load libfoo.so: no such file\n"
    with _quiet.start_up_lines_hidden():
        os.write(2, start_up + real + b"plain text on stderr\n")
    err = capfd.readouterr().err
    assert err == real.decode() + "plain text on stderr\n"


def test_captured_lines_come_back_when_start_up_fails(capfd):
    with pytest.raises(ImportError, match="broken"), _quiet.start_up_lines_hidden():
        os.write(2, b"a clue before the failure\n")
        raise ImportError("broken")
    assert capfd.readouterr().err == "a clue before the failure\n"


@pytest.mark.parametrize("line, hidden", [
    ("I0000 00:00:1795856567.537599    5358 cudart_stub.cc:31] Could not find cuda drivers on your machine.", True),
    ("I0000 00:00:17.3    6991 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available "
     "CPU instructions in performance-critical operations.", True),
    ("To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow", True),
    ("E0000 00:00:17.1 5667 cuda_platform.cc:52] failed call to cuInit: UNKNOWN ERROR (303)", True),
    ("E0000 00:00:17.1 5667 op_kernel.cc:52] OOM when allocating tensor", False),
    ("Traceback (most recent call last):", False),
    ("ValueError: failed call to cuInit is mentioned by the user", False),
])
def test_only_known_start_up_lines_are_hidden(line, hidden):
    assert _quiet.is_start_up_line(line) is hidden


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_import_and_cli_on_jax_or_torch_leave_tensorflow_alone(backend):
    require_backend(backend)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("TF_CPP", "XLA_PYTHON"))},
           "KERAS_BACKEND": backend}
    code = ("import sys, os\n"
            "import convviz_widgets as cv\n"
            "from convviz_widgets import cli\n"
            "assert cli.main(['--version']) == 0\n"
            "print('device', cv.describe_device())\n"
            "print('preallocate', os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE'))\n"
            "print('tensorflow loaded', sorted(m for m in sys.modules if m.split('.')[0] == 'tensorflow')[:3])\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "tensorflow loaded []" in done.stdout, done.stdout  # TensorFlow is installed here, and never imported
    assert "device CPU, " in done.stdout or "device GPU: " in done.stdout
    # JAX takes GPU memory as it needs it, as TensorFlow does with memory growth; PyTorch's setting is left alone
    assert f"preallocate {'false' if backend == 'jax' else None}" in done.stdout, done.stdout
    assert not [s for s in START_UP_SNIPPETS if s in done.stderr], done.stderr
