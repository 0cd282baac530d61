"""The course (course/, nbgrader's layout): every assignment is released clean and graded right by nbgrader.

The slow test works in a temporary copy of the course per assignment (two at a time): `nbgrader
generate_assignment` and `release_assignment` (into the course's own exchange), then `nbgrader
autograde` of four submissions: the instructor's source notebook (every autograded point), the blank
release (no point), an answer-key attempt (tests/answer_keys.py: every package callable the set-up
cell can reach, tried as each answer; no more than the blank release) and alice, the source notebook
with one typical mistake per assignment (partial marks, failures explained in words). Scores come
from nbgrader's gradebook.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
SOURCE = COURSE / "source"
ASSIGNMENTS = sorted(p.name for p in SOURCE.iterdir() if p.is_dir())
GRADED_BY_NBGRADER = ("release", "submitted", "autograded", "feedback", "gradebook.db", ".nbgrader.log",
                      "exchange")
STUDENTS = ("solution", "blank", "answer_keys", "alice")
# alice's typical mistakes: {assignment: {answer cell's grade_id: (instructor's code, alice's code)}}
ALICE = {
    "a1_activations": {"dead": ("for s in scenes:", "for s in scenes[:1]:")},  # dead on one scene only
    "a2_filter_patterns": {"hf": ("    grey -= grey.mean(axis=(1, 2), keepdims=True)\n", "")},  # keeps the mean
    "a3_gradcam": {"byhand": ("score = logits[0, CLASS] - logits[0, RIVAL]", "score = logits[0, CLASS]")},
    "a4_clever_hans": {"accuracy": ("for i in range(200)]", "for i in range(100)]")},  # half the scenes
}
# the test cells alice fails (her mistake, and what builds on it)
ALICE_FAILS = {
    "a1_activations": ["dead-tests"],
    "a2_filter_patterns": ["hf-tests", "modes-tests"],
    "a3_gradcam": ["byhand-tests"],
    "a4_clever_hans": ["accuracy-tests"],
}


def notebooks(assignment: str) -> list[Path]:
    """The source notebooks of an assignment."""
    return sorted((SOURCE / assignment).glob("*.ipynb"))


def nbgrader_cells(path: Path) -> list[nbformat.NotebookNode]:
    """The cells of a notebook that carry nbgrader metadata."""
    return [c for c in nbformat.read(path, as_version=4).cells if "nbgrader" in c.metadata]


# ----- the course's form, read without running anything ----------------------------------------------------
def test_course_has_four_assignments_each_a_notebook_and_its_script():
    assert len(ASSIGNMENTS) >= 4
    for assignment in ASSIGNMENTS:
        found = notebooks(assignment)
        assert found, f"{assignment} has no notebook"
        for nb in found:
            assert nb.with_suffix(".py").is_file(), f"{nb.name} has no jupytext script beside it"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_source_notebook_matches_its_script(assignment):
    import jupytext

    for path in notebooks(assignment):
        stored = nbformat.read(path, as_version=4)
        text = jupytext.read(path.with_suffix(".py"))
        assert [(c.cell_type, c.source.strip(), c.metadata.get("nbgrader")) for c in stored.cells] == \
            [(c.cell_type, c.source.strip(), c.metadata.get("nbgrader")) for c in text.cells], \
            f"{path.name} and its script differ: run `jupytext --sync course/source/*/*.py`"
        assert all(not c.get("outputs") for c in stored.cells if c.cell_type == "code"), "store sources unexecuted"


@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_assignment_has_solutions_hidden_tests_points_and_written_answers(assignment):
    cells = [c for path in notebooks(assignment) for c in nbgrader_cells(path)]
    ids = [c.metadata.nbgrader["grade_id"] for c in cells]
    assert len(ids) == len(set(ids)), "grade_id must be unique within an assignment"
    assert all(c.metadata.nbgrader["schema_version"] == 3 for c in cells)
    answers = [c for c in cells if c.metadata.nbgrader["solution"] and not c.metadata.nbgrader["grade"]]
    tests = [c for c in cells if c.metadata.nbgrader["grade"] and not c.metadata.nbgrader["solution"]]
    written = [c for c in cells if c.metadata.nbgrader["grade"] and c.metadata.nbgrader["solution"]]
    assert answers and all("### BEGIN SOLUTION" in c.source and "### END SOLUTION" in c.source for c in answers)
    assert tests and all(c.cell_type == "code" and c.metadata.nbgrader["locked"] for c in tests)
    assert all(c.metadata.nbgrader["points"] > 0 for c in tests + written)
    assert sum("### BEGIN HIDDEN TESTS" in c.source for c in tests) >= 1, "the key answers need hidden tests"
    assert written and all(c.cell_type == "markdown" for c in written), "a written answer graded by hand"


def points(assignment: str) -> tuple[float, float]:
    """(autograded, by hand) points of an assignment, from its cells' nbgrader metadata."""
    cells = [c.metadata.nbgrader for path in notebooks(assignment) for c in nbgrader_cells(path)]
    auto = sum(c["points"] for c in cells if c["grade"] and not c["solution"])
    manual = sum(c["points"] for c in cells if c["grade"] and c["solution"])
    return auto, manual


