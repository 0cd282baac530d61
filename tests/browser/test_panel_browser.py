"""The panel in a real browser: JupyterLab 4 and Voila, offline, with a live kernel behind the widgets.

Screenshots go to tests/artifacts/ (git-ignored): look at them after a change to the panel's layout.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jupyter_servers import ARTIFACTS, Server, chromium, offline_page, serve

pytestmark = [pytest.mark.browser, pytest.mark.timeout(420)]

PANEL = ".convviz-panel"
TABS = f"{PANEL} .widget-tab .lm-TabBar-tab"
GRID = f"{PANEL} .convviz-activations img.convviz-grid"
FILTER_GRID = f"{PANEL} .convviz-filters img.convviz-filter-grid"
OVERLAY = f"{PANEL} .convviz-gradcam img.convviz-overlay"
HEATMAP = f"{PANEL} .convviz-gradcam img.convviz-heatmap"
SANITY_HEATMAP = f"{PANEL} .convviz-gradcam img.convviz-sanity-heatmap"
CARD = f"{PANEL} .convviz-activations .convviz-card"
CARD_PICTURES = tuple(f"{CARD} img.convviz-card-{name}" for name in ("overlay", "map", "pattern", "examples"))
CAM_CHANNEL = f"{PANEL} .convviz-gradcam .convviz-cam-channel"
KERNEL_START = 120_000  # ms: the kernel imports TensorFlow on 2 busy cores
WORK = 120_000  # ms: from a click to the picture it asks for

# A visible <img> under `sel` that has loaded, with a src other than `old`.
RENDERED = """([sel, old]) => {
  const img = [...document.querySelectorAll(sel)].find(i => i.offsetParent !== null);
  return !!img && img.complete && img.naturalWidth > 0 && img.src !== old;
}"""
PIXELS = """(sel) => {
  const img = [...document.querySelectorAll(sel)].find(i => i.offsetParent !== null);
  const canvas = document.createElement('canvas');
  canvas.width = img.naturalWidth; canvas.height = img.naturalHeight;
  canvas.getContext('2d').drawImage(img, 0, 0);
  return canvas.toDataURL();
}"""
# Record every width the filters' progress bar takes while a render runs.
WATCH_PROGRESS = """() => {
  const bar = document.querySelector('.convviz-filters .convviz-progress .progress-bar');
  window.__convvizProgress = [];
  new MutationObserver(records => {
    for (const r of records) window.__convvizProgress.push(r.oldValue || '', bar.getAttribute('style') || '');
  }).observe(bar, {attributes: true, attributeFilter: ['style'], attributeOldValue: true});
}"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module's tests."""
    with chromium() as browser:
        yield browser


@pytest.fixture()
def page(browser: Any) -> Iterator[Any]:
    """A fresh offline page."""
    with offline_page(browser) as page:
        yield page


@pytest.fixture()
def lab_server(tmp_path: Path) -> Iterator[Server]:
    """JupyterLab 4 serving the test notebooks."""
    with serve("lab", tmp_path) as server:
        yield server


@pytest.fixture()
def voila_server(tmp_path: Path) -> Iterator[Server]:
    """Voila rendering the panel notebook."""
    with serve("voila", tmp_path) as server:
        yield server


def picture(page: Any, selector: str, old: str | None = None, timeout: int = WORK) -> str:
    """Wait for a rendered (and, given `old`, changed) picture; return its src."""
    page.wait_for_function(RENDERED, arg=[selector, old], timeout=timeout)
    return page.eval_on_selector_all(selector, "imgs => imgs.find(i => i.offsetParent !== null).src")


def shot(page: Any, name: str) -> None:
    """Screenshot the panel (and the whole page) into tests/artifacts/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator(PANEL).screenshot(path=str(ARTIFACTS / f"{name}.png"))


def demo_scenes() -> bool:
    """True when the notebook's panel starts on a demo scene (whose masks give the pointing game)."""
    try:
        from convviz_widgets import demo  # noqa: F401
    except ImportError:
        return False
    return True


def percentages(styles: list[str]) -> list[float]:
    """Progress-bar widths ('width: 42.5%') as numbers."""
    out = []
    for style in styles:
        for part in style.split(";"):
            key, _, value = part.partition(":")
            if key.strip() in ("width", "height") and value.strip().endswith("%"):
                out.append(float(value.strip()[:-1]))
    return out


