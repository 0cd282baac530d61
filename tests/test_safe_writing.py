"""The report and "Save PNG" never overwrite a file they did not write, never follow a link out of their
folder, and an interrupted report leaves its folder as it was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import rng_image, small_convnet

from convviz_widgets import ActivationsView, ConvVizError, FiltersView, Inspector, cli, render
from convviz_widgets.images import write_new_file
from convviz_widgets.report import MANIFEST, STAGING_PREFIX, build_report

FAST = dict(filter_layers=["conv2"], n_filters=2, steps=2, pattern_modes=("plain",))


@pytest.fixture(scope="module")
def inspector() -> Inspector:
    """A 32 px three-class convnet with random weights, bound once."""
    return Inspector(small_convnet(size=32), preprocess="rescale")


def snapshot(folder: Path) -> dict[str, tuple[str, bytes]]:
    """Every entry under `folder` (links not followed): its kind and its bytes (a link: its target)."""
    found: dict[str, tuple[str, bytes]] = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = Path(root) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                found[rel] = ("link", os.readlink(path).encode())
            elif path.is_dir():
                found[rel] = ("dir", b"")
            else:
                found[rel] = ("file", path.read_bytes())
    return found


def report(inspector: Inspector, out: Path, **kwargs) -> None:
    """A tiny report of one random image."""
    build_report(inspector, rng_image(seed=1), out, **{**FAST, **kwargs})


def stagings(parent: Path) -> list[str]:
    """Temporary report folders left beside the output folder."""
    return [p.name for p in parent.iterdir() if p.name.startswith(STAGING_PREFIX)]


# ----- the report ---------------------------------------------------------------------------------------------
def test_report_in_a_new_folder_lists_every_file_it_wrote_in_its_manifest(tmp_path, inspector) -> None:
    out = tmp_path / "r"
    report(inspector, out)
    manifest = json.loads((out / MANIFEST).read_text())["files"]
    assert set(manifest) == {p.name for p in out.iterdir()} - {MANIFEST}
    assert {"index.html", "input.png", "gradcam_top1.png", "filters_conv2.png"} <= set(manifest)
    assert stagings(tmp_path) == []


def test_report_refuses_a_folder_holding_the_users_files_and_changes_nothing(tmp_path, capsys) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("my own page")
    (out / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    assert cli.main(["report", "--model", "demo", "--out", str(out), "--steps", "1", "--filters", "1"]) == 2
    line = capsys.readouterr().err.strip()
    assert line.count("\n") == 0 and "did not write" in line and "index.html" in line and "--overwrite" in line
    assert snapshot(tmp_path) == before


def test_report_never_writes_through_a_link_even_with_overwrite(tmp_path, inspector) -> None:
    outside = tmp_path / "precious.html"
    outside.write_text("the user's file outside the report folder")
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").symlink_to(outside)
    (out / "input.png").symlink_to(tmp_path / "nowhere.png")  # a dangling link: no file may appear at its target
    with pytest.raises(ConvVizError, match="did not write"):
        report(inspector, out)
    report(inspector, out, overwrite=True)
    assert outside.read_text() == "the user's file outside the report folder"
    assert not (tmp_path / "nowhere.png").exists()
    assert not (out / "index.html").is_symlink() and "<html>" in (out / "index.html").read_text()
    assert not (out / "input.png").is_symlink()


def test_overwrite_replaces_the_reports_own_names_and_keeps_the_users_other_files(tmp_path, inspector) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("old page")
    (out / "notes.txt").write_text("mine")
    report(inspector, out, overwrite=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert "<html>" in (out / "index.html").read_text()
    assert "notes.txt" not in json.loads((out / MANIFEST).read_text())["files"]
    with pytest.raises(ConvVizError, match="notes.txt"):  # still not the report's own: the next run asks again
        report(inspector, out)


def test_replacing_its_own_report_needs_no_overwrite_and_drops_its_old_files(tmp_path, inspector) -> None:
    out = tmp_path / "r"
    report(inspector, out, filter_layers=["conv1"])
    assert (out / "filters_conv1.png").is_file()
    report(inspector, out, filter_layers=["conv2"])  # its own files only: replaced without asking
    names = {p.name for p in out.iterdir()}
    assert "filters_conv2.png" in names and "filters_conv1.png" not in names
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == names - {MANIFEST}
    assert stagings(tmp_path) == []


def test_a_layer_or_method_named_twice_is_reported_once(tmp_path, inspector) -> None:
    out = tmp_path / "r"
    report(inspector, out, filter_layers=["conv2", "conv2"], cam_methods=["gradcam", "GradCAM"])
    assert (out / "filters_conv2.png").is_file() and (out / "index.html").read_text().count("filters_conv2.png") == 1


def test_a_report_file_the_user_changed_is_no_longer_the_reports_own(tmp_path, inspector) -> None:
    out = tmp_path / "r"
    report(inspector, out)
    (out / "index.html").write_text("edited by hand")
    with pytest.raises(ConvVizError, match="index.html"):
        report(inspector, out)
    assert (out / "index.html").read_text() == "edited by hand"


def test_a_folder_whose_parent_cannot_be_written_gets_its_report_staged_inside(tmp_path, inspector,
                                                                             monkeypatch) -> None:
    out = tmp_path / "r"
    report(inspector, out)
    real_mkdir = Path.mkdir

    def parent_read_only(self, *args, **kwargs):
        if self.parent == tmp_path and self.name.startswith(STAGING_PREFIX):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", parent_read_only)
    report(inspector, out, filter_layers=["conv1"])
    assert (out / "filters_conv1.png").is_file() and stagings(out) == [] and stagings(tmp_path) == []
    assert set(json.loads((out / MANIFEST).read_text())["files"]) == {p.name for p in out.iterdir()} - {MANIFEST}


def test_out_that_links_to_a_folder_writes_into_that_folder_and_a_dangling_link_is_refused(tmp_path,
                                                                                          inspector) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    report(inspector, tmp_path / "link")
    assert (tmp_path / "link").is_symlink() and (real / "index.html").is_file()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(ConvVizError, match="link to nothing"):
        report(inspector, tmp_path / "dangling")
    assert not (tmp_path / "gone").exists()


@pytest.mark.parametrize("kwargs, needle", [
    ({"filter_layers": ["nope"]}, "nope"), ({"cam_methods": ["nope"]}, "nope"),
    ({"pattern_modes": ["fancy"]}, "fancy"), ({"n_filters": 5000}, "n_filters = 5000"),
    ({"steps": 10_001}, "steps = 10001"), ({"top": 0}, "top = 0"), ({"images_per_row": 0}, "images_per_row = 0"),
    ({"filter_size": 1}, "filter_size = 1"), ({"step_size": float("nan")}, "step_size"),
])
def test_bad_report_arguments_are_refused_before_anything_is_written(tmp_path, inspector, kwargs, needle) -> None:
    with pytest.raises(ConvVizError, match=needle):
        report(inspector, tmp_path / "r", **kwargs)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, needle", [
    (["--filter-layers", "nope"], "nope"), (["--filter-layers", "conv1", "conv9"], "conv9"),
    (["--cam-methods", "gradcam,nope"], "nope"), (["--output", "7"], "output"), (["--preprocess", "fancy"], "fancy"),
    (["--filters", "5000"], "--filters"), (["--steps", "10001"], "--steps"), (["--classes", "CLASSES"], "class"),
])
def test_bad_cli_arguments_write_nothing(tmp_path, capsys, args, needle) -> None:
    classes = tmp_path / "classes.json"
    classes.write_text('["only", "two"]')  # the demo model has five classes
    args = [str(classes) if a == "CLASSES" else a for a in args]
    assert cli.main(["report", "--model", "demo", "--out", str(tmp_path / "new" / "r"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("convviz: error: ") and "\n" not in err and needle in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["classes.json"]


def interrupt_on_call(monkeypatch, module, name: str, call: int) -> None:
    """Make `module.name` raise KeyboardInterrupt on its `call`-th call (as Ctrl-C would there)."""
    real, calls = getattr(module, name), []

    def wrapper(*args, **kwargs):
        calls.append(1)
        if len(calls) == call:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)


def test_an_interrupted_report_leaves_the_old_report_intact_and_no_temporary_folder(tmp_path, inspector,
                                                                                   monkeypatch) -> None:
    out = tmp_path / "r"
    report(inspector, out)
    (tmp_path / "mine.txt").write_text("beside the report")
    before = snapshot(tmp_path)
    interrupt_on_call(monkeypatch, render, "filter_picture", 1)  # after the activation grids were written
    with pytest.raises(KeyboardInterrupt):
        report(inspector, out, filter_layers=["conv1"])
    assert snapshot(tmp_path) == before


def test_an_interrupted_cli_report_is_one_line_and_creates_no_folder(tmp_path, capsys, monkeypatch) -> None:
    interrupt_on_call(monkeypatch, render, "overlay", 1)  # the last section: every other picture is written
    out = tmp_path / "r"
    args = ["--steps", "1", "--filters", "1", "--patterns", "plain", "--filter-layers", "conv1"]
    assert cli.main(["report", "--model", "demo", "--out", str(out), *args]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == f"convviz: interrupted; {out} was left as it was"
    assert not any("Traceback" in line for line in err)
    assert list(tmp_path.iterdir()) == []


def default_ctrl_c() -> None:
    """In the child: Ctrl-C's default action, even when the test runs where SIGINT is ignored (a background job)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_to_a_running_convviz_report_leaves_its_folder_as_it_was(tmp_path) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "index.html").write_text("the user's page")
    before = snapshot(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "convviz_widgets.cli", "report", "--model", "demo", "--out",
                             str(out), "--overwrite", "--steps", "10000", "--filters", "64"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=default_ctrl_c)
    deadline = time.monotonic() + 200
    while time.monotonic() < deadline and proc.poll() is None:  # wait until it is writing its pictures
        if any(any(s.glob("act_*.png")) for s in tmp_path.glob(STAGING_PREFIX + "*")):
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1] == f"convviz: interrupted; {out} was left as it was"
    assert snapshot(tmp_path) == before  # the user's page intact, nothing new, no temporary folder


