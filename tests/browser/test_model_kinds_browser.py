"""The panel in a real browser (Voila, offline) on two kinds of model beyond convnet classifiers.

A vision transformer: its token layers listed and shown as 8x8 patch grids in the Activations tab, and its
Grad-CAM tab at the default token layer. A segmentation U-Net trained briefly on the demo's scenes: the
Grad-CAM tab shows the mask the model predicts for the class explained, and picking another class explains
that class's region. Screenshots go to tests/artifacts/ (git-ignored): look at them after a change.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_servers import ARTIFACTS, Server, chromium, offline_page, serve
from test_panel_browser import GRID, HEATMAP, KERNEL_START, OVERLAY, PANEL, PIXELS, TABS, WORK, picture

pytestmark = [pytest.mark.browser, pytest.mark.timeout(480)]

VIT_MODELS = Path(__file__).resolve().parents[1] / "vit_models.py"
REGION = f"{PANEL} .convviz-gradcam img.convviz-region"
SCORE = f"{PANEL} .convviz-score"
TEXT_HAS = "([sel, part]) => { const e = document.querySelector(sel); return !!e && e.innerText.includes(part); }"


@pytest.fixture()
def page() -> Iterator[Any]:
    """A fresh offline page in its own Chromium."""
    with chromium() as browser, offline_page(browser) as page:
        yield page


def shot(page: Any, name: str) -> None:
    """Screenshot the panel into tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(PANEL).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def wait_text(page: Any, selector: str, part: str) -> None:
    """Wait until the element's text holds `part`."""
    page.wait_for_function(TEXT_HAS, arg=[selector, part], timeout=WORK)


def open_panel(page: Any, server: Server) -> None:
    """Load the Voila page and wait for the panel's tab bar and its first activation grid."""
    page.goto(f"{server.url}/", wait_until="commit", timeout=KERNEL_START)
    try:
        page.wait_for_selector(TABS, timeout=3 * KERNEL_START)  # the segmentation notebook trains its U-Net first
        picture(page, GRID)
    except Exception:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "kinds-failed-to-open.png"), full_page=True)
        raise


def test_vit_panel_shows_token_grids_and_its_gradcam(tmp_path: Path, page: Any) -> None:
    with serve("voila", tmp_path, notebook="vit_panel.ipynb", files=(VIT_MODELS,)) as server:
        open_panel(page, server)
        select = page.locator(f"{PANEL} .convviz-activations .widget-dropdown select").first
        options = [o.replace("\xa0", " ") for o in select.locator("option").all_inner_texts()]
        tokens = [o for o in options if o.split()[0] == "block1_add2"]
        assert tokens and "(8×8×32 tokens, 1 special token dropped)" in tokens[0], options  # as the grid shown
        before = page.evaluate(PIXELS, GRID)
        old = page.eval_on_selector_all(GRID, "imgs => imgs.find(i => i.offsetParent !== null).src")
        select.select_option(index=options.index(tokens[0]))
        picture(page, GRID, old=old)
        assert page.evaluate(PIXELS, GRID) != before
        wait_text(page, f"{PANEL} .convviz-facts", "block1_add2")
        shot(page, "kinds-vit-1-activations-tokens")

        page.locator(TABS).filter(has_text="Grad-CAM").click()
        picture(page, OVERLAY)
        picture(page, HEATMAP)
        wait_text(page, SCORE, "Grad-CAM of")
        wait_text(page, SCORE, "block1_norm1")  # the default CAM layer of a class-token head
        assert page.locator(f"{PANEL} .convviz-classes button").count() == 5
        assert page.locator(f"{PANEL} .convviz-error").count() == 0
        shot(page, "kinds-vit-2-gradcam")

        old = page.eval_on_selector_all(OVERLAY, "imgs => imgs.find(i => i.offsetParent !== null).src")
        page.locator(f"{PANEL} .convviz-gradcam button").filter(has_text="Attention rollout").click()
        wait_text(page, SCORE, "class-agnostic")  # the same map for any class, and the panel says so
        picture(page, OVERLAY, old=old)
        assert page.locator(f"{PANEL} .convviz-error").count() == 0
        shot(page, "kinds-vit-3-rollout")

        page.locator(TABS).filter(has_text="Activations").click()
        attention = next(o for o in options if o.split()[0] == "block1_attention")
        old = page.eval_on_selector_all(GRID, "imgs => imgs.find(i => i.offsetParent !== null).src")
        select.select_option(index=options.index(attention))
        picture(page, GRID, old=old)
        old = page.eval_on_selector_all(GRID, "imgs => imgs.find(i => i.offsetParent !== null).src")
        page.locator(f"{PANEL} .convviz-attention-heads button").filter(has_text="Heads").click()
        picture(page, GRID, old=old)  # each head's attention from the class token, on the 8x8 patch grid
        wait_text(page, f"{PANEL} .convviz-activations", "head")
        assert page.locator(f"{PANEL} .convviz-error").count() == 0
        shot(page, "kinds-vit-4-heads")


def test_segmentation_panel_shows_the_mask_and_explains_the_class_picked(tmp_path: Path, page: Any) -> None:
    with serve("voila", tmp_path, notebook="segmentation_panel.ipynb") as server:
        open_panel(page, server)
        header = page.inner_text(f"{PANEL} .convviz-predictions")
        assert "Predicted regions" in header and "circle" in header and "cross" in header, header
        page.locator(TABS).filter(has_text="Grad-CAM").click()
        picture(page, OVERLAY)
        region = picture(page, REGION)
        wait_text(page, f"{PANEL} .convviz-gradcam", "Explained region")
        wait_text(page, SCORE, "summed over its region")
        buttons = page.locator(f"{PANEL} .convviz-classes button")
        names = [t.strip() for t in buttons.all_inner_texts()]
        assert any(n.startswith("circle") for n in names) and any(n.startswith("cross") for n in names), names
        first = page.inner_text(SCORE)
        shot(page, "kinds-seg-1-gradcam-default")

        other = "cross" if "of circle (class" in first else "circle"
        buttons.filter(has_text=other).click()
        wait_text(page, SCORE, f"of {other} (class")
        picture(page, REGION, old=region)
        wait_text(page, f"{PANEL} .convviz-gradcam", f"{other}) over its predicted region")
        assert page.locator(f"{PANEL} .convviz-error").count() == 0
        shot(page, f"kinds-seg-2-gradcam-{other}")
