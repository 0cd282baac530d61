"""The panel's tabs come from the view registry: a new tab is one View subclass and one decorator."""

from __future__ import annotations

import ipywidgets as widgets
import numpy as np
import pytest
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import ConvVizError
from convviz_widgets.widgets import ConvVizPanel, View, unregister_view, view_entries


@pytest.fixture(scope="module")
def model():
    return small_convnet(seed=3)


@pytest.fixture
def toy_view():
    """A user's tab, written as a user would: the brightest pixel of the image the model sees (for one test)."""

    class Brightest(cv.ImageView):
        kind = "brightest"

        def __init__(self, model, image=None, **kwargs):
            super().__init__(model, image, **kwargs)
            self.answer = widgets.Label()
            self.children = [self.status, self.message, self.answer]
            self._start_initial()

        def compute(self, rgb, wanted, fresh):
            return int(rgb.max())

        def apply(self, result, wanted, fresh):
            self.answer.value = f"brightest: {result}"

    with cv.registered_view("brightest", "Brightest", Brightest):
        yield Brightest
    assert "brightest" not in [entry.key for entry in view_entries()]


def test_the_built_in_tabs_come_from_the_registry_in_order(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=1), background=False)
    assert panel.titles == ("Activations", "Filters", "Grad-CAM")
    assert panel.tabs.titles == panel.titles
    assert [e.key for e in view_entries()] == ["activations", "filters", "cam"]
    assert (panel.activations, panel.filters, panel.cam) == panel.views
    assert set(panel.image_views) == {panel.activations, panel.cam}


def test_a_registered_view_is_a_tab_that_gets_the_image(model, toy_view):
    image = rng_image(32, 32, seed=2)
    panel = ConvVizPanel(model, image, background=False)
    assert panel.titles[-1] == "Brightest" and isinstance(panel.brightest, toy_view)
    view = panel.select("Brightest")
    assert view is panel.brightest and view.inspector is panel.inspector and view.runner is panel.runner
    assert view.answer.value == f"brightest: {int(panel.inspector.prepare(image).max())}"
    panel.set_image(np.zeros((32, 32, 3), np.uint8))  # the header's next image reaches the new tab too
    assert view.answer.value == "brightest: 0"


def test_a_hidden_view_catches_up_when_its_tab_is_shown(model, toy_view):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=4), background=False)
    assert panel.brightest.answer.value == ""  # not shown yet: no work done for it
    panel.select("Brightest")
    assert panel.brightest.answer.value.startswith("brightest: ")


def test_an_unregistered_view_leaves_new_panels(model, toy_view):
    unregister_view("brightest")
    panel = ConvVizPanel(model, rng_image(32, 32, seed=5), background=False)
    assert "Brightest" not in panel.titles
    with pytest.raises(AttributeError):
        panel.brightest  # noqa: B018


def test_order_places_a_tab_between_the_built_in_ones(model):
    class Between(View):
        kind = "between"

    with cv.registered_view("between", "Between", Between, order=15):
        panel = ConvVizPanel(model, rng_image(32, 32, seed=6), background=False)
        assert panel.titles == ("Activations", "Between", "Filters", "Grad-CAM")
        assert panel.between not in panel.image_views  # a plain View is not sent images
    assert ConvVizPanel(model, rng_image(32, 32, seed=6), background=False).titles == (
        "Activations", "Filters", "Grad-CAM")


def test_register_view_refuses_what_cannot_be_a_tab():
    with pytest.raises(ConvVizError, match="Python name"):
        cv.register_view("two words", "Two")
    with pytest.raises(ConvVizError, match="title"):
        cv.register_view("empty", " ")
    with pytest.raises(ConvVizError, match="View subclass"):
        cv.register_view("label", "Label")(widgets.Label)

    class Impostor(View):
        pass

    with pytest.raises(ConvVizError, match="taken"):
        cv.register_view("cam", "Also Grad-CAM")(Impostor)
    with pytest.raises(ConvVizError, match="taken"):
        cv.register_view("other", "Grad-CAM")(Impostor)
    with pytest.raises(ConvVizError, match="No view is registered"):
        unregister_view("nothing")


def test_select_names_the_tabs_when_the_title_is_unknown(model):
    panel = ConvVizPanel(model, rng_image(32, 32, seed=7), background=False)
    with pytest.raises(ConvVizError, match="Activations, Filters, Grad-CAM"):
        panel.select("Saliency")


def test_every_view_module_in_the_package_registers_itself_without_an_import_list():
    import ast
    from pathlib import Path

    import convviz_widgets.widgets as package

    decorated = set()
    for path in Path(package.__path__[0]).glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef):
                for dec in node.decorator_list:
                    name = getattr(dec.func, "id", getattr(dec.func, "attr", "")) if isinstance(dec, ast.Call) else ""
                    if name == "register_view":
                        decorated.add(node.name)
    assert decorated == {"ActivationsView", "FiltersView", "CamView"}
    assert {e.view.__name__ for e in view_entries()} >= decorated