# ----- Save PNG -----------------------------------------------------------------------------------------------
def test_save_png_never_overwrites_a_file_nor_writes_through_a_link(tmp_path) -> None:
    view = ActivationsView(small_convnet(size=32), rng_image(seed=2), background=False, save_dir=tmp_path / "s")
    tag = view.image_tag()
    folder = tmp_path / "s"
    folder.mkdir()
    grid = folder / f"convviz-activations-conv1-{tag}.png"
    k = view.channel.value  # the layer's most active channel, where the tab opens
    channel = folder / f"convviz-activations-conv1-channel{k}-{tag}.png"
    grid.write_bytes(b"the user's own file")
    outside = tmp_path / "outside.png"
    outside.write_bytes(b"outside the folder")
    channel.symlink_to(outside)
    view.save_button.click()
    assert view.error == ""
    assert grid.read_bytes() == b"the user's own file" and outside.read_bytes() == b"outside the folder"
    assert channel.is_symlink()
    new = [folder / f"convviz-activations-conv1-{tag}-2.png",
           folder / f"convviz-activations-conv1-channel{k}-{tag}-2.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in new)
    assert f"Saved in <code>{folder.resolve()}</code>" in view.saved.value
    assert all(p.name in view.saved.value for p in new)


def test_saving_a_second_image_or_saving_twice_keeps_every_file(tmp_path) -> None:
    view = ActivationsView(small_convnet(size=32), rng_image(seed=2), background=False, save_dir=tmp_path)
    first = view.save()
    view.set_image(rng_image(seed=3))
    second = view.save()
    again = view.save()
    paths = first + second + again
    assert len(set(paths)) == 6 and all(p.is_file() for p in paths)
    assert first[0].name != second[0].name  # the image's digest is in the name
    assert again[0].name == second[0].name.replace(".png", "-2.png")
    assert first[0].read_bytes() != second[0].read_bytes()


def test_a_view_without_an_image_saves_under_its_settings_and_never_replaces(tmp_path) -> None:
    view = FiltersView(small_convnet(size=32), layer="conv2", count=2, steps=1, size=32, background=False,
                       save_dir=tmp_path)
    view.render()
    first, second = view.save(), view.save()
    assert first[0].name == "convviz-filters-conv2-0-1-32px-1steps.png"
    assert second[0].name == "convviz-filters-conv2-0-1-32px-1steps-2.png"


def test_a_new_file_name_skips_files_folders_and_dangling_links(tmp_path) -> None:
    (tmp_path / "a.png").write_bytes(b"x")
    (tmp_path / "a-2.png").mkdir()
    (tmp_path / "a-3.png").symlink_to(tmp_path / "missing.png")
    path = write_new_file(tmp_path, "a", ".png", b"data")
    assert path.name == "a-4.png" and path.read_bytes() == b"data"
    assert not (tmp_path / "missing.png").exists() and (tmp_path / "a.png").read_bytes() == b"x"


def test_a_picture_is_named_after_the_image_it_shows() -> None:
    a, b = rng_image(seed=1), rng_image(seed=2)
    view = ActivationsView(small_convnet(size=32), a, background=False)
    tag_a = view.image_tag()
    view.set_image(b)
    assert tag_a != view.image_tag() and len(tag_a) == 8
    assert np.array_equal(a, rng_image(seed=1))  # naming reads the pixels, never changes them


class _PressesCtrlCWhenCollected:
    """Sends this process SIGINT from its finaliser, so the handler runs where Python swallows exceptions."""

    def __del__(self) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(1000):  # a few bytecodes after the signal, so its handler runs inside this finaliser
            pass


@pytest.fixture
def pythons_own_ctrl_c():
    """SIGINT handled by Python's own handler for the test (a background job starts with SIGINT ignored)."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_a_ctrl_c_swallowed_by_a_finaliser_still_stops_the_work_at_the_next_progress_step(capsys,
                                                                                         pythons_own_ctrl_c) -> None:
    from convviz_widgets.core.batching import CTRL_C, report

    seen = []
    with pytest.raises(KeyboardInterrupt), CTRL_C.kept():
        _PressesCtrlCWhenCollected()  # collected at once: the KeyboardInterrupt is raised inside __del__, and lost
        seen.append("work went on")
        report(lambda done, total: seen.append(done), 1, 10, "Work", "steps")
    assert seen == ["work went on"]  # the next progress step raised, before telling progress anything
    assert "Exception ignored" not in capsys.readouterr().err  # the swallowed press is not printed as an error
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # and the handler is Python's again


def test_without_a_ctrl_c_progress_steps_run_as_before() -> None:
    from convviz_widgets.core.batching import CTRL_C, report

    seen = []
    with CTRL_C.kept():
        for i in range(3):
            report(lambda done, total: seen.append(done), i + 1, 3, "Work", "steps")
    report(lambda done, total: seen.append(done), 4, 4, "Work", "steps")
    assert seen == [1, 2, 3, 4]
