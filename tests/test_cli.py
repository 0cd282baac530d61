"""`convviz report` writes an HTML page with the three views, or a clear error."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import small_convnet
from PIL import Image

from convviz_widgets import cli
from convviz_widgets.demo import MODEL_PATH


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


@pytest.mark.skipif(not MODEL_PATH.exists(), reason="the demo model file is not built yet")
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