def test_teaching_page_states_each_assignments_points():
    readme = (ROOT / "docs" / "howto" / "teaching.md").read_text()
    for assignment in ASSIGNMENTS:
        auto, manual = points(assignment)
        row = re.search(rf"^\| `{assignment}` \|.*\| (\d+) \((\d+) \+ (\d+)\) \|$", readme, re.M)
        assert row, f"docs/howto/teaching.md's course table has no row for {assignment}"
        assert tuple(float(v) for v in row.groups()) == (auto + manual, auto, manual), f"{assignment}: points"


def test_nbgrader_never_releases_the_scripts():
    config = (COURSE / "nbgrader_config.py").read_text()
    assert '"*.py"' in config, "the scripts hold the solutions: CourseDirectory.ignore must list *.py"


# ----- nbgrader itself --------------------------------------------------------------------------------------
def nbgrader_env() -> dict[str, str]:
    """This environment's tools first on PATH (nbgrader calls `alembic`), this checkout importable, TF quiet."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return env


def nbgrader(args: list[str], cwd: Path) -> None:
    """Run an nbgrader command in a course directory; fail with its log's tail."""
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=cwd, env=nbgrader_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"nbgrader {' '.join(args)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-4000:]}"


SCORES = """
import json, sys
from nbgrader.api import Gradebook
assignment, students = sys.argv[1], sys.argv[2:]
with Gradebook("sqlite:///gradebook.db") as gb:
    a = gb.find_assignment(assignment)
    out = {"points": a.max_score, "autograded": a.max_code_score, "manual": a.max_written_score}
    for student in students:
        s = gb.find_submission(assignment, student)
        failed = [g.name for nb in s.notebooks for g in nb.grades
                  if g.auto_score is not None and g.auto_score < g.max_score]
        out[student] = {"autograded": s.code_score, "failed": failed}
print(json.dumps(out))
"""


def answer_cells(nb: nbformat.NotebookNode) -> list[tuple[nbformat.NotebookNode, nbformat.NotebookNode]]:
    """(answer cell, the graded test cell after it) for every autograded answer of a notebook."""
    pairs, answer = [], None
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if cell.cell_type == "code" and meta.get("solution") and not meta.get("grade"):
            answer = cell
        elif cell.cell_type == "code" and meta.get("grade") and not meta.get("solution") and answer is not None:
            pairs.append((answer, cell))
            answer = None
    return pairs


def names(code: str, ctx: type) -> set[str]:
    """Names a cell binds (ctx=ast.Store, with its functions) or reads (ast.Load)."""
    tree = ast.parse(code)
    found = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ctx)}
    if ctx is ast.Store:
        found |= {n.name for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}
    return found


def answer_names(answer: str, test: str) -> list[str]:
    """The variables an answer cell gives its test cell: bound there, read (and not bound) by the test."""
    return sorted(names(answer, ast.Store) & (names(test, ast.Load) - names(test, ast.Store)))


def answer_keys_notebook(source: Path, release: Path) -> nbformat.NotebookNode:
    """The blank release with every answer cell replaced by tests/answer_keys.py's attempt."""
    helper = (Path(__file__).parent / "answer_keys.py").read_text()
    nb = nbformat.read(release, as_version=4)
    cells = {c.metadata.nbgrader["grade_id"]: c for c in nb.cells if "nbgrader" in c.metadata}
    for answer, test in answer_cells(nbformat.read(source, as_version=4)):
        wanted = answer_names(answer.source, test.source)
        assert wanted, f"{answer.metadata.nbgrader['grade_id']}: no answer variable found"
        cells[answer.metadata.nbgrader["grade_id"]].source = \
            f"{helper}\nattempt({wanted!r}, {answer.source!r}, {test.source!r}, globals())\n"
    return nb


