"""README.md and the documentation pages run: every ```python block is executed, in order, in one namespace
per file.

Blocks fenced with another language (bash, text) or none are not run. The namespace starts with
`model` (the demo model) and `image` (a demo scene), `array` (a picture), and the working directory
is a temporary folder holding the files the blocks name: `cats_and_dogs_small_2.h5` (a small
two-class convnet in the book's layer names, legacy HDF5) and `cat.jpg`.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import keras
import numpy as np
import pytest

from convviz_widgets import demo

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m["lang"].strip().lower(), m["body"]) for m in FENCE.finditer(text)]


def python_blocks(path: Path = ROOT / "README.md") -> list[str]:
    """A Markdown file's ```python blocks (the README's by default)."""
    return [body for lang, body in blocks(path.read_text()) if lang == "python"]


DOC_PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if python_blocks(p))


def book_model() -> keras.Model:
    """A 150 px convnet with the book's layer names (conv2d_1 ...) and a single sigmoid unit (cat / dog)."""
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((150, 150, 3)),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2d_1"),
        keras.layers.MaxPooling2D(name="max_pooling2d_1"),
        keras.layers.Conv2D(32, 3, activation="relu", name="conv2d_2"),
        keras.layers.MaxPooling2D(name="max_pooling2d_2"),
        keras.layers.Flatten(name="flatten_1"),
        keras.layers.Dense(1, activation="sigmoid", name="dense_1"),
    ], name="cats_and_dogs_small")


@pytest.fixture
def readme_namespace(tmp_path, monkeypatch) -> Iterator[dict]:
    """The names and files README blocks may use; the working directory is a temporary folder."""
    from PIL import Image

    scene = demo.scene(label=0, seed=1)
    book_model().save(tmp_path / "cats_and_dogs_small_2.h5")
    Image.fromarray(scene.image).save(tmp_path / "cat.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    from convviz_widgets import limits
    from convviz_widgets.core import cams
    from convviz_widgets.widgets import registry

    registry.view_entries()  # the built-in tabs are registered before the README's own
    methods, views = dict(cams.METHODS), dict(registry._VIEWS)
    settings = (limits.max_pixels, limits.memory_budget, limits.max_model_bytes)
    yield {"__name__": "readme", "model": demo.load_model(), "image": scene.image, "array": scene.image}
    cams.METHODS.clear()  # a method or tab the README registers, and the limits it sets, do not outlive the test
    cams.METHODS.update(methods)
    registry._VIEWS.clear()
    registry._VIEWS.update(views)
    limits.max_pixels, limits.memory_budget, limits.max_model_bytes = settings


def test_fence_parser_keeps_languages_apart():
    text = "```bash\nmake test\n```\n\n```python\nx = 1\n```\n```\nplain\n```\n"
    assert blocks(text) == [("bash", "make test\n"), ("python", "x = 1\n"), ("", "plain\n")]


def test_readme_opens_with_the_notebook_snippet():
    blocks_ = python_blocks()
    assert blocks_ and "ConvVizPanel(" in blocks_[0]


def run_block(code: str, name: str, namespace: dict) -> object:
    """Run a block as a notebook cell would; return the value of its last line if that is an expression."""
    tree = ast.parse(code, name)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tree.body[-1] = ast.Assign(targets=[ast.Name("_readme_shown", ast.Store())], value=tree.body[-1].value)
        ast.fix_missing_locations(tree)
    exec(compile(tree, name, "exec"), namespace)
    return namespace.pop("_readme_shown", None)


def run_blocks(path: Path, namespace: dict) -> None:
    """Run a file's python blocks in order in one namespace, as in one notebook; fail naming the block."""
    shown = []
    name = path.relative_to(ROOT).as_posix()
    for number, code in enumerate(python_blocks(path), start=1):
        try:
            shown.append(run_block(code, f"{name} python block {number}", namespace))
        except Exception as err:  # say which block broke, with its code
            pytest.fail(f"{name} python block {number} raised {type(err).__name__}: {err}\n\n{code}")
    for value in [*shown, *namespace.values()]:
        if type(value).__name__ == "ConvVizPanel":
            assert value.wait(), "the panel's first view did not finish"  # before the next test starts


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_python_block_in_the_readme_runs(readme_namespace):
    run_blocks(ROOT / "README.md", readme_namespace)
    assert np.asarray(readme_namespace["image"]).ndim == 3


def test_documentation_pages_with_code_are_found():
    names = {p.relative_to(ROOT / "docs").as_posix() for p in DOC_PAGES}
    assert {"api.md", "howto/own-cam-method.md", "howto/own-tab.md", "limits.md"} <= names


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_every_python_block_in_a_documentation_page_runs(page, readme_namespace):
    run_blocks(page, readme_namespace)
