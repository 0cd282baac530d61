"""`convviz report` writes an HTML page with the three views, or a clear error."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from conftest import small_convnet
from PIL import Image

from convviz_widgets import cli


def _pngs(folder):
    return sorted(p.name for p in folder.glob("*.png"))


def test_report_on_a_saved_model_and_image_file(tmp_path, capsys):
    model_path = tmp_path / "small.keras"
    small_convnet(size=32).save(model_path)
    img_path = tmp_path / "img.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)).save(img_path)
    out = tmp_path / "report"
    code = cli.main(["report", "--model", str(model_path), "--image", str(img_path), "--preprocess", "rescale",
                     "--out", str(out), "--steps", "3", "--filters", "4"])
    assert code == 0
    assert "Report written to" in capsys.readouterr().out
    names = _pngs(out)
    assert {"act_conv1.png", "act_pool2.png", "gradcam_top1.png", "gradcam_top3.png", "input.png"} <= set(names)
    assert any(n.startswith("filters_") for n in names)
    page = (out / "index.html").read_text()
    for name in names:
        assert f"src='{name}'" in page
    assert "Grad-CAM" in page and "Filter patterns" in page and "Intermediate activations" in page


def test_report_on_the_demo_model_is_the_make_demo_command(tmp_path):
    out = tmp_path / "convviz-report"
    assert cli.main(["report", "--model", "demo", "--out", str(out), "--steps", "5"]) == 0
    assert (out / "index.html").exists()
    grid = np.asarray(Image.open(out / "gradcam_top1.png"))
    assert grid.ndim == 3 and grid.std() > 5  # a real picture, not a blank one


def test_report_with_own_model_but_no_image_is_a_clear_error(tmp_path, capsys):
    model_path = tmp_path / "m.keras"
    small_convnet(size=32).save(model_path)
    assert cli.main(["report", "--model", str(model_path), "--out", str(tmp_path / "r")]) == 2
    assert "--image is required" in capsys.readouterr().err


def test_report_with_missing_model_file_is_a_clear_error(tmp_path, capsys):
    assert cli.main(["report", "--model", str(tmp_path / "nope.h5"), "--image", "x.png"]) == 2
    assert "not found" in capsys.readouterr().err


def _one_error_line(err: str) -> str:
    """The single stderr line of a refused command (no traceback, no usage block)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("convviz: error: "), err
    return lines[0]


def _bad_out(tmp_path, case: str) -> str:
    """An --out value that cannot be used, for each way it can be wrong."""
    if case == "existing file":
        (tmp_path / "taken").write_text("x")
        return str(tmp_path / "taken")
    if case == "under a file":
        (tmp_path / "taken").write_text("x")
        return str(tmp_path / "taken" / "report")
    if case == "empty":
        return ""
    if case == "blank":
        return "   "
    if case == "read-only system folder":
        if not Path("/proc/self").is_dir():
            pytest.skip("needs Linux's /proc, a folder nobody can create files in")
        return "/proc/convviz-report"
    if os.geteuid() == 0:
        pytest.skip("root may write into any folder, whatever its permissions")
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    return str(locked / "report")


@pytest.mark.parametrize("case", ["existing file", "under a file", "empty", "blank", "read-only system folder",
                                  "folder without write permission"])
def test_bad_out_folder_is_one_error_line_and_status_2(tmp_path, capsys, case):
    out = _bad_out(tmp_path, case)
    assert cli.main(["report", "--model", "demo", "--out", out]) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert "argument --out" in line


@pytest.mark.parametrize("args, needle", [
    (["--step-size", "nan"], "--step-size"), (["--step-size", "inf"], "--step-size"),
    (["--step-size", "0"], "--step-size"), (["--step-size", "-1"], "--step-size"),
    (["--step-size", "fast"], "--step-size"), (["--steps", "-1"], "--steps"), (["--steps", "0"], "--steps"),
    (["--steps", "2.5"], "--steps"), (["--steps", "10000000"], "--steps"), (["--filters", "0"], "--filters"),
    (["--filters", "-3"], "--filters"), (["--filters", "many"], "--filters"), (["--patterns", "fancy"], "--patterns"),
    (["--no-such-option"], "unrecognized"),
])
def test_bad_numbers_and_options_are_one_error_line_and_status_2(tmp_path, capsys, args, needle):
    assert cli.main(["report", "--model", "demo", "--out", str(tmp_path / "r"), *args]) == 2
    assert needle in _one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "r").exists()


@pytest.mark.timeout(30)
@pytest.mark.parametrize("kind", ["fifo", "device", "folder"])
def test_model_and_image_that_are_not_files_are_refused_at_once(tmp_path, capsys, kind):
    if kind == "fifo":
        if not hasattr(os, "mkfifo"):
            pytest.skip("this system has no named pipes")
        target = tmp_path / "pipe.png"
        os.mkfifo(target)
    elif kind == "device":
        target = Path("/dev/zero")
        if not target.exists():
            pytest.skip("/dev/zero does not exist on this system")
    else:
        target = tmp_path
    for option in ("--image", "--model", "--classes"):
        assert cli.main(["report", option, str(target), "--out", str(tmp_path / "r")]) == 2
        assert f"argument {option}" in _one_error_line(capsys.readouterr().err)


def test_image_that_cannot_be_decoded_is_one_error_line(tmp_path, capsys):
    broken = tmp_path / "broken.png"
    Image.fromarray(np.zeros((64, 64, 3), np.uint8)).save(broken)
    broken.write_bytes(broken.read_bytes()[:60])
    assert cli.main(["report", "--model", "demo", "--image", str(broken), "--out", str(tmp_path / "r")]) == 2
    assert "broken.png" in _one_error_line(capsys.readouterr().err)


def test_version_option_prints_the_package_version_and_exits_0(capsys):
    from convviz_widgets._version import __version__

    assert cli.main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"convviz {__version__}"
