"""Rooms: the widgets hold controls only, and the report draws with the same pixel helpers as the panel."""

from __future__ import annotations

import ast
from pathlib import Path
from types import SimpleNamespace

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet
from PIL import Image

import convviz_widgets
from convviz_widgets import Inspector, render
from convviz_widgets.core.cam import CAM, blurred
from convviz_widgets.images import resize_map
from convviz_widgets.metrics import baseline_image
from convviz_widgets.metrics._maps import resize_map as metrics_resize_map
from convviz_widgets.report import _activation_section, _filter_section
from convviz_widgets.widgets import ActivationsView, FiltersView, ImageChooser

PACKAGE = Path(convviz_widgets.__file__).parent
FORBIDDEN_IN_WIDGETS = ("cv2", "tensorflow", "keras", "convviz_widgets.demo")


def imported_modules(path: Path) -> set[str]:
    """Absolute names of every module a source file imports (relative imports resolved, `from x import y` as x.y)."""
    package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def room_imports(room: str) -> dict[str, set[str]]:
    """Each file of a room (a subpackage) and the modules it imports."""
    return {str(path.relative_to(PACKAGE)): imported_modules(path) for path in sorted((PACKAGE / room).rglob("*.py"))}


def offending(imports: dict[str, set[str]], forbidden: tuple[str, ...]) -> list[str]:
    """'file: module' for every import of a forbidden module or of something inside it."""
    return sorted(f"{name}: {module}" for name, modules in imports.items() for module in modules
                  if any(module == bad or module.startswith(bad + ".") for bad in forbidden))


def test_the_import_finder_sees_relative_and_plain_imports(tmp_path: Path) -> None:
    imports = imported_modules(PACKAGE / "widgets" / "cam_parts.py")
    assert {"ipywidgets", "convviz_widgets.render", "convviz_widgets.metrics.cascade_layers"} <= imports
    assert offending({"x": {"cv2", "keras.layers", "convviz_widgets.demo.scenes"}}, FORBIDDEN_IN_WIDGETS) == [
        "x: convviz_widgets.demo.scenes", "x: cv2", "x: keras.layers"]


def test_widgets_room_imports_no_tensorflow_keras_cv2_or_demo() -> None:
    imports = room_imports("widgets")
    assert len(imports) >= 8
    assert offending(imports, FORBIDDEN_IN_WIDGETS) == []


def test_render_and_metrics_do_not_import_each_other_or_a_room_above() -> None:
    assert offending(room_imports("render"), ("convviz_widgets.metrics", "convviz_widgets.widgets",
                                              "convviz_widgets.demo", "convviz_widgets.report")) == []
    assert offending(room_imports("metrics"), ("convviz_widgets.render", "convviz_widgets.widgets",
                                               "convviz_widgets.demo", "convviz_widgets.report")) == []


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    """The shared tiny convnet."""
    return Inspector(small_convnet(size=32, seed=2))


def png(path: Path) -> np.ndarray:
    """A PNG file's pixels as uint8 RGB."""
    return np.asarray(Image.open(path).convert("RGB"))


def test_report_and_filters_tab_draw_the_same_labelled_filter_tiles(inspector: Inspector, tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    patterns = inspector.filter_patterns("conv2", range(4), size=32, steps=2, seed=0)
    monkeypatch.setattr(inspector, "filter_patterns", lambda *args, **kwargs: patterns)
    _, _, items = _filter_section(inspector, ["conv2"], tmp_path, 4, 32, 2, 1.0, ("plain",))
    reported = png(tmp_path / items[0][0])
    view = FiltersView(inspector, layer="conv2", count=4, size=32, steps=2, background=False)
    view.render()
    [shown] = view.pictures().values()
    assert np.array_equal(reported, shown)
    assert np.array_equal(shown, render.filter_picture(patterns))
    strip = shown[: render.filters.LABEL_HEIGHT, : render.filters.TILE_MIN]
    assert (strip == 255).any() and shown.shape[0] > render.filters.TILE_MIN  # labelled, enlarged tiles


def test_report_saves_activation_grids_as_the_panel_saves_them(inspector: Inspector, tmp_path: Path) -> None:
    image = rng_image(32, 32, seed=4)
    _, _, items = _activation_section(inspector, inspector.prepare(image), tmp_path, 16)
    view = ActivationsView(inspector, image, layer="conv1", background=False)
    saved = view.pictures()["conv1"]
    assert np.array_equal(png(tmp_path / dict((c.split(" ")[0], f) for f, c in items)["conv1"]), saved)


def test_one_heatmap_resize_behind_overlays_cams_and_metrics() -> None:
    heat = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    expected = resize_map(heat, (40, 56))
    assert expected.shape == (40, 56) and not np.array_equal(expected[:8, :8], np.full((8, 8), heat[0, 0]))
    assert np.array_equal(CAM(heat, 0, 1.0, "conv").resized(40, 56), np.clip(expected, 0, 1))
    assert np.array_equal(metrics_resize_map(heat, (40, 56)), expected)
    colours = render.colormaps.apply(render.colormaps.to_uint8(expected), "jet")
    assert np.array_equal(render.heatmap_image(heat, "jet", size=(40, 56)), colours)
    cells = render.heatmap_picture(heat, "jet", (40, 56, 3))
    assert np.array_equal(cells[:8, :8], np.broadcast_to(cells[0, 0], (8, 8, 3)))  # nearest: each cell shows


def test_one_blurred_baseline_for_score_cam_and_the_deletion_metric() -> None:
    image = rng_image(3, 40, seed=5)  # a short side this small shows the floor of the blur's sigma
    assert np.array_equal(baseline_image(image, "blur"), blurred(image.astype(np.float32)))
    assert baseline_image(image, "blur").std() < image.std()


def test_report_and_panel_share_one_slug() -> None:
    assert render.slug("outer/inner conv") == "outer-inner-conv"
    from convviz_widgets.report import _file_name

    assert _file_name("outer/inner conv", "act") == "act_outer-inner-conv.png"


class Dots:
    """A model's own sample scenes (not the demo's): one picture with one labelled object."""

    size = 40

    def options(self) -> list[tuple[str, str]]:
        return [("dots", "dots")]

    def scene(self, key: str, seed: int = 0, size: int | None = None) -> SimpleNamespace:
        side = size or self.size
        mask = np.zeros((side, side), bool)
        mask[4:12, 4:12] = True
        return SimpleNamespace(image=rng_image(side, side, seed=seed), labels=[0], masks=[mask])


def test_a_model_carries_its_own_plain_step_and_sample_scenes() -> None:
    keras.utils.set_random_seed(0)
    model = small_convnet(size=32, seed=3)
    model.filter_step_size, model.sample_scenes = 2.5, Dots()
    assert FiltersView(model, background=False).step_size.value == 2.5
    chooser = ImageChooser(model, background=False)
    assert [value for _, value in chooser.source.options] == ["sample:dots"] and chooser.samples
    chooser.choose(chooser.first_sample)
    assert chooser.scene is not None and chooser.display.shape[:2] == (32, 32) and not chooser.error


def test_other_models_are_offered_the_demo_scenes_by_default() -> None:
    from convviz_widgets import demo

    chooser = ImageChooser(small_convnet(size=32, seed=3), background=False)
    assert [label for label, _ in chooser.source.options] == [f"Sample: {label}" for label, _ in
                                                               demo.SAMPLES.options()]
    assert chooser.first_sample == "sample:0"
