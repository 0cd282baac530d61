"""README.md and the documentation pages run as pasted.

Every ```python block of the README runs on its own, from an empty namespace, as if pasted into a new
notebook; a documentation page's blocks run in order in one namespace per page that starts empty, as
a reader goes down the page. Blocks fenced with another language (bash, text) or none are not run.
They run in a temporary working folder that holds only the files the pages tell a reader to get:
`cats_and_dogs_small_2.h5` (built here with the layers of the book's cats-vs-dogs convnet, since
nothing can download the book's file) and `cat.jpg`. The optional packages of the extras
(scikit-image, nbgrader, JupyterLab, ...) are made unimportable while the blocks run, so a block that
needs more than `pip install .` fails.
"""

from __future__ import annotations

import ast
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import keras
import pytest

import convviz_widgets as cv
from convviz_widgets import demo

ROOT = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(?P<lang>[^\n`]*)\n(?P<body>.*?)^```[ \t]*$", re.S | re.M)
# packages that only the extras bring, not `pip install .`
EXTRAS_ONLY = ("skimage", "nbgrader", "jupyterlab", "jupytext", "nbclient", "playwright", "voila", "keras_hub")


def blocks(text: str) -> list[tuple[str, str]]:
    """(language, code) of every fenced block, in order."""
    return [(m["lang"].strip().lower(), m["body"]) for m in FENCE.finditer(text)]


def python_blocks(path: Path = ROOT / "README.md") -> list[str]:
    """A Markdown file's ```python blocks (the README's by default)."""
    return [body for lang, body in blocks(path.read_text()) if lang == "python"]


DOC_PAGES = sorted(p for p in (ROOT / "docs").rglob("*.md") if python_blocks(p))


def book_model() -> keras.Model:
    """The book's cats-vs-dogs convnet (DLwP 1st ed., 5.2): four conv/pool blocks, dropout, dense 512, one sigmoid."""
    keras.utils.set_random_seed(0)
    layers = [keras.Input((150, 150, 3))]
    for i, filters in enumerate((32, 64, 128, 128), start=1):
        layers += [keras.layers.Conv2D(filters, 3, activation="relu", name=f"conv2d_{i}"),
                   keras.layers.MaxPooling2D(name=f"max_pooling2d_{i}")]
    layers += [keras.layers.Flatten(name="flatten_1"), keras.layers.Dropout(0.5, name="dropout_1"),
               keras.layers.Dense(512, activation="relu", name="dense_1"),
               keras.layers.Dense(1, activation="sigmoid", name="dense_2")]
    return keras.Sequential(layers, name="cats_and_dogs_small")


@pytest.fixture
def readme_folder(tmp_path, monkeypatch) -> Iterator[Path]:
    """A working folder with the files the README asks for; registries and limits restored afterwards."""
    from PIL import Image

    book_model().save(tmp_path / "cats_and_dogs_small_2.h5")
    Image.fromarray(demo.scene(label=0, seed=1, size=150).image).save(tmp_path / "cat.jpg", quality=95)
    monkeypatch.chdir(tmp_path)
    from convviz_widgets import limits

    settings = (limits.max_pixels, limits.memory_budget, limits.max_model_bytes)
    environ = dict(os.environ)  # a block may set a variable (KERAS_BACKEND) that later subprocesses would inherit
    for name in EXTRAS_ONLY:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` raises ImportError while the blocks run
    with cv.scoped_registries():  # a method or tab the README registers does not outlive the test
        yield tmp_path
    limits.max_pixels, limits.memory_budget, limits.max_model_bytes = settings
    os.environ.clear()
    os.environ.update(environ)


def test_fence_parser_keeps_languages_apart():
    text = "```bash\nmake test\n```\n\n```python\nx = 1\n```\n```\nplain\n```\n"
    assert blocks(text) == [("bash", "make test\n"), ("python", "x = 1\n"), ("", "plain\n")]


def run_block(code: str, name: str, namespace: dict) -> object:
    """Run a block as a notebook cell would; return the value of its last line if that is an expression."""
    tree = ast.parse(code, name)
    if tree.body and isinstance(tree.body[-1], ast.Expr):
        tree.body[-1] = ast.Assign(targets=[ast.Name("_readme_shown", ast.Store())], value=tree.body[-1].value)
        ast.fix_missing_locations(tree)
    exec(compile(tree, name, "exec"), namespace)
    return namespace.pop("_readme_shown", None)


def run_blocks(path: Path, blocks_: list[str], fresh: bool) -> None:
    """Run blocks in order, each in a fresh namespace or all in one; fail naming the block."""
    name = path.relative_to(ROOT).as_posix()
    namespace: dict = {"__name__": "readme"}
    for number, code in enumerate(blocks_, start=1):
        if fresh:
            namespace = {"__name__": "readme"}
        try:
            shown = run_block(code, f"{name} python block {number}", namespace)
        except Exception as err:  # say which block broke, with its code
            pytest.fail(f"{name} python block {number} raised {type(err).__name__}: {err}\n\n{code}")
        for value in [shown, *namespace.values()]:
            if type(value).__name__ == "ConvVizPanel":
                assert value.wait(), f"{name} block {number}: the panel's first view did not finish"


def test_readme_opens_with_the_notebook_snippet():
    blocks_ = python_blocks()
    assert blocks_ and "ConvVizPanel(" in blocks_[0]


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_every_python_block_in_the_readme_runs_as_pasted(readme_folder):
    run_blocks(ROOT / "README.md", python_blocks(), fresh=True)


def test_documentation_pages_with_code_are_found():
    names = {p.relative_to(ROOT / "docs").as_posix() for p in DOC_PAGES}
    assert {"api.md", "howto/own-cam-method.md", "howto/own-tab.md", "limits.md"} <= names


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("page", DOC_PAGES, ids=lambda p: p.relative_to(ROOT / "docs").as_posix())
def test_every_python_block_in_a_documentation_page_runs_as_pasted(page, readme_folder):
    run_blocks(page, python_blocks(page), fresh=False)


def test_the_first_api_block_uses_only_what_ships_with_the_package():
    first = python_blocks(ROOT / "docs" / "api.md")[0]
    assert "demo.load_model()" in first
    for line in first.splitlines():
        code = line.split("#", 1)[0]
        assert not re.search(r"['\"][^'\"]+\.(h5|keras|jpe?g|png)['\"]", code), f"a file to get: {line}"


def test_the_book_block_says_where_its_files_come_from():
    page = (ROOT / "docs" / "api.md").read_text()
    book = next(body for body in python_blocks(ROOT / "docs" / "api.md") if "cats_and_dogs_small_2.h5" in body)
    before = page[:page.index(book)].rsplit("```", 1)[0][-700:]
    assert "cats_and_dogs_small_2.h5" in before and "cat.jpg" in before and "section 5.2" in before


def test_the_book_model_stand_in_has_the_books_layers_and_size():
    model = book_model()
    assert [layer.name for layer in model.layers if "conv" in layer.name] == [f"conv2d_{i}" for i in range(1, 5)]
    assert model.count_params() == 3_453_121  # the book's summary for this network


def test_cat_photo_names_the_extra_it_needs(monkeypatch):
    from convviz_widgets import ConvVizError
    from convviz_widgets.notebook import cat_photo

    monkeypatch.setitem(sys.modules, "skimage", None)
    with pytest.raises(ConvVizError, match=re.escape('pip install ".[notebooks]"')):
        cat_photo()
    readme = (ROOT / "docs" / "api.md").read_text()
    assert re.search(r"`cat_photo\(\)`[^.]*needs? the notebooks extra,\s+`pip install \"\.\[notebooks\]\"`", readme)


def test_notebook_execution_names_the_extra_it_needs(monkeypatch, tmp_path):
    from convviz_widgets import ConvVizError
    from convviz_widgets.notebook import execute

    monkeypatch.setitem(sys.modules, "nbclient", None)
    with pytest.raises(ConvVizError, match=re.escape('pip install ".[notebooks]"')):
        execute(tmp_path / "any.ipynb")
