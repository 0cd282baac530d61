"""The rooms' import contracts (.importlinter) hold, and they do catch an import that goes upward."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install '.[test]')")


def lint(cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run lint-imports with the project's contracts on the package found from `cwd`."""
    env = {**(env or os.environ), "COLUMNS": "300"}  # one line per verdict
    return subprocess.run([str(LINT), "--no-cache"], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_rooms_contracts_are_kept():
    result = lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "6 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(("module", "line", "broken"), [
    ("core/graph.py", "from ..widgets import runner as _upward", "Rooms, one direction"),
    ("widgets/runner.py", "from .. import demo as _demo", "know nothing of the demo"),
    ("widgets/runner.py", "import tensorflow as _tf", "controls only"),
    ("widgets/card.py", "from . import activations as _cycle", "no cycle"),  # activations -> card -> activations
    ("widgets/filters.py", "from . import cam as _sibling", "no cycle"),  # one tab reaching into another
    ("core/graph.py", "from . import inspector as _cycle", "core, one direction"),  # inspector -> graph -> inspector
    ("core/cams/engine.py", "from .. import patterns as _sibling", "core, one direction"),  # one engine into another
    ("core/backend/__init__.py", "from .. import head as _upward", "core, one direction"),
    ("core/filters.py", "import tensorflow as _tf", "TensorFlow is imported only"),
])
def test_an_upward_import_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(ROOT / "convviz_widgets", tmp_path / "convviz_widgets",
                    ignore=shutil.ignore_patterns("__pycache__", "*.keras", "*.png"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    path = tmp_path / "convviz_widgets" / module
    path.write_text(path.read_text() + f"\n{line}  # noqa\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = lint(tmp_path, env)
    assert result.returncode != 0
    verdicts = [line.split(" (")[-2 if line.endswith("ignored imports)") else -1]
                for line in result.stdout.splitlines() if broken in line and (" KEPT" in line or " BROKEN" in line)]
    assert verdicts and verdicts[0].endswith("BROKEN"), result.stdout[-3000:]
