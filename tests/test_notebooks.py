"""The course notebooks: in step with notebooks/build.py, clean stored outputs, and an assignment whose checks advise.

nbval itself (outputs compared cell by cell) runs separately:
`pytest --nbval --nbval-current-env --nbval-sanitize-with notebooks/nbval_sanitize.cfg notebooks/`.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import nbformat
import numpy as np
import pytest

from convviz_widgets import checks, demo
from convviz_widgets.checks import CheckFailed

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_build() -> ModuleType:
    """notebooks/build.py as a module (it is a script, not part of the package)."""
    spec = importlib.util.spec_from_file_location("notebooks_build", NOTEBOOKS / "build.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


BUILD = load_build()
SPECS = {spec.path.relative_to(NOTEBOOKS).as_posix(): spec for spec in BUILD.NOTEBOOKS}
EXECUTED = [name for name, spec in SPECS.items() if not spec.exercise]
EXERCISE = next(spec for spec in BUILD.NOTEBOOKS if spec.exercise)


def code_cells(nb: nbformat.NotebookNode) -> list[nbformat.NotebookNode]:
    """The notebook's code cells."""
    return [c for c in nb.cells if c.cell_type == "code"]


def is_check(cell: nbformat.NotebookNode) -> bool:
    """An assignment check cell."""
    return "check" in cell.metadata.get("tags", [])


# ----- the stored notebooks ------------------------------------------------------------------------------
def test_every_notebook_in_the_folder_is_generated():
    found = [p for p in NOTEBOOKS.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts]
    stored = {p.relative_to(NOTEBOOKS).as_posix() for p in found}
    assert stored == set(SPECS), "notebooks/ and notebooks/build.py disagree: run `.venv/bin/python notebooks/build.py`"


@pytest.mark.parametrize("name", sorted(SPECS))
def test_stored_cells_match_the_generator(name):
    spec = SPECS[name]
    stored = nbformat.read(spec.path, as_version=4)
    wanted = BUILD.to_notebook(spec)
    assert [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in stored.cells] == \
        [(c.cell_type, c.source, c.metadata.get("tags", [])) for c in wanted.cells], \
        f"{name} is out of date: run `.venv/bin/python notebooks/build.py`"


@pytest.mark.parametrize("name", EXECUTED)
def test_stored_outputs_are_complete_and_clean(name):
    nb = nbformat.read(SPECS[name].path, as_version=4)
    for index, cell in enumerate(code_cells(nb)):
        assert cell.execution_count is not None, f"{name}: code cell {index} was not run"
        compared = BUILD.IGNORE not in cell.source
        for out in cell.outputs:
            assert out.output_type != "error", f"{name}: code cell {index} stored an error: {out.get('evalue')}"
            if compared:
                assert out.get("name") != "stderr", f"{name}: code cell {index} stored stderr: {out.text[:200]!r}"
                assert "WARNING" not in out.get("text", ""), f"{name}: code cell {index} stored a warning"


def test_ignored_outputs_are_few_and_explained():
    for name in EXECUTED:
        nb = nbformat.read(SPECS[name].path, as_version=4)
        ignored = [c for c in code_cells(nb) if BUILD.IGNORE in c.source]
        compared = [c for c in code_cells(nb) if c not in ignored and c.outputs]
        assert len(compared) >= 2, f"{name}: nbval would compare almost nothing"
        for cell in ignored:
            assert cell.source.splitlines()[1].startswith("# ("), f"{name}: say why the output varies"


def test_exercise_is_a_clean_hand_out():
    nb = nbformat.read(EXERCISE.path, as_version=4)
    cells = code_cells(nb)
    assert all(not c.outputs and c.execution_count is None for c in cells)
    answers = [c for c in cells if BUILD.TODO in c.source]
    assert len(answers) == 4 and all("..." in c.source for c in answers)
    checks_cells = [c for c in cells if is_check(c)]
    assert len(checks_cells) == 4
    assert all("raises-exception" in c.metadata["tags"] for c in checks_cells)  # Run All reaches every task


def test_solution_passes_every_check():
    nb = nbformat.read(SPECS["assignments/shapes_assignment_solution.ipynb"].path, as_version=4)
    outputs = ["".join(o.get("text", "") for o in c.outputs) for c in code_cells(nb) if is_check(c)]
    assert len(outputs) == 4
    for task, text in enumerate(outputs, start=1):
        assert text.startswith(f"✔ Task {task}:"), text


# ----- the checks ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model():
    return demo.load_model()


def advice(excinfo: pytest.ExceptionInfo) -> str:
    """What a student sees for a failed check."""
    return ANSI.sub("", "\n".join(excinfo.value._render_traceback_()))


