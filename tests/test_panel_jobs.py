"""One job slot per view: the latest request wins, stale results are dropped, Render after Cancel draws.

The soak test drives a panel with a background runner through 2000 rapid class, image, layer and method changes
without waiting, records every value the error widgets take, and checks the final state against the
last request.
"""

from __future__ import annotations

import random
import re
import threading
import time

import ipywidgets as widgets
import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet, wait_until

import convviz_widgets as cv
from convviz_widgets import Cancelled, Inspector
from convviz_widgets.widgets import ConvVizPanel, FiltersView, JobSlot, Runner
from convviz_widgets.widgets.runner import still_wanted

CHANGES = 2000


@pytest.fixture(scope="module")
def model8() -> keras.Model:
    """A tiny 8-class convnet (fast enough for thousands of requests)."""
    return small_convnet(size=32, classes=8, seed=1)


def recorder(*widgets_: object) -> list[str]:
    """Every value the given HTML error widgets take from now on."""
    seen: list[str] = []
    for widget in widgets_:
        widget.observe(lambda change: seen.append(change["new"]), names="value")
    return seen


# ----- the job slot every view and the card use ------------------------------------------------------------
def test_a_job_slot_moves_its_bar_offers_cancel_and_is_idle_before_the_callback() -> None:
    runner = Runner(background=True)
    bar, cancel = widgets.IntProgress(7, max=9), widgets.Button(disabled=True)
    slot = JobSlot(runner, "test", bar, cancel)
    gate, seen = threading.Event(), []

    def work() -> int:
        for step in range(1, 1000):
            if not slot.report(step, 1000):
                raise Cancelled(f"stopped after {step - 1}")
            gate.wait(0.002)
        return 1

    slot.submit("first", work, seen.append, seen.append)
    assert slot.running and slot.key == "first" and not cancel.disabled and bar.bar_style == "info"
    wait_until(lambda: bar.value >= 3, what="three reported steps")
    assert bar.max == 1000
    assert slot.cancel() and slot.cancelling
    assert runner.wait(30)
    assert isinstance(seen[-1], Cancelled) and not slot.running and cancel.disabled and bar.bar_style == "warning"

    slot.submit("second", lambda: cancel.disabled, lambda off: seen.append((off, slot.running, cancel.disabled)),
                seen.append, cancellable=False)
    assert runner.wait(30)
    assert seen[-1] == (True, False, True), "no Cancel for it, and the slot was idle when the result came"
    assert bar.bar_style == "success" and not slot.cancel()


def test_the_card_works_without_the_grad_cam_tab_its_evidence_comes_from_the_panel() -> None:
    model = small_convnet(size=32, classes=3, seed=2)
    with cv.scoped_registries():
        cv.widgets.unregister_view("cam")
        panel = ConvVizPanel(model, rng_image(32, 32, seed=4), background=False)
        assert panel.titles == ("Activations", "Filters") and not panel.services.evidence.available
        panel.open_channel("conv2", 1)
        card = panel.activations.card
        assert card.layout.display is None and card.evidence_text.value == "" and panel.activations.error == ""
    with_cam = ConvVizPanel(model, rng_image(32, 32, seed=4), background=False)
    with_cam.open_channel("conv2", 1)
    assert with_cam.services.evidence.available
    assert "Class evidence" in with_cam.activations.card.evidence_text.value


# ----- the runner ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("background", [False, True])
def test_each_job_reports_its_result_or_error(background: bool) -> None:
    runner = Runner(background)
    got: list = []
    runner.submit(lambda: 2 + 2, got.append, got.append, slot="a")
    runner.submit(lambda: 1 / 0, got.append, got.append, slot="b")
    assert runner.wait(10) and not runner.busy
    assert got[0] == 4 and isinstance(got[1], ZeroDivisionError)


def test_a_new_request_replaces_the_one_queued_in_its_slot() -> None:
    runner = Runner(True)
    gate = threading.Event()
    ran: list[str] = []
    shown: list[str] = []
    runner.submit(lambda: gate.wait(30), lambda _: None, lambda _: None)  # holds the worker
    for name in ("first", "second", "third"):
        runner.submit(lambda name=name: ran.append(name) or name, shown.append, shown.append, slot="view")
    runner.submit(lambda: ran.append("other") or "other", shown.append, shown.append, slot="another view")
    gate.set()
    assert runner.wait(30)
    assert ran == ["third", "other"] and shown == ["third", "other"]


def test_a_running_job_made_stale_is_told_to_stop_and_its_result_is_dropped() -> None:
    runner = Runner(True)
    started, told = threading.Event(), threading.Event()
    shown: list = []

    def long_work() -> str:
        started.set()
        while still_wanted():
            time.sleep(0.005)
        told.set()
        return "stale picture"

    runner.submit(long_work, shown.append, shown.append, slot="view")
    assert started.wait(30)
    runner.submit(lambda: "new picture", shown.append, shown.append, slot="view")
    assert runner.wait(30) and told.is_set()
    assert shown == ["new picture"]


