"""The package as a user gets it from a package index: the wheel and the sdist, built from a clean copy.

`python -m build` (sdist first, then the wheel from the unpacked sdist) runs on a copy of what a clone
holds, `twine check --strict` reads their metadata, and the lists below say what each must and must not
carry. Then the wheel is installed with pip into a fresh virtual environment made from the base
interpreter; that environment reaches the dependencies (TensorFlow and the rest, already installed for
the tests) through a .pth file naming this environment's site-packages, whose own .pth files (the
editable install of this checkout among them) Python does not read there. Everything then runs in a
temporary folder outside the repository, with no PYTHONPATH, and checks that it imports the installed
wheel: `convviz --version`, `convviz report --model demo`, the README's first notebook snippet, every
module of the package and one Grad-CAM.
"""

from __future__ import annotations

import email.parser
import importlib.util
import json
import os
import re
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from test_binder import clean_env, copy_repository, run
from test_readme import python_blocks

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.release, pytest.mark.slow]

# What the package reads at run time besides its modules.
WHEEL_MUST_HOLD = ["convviz_widgets/demo/demo_model.keras", "convviz_widgets/demo/shortcut_model.keras",
                   "convviz_widgets/py.typed"]
SDIST_MUST_HOLD = ["LICENSE", "CHANGELOG.md", "README.md", "pyproject.toml", *WHEEL_MUST_HOLD]
# Folders of the repository that are not the package, and what only builds or editors leave behind.
NEVER_SHIPPED = re.compile(r"(^|/)(tests|bench|course|notebooks|docs|binder|build|dist|site|__pycache__|"
                           r"\.ipynb_checkpoints|[^/]*\.egg-info)/|\.(pyc|ipynb)$")

CHECK_INSTALLED = r"""
import ast, importlib, importlib.metadata as md, json, pkgutil, sys, sysconfig
from pathlib import Path
import numpy as np
import convviz_widgets as cv
from convviz_widgets import demo

site = Path(sysconfig.get_paths()["purelib"]).resolve()
assert Path(cv.__file__).resolve().is_relative_to(site), f"imported from {cv.__file__}, not from {site}"
modules = [m.name for m in pkgutil.walk_packages(cv.__path__, "convviz_widgets.")]
for name in modules:
    importlib.import_module(name)
model, scene = demo.load_model(), demo.scene(label=0, seed=1)
cam = cv.gradcam(model, scene.image)
assert np.isfinite(cam.heatmap).all() and cam.heatmap.max() > 0
namespace = {"__name__": "snippet", "model": model, "image": scene.image}
tree = ast.parse(sys.argv[1])
if tree.body and isinstance(tree.body[-1], ast.Expr):  # a notebook cell shows its last expression: keep it
    tree.body[-1] = ast.Assign(targets=[ast.Name("_shown", ast.Store())], value=tree.body[-1].value)
    ast.fix_missing_locations(tree)
exec(compile(tree, "README snippet", "exec"), namespace)
panels = [v for v in namespace.values() if type(v).__name__ == "ConvVizPanel"]
assert all(p.wait() for p in panels), "a panel's first view did not finish"
dist = md.distribution("convviz_widgets")
print(json.dumps({"file": cv.__file__, "version": cv.__version__, "metadata_version": dist.version,
                  "dist_at": str(dist.locate_file("")), "modules": len(modules), "panels": len(panels),
                  "requires": dist.requires or []}))
"""

CHECK_REQUIREMENTS = r"""
import importlib.metadata as md, json, sys
from packaging.requirements import Requirement
unmet = []
for line in json.loads(sys.argv[1]):
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        found = md.version(req.name)
    except md.PackageNotFoundError:
        unmet.append(f"{req} (missing)")
        continue
    if not req.specifier.contains(found, prereleases=True):
        unmet.append(f"{req} (found {found})")
print(json.dumps(unmet))
"""


def release_tool(module: str) -> None:
    """Skip when a release tool is missing here; under CI=true (which installs the release extra) fail instead."""
    if importlib.util.find_spec(module) is None:
        reason = f"{module} is not installed (pip install -e '.[release]')"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true but {reason}", pytrace=False)
        pytest.skip(reason)


def last_line(text: str) -> str:
    """The last non-empty line of a command's output."""
    return [line for line in text.splitlines() if line.strip()][-1]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """The sdist and the wheel, built from a copy of what a clone holds."""
    release_tool("build")
    base = tmp_path_factory.mktemp("dist")
    repo, out = base / "repo", base / "out"
    copy_repository(repo)
    run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(repo)], base, clean_env(base), 300)
    wheels, sdists = sorted(out.glob("*.whl")), sorted(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, sorted(p.name for p in out.iterdir())
    return {"wheel": wheels[0], "sdist": sdists[0]}


@pytest.fixture(scope="module")
def installed(dist, tmp_path_factory) -> dict[str, Path]:
    """A fresh virtual environment with the wheel installed (no source tree), and an empty folder to run in."""
    base = tmp_path_factory.mktemp("installed")
    venv, work = base / "venv", base / "work"
    work.mkdir()
    env = clean_env(venv)
    run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(venv)], base, env, 120)
    python = venv / "bin" / "python"
    # The wheel goes in before the dependencies become visible, so pip cannot mistake the editable
    # install of this checkout for it (and never touches this environment).
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps", "--no-index",
         str(dist["wheel"])], base, env, 300)
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  base, env, 60).stdout.strip()
    ours = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (Path(purelib) / "_dependencies.pth").write_text("".join(f"{p}\n" for p in ours))
    return {"venv": venv, "python": python, "purelib": Path(purelib), "work": work, "env": env}