def test_failed_check_is_an_assertion_shown_without_traceback():
    err = CheckFailed("Task 9: do this.\nThen that.")
    assert isinstance(err, AssertionError)  # autograders (nbgrader) count it as a failed test
    lines = err._render_traceback_()
    assert ANSI.sub("", lines[0]) == "✘ Task 9: do this." and lines[1:] == ["Then that."]


@pytest.mark.parametrize("call", [
    lambda m: checks.check_model(...),
    lambda m: checks.check_dead_filters(m, ...),
    lambda m: checks.check_misclassification(m, ..., ..., ..., ...),
    lambda m: checks.check_pointing(m, demo.scene(seed=3, objects=2), ..., ...),
])
def test_placeholders_say_not_answered_yet(model, call):
    with pytest.raises(CheckFailed) as excinfo:
        call(model)
    assert "not answered yet. Replace the `...`" in advice(excinfo)


def test_check_model_advises_on_a_wrong_object_and_passes_the_demo(model, capsys):
    with pytest.raises(CheckFailed, match="not a Keras model"):
        checks.check_model("demo_model.keras")
    checks.check_model(model)
    assert capsys.readouterr().out.startswith("✔ Task 1: a convnet with")


def test_check_dead_filters_names_what_is_wrong(model, capsys):
    ins = checks.demo_inspector("Task 2", model)
    peaks = checks.dead_filter_peaks(ins)
    with pytest.raises(CheckFailed, match="no conv layer named 'dense'"):
        checks.check_dead_filters(model, {"dense": [0]})
    with pytest.raises(CheckFailed, match="make it a dict"):
        checks.check_dead_filters(model, [0, 9])
    layer = ins.conv_layers[0]
    alive = int(np.argmax(peaks[layer]))
    with pytest.raises(CheckFailed, match=f"filter {alive} of {layer} is not dead"):
        checks.check_dead_filters(model, {layer: [alive]})
    truth = {name: np.flatnonzero(top <= 0).tolist() for name, top in peaks.items() if (top <= 0).any()}
    if truth:
        with pytest.raises(CheckFailed, match="dead filter\\(s\\) that are not in your answer"):
            checks.check_dead_filters(model, {})
    checks.check_dead_filters(model, truth)
    assert capsys.readouterr().out.startswith("✔ Task 2:")


def test_check_misclassification_refuses_an_image_the_model_gets_right(model):
    right = demo.scene(label=0, seed=demo.EVAL_SEED)
    with pytest.raises(CheckFailed) as excinfo:
        checks.check_misclassification(model, right.image, right.labels[0], None, None)
    assert "the model gets this image right" in advice(excinfo)
    with pytest.raises(CheckFailed, match="class index"):
        checks.check_misclassification(model, right.image, "circle", None, None)


def test_check_pointing_wants_each_objects_own_class_and_true_results(model, capsys):
    import convviz_widgets as cv
    from convviz_widgets import metrics

    pair = demo.scene(seed=3, objects=2)
    cams = [cv.gradcam(model, pair.image, class_index=label) for label in pair.labels]
    hits = [metrics.pointing_game(c.heatmap, m) for c, m in zip(cams, pair.masks)]
    with pytest.raises(CheckFailed, match="cams\\[0\\] explains"):
        checks.check_pointing(model, pair, cams[::-1], hits)
    with pytest.raises(CheckFailed, match="hits\\[1\\] is"):
        checks.check_pointing(model, pair, cams, [hits[0], not hits[1]])
    with pytest.raises(CheckFailed, match="list of 2 booleans"):
        checks.check_pointing(model, pair, cams, hits[0])
    checks.check_pointing(model, pair, cams, hits)
    assert capsys.readouterr().out.startswith("✔ Task 4:")


# ----- the unsolved exercise, run as a student would --------------------------------------------------------
@pytest.mark.slow
def test_unsolved_exercise_fails_each_check_with_advice_not_a_traceback():
    from nbclient import NotebookClient

    nb = nbformat.read(EXERCISE.path, as_version=4)
    # Raises on any error outside the check cells (tagged raises-exception, as Run All in Jupyter honours).
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(EXERCISE.path.parent)}}
                   ).execute()
    check_cells = [c for c in code_cells(nb) if is_check(c)]
    for task, cell in enumerate(check_cells, start=1):
        errors = [o for o in cell.outputs if o.output_type == "error"]
        assert len(errors) == 1 and errors[0].ename == "CheckFailed", cell.outputs
        shown = ANSI.sub("", "\n".join(errors[0].traceback))
        assert shown.startswith(f"✘ Task {task}: not answered yet. Replace the `...`"), shown
        assert "Traceback" not in shown and 'File "' not in shown and ".py" not in shown, shown
    others = [c for c in code_cells(nb) if not is_check(c)]
    assert all(o.output_type != "error" for c in others for o in c.outputs)