def alice_notebook(assignment: str, source: Path) -> nbformat.NotebookNode:
    """The instructor's notebook with alice's typical mistakes."""
    nb = nbformat.read(source, as_version=4)
    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
        if grade_id in ALICE[assignment]:
            right, wrong = ALICE[assignment][grade_id]
            assert right in cell.source, f"alice's mistake no longer fits {assignment}/{grade_id}"
            cell.source = cell.source.replace(right, wrong)
    return nb


def submit(course: Path, assignment: str, student: str, nb: nbformat.NotebookNode, name: str) -> None:
    """Put a student's notebook where `nbgrader autograde` looks for it."""
    dest = course / "submitted" / student / assignment
    dest.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, dest / name)


def grade(assignment: str, workdir: Path) -> dict:
    """Release an assignment, autograde the four students; return the gradebook's scores and the outputs."""
    course = workdir / assignment
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns(*GRADED_BY_NBGRADER))
    nbgrader(["generate_assignment", assignment, "--force"], course)
    nbgrader(["release_assignment", assignment, "--force"], course)
    release = course / "release" / assignment
    for source in notebooks(assignment):
        released = release / source.name
        for student, nb in (("solution", nbformat.read(source, as_version=4)),
                            ("blank", nbformat.read(released, as_version=4)),
                            ("answer_keys", answer_keys_notebook(source, released)),
                            ("alice", alice_notebook(assignment, source))):
            submit(course, assignment, student, nb, source.name)
    nbgrader(["autograde", assignment, "--force"], course)
    done = subprocess.run([sys.executable, "-c", SCORES, assignment, *STUDENTS], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=120, check=True)
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    scores["released"] = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
    scores["release_text"] = "\n".join(p.read_text() for p in release.rglob("*.ipynb"))
    scores["exchange"] = sorted(p.relative_to(course).as_posix() for p in (course / "exchange").rglob("*.ipynb"))
    graded = course / "autograded"
    scores["outputs"] = {student: autograded_outputs(graded / student / assignment) for student in STUDENTS}
    return scores