def test_version_has_one_source():
    import convviz_widgets
    from convviz_widgets import _version

    assert convviz_widgets.__version__ == _version.__version__
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", _version.__version__)
    tomllib = pytest.importorskip("tomllib", reason="reading pyproject.toml needs Python 3.11's tomllib")
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "version" not in pyproject["project"] and pyproject["project"]["dynamic"] == ["version"]
    assert pyproject["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "convviz_widgets._version.__version__"}


def test_version_is_above_every_released_changelog_entry():
    from packaging.version import Version

    from convviz_widgets import __version__

    text = (ROOT / "CHANGELOG.md").read_text()
    released = [Version(v) for v in re.findall(r"^## \[(\d+\.\d+\.\d+)\] - \d{4}-\d\d-\d\d$", text, re.M)]
    assert released, "the changelog names no released version"
    assert released == sorted(released, reverse=True), "changelog entries go newest first"
    assert "## [Unreleased]" in text or Version(__version__) == released[0]
    assert Version(__version__) >= released[0]


def test_licence_file_is_mit_and_matches_pyproject():
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "the convviz_widgets authors" in text
    assert re.search(r'^license = "MIT"$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert re.search(r'^license-files = \["LICENSE"\]$', (ROOT / "pyproject.toml").read_text(), re.M)


def test_wheel_holds_the_package_and_its_data_and_nothing_else(dist):
    names = zipfile.ZipFile(dist["wheel"]).namelist()
    package = sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "convviz_widgets").rglob("*.py")
                     if "__pycache__" not in p.parts)
    missing = [n for n in [*package, *WHEEL_MUST_HOLD] if n not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert [n for n in names if NEVER_SHIPPED.search(n)] == []
    outside = [n for n in names if not n.startswith(("convviz_widgets/", "convviz_widgets-"))]
    assert outside == [], f"the wheel installs files outside the package: {outside}"
    info = next(n for n in names if n.endswith(".dist-info/METADATA")).rsplit("/", 1)[0]
    assert f"{info}/licenses/LICENSE" in names
    entry_points = zipfile.ZipFile(dist["wheel"]).read(f"{info}/entry_points.txt").decode()
    assert "convviz = convviz_widgets.cli:main" in entry_points


def test_sdist_holds_the_package_and_its_metadata_files_but_not_the_repository(dist):
    with tarfile.open(dist["sdist"]) as tar:
        names = [n.split("/", 1)[1] for n in tar.getnames() if "/" in n]
    missing = [n for n in SDIST_MUST_HOLD if n not in names]
    assert not missing, f"the sdist lacks {missing}"
    assert [n for n in names if NEVER_SHIPPED.search(n) and "egg-info" not in n] == []


def test_metadata_says_version_licence_readme_and_dependencies(dist):
    from convviz_widgets import __version__

    with zipfile.ZipFile(dist["wheel"]) as whl:
        meta = whl.read(next(n for n in whl.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    msg = email.parser.Parser().parsestr(meta)
    assert msg["Name"] == "convviz_widgets" and msg["Version"] == __version__
    assert msg["License-Expression"] == "MIT"
    assert msg["Description-Content-Type"] == "text/markdown"
    assert msg.get_payload().strip().startswith("# convviz_widgets")
    requires = msg.get_all("Requires-Dist")
    for name in ("tensorflow", "keras", "numpy", "ipywidgets"):
        assert any(r.startswith(name) for r in requires), f"{name} is not a dependency"
    assert any("extra == \"release\"" in r for r in requires) and any("extra == \"docs\"" in r for r in requires)
    assert dist["wheel"].name == f"convviz_widgets-{__version__}-py3-none-any.whl"


def test_twine_check_strict_passes(dist):
    release_tool("twine")
    done = run([sys.executable, "-m", "twine", "check", "--strict", str(dist["wheel"]), str(dist["sdist"])],
               dist["wheel"].parent, clean_env(dist["wheel"].parent), 120)
    assert done.stdout.count("PASSED") == 2, done.stdout


def test_installed_wheel_imports_from_site_packages_and_runs_the_readme_snippet(installed):
    snippet = python_blocks()[0]
    assert "ConvVizPanel" in snippet, "the README's first python block should be the notebook snippet"
    done = run([str(installed["python"]), "-c", CHECK_INSTALLED, snippet], installed["work"], installed["env"], 300)
    facts = json.loads(last_line(done.stdout))
    from convviz_widgets import __version__

    assert Path(facts["file"]).resolve().is_relative_to(installed["purelib"].resolve())
    assert facts["version"] == facts["metadata_version"] == __version__
    assert Path(facts["dist_at"]).resolve() == installed["purelib"].resolve()
    assert facts["modules"] >= 40 and facts["panels"] >= 1
    unmet = run([str(installed["python"]), "-c", CHECK_REQUIREMENTS, json.dumps(facts["requires"])],
                installed["work"], installed["env"], 60)
    assert json.loads(last_line(unmet.stdout)) == [], "the environment does not meet the wheel's requirements"


def test_installed_command_prints_its_version_and_writes_the_demo_report(installed):
    from convviz_widgets import __version__

    convviz = str(installed["venv"] / "bin" / "convviz")
    version = run([convviz, "--version"], installed["work"], installed["env"], 120)
    assert version.stdout.strip() == f"convviz {__version__}"
    run([convviz, "report", "--model", "demo", "--out", "report"], installed["work"], installed["env"], 300)
    report = installed["work"] / "report"
    html = (report / "index.html").read_text()
    pictures = re.findall(r"src=['\"]([^'\"]+\.png)['\"]", html)
    assert len(pictures) >= 10, f"index.html shows {len(pictures)} pictures"
    for name in pictures:
        pixels = np.asarray(Image.open(report / name).convert("RGB"), dtype=np.float32)
        assert pixels.std() > 1.0, f"{name} is blank"
