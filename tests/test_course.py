"""The course (course/, nbgrader's layout): every assignment is released clean and graded right by nbgrader.

The slow test works in a temporary copy of the course per assignment (two at a time): `nbgrader
generate_assignment`, then `nbgrader autograde` of two submissions: the instructor's source notebook
(every autograded point) and the blank release (no point). Scores come from nbgrader's gradebook.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
COURSE = ROOT / "course"
SOURCE = COURSE / "source"
ASSIGNMENTS = sorted(p.name for p in SOURCE.iterdir() if p.is_dir())
GRADED_BY_NBGRADER = ("release", "submitted", "autograded", "feedback", "gradebook.db", ".nbgrader.log")


def notebooks(assignment: str) -> list[Path]:
    """The source notebooks of an assignment."""
    return sorted((SOURCE / assignment).glob("*.ipynb"))


def nbgrader_cells(path: Path) -> list[nbformat.NotebookNode]:
    """The cells of a notebook that carry nbgrader metadata."""
    return [c for c in nbformat.read(path, as_version=4).cells if "nbgrader" in c.metadata]


def missing_api(assignment: str) -> str | None:
    """Why an assignment cannot run with this version of the package (None when it can)."""
    from convviz_widgets import demo

    if assignment != "a4_clever_hans":
        return None
    if "cue" not in inspect.signature(demo.scene).parameters:
        return "demo.scene(cue=...) is not in this version of the demo"
    shortcut = getattr(demo, "MODEL_PATHS", {}).get("shortcut")
    if shortcut is None or not shortcut.is_file():
        return "the shortcut demo model is not built here (python -m convviz_widgets.demo.train --model shortcut)"
    return None


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


def grade(assignment: str, workdir: Path) -> dict:
    """Release an assignment, autograde the solution and the blank release; return the gradebook's scores."""
    course = workdir / assignment
    shutil.copytree(COURSE, course, ignore=shutil.ignore_patterns(*GRADED_BY_NBGRADER))
    nbgrader(["generate_assignment", assignment, "--force"], course)
    release = course / "release" / assignment
    for student, folder in (("solution", course / "source" / assignment), ("blank", release)):
        dest = course / "submitted" / student / assignment
        dest.mkdir(parents=True)
        for nb in folder.glob("*.ipynb"):
            shutil.copy2(nb, dest / nb.name)
    nbgrader(["autograde", assignment, "--force"], course)
    done = subprocess.run([sys.executable, "-c", SCORES, assignment, "solution", "blank"], cwd=course,
                          env=nbgrader_env(), capture_output=True, text=True, timeout=120, check=True)
    scores = json.loads(done.stdout.strip().splitlines()[-1])
    scores["released"] = sorted(p.relative_to(release).as_posix() for p in release.rglob("*") if p.is_file())
    scores["release_text"] = "\n".join(p.read_text() for p in release.rglob("*.ipynb"))
    return scores


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> dict[str, dict]:
    """Every runnable assignment graded by nbgrader, two at a time (kernels start in parallel)."""
    workdir = tmp_path_factory.mktemp("course")
    runnable = [a for a in ASSIGNMENTS if missing_api(a) is None]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(zip(runnable, pool.map(lambda a: grade(a, workdir), runnable)))
    for name, s in results.items():
        print(f"\n{name}: {s['points']:g} points ({s['autograded']:g} autograded, {s['manual']:g} by hand)")
    return results


def graded_one(graded: dict[str, dict], assignment: str) -> dict:
    """One assignment's scores, or a skip saying why it could not run."""
    reason = missing_api(assignment)
    if reason:
        pytest.skip(reason)
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
    for secret in ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME", "close_shares("):
        assert secret not in text
    assert "raise NotImplementedError()" in text and "YOUR ANSWER HERE" in text


# ----- the checks the visible tests call ---------------------------------------------------------------------
ANSI = re.compile(r"\x1b\[[0-9;]*m")


def test_failed_check_is_an_assertion_shown_without_traceback():
    from convviz_widgets.checks import CheckFailed

    err = CheckFailed("Task 9: do this.\nThen that.")
    assert isinstance(err, AssertionError)  # nbgrader counts the test cell as failed
    lines = err._render_traceback_()
    assert ANSI.sub("", lines[0]) == "✘ Task 9: do this." and lines[1:] == ["Then that."]


def test_high_frequency_share_is_zero_for_flat_and_smooth_pictures_and_one_for_a_checkerboard():
    import numpy as np

    from convviz_widgets.checks import high_frequency_share

    flat = np.full((32, 32, 3), 90.0)
    smooth = np.repeat((np.sin(np.arange(32) * 2 * np.pi / 16) * 50 + 128)[None, :, None], 32, axis=0)
    smooth = np.repeat(smooth, 3, axis=2)
    board = (np.indices((32, 32)).sum(axis=0) % 2 * 255.0)[..., None].repeat(3, axis=2)
    shares = high_frequency_share(np.stack([flat, smooth, board]))
    assert shares[0] == 0 and shares[1] < 1e-9 and abs(shares[2] - 1) < 1e-9


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