def autograded_outputs(folder: Path) -> dict[str, str]:
    """{grade_id: the text of the cell's outputs (errors as `ename: evalue`)} of an autograded submission."""
    outputs = {}
    for path in folder.glob("*.ipynb"):
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type != "code" or "nbgrader" not in cell.metadata:
                continue
            text = []
            for out in cell.get("outputs", []):
                if out.output_type == "error":
                    text.append(f"{out.ename}: {out.evalue}")
                elif out.output_type == "stream":
                    text.append(out.text)
                elif "text/plain" in out.get("data", {}):
                    text.append(out.data["text/plain"])
            outputs[cell.metadata.nbgrader["grade_id"]] = "\n".join(text)
    return outputs


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Every runnable assignment graded by nbgrader, two at a time (kernels start in parallel)."""
    workdir = tmp_path_factory.mktemp("course")
    with ThreadPoolExecutor(max_workers=2) as pool:  # every assignment runs: the demo ships all it needs
        results = dict(zip(ASSIGNMENTS, pool.map(lambda a: grade(a, workdir), ASSIGNMENTS)))
    for name, s in results.items():
        print(f"\n{name}: {s['points']:g} points ({s['autograded']:g} autograded, {s['manual']:g} by hand); "
              + ", ".join(f"{student} {s[student]['autograded']:g}" for student in STUDENTS))
        for grade_id in ALICE_FAILS.get(name, []):
            print(f"  alice, {grade_id}: {s['outputs']['alice'].get(grade_id, '')!r}")
    return results


def graded_one(graded: dict[str, dict], assignment: str) -> dict:
    """One assignment's scores."""
    return graded[assignment]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_instructor_solution_earns_every_autograded_point(graded, assignment):
    scores = graded_one(graded, assignment)
    assert scores["autograded"] > 0 and scores["manual"] > 0
    assert scores["solution"]["autograded"] == scores["autograded"], f"failed tests: {scores['solution']['failed']}"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_blank_release_earns_no_autograded_point(graded, assignment):
    scores = graded_one(graded, assignment)
    assert scores["blank"]["autograded"] == 0


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_holds_neither_solutions_nor_hidden_tests(graded, assignment):
    scores = graded_one(graded, assignment)
    assert scores["released"] == [nb.name for nb in notebooks(assignment)], "only the notebooks are released"
    text = scores["release_text"]
    for secret in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME", "checks.compare("):
        assert secret not in text
    assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_answer_key_scores_more_than_the_blank_release(graded, assignment):
    scores = graded_one(graded, assignment)
    report = scores["outputs"]["answer_keys"]
    for path in notebooks(assignment):
        for answer, _ in answer_cells(nbformat.read(path, as_version=4)):
            said = report.get(answer.metadata.nbgrader["grade_id"], "")
            counts = [int(n) for n in re.findall(r"'candidates': (\d+)", said)]
            assert counts and min(counts) >= 20, f"the answer-key attempt did not run in {answer.metadata.nbgrader}"
    for grade_id, said in report.items():
        for line in said.splitlines():
            if "'candidates'" in line:  # one answer cell: a key is every variable's passing candidate
                tried = ast.literal_eval(line)
                keys = [v["passed_the_tests"] for v in tried.values()]
                assert None in keys, f"{grade_id}: package callables give the whole answer: {tried}"
    assert scores["answer_keys"]["autograded"] <= scores["blank"]["autograded"]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_alice_earns_partial_marks_and_each_failure_says_why_in_words(graded, assignment):
    scores = graded_one(graded, assignment)
    assert 0 < scores["alice"]["autograded"] < scores["autograded"]
    assert sorted(scores["alice"]["failed"]) == sorted(ALICE_FAILS[assignment])
    for grade_id in ALICE_FAILS[assignment]:
        said = scores["outputs"]["alice"][grade_id]
        error = [line for line in said.splitlines() if line.startswith("CheckFailed: ")]
        assert error and len(error[-1].split()) >= 8, f"{grade_id} fails without words: {said!r}"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_no_test_cell_shows_a_tick(graded, assignment):
    scores = graded_one(graded, assignment)
    for student in STUDENTS:
        ticks = {g: text for g, text in scores["outputs"][student].items() if "\u2714" in text or "\u2713" in text}
        assert not ticks, f"{student}: {ticks}"


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("assignment", ASSIGNMENTS)
def test_release_goes_into_the_courses_own_exchange(graded, assignment):
    scores = graded_one(graded, assignment)
    assert scores["exchange"] == [f"exchange/convviz/outbound/{assignment}/{nb.name}" for nb in notebooks(assignment)]


def test_the_answer_key_attempt_finds_a_key_planted_in_checks(monkeypatch):
    import answer_keys

    from convviz_widgets import checks, demo

    def summary(model):
        return {"layers": len(model.layers), "name": model.name}

    summary.__module__ = checks.__name__
    monkeypatch.setattr(checks, "planted_summary", summary, raising=False)
    namespace = {"checks": checks, "model": demo.load_model()}
    solution, test = "about = {'layers': len(model.layers), 'name': model.name}", "assert about == summary(model)"
    answer_keys.attempt(["about"], solution, f"{textwrap.dedent(inspect.getsource(summary))}\n{test}", namespace)
    assert namespace["_KEY_REPORT"]["about"]["passed_the_tests"].startswith("checks.planted_summary(")
    assert namespace["about"] == summary(namespace["model"])


def test_nbgrader_config_keeps_the_exchange_inside_the_course(tmp_path):
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(COURSE)).load_config()
    assert Path(config.Exchange.root) == COURSE / "exchange"


# ----- the checks the visible tests call ---------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_failed_check_is_an_assertion_shown_without_traceback():
    from convviz_widgets.checks import CheckFailed

    err = CheckFailed("Task 9: do this.\nThen that.")
    assert isinstance(err, AssertionError)  # nbgrader counts the test cell as failed
    lines = err._render_traceback_()
    assert ANSI.sub("", lines[0]) == "✘ Task 9: do this." and lines[1:] == ["Then that."]


def test_checks_holds_no_answer_helpers():
    from convviz_widgets import checks

    public = {n for n in dir(checks) if not n.startswith("_") and callable(getattr(checks, n))}
    gone = {"dead_filters", "zero_shares", "conv_outputs", "high_frequency_share", "first_mistake",
            "pointing_accuracies", "cue_accuracy", "cue_pointing", "close_shares", "same_function"}
    assert not public & gone


def test_a_passing_check_shows_no_tick(capsys):
    from convviz_widgets import checks, demo

    checks.check_sparsity(demo.load_model(), {n: 0.5 for n in ("conv1", "conv2", "conv3", "conv4", "conv5")})
    said = capsys.readouterr().out
    assert "\u2714" not in said and "hidden tests grade the values" in said


