"""What a new user sees first, in a real browser (Voila, offline): the card's first open, a large upload, and the
first layer's filter patterns. Screenshots go to tests/artifacts/ (git-ignored): look at them after a change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from jupyter_servers import ARTIFACTS, Server, chromium, offline_page, serve
from PIL import Image
from test_panel_browser import CARD, CARD_PICTURES, FILTER_GRID, GRID, KERNEL_START, PANEL, TABS, WORK, picture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

HEADER_SIDE = 192  # the header's one display size (render.HEADER_SIDE), written here as the test's own fact
INPUT = f"{PANEL} img.convviz-input"
SIZE = """(sel) => { const i = [...document.querySelectorAll(sel)].find(i => i.offsetParent !== null);
  return i ? [i.naturalWidth, i.naturalHeight] : null; }"""


@pytest.fixture()
def page(tmp_path: Path) -> Iterator[Any]:
    """A fresh offline page in its own Chromium."""
    with chromium() as browser, offline_page(browser) as page:
        yield page


@pytest.fixture()
def voila_server(tmp_path: Path) -> Iterator[Server]:
    """Voila rendering the panel notebook (the demo model, starting on a demo scene)."""
    with serve("voila", tmp_path) as server:
        yield server


def photo(path: Path, width: int = 1600, height: int = 1200) -> Path:
    """A large PNG: a colour gradient with a dark disc, saved at `path`."""
    yy, xx = np.mgrid[0:height, 0:width]
    rgb = np.stack([xx * 255 // width, yy * 255 // height, np.full_like(xx, 160)], axis=-1).astype(np.uint8)
    rgb[(yy - height // 2) ** 2 + (xx - width // 2) ** 2 < (height // 4) ** 2] = (30, 30, 30)
    Image.fromarray(rgb).save(path)
    return path


def card_on_first_open(page: Any) -> None:
    """'Open its card' without touching the slider: the card is the layer's most active channel, drawn in full."""
    page.locator(f"{PANEL} .convviz-card-open").click()
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('most active')",
                           arg=f"{CARD} .convviz-card-title", timeout=WORK)
    for sel in CARD_PICTURES:
        picture(page, sel)
    page.wait_for_function(
        "([sel, parts]) => parts.every(p => document.querySelector(sel).innerText.includes(p))",
        arg=[CARD, ["mean activation", "dataset images"]], timeout=WORK)
    title = page.inner_text(f"{CARD} .convviz-card-title")
    assert "Channel 0 " not in title, title  # the demo's conv1 channel 0 is dead for the first scene
    caption = page.inner_text(f"{CARD}")
    assert "maxima 0 … 0" not in caption
    page.locator(CARD).screenshot(path=str(ARTIFACTS / "first-1-card-on-first-open.png"))


def large_upload(page: Any, path: Path) -> None:
    """Upload a 1600x1200 photo: the header shows it at one size, the top-5 stays in the panel, the upload counts."""
    old = page.eval_on_selector_all(INPUT, "imgs => imgs.find(i => i.offsetParent !== null).src")
    with page.expect_file_chooser() as chooser:
        page.locator(f"{PANEL} .widget-upload").click()
    chooser.value.set_files(str(path))
    picture(page, INPUT, old=old)
    assert page.evaluate(SIZE, INPUT) == [HEADER_SIDE, HEADER_SIDE * 1200 // 1600]
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('Upload (1)')",
                           arg=f"{PANEL} .widget-upload", timeout=WORK)
    panel_box = page.locator(PANEL).bounding_box()
    table = page.locator(f"{PANEL} .convviz-predictions").bounding_box()
    assert table["x"] + table["width"] <= panel_box["x"] + panel_box["width"], "the top-5 spills out of the panel"
    picture(page, GRID)
    page.locator(PANEL).screenshot(path=str(ARTIFACTS / "first-2-upload-1600x1200.png"))


def first_layer_patterns(page: Any) -> None:
    """The Filters tab on the first conv layer, both recipes: no tile is left unlabelled noise."""
    page.locator(TABS).filter(has_text="Filters").click()
    layers = page.locator(f"{PANEL} .convviz-filters .widget-dropdown select").first
    layers.select_option(index=0)  # conv1, the first layer
    page.locator(f"{PANEL} .convviz-filters button", has_text="Render").click()
    picture(page, FILTER_GRID)
    page.locator(FILTER_GRID).screenshot(path=str(ARTIFACTS / "first-3-filters-conv1-plain.png"))
    old = page.eval_on_selector_all(FILTER_GRID, "imgs => imgs.find(i => i.offsetParent !== null).src")
    page.locator(f"{PANEL} .convviz-filters .convviz-mode button", has_text="Regularised").click()
    page.locator(f"{PANEL} .convviz-filters button", has_text="Render").click()
    picture(page, FILTER_GRID, old=old)
    page.locator(FILTER_GRID).screenshot(path=str(ARTIFACTS / "first-4-filters-conv1-regularised.png"))
    assert page.locator(f"{PANEL} .convviz-error").count() == 0


def test_first_impressions_in_voila(voila_server: Server, page: Any, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.goto(f"{voila_server.url}/", wait_until="commit", timeout=KERNEL_START)
    page.wait_for_selector(TABS, timeout=KERNEL_START)
    picture(page, GRID)
    assert page.evaluate(SIZE, INPUT) == [HEADER_SIDE, HEADER_SIDE]  # the demo's 96 px scene, enlarged twice
    card_on_first_open(page)
    large_upload(page, photo(tmp_path / "big.png"))
    first_layer_patterns(page)