def test_cancel_reports_that_the_job_stopped_and_the_next_request_runs() -> None:
    runner = Runner(True)
    started = threading.Event()
    shown: list = []

    def work() -> str:
        started.set()
        while still_wanted():
            time.sleep(0.005)
        raise Cancelled("stopped")

    runner.submit(work, shown.append, shown.append, slot="view")
    assert started.wait(30)
    assert runner.cancel("view")
    runner.submit(lambda: "drawn", shown.append, shown.append, slot="view")  # right after Cancel
    assert runner.wait(30)
    assert shown == ["drawn"]  # the cancelled job was replaced before it reported; the new one is drawn
    runner.submit(work, shown.append, shown.append, slot="view")
    assert started.wait(30)
    assert runner.cancel("view") and runner.wait(30)
    assert isinstance(shown[-1], Cancelled)
    assert not runner.cancel("view")  # nothing left to cancel


def test_wait_includes_jobs_that_finished_jobs_submit() -> None:
    runner = Runner(True)
    shown: list[int] = []

    def chain(n: int) -> None:
        shown.append(n)
        if n < 5:
            runner.submit(lambda: n + 1, chain, shown.append, slot=f"step{n}")

    runner.submit(lambda: 0, chain, shown.append)
    assert runner.wait(30) and shown == [0, 1, 2, 3, 4, 5]


def test_wait_from_a_job_is_refused_instead_of_hanging() -> None:
    runner = Runner(True)
    got: list = []
    runner.submit(lambda: runner.wait(1), got.append, got.append)
    assert runner.wait(30)
    assert isinstance(got[0], RuntimeError) and "wait for itself" in str(got[0])


# ----- filter patterns: Render, Cancel, Render --------------------------------------------------------------
def progressed(view: FiltersView, steps: int) -> None:
    """Wait until a background render has done `steps` steps."""
    wait_until(lambda: view.progress.value >= steps, what=f"{steps} ascent steps")


def test_render_right_after_cancel_draws_the_new_settings(model8: keras.Model) -> None:
    view = FiltersView(model8, layer="conv3", count=4, steps=500, background=True)
    errors = recorder(view.message)
    view.render_button.click()
    progressed(view, 2)
    view.cancel_button.click()
    view.steps.value = 3
    view.render_button.click()  # right after Cancel: honoured, not refused
    assert view.wait(60)
    assert view.status.value == "" and view.progress.value == 3 and view.progress.bar_style == "success"
    assert "3 steps" in view.caption.value and len(view.cache) == 1 and not view.running
    assert errors == [] or set(errors) == {""}


def test_render_cancel_render_with_the_same_settings_draws(model8: keras.Model) -> None:
    view = FiltersView(model8, layer="conv3", count=2, steps=40, background=True)
    view.render_button.click()
    progressed(view, 1)
    view.cancel_button.click()
    view.render_button.click()
    assert view.wait(60)
    assert view.status.value == "" and view.progress.value == 40 and view.error == ""
    assert len(bytes(view.grid.value)) > 0 and view.cancel_button.disabled


def test_a_second_render_replaces_the_running_one(model8: keras.Model, monkeypatch) -> None:
    view = FiltersView(model8, layer="conv3", count=2, steps=500, background=True)
    calls: list[int] = []
    original = view.inspector.filter_patterns
    monkeypatch.setattr(view.inspector, "filter_patterns",
                        lambda *a, **k: calls.append(k["steps"]) or original(*a, **k))
    view.render_button.click()
    progressed(view, 2)
    view.steps.value = 4
    view.render_button.click()
    assert view.wait(60)
    assert calls == [500, 4] and list(view.cache) == [view.key()] and "4 steps" in view.caption.value


# ----- the panel under rapid requests ---------------------------------------------------------------------
LAYERS = ("conv3", "conv2")
METHODS = ("gradcam", "gradcam++")


def actions(seed: int, count: int, images: int, classes: int) -> list[tuple[str, int]]:
    """A fixed random sequence of image, class, layer and method requests: ('image', i), ('class', k), ..."""
    rng = random.Random(seed)
    kinds = ["image"] * 9 + ["class"] * 9 + ["layer", "method"]
    out = []
    for _ in range(count):
        kind = rng.choice(kinds)
        size = {"image": images, "class": classes, "layer": len(LAYERS), "method": len(METHODS)}[kind]
        out.append((kind, rng.randrange(size)))
    return out


def expected_state(steps: list[tuple[str, int]], pictures: list[np.ndarray], inspector: Inspector
                   ) -> tuple[np.ndarray, int, str, str]:
    """The last image asked for; its class (the last one picked after it, else its top class); the last layer
    and method asked for."""
    last = max(i for i, (kind, _) in enumerate(steps) if kind == "image")
    image = pictures[steps[last][1]]
    picked = [k for kind, k in steps[last + 1:] if kind == "class"]
    layers = [LAYERS[k] for kind, k in steps if kind == "layer"]
    methods = [METHODS[k] for kind, k in steps if kind == "method"]
    return (image, picked[-1] if picked else inspector.predict(image, top=1)[0][0],
            layers[-1] if layers else inspector.default_cam_layer, methods[-1] if methods else "gradcam")


