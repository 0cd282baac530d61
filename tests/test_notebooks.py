"""The notebooks: each a jupytext script paired with its .ipynb, stored outputs complete and clean.

nbval itself (outputs compared cell by cell) runs separately, as `make test` does:
`pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/`.
`make notebooks` syncs the pairs and re-executes them (`python -m convviz_widgets.notebook`).
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from convviz_widgets import notebook
from convviz_widgets.notebook import IGNORE_OUTPUT, QUIET_CELL, WIDGET_CELL

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
STORED = sorted(p.relative_to(NOTEBOOKS).as_posix() for p in NOTEBOOKS.rglob("*.ipynb")
                if ".ipynb_checkpoints" not in p.parts)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The notebook's code cells."""
    return [c for c in nb.cells if c.cell_type == "code"]


def test_every_notebook_is_paired_with_a_script():
    scripts = sorted(p.relative_to(NOTEBOOKS).as_posix() for p in NOTEBOOKS.glob("[0-9]*.py"))
    assert STORED, "no notebooks found"
    assert [s.removesuffix(".py") for s in scripts] == [n.removesuffix(".ipynb") for n in STORED]
    assert "formats" in (NOTEBOOKS / "jupytext.toml").read_text()


@pytest.mark.parametrize("name", STORED)
def test_stored_cells_match_the_script(name):
    import jupytext

    path = NOTEBOOKS / name
    stored = nbformat.read(path, as_version=4)
    text = jupytext.read(path.with_suffix(".py"))
    assert [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in stored.cells] == \
        [(c.cell_type, c.source.strip(), c.metadata.get("tags", [])) for c in text.cells], \
        f"{name} is out of step with its script: run `make notebooks`"


@pytest.mark.parametrize("name", STORED)
def test_scripts_use_the_package_helpers_instead_of_pasted_ones(name):
    text = (NOTEBOOKS / name).with_suffix(".py").read_text()
    assert "def show(" not in text and "def choose_real_model(" not in text
    assert "from convviz_widgets.notebook import" in text


@pytest.mark.parametrize("name", STORED)
def test_stored_outputs_are_complete_and_clean(name):
    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    for index, cell in enumerate(code_cells(nb)):
        assert cell.execution_count is not None, f"{name}: code cell {index} was not run"
        assert "execution" not in cell.metadata, f"{name}: code cell {index} stores timings (not deterministic)"
        compared = IGNORE_OUTPUT not in cell.source
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: code cell {index} stored an error: {out.get('evalue')}"
            if compared:
                assert out.get("name") != "stderr", f"{name}: code cell {index} stored stderr: {out.text[:200]!r}"
                assert "WARNING" not in out.get("text", ""), f"{name}: code cell {index} stored a warning"


def test_ignored_outputs_are_few_and_explained():
    for name in STORED:
        nb = nbformat.read(NOTEBOOKS / name, as_version=4)
        ignored = [c for c in code_cells(nb) if IGNORE_OUTPUT in c.source]
        compared = [c for c in code_cells(nb) if c not in ignored and c.outputs]
        assert len(compared) >= 2, f"{name}: nbval would compare almost nothing"
        for cell in ignored:
            assert cell.source.splitlines()[1].startswith("# ("), f"{name}: say why the output varies"


def test_tidy_drops_start_up_logs_and_widget_placeholders_and_reports_errors():
    quiet = new_code_cell("import x", metadata={"tags": [QUIET_CELL]}, outputs=[
        new_output("stream", name="stderr", text="I0000 start-up log"), new_output("stream", name="stdout", text="ok")])
    widget = new_code_cell(f"{IGNORE_OUTPUT}\n# (a widget)\npanel", metadata={"tags": [WIDGET_CELL]},
                           outputs=[new_output("display_data", data={"text/plain": "Panel(...)"})])
    noisy = new_code_cell("print(1)", outputs=[new_output("stream", name="stderr", text="UserWarning")])
    broken = new_code_cell("1/0", outputs=[new_output("error", ename="ZeroDivisionError", evalue="division by zero",
                                                      traceback=[])])
    expected = new_code_cell("1/0", metadata={"tags": ["raises-exception"]},
                             outputs=[new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])])
    nb = new_notebook(cells=[quiet, widget, noisy, broken, expected])
    problems = notebook.tidy(nb)
    assert [o.get("name") for o in quiet.outputs] == ["stdout"] and widget.outputs == []
    assert problems == ["cell 2: stderr in a compared cell: 'UserWarning'",
                        "cell 3: ZeroDivisionError: division by zero"]


def test_show_needs_a_picture():
    with pytest.raises(ValueError, match="at least one picture"):
        notebook.show()
