"""The documentation site builds offline and strictly, as `make docs` builds it, and shows what it promises.

`mkdocs build --strict` stops on any warning: a broken internal link or anchor, a page left out of the
navigation, a docstring mkdocstrings cannot read. The gallery's pictures are drawn by the package on the
demo model during the build (docs/hooks/gallery.py); the checks below read the built pages and pictures.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ["activations", "filter-patterns", "cam-methods", "channel-card", "faithfulness"]
pytestmark = [pytest.mark.release, pytest.mark.slow]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site, built into a temporary folder with the same command as `make docs`."""
    if importlib.util.find_spec("mkdocs") is None:
        reason = "mkdocs is not installed (pip install -e '.[docs]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mkdocs build --strict failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return out


def pictures_of(page: Path) -> list[Path]:
    """The PNG files a built page shows."""
    return [(page.parent / src).resolve() for src in re.findall(r'<img[^>]* src="([^"]+\.png)"', page.read_text())]


@pytest.mark.parametrize("name", GALLERY)
def test_gallery_page_shows_pictures_drawn_at_build_time(site, name):
    page = site / "gallery" / f"{name}.html"
    html = page.read_text()
    assert "{{ gallery:" not in html, "a value the gallery hook should have filled is left in the page"
    drawn = [p for p in pictures_of(page) if p.parent == (site / "gallery").resolve()]
    assert len(drawn) >= 2, f"{name} shows {len(drawn)} pictures drawn at build time"
    for path in drawn:
        assert not (ROOT / "docs" / "gallery" / path.name).exists(), f"{path.name} is committed, not drawn"
        pixels = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32)
        assert pixels.std() > 1.0, f"{path.name} is blank"


def test_cam_gallery_has_a_row_per_registered_method(site):
    import convviz_widgets as cv

    html = (site / "gallery" / "cam-methods.html").read_text()
    for method in cv.cam_methods():
        assert f"<code>{method}</code>" in html, f"no row for {method}"


def test_notebooks_are_rendered_with_their_stored_outputs(site):
    for notebook in sorted((ROOT / "notebooks").glob("[0-9]*.ipynb")):
        html = (site / "notebooks" / f"{notebook.stem}.html").read_text()
        assert "jp-Notebook" in html or "jupyter-wrapper" in html
        assert "data:image/png;base64," in html, f"{notebook.name} is rendered without its pictures"


def test_reference_is_generated_from_the_docstrings(site):
    import convviz_widgets as cv

    html = (site / "reference" / "api.html").read_text()
    for name in ("gradcam", "activations", "filter_patterns", "Inspector", "ConvVizPanel", "register_view"):
        assert f'id="convviz_widgets.{name}"' in html, f"{name} has no reference entry"
    first_line = cv.gradcam.__doc__.strip().splitlines()[0]
    assert first_line.split("`")[0][:30] in html


def test_howtos_and_limits_pages_are_built(site):
    for page in ("howto/own-model", "howto/own-cam-method", "howto/own-tab", "howto/binder", "howto/teaching",
                 "limits", "changelog"):
        assert (site / f"{page}.html").is_file(), page
    assert "Unreleased" in (site / "changelog.html").read_text()