def drive(panel: ConvVizPanel, steps: list[tuple[str, int]], pictures: list[np.ndarray], paced: bool = False) -> None:
    """Make the requests without waiting for any result (a class pick is a request even when it is shown).

    As fast as Python can, or `paced`: now and then a pause of a few milliseconds, as between a person's
    clicks, so that results arrive while later requests are made.
    """
    rng = random.Random(len(steps))
    for kind, value in steps:
        if paced and rng.random() < 0.2:
            time.sleep(rng.uniform(0.0, 0.01))
        if kind == "image":
            panel.set_image(pictures[value])
        elif kind == "class":
            panel.cam.choose(value)
        elif kind == "layer":
            panel.cam.layer.value = LAYERS[value]
        else:
            panel.cam.method.value = METHODS[value]


def drawn_classes_match_the_pick(panel: ConvVizPanel) -> list[str]:
    """Watch every map drawn: when a class was picked, the map drawn must be of that class (mismatches listed)."""
    wrong: list[str] = []

    def drawn(change: dict) -> None:
        found = re.search(r"\(class (\d+)\)", change["new"])
        picked = panel.cam.requested_class
        if found and picked is not None and int(found.group(1)) != picked:
            wrong.append(f"drew class {found.group(1)} while class {picked} was asked for")

    panel.cam.score.observe(drawn, names="value")
    return wrong


def assert_shows(panel: ConvVizPanel, image: np.ndarray, index: int, layer: str | None = None,
                 method: str = "gradcam") -> None:
    """Header and Grad-CAM show `image` (Grad-CAM its class, layer and method); so does Activations once shown."""
    ins = panel.inspector
    rgb = ins.prepare(image)
    np.testing.assert_array_equal(panel.chooser.rgb, rgb)
    np.testing.assert_array_equal(panel.cam.rgb, rgb)
    assert [p[0] for p in panel.cam.predictions] == [p[0] for p in ins.predict(rgb)]
    cam = panel.cam
    layer = layer or ins.default_cam_layer
    assert cam.class_index.value == index and f"(class {index})" in cam.score.value
    assert cam.layer.value == layer and f"<code>{layer}</code>" in cam.score.value
    assert cam.method.value == method and cam.current_cam().method == method
    expected = ins.gradcam(rgb, class_index=index, layer=layer, method=method).heatmap
    np.testing.assert_allclose(cam.current_cam().heatmap, expected, atol=1e-5)
    assert cam.status.value == "" and panel.chooser.status.value == ""
    panel.select("Activations")
    assert panel.wait(60)
    np.testing.assert_array_equal(panel.activations.rgb, rgb)
    np.testing.assert_array_equal(panel.activations.activation(), ins.activations(rgb)[panel.activations.layer.value])
    assert panel.activations.status.value == "" and panel.activations.error == ""
    panel.select("Grad-CAM")


@pytest.mark.parametrize(("background", "count", "paced"), [(True, CHANGES, False), (True, CHANGES, True),
                                                             (False, 150, False)])
def test_rapid_class_image_layer_and_method_changes_end_on_the_last_request_without_errors(
        model8: keras.Model, background: bool, count: int, paced: bool) -> None:
    pictures = [rng_image(32, 32, seed=s) for s in range(12)]
    steps = actions(seed=count, count=count, images=len(pictures), classes=8)
    panel = ConvVizPanel(model8, pictures[0], background=background)
    panel.select("Grad-CAM")
    assert panel.wait(60)
    errors = recorder(panel.chooser.message, panel.activations.message, panel.cam.message)
    wrong = drawn_classes_match_the_pick(panel)
    drive(panel, steps, pictures, paced)
    assert panel.wait(120)
    assert [e for e in errors if e] == []  # no error (let alone a raw exception) was shown at any moment
    assert wrong == []
    assert_shows(panel, *expected_state(steps, pictures, panel.inspector))


def test_a_class_picked_while_the_image_loads_applies_to_the_new_image(model8: keras.Model) -> None:
    panel = ConvVizPanel(model8, rng_image(32, 32, seed=1), background=True)
    panel.select("Grad-CAM")
    assert panel.wait(60)
    gate = threading.Event()
    panel.runner.submit(lambda: gate.wait(30), lambda _: None, lambda _: None)  # the new image waits in the queue
    new = rng_image(32, 32, seed=2)
    panel.set_image(new)
    top = panel.inspector.predict(new, top=8)
    other = top[-1][0]  # the least likely class: never the default
    panel.cam.class_index.value = other
    gate.set()
    assert panel.wait(60)
    assert_shows(panel, new, other)
    panel.set_image(rng_image(32, 32, seed=3))  # a new image without a pick: its top class
    assert panel.wait(60)
    assert_shows(panel, rng_image(32, 32, seed=3), panel.inspector.predict(rng_image(32, 32, seed=3))[0][0])
