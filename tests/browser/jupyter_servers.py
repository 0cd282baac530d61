"""Helpers for the browser tests: JupyterLab / Voila servers on localhost and Debian's Chromium.

Not a conftest.py on purpose: a second conftest module would shadow tests/conftest.py for the
`from conftest import ...` lines of the other test files. A missing browser or package skips the
browser tests locally; with CI=true it fails them instead.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).resolve().parent
NOTEBOOKS = HERE / "notebooks"
REPO = HERE.parents[1]  # the repository root, whose convviz_widgets the kernels must import
ARTIFACTS = HERE.parent / "artifacts"  # git-ignored: screenshots and server logs
CHROMIUM = Path(os.environ.get("CONVVIZ_CHROMIUM", "/usr/bin/chromium"))
BIN = Path(sys.executable).parent
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]
LOCAL_HOSTS = ("127.0.0.1", "localhost")
START_TIMEOUT = 60.0


def require(ok: bool, reason: str) -> None:
    """Skip when something the browser tests need is missing; under CI=true, fail instead."""
    if ok:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {reason}", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """An unused TCP port on localhost."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """A Jupyter or Voila process in its own process group, with the root folder it serves."""

    process: subprocess.Popen
    url: str
    root: Path
    log: Path
    blocked: list[str] = field(default_factory=list)

    def stop(self) -> None:
        """End the server and its kernels."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)


def isolated_env(base: Path) -> dict[str, str]:
    """Environment with private Jupyter/IPython folders and a quiet Lab (no news, no update checks)."""
    env = dict(os.environ)
    for name in ("JUPYTER_CONFIG_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_DATA_DIR", "JUPYTERLAB_SETTINGS_DIR",
                 "JUPYTERLAB_WORKSPACES_DIR", "IPYTHONDIR"):
        folder = base / name.lower()
        folder.mkdir(parents=True, exist_ok=True)
        env[name] = str(folder)
    settings = Path(env["JUPYTERLAB_SETTINGS_DIR"]) / "@jupyterlab" / "apputils-extension"
    settings.mkdir(parents=True, exist_ok=True)
    (settings / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    # The kernels import this checkout's package, not whichever copy the environment has installed.
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH", "")]))
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def answers(ready: str | int) -> bool:
    """True when a URL answers 200, or (given a port) when the port accepts a connection."""
    try:
        if isinstance(ready, int):
            with socket.create_connection(("127.0.0.1", ready), timeout=2):
                return True
        with urllib.request.urlopen(ready, timeout=2) as answer:
            return answer.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(command: list[str], root: Path, base: Path, url: str, ready: str | int, log_name: str) -> Server:
    """Start a server and wait until `ready` (a URL, or a port) answers."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = ARTIFACTS / log_name
    with log.open("w") as out:
        process = subprocess.Popen(command, cwd=root, env=isolated_env(base), stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(process, url, root, log)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"{command[0]} exited with {process.returncode}; see {log}")
        if answers(ready):
            return server
        time.sleep(0.25)
    server.stop()
    pytest.fail(f"{command[0]} did not answer {ready} within {START_TIMEOUT:.0f} s; see {log}")


def notebook_root(tmp_path: Path, files: tuple[Path, ...] = ()) -> Path:
    """A served folder holding a copy of the test notebooks (and `files`, e.g. a module a notebook imports)."""
    root = tmp_path / "root"
    shutil.copytree(NOTEBOOKS, root)
    for path in files:
        shutil.copy(path, root / path.name)
    return root


def lab_command(port: int, root: Path) -> list[str]:
    """JupyterLab 4 on localhost, without token, news or update checks."""
    return [
        str(BIN / "jupyter-lab"), "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
        f"--ServerApp.root_dir={root}", "--IdentityProvider.token=", "--ServerApp.password=",
        "--ServerApp.disable_check_xsrf=True", "--allow-root", "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.expose_app_in_browser=True",
        "--LabApp.extension_manager=readonly",
    ]


def voila_command(port: int, notebook: str) -> list[str]:
    """Voila rendering one notebook on localhost."""
    return [str(BIN / "voila"), notebook, "--no-browser", f"--port={port}", "--Voila.ip=127.0.0.1",
            "--VoilaExecutor.timeout=180"]


@contextmanager
def serve(kind: str, tmp_path: Path, notebook: str = "panel.ipynb", files: tuple[Path, ...] = ()) -> Iterator[Server]:
    """Run JupyterLab ('lab') or Voila ('voila', on `notebook`) over a copy of the test notebooks until the block ends.

    `files` are copied next to the notebooks (their kernels start in that folder and can import them).
    """
    program = "jupyter-lab" if kind == "lab" else "voila"
    require((BIN / program).exists(), f"{program} is not installed (pip install jupyterlab voila)")
    port = free_port()
    root = notebook_root(tmp_path, files)
    url = f"http://127.0.0.1:{port}"
    if kind == "lab":
        server = start(lab_command(port, root), root, tmp_path / "env", url, f"{url}/api/status", "jupyterlab.log")
    else:  # Voila runs the notebook on GET /: ready means the port accepts, not that the page answered
        server = start(voila_command(port, notebook), root, tmp_path / "env", url, port, "voila.log")
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright (Playwright's own browser download is not used)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require(False, "Playwright for Python is not installed (pip install playwright)")
    require(CHROMIUM.exists(), f"no Chromium at {CHROMIUM} (apt-get install -y chromium)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def offline_page(browser: Any) -> Iterator[Any]:
    """A fresh page whose requests may only go to localhost, file:, data: or blob: (proof of offline)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    blocked: list[str] = []
    errors: list[str] = []

    def guard(route: Any) -> None:
        url = route.request.url
        host = url.split("//", 1)[-1].split("/", 1)[0].split(":", 1)[0]
        if url.startswith(("data:", "blob:", "file:")) or host in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort()

    context.route("**/*", guard)
    page = context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.blocked, page.errors = blocked, errors
    try:
        yield page
    finally:
        context.close()