def exercise_panel(page: Any, prefix: str) -> dict[str, float]:
    """Every tab, a layer change and a filter render, each checked in the DOM; returns timings."""
    timings: dict[str, float] = {}
    t0 = time.monotonic()
    tabs = page.locator(TABS)
    assert tabs.count() == 3
    assert [t.strip() for t in page.locator(f"{TABS} .lm-TabBar-tabLabel").all_inner_texts()] == [
        "Activations", "Filters", "Grad-CAM"]
    picture(page, f"{PANEL} img.convviz-input")
    first = picture(page, GRID)
    assert "Top 5 predictions" in page.inner_text(f"{PANEL} .convviz-predictions")
    timings["first grid"] = time.monotonic() - t0
    shot(page, f"{prefix}-1-activations")

    before = page.evaluate(PIXELS, GRID)
    layer_select = page.locator(f"{PANEL} .convviz-activations .widget-dropdown select").first
    chosen = layer_select.locator("option").nth(2).inner_text().split()[0]
    t = time.monotonic()
    layer_select.select_option(index=2)
    picture(page, GRID, old=first)
    timings["layer switch round trip"] = time.monotonic() - t
    assert page.evaluate(PIXELS, GRID) != before, "the grid's pixels did not change with the layer"
    page.wait_for_function("(name) => document.querySelector('.convviz-facts').innerText.includes(name)",
                           arg=chosen, timeout=WORK)
    shot(page, f"{prefix}-2-activations-{chosen}")

    tabs.filter(has_text="Filters").click()
    page.locator(f"{PANEL} .convviz-filters .convviz-progress").wait_for(state="visible")
    page.evaluate(WATCH_PROGRESS)
    t = time.monotonic()
    page.locator(f"{PANEL} .convviz-filters button", has_text="Render").click()
    picture(page, FILTER_GRID)
    timings["filter render"] = time.monotonic() - t
    widths = percentages(page.evaluate("window.__convvizProgress"))
    assert any(0 < w < 100 for w in widths), f"the progress bar never showed a step in between: {widths}"
    assert max(widths) == 100
    shot(page, f"{prefix}-3-filters")

    plain = page.evaluate(PIXELS, FILTER_GRID)
    old = page.eval_on_selector_all(FILTER_GRID, "imgs => imgs.find(i => i.offsetParent !== null).src")
    page.locator(f"{PANEL} .convviz-filters .convviz-mode button", has_text="Regularised").click()
    t = time.monotonic()
    page.locator(f"{PANEL} .convviz-filters button", has_text="Render").click()
    picture(page, FILTER_GRID, old=old)
    timings["regularised filter render"] = time.monotonic() - t
    assert page.evaluate(PIXELS, FILTER_GRID) != plain, "the regularised patterns look like the plain ones"
    shot(page, f"{prefix}-3b-filters-regularised")

    tabs.filter(has_text="Grad-CAM").click()
    t = time.monotonic()
    picture(page, OVERLAY)
    picture(page, HEATMAP)
    timings["grad-cam"] = time.monotonic() - t
    assert "probability" in page.inner_text(f"{PANEL} .convviz-score")
    assert page.locator(f"{PANEL} .convviz-classes button").count() == 5
    shot(page, f"{prefix}-4-gradcam")

    heat = page.eval_on_selector_all(HEATMAP, "imgs => imgs.find(i => i.offsetParent !== null).src")
    page.locator(f"{PANEL} .convviz-gradcam button", has_text="Score-CAM").click()
    t = time.monotonic()
    picture(page, HEATMAP, old=heat)
    timings["score-cam"] = time.monotonic() - t
    page.wait_for_function("() => document.querySelector('.convviz-score').innerText.includes('Score-CAM of')",
                           timeout=WORK)
    page.locator(f"{PANEL} .convviz-sanity-toggle").click()
    t = time.monotonic()
    picture(page, SANITY_HEATMAP)
    timings["sanity check"] = time.monotonic() - t
    page.wait_for_function("() => document.querySelector('.convviz-sanity').innerText.includes('Spearman')",
                           timeout=WORK)
    if demo_scenes():
        assert "Pointing game" in page.inner_text(f"{PANEL} .convviz-pointing")
    shot(page, f"{prefix}-5-gradcam-sanity")

    tabs.filter(has_text="Activations").click()
    picture(page, GRID)
    assert page.locator(f"{PANEL} .convviz-error").count() == 0
    return timings


