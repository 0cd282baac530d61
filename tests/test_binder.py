"""Binder: the files in binder/ build a working environment, as repo2docker would build it.

The slow test rebuilds that environment here: a fresh virtual environment of runtime.txt's Python,
`pip install -r binder/requirements.txt` in a copy of the repository (pip's cache is reused), then
binder/postBuild and every notebook, with an empty home directory as in a new image. No shared/
folder sits beside the copy and nothing can be downloaded from a model hub, so the notebooks take
their offline path, as they must never fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BINDER = ROOT / "binder"
# repo2docker's base environment brings JupyterLab (with jupyter_server, nbclient and ipykernel).
BASE_ENVIRONMENT = ["jupyterlab"]
RUNNER = """
import json, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

results = []
for path in sorted(Path("notebooks").rglob("*.ipynb")):
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    text = [o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    line = next((t.strip() for t in text if "Real model:" in t or "Offline" in t), "")
    results.append({"notebook": path.as_posix(), "seconds": round(time.perf_counter() - start, 1), "model": line})
    print(json.dumps(results[-1]), flush=True)
"""


def binder_python() -> str:
    """An interpreter of the version runtime.txt asks for (skip the test when there is none)."""
    wanted = (BINDER / "runtime.txt").read_text().strip().removeprefix("python-")
    if wanted == "{}.{}".format(*sys.version_info[:2]):
        return getattr(sys, "_base_executable", sys.executable)
    found = shutil.which(f"python{wanted}")
    if found is None:
        pytest.skip(f"runtime.txt asks for Python {wanted}, which is not installed here")
    return found


UNSHIPPED = (".git", ".venv", "__pycache__", "*.egg-info", ".pytest_cache", ".ruff_cache", ".import_linter_cache",
             ".ipynb_checkpoints",
             "convviz-report", "artifacts", "build", "dist")


def copy_repository(dest: Path) -> None:
    """Copy what a clone would hold: tracked files and new ones git does not ignore (all but build output)."""
    try:
        listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                check=True, capture_output=True, text=True).stdout.split("\0")
    except (OSError, subprocess.CalledProcessError):  # not a git checkout (e.g. an unpacked archive)
        shutil.copytree(ROOT, dest, ignore=shutil.ignore_patterns(*UNSHIPPED))
        return
    for name in filter(None, listed):
        src = ROOT / name
        if src.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)


def clean_env(venv: Path, home: Path | None = None) -> dict[str, str]:
    """This environment with the new venv first on PATH; `home`: an empty home, as in a fresh image."""
    env = {k: v for k, v in os.environ.items() if k not in {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME",
                                                            "MPLCONFIGDIR", "KERAS_HOME", "JUPYTER_PATH"}}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", PIP_DISABLE_PIP_VERSION_CHECK="1")
    if home is not None:
        env["HOME"] = str(home)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    """Run a build step; fail with its output's tail when it fails."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def test_binder_folder_is_what_repo2docker_reads():
    names = {p.name for p in BINDER.iterdir()}
    assert {"requirements.txt", "runtime.txt", "postBuild"} <= names
    assert "Dockerfile" not in names  # a Dockerfile there would make repo2docker ignore everything else
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"
    lines = [ln.split("#", 1)[0].strip() for ln in (BINDER / "requirements.txt").read_text().splitlines()]
    assert "." in lines, "requirements.txt must install this package (a local path: installed after the copy)"
    assert any(ln.startswith("scikit-image") for ln in lines)
    post = BINDER / "postBuild"
    assert os.access(post, os.X_OK) and post.read_text().startswith("#!/bin/bash")


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_binder_environment_builds_offline_and_runs_every_notebook(tmp_path):
    python = binder_python()
    repo, venv, home = tmp_path / "repo", tmp_path / "venv", tmp_path / "home"
    home.mkdir()
    copy_repository(repo)
    env = clean_env(venv, home)
    timings = {}
    start = time.perf_counter()
    run([python, "-m", "venv", str(venv)], tmp_path, env, 120)
    # pip keeps this machine's home: its configuration and its cache (nothing is downloaded twice)
    run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", *BASE_ENVIRONMENT,
         "-r", "binder/requirements.txt"], repo, clean_env(venv), 900)
    timings["install"] = time.perf_counter() - start
    start = time.perf_counter()
    post = run(["./binder/postBuild"], repo, env, 300)
    timings["postBuild"] = time.perf_counter() - start
    start = time.perf_counter()
    done = run([str(venv / "bin" / "python"), "-c", RUNNER], repo, env, 1200)
    timings["notebooks"] = time.perf_counter() - start
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    expected = sorted(p.relative_to(repo).as_posix() for p in (repo / "notebooks").rglob("*.ipynb"))
    assert [r["notebook"] for r in results] == expected
    tour = next(r for r in results if r["notebook"].endswith("00_tour.ipynb"))
    assert tour["model"], "the tour should say in one line which real model it uses (or that it is offline)"
    report = ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
    print(f"\nbinder rebuild: {report}; {post.stdout.strip()}")
    for r in results:
        print(f"  {r['notebook']}: {r['seconds']} s  {r['model']}")