def test_compare_names_the_wrong_entries_in_words():
    import numpy as np

    from convviz_widgets import checks
    from convviz_widgets.checks import CheckFailed

    checks.compare("Task", "answer", {"a": 0.5, "b": 0.25}, {"a": 0.5, "b": 0.25})
    checks.compare("Task", "dead", {"conv1": [3, 1]}, {"conv1": {1, 3}})
    with pytest.raises(CheckFailed, match=r"1 of the 2 entries of `answer` is not right: 'b'\. Look at b\."):
        checks.compare("Task", "answer", {"a": 0.5, "b": 0.3}, {"a": 0.5, "b": 0.25}, hint="Look at b.")
    with pytest.raises(CheckFailed, match=r"`answer` should have the keys \['a', 'b'\]"):
        checks.compare("Task", "answer", {"a": 0.5}, {"a": 0.5, "b": 0.25})
    with pytest.raises(CheckFailed, match="not the expected value. Check each step"):
        checks.compare("Task", "heatmap", np.zeros((2, 2)), np.eye(2), atol=1e-3)


def test_checks_advise_on_the_form_of_an_answer():
    from convviz_widgets import checks, demo
    from convviz_widgets.checks import CheckFailed

    model = demo.load_model()
    with pytest.raises(CheckFailed, match="no conv layer named 'dense'"):
        checks.check_dead_filters(model, {"dense": [0]})
    with pytest.raises(CheckFailed, match="make it a dict"):
        checks.check_dead_filters(model, [0, 9])
    with pytest.raises(CheckFailed, match="is not one of them"):
        checks.check_dead_filters(model, {"conv1": [10_000]})
    with pytest.raises(CheckFailed, match="not answered yet"):
        checks.check_sparsity(model, ...)
    with pytest.raises(CheckFailed, match="should be a dict with the keys"):
        checks.check_shares("Pointing game", {"gradcam": 0.5}, "accuracy", ["gradcam", "centre"])
    with pytest.raises(CheckFailed, match="a share between 0 and 1"):
        checks.check_shares("Pointing game", {"gradcam": 2, "centre": 0.1}, "accuracy", ["gradcam", "centre"])
    with pytest.raises(CheckFailed, match="flat grey picture"):
        checks.check_high_frequency(lambda images: [0.5] * len(images))
    with pytest.raises(CheckFailed, match="Count the values that are 0"):
        checks.check_sparsity(model, {n: 0.0 for n in ("conv1", "conv2", "conv3", "conv4", "conv5")})


# ----- `make lab` without nbgrader, `make course` with it ----------------------------------------------------
def nbgrader_switches() -> tuple[set[str], str]:
    """(the server extensions nbgrader switches on, its JupyterLab extension's name), as installed here."""
    from jupyter_core.paths import jupyter_config_path, jupyter_path

    extensions: set[str] = set()
    for folder in jupyter_config_path():
        for path in Path(folder, "jupyter_server_config.d").glob("nbgrader*.json"):
            extensions |= set(json.loads(path.read_text())["ServerApp"]["jpserver_extensions"])
    packages = [p for folder in jupyter_path("labextensions") for p in Path(folder).glob("*/nbgrader/package.json")]
    if not extensions or not packages:
        pytest.skip("nbgrader's Jupyter extensions are not installed here (pip install '.[course]')")
    return extensions, json.loads(packages[0].read_text())["name"]


def test_make_lab_turns_off_every_nbgrader_extension():
    extensions, labextension = nbgrader_switches()
    config = ROOT / "lab-config"
    server = json.loads((config / "jupyter_server_config.json").read_text())["ServerApp"]["jpserver_extensions"]
    assert {name for name, on in server.items() if on is False} >= extensions
    page = json.loads((config / "labconfig" / "page_config.json").read_text())
    assert page["disabledExtensions"].get(labextension) is True
    recipe = re.search(r"^lab:.*\n((?:\t.*\n)+)", (ROOT / "Makefile").read_text(), re.M)
    assert recipe and "JUPYTER_CONFIG_DIR=$(CURDIR)/lab-config" in recipe.group(1)


def test_make_course_opens_the_course_with_nbgrader():
    makefile = (ROOT / "Makefile").read_text()
    recipe = re.search(r"^course: (.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert recipe and "cd course" in recipe.group(2) and "JUPYTER_CONFIG_DIR" not in recipe.group(2)
    installs = re.search(rf"^{re.escape(recipe.group(1).split()[0])}:.*\n\t(.*)\n", makefile, re.M)
    assert installs and "course" in installs.group(1)
    extras = re.search(r"^course = \[\n((?:    .*\n)+)\]", (ROOT / "pyproject.toml").read_text(), re.M)
    assert extras and '"nbgrader' in extras.group(1)