def exercise_card(page: Any, prefix: str) -> dict[str, float]:
    """Choose a channel and see its card; click a channel behind the Grad-CAM map and land on its card."""
    timings: dict[str, float] = {}
    tabs = page.locator(TABS)
    assert "Computing on:" in page.inner_text(f"{PANEL} .convviz-device")
    t = time.monotonic()
    page.locator(f"{PANEL} .convviz-activations input[type=number]").fill("3")
    page.locator(f"{PANEL} .convviz-activations input[type=number]").press("Enter")
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('Channel 3')",
                           arg=f"{CARD} .convviz-card-title", timeout=WORK)
    srcs = {sel: picture(page, sel) for sel in CARD_PICTURES}
    timings["channel card (pattern and dataset examples)"] = time.monotonic() - t
    # The captions are separate widgets from the pictures: wait for their text too, not just the images.
    page.wait_for_function(
        "([sel, parts]) => parts.every(p => document.querySelector(sel).innerText.includes(p))",
        arg=[CARD, ["Filter pattern", "dataset images", "Box: the receptive field"]], timeout=WORK)
    page.wait_for_function("(sel) => document.querySelector(sel).innerText.includes('Class evidence')",
                           arg=f"{CARD} .convviz-card-evidence", timeout=WORK)
    shot(page, f"{prefix}-6-channel-card")
    page.locator(CARD).screenshot(path=str(ARTIFACTS / f"{prefix}-6b-card.png"))

    tabs.filter(has_text="Grad-CAM").click()
    page.locator(f"{PANEL} .convviz-cam-method").get_by_role("button", name="Grad-CAM", exact=True).click()
    page.wait_for_function("() => document.querySelector('.convviz-score').innerText.startsWith('Grad-CAM of')",
                           timeout=WORK)
    page.locator(CAM_CHANNEL).first.wait_for(state="visible", timeout=WORK)
    assert 1 <= page.locator(CAM_CHANNEL).count() <= 8
    shot(page, f"{prefix}-7-gradcam-channels")
    label = page.locator(CAM_CHANNEL).first.inner_text().strip()
    channel = int(label.split()[0].lstrip("#"))
    t = time.monotonic()
    page.locator(CAM_CHANNEL).first.click()
    page.wait_for_function(
        "(k) => document.querySelector('.convviz-card-title').innerText.includes('Channel ' + k + ' ')",
        arg=channel, timeout=WORK)
    current = page.locator(f"{TABS}.lm-mod-current .lm-TabBar-tabLabel").inner_text().strip()
    assert current == "Activations"
    for sel in CARD_PICTURES:
        picture(page, sel, old=srcs[sel])
    page.wait_for_function("() => document.querySelector('.convviz-card-evidence').innerText.includes('contribution')",
                           timeout=WORK)
    timings["channel button to its card"] = time.monotonic() - t
    page.locator(CARD).screenshot(path=str(ARTIFACTS / f"{prefix}-8-card-from-gradcam.png"))
    assert page.locator(f"{PANEL} .convviz-error").count() == 0
    return timings


def report(page: Any, prefix: str, timings: dict[str, float]) -> None:
    """Keep the timings and anything the offline guard blocked next to the screenshots."""
    page.screenshot(path=str(ARTIFACTS / f"{prefix}-page.png"), full_page=True)
    (ARTIFACTS / f"{prefix}-timings.json").write_text(json.dumps(
        {"timings_s": {k: round(v, 2) for k, v in timings.items()}, "blocked": page.blocked,
         "page_errors": page.errors}, indent=2))


def test_panel_in_jupyterlab(lab_server: Server, page: Any) -> None:
    t0 = time.monotonic()
    page.goto(f"{lab_server.url}/lab/tree/panel.ipynb?reset")
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=KERNEL_START)
    page.wait_for_function(
        """() => { const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
                   const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                   return !!k && k.status === 'idle'; }""", timeout=KERNEL_START)
    page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
    page.wait_for_selector(TABS, timeout=KERNEL_START)
    timings = {"page to tab bar": time.monotonic() - t0}
    timings.update(exercise_panel(page, "lab"))
    timings.update(exercise_card(page, "lab"))
    report(page, "lab", timings)


def test_panel_in_voila(voila_server: Server, page: Any) -> None:
    t0 = time.monotonic()
    page.goto(f"{voila_server.url}/", wait_until="commit", timeout=KERNEL_START)
    page.wait_for_selector(TABS, timeout=KERNEL_START)
    timings = {"page to tab bar": time.monotonic() - t0}
    timings.update(exercise_panel(page, "voila"))
    timings.update(exercise_card(page, "voila"))
    report(page, "voila", timings)
