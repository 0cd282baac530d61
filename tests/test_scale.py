"""Whole datasets on the engine: the same results here and on two Dask workers, faults, resuming, the CLI."""

from __future__ import annotations

import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import convviz_widgets as cv
from convviz_widgets import demo
from convviz_widgets.errors import Cancelled, ConvVizError
from convviz_widgets.metrics import default_depth, deletion_curve, pointing_game, sanity_check
from convviz_widgets.scale import dataset_examples

N_SCENES = 64
LAYER = "conv3"


@pytest.fixture(scope="module")
def scenes() -> list:
    return [demo.scene(seed=i) for i in range(N_SCENES)]


@pytest.fixture(scope="module")
def images(scenes: list) -> np.ndarray:
    return np.stack([s.image for s in scenes])


@pytest.fixture(scope="module")
def model():
    return demo.load_model()


@pytest.fixture(scope="module")
def client():
    """A LocalCluster of two worker processes, shared by the module's tests."""
    distributed = pytest.importorskip("distributed", reason="the dask extra is not installed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0") as lc, \
            distributed.Client(lc) as c:
        c.run(lambda: __import__("convviz_widgets.scale"))  # each worker imports the package once, up front
        yield c


def brute_force_top(model, layer: str, images: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The oracle: every image's full feature map, the k best images per channel by value, ties to the lower id."""
    import keras

    trunk = keras.Model(model.inputs, model.get_layer(layer).output)
    feats = np.asarray(trunk([images.astype(np.float32) / 255.0], training=False))
    peak = feats.reshape(len(images), -1, feats.shape[-1]).max(axis=1)  # (N, C)
    order = np.stack([np.lexsort((np.arange(len(images)), -peak[:, c]))[:k] for c in range(peak.shape[1])])
    return order, np.take_along_axis(peak.T, order, axis=1)


def assert_same_examples(a, b) -> None:
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.positions, b.positions)
    assert (a.count, a.skipped) == (b.count, b.skipped)


def test_top_examples_on_two_workers_equal_the_one_process_result(model, images, client) -> None:
    here = cv.top_examples(model, LAYER, images, k=5, preprocess="rescale")
    there = cv.top_examples(model, LAYER, images, k=5, preprocess="rescale", client=client, batch_size=8)
    assert_same_examples(there, here)
    order, values = brute_force_top(model, LAYER, images, 5)
    np.testing.assert_array_equal(there.indices, order)
    np.testing.assert_allclose(there.values, values, rtol=1e-5, atol=1e-6)


def test_atlas_on_workers_equals_the_in_process_atlas_and_links_resolve(model, images, client, tmp_path) -> None:
    here = cv.atlas(model, images, tmp_path / "here", layers=["conv1", "conv2"], k=3, preprocess="rescale",
                    pattern_steps=2)
    there = cv.atlas(model, images, tmp_path / "there", layers=["conv1", "conv2"], k=3, preprocess="rescale",
                     pattern_steps=2, client=client, batch_size=8)
    for layer in ("conv1", "conv2"):
        assert_same_examples(there.examples[layer], here.examples[layer])
    front = (tmp_path / "there" / "index.html").read_text()
    assert "conv1/index.html" in front and "conv2/index.html" in front
    page = (tmp_path / "there" / "conv2" / "channel-0007.html").read_text()
    for src in re.findall(r"src='([^']+)'", page):
        assert (tmp_path / "there" / "conv2" / src).is_file(), src
    assert len(re.findall(r"_whole\.png", page)) == 3  # k examples, each with its marked image
    import json

    saved = json.loads((tmp_path / "there" / "conv2" / "examples.json").read_text())
    top = here.examples["conv2"]
    assert [e["image"] for e in saved["channels"]["7"]] == top.indices[7].tolist()
    assert [(e["row"], e["col"]) for e in saved["channels"]["7"]] == [tuple(p) for p in top.positions[7].tolist()]


def test_evaluate_on_workers_equals_each_image_computed_by_hand(model, scenes, images, client) -> None:
    few = images[:6]
    masks = [s.masks[0] for s in scenes[:6]]
    table = cv.evaluate(model, few, methods=("gradcam", "eigencam"), masks=masks, client=client, steps=4,
                        batch_size=4, preprocess="rescale")
    ins = cv.Inspector(model, preprocess="rescale")
    for method in ("gradcam", "eigencam"):
        hits, dels, inss, rands = [], [], [], []
        for i, img in enumerate(few):
            c = int(np.argmax(ins.probabilities(img)))
            cam = ins.gradcam(img, class_index=c, method=method)
            hits.append(float(pointing_game(cam, masks[i])))
            dels.append(deletion_curve(ins, img, cam, c, steps=4, mode="deletion", seed=i).auc)
            inss.append(deletion_curve(ins, img, cam, c, steps=4, mode="insertion", seed=i).auc)
            rands.append(sanity_check(ins, img, cam, default_depth(ins, cam.layer))[1].spearman)
        row = table.row(method)
        assert row["images"] == 6 and row["pointing_n"] == 6
        assert row["pointing"] == pytest.approx(np.mean(hits))
        assert row["deletion_auc"] == pytest.approx(np.mean(dels), abs=1e-6)
        assert row["insertion_auc"] == pytest.approx(np.mean(inss), abs=1e-6)
        assert row["randomization"] == pytest.approx(np.mean(rands), abs=1e-6)
        half = 1.959963984540054 * np.std(dels, ddof=1) / np.sqrt(6)
        assert row["deletion_ci"] == pytest.approx(half, abs=1e-6)
    assert table.to_csv().splitlines()[0].startswith("method,images,pointing")


def test_a_corrupt_image_is_skipped_and_counted_on_workers(model, images, client, tmp_path) -> None:
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(20):
        Image.fromarray(images[i]).save(folder / f"s{i:03d}.png")
    (folder / "s007.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a picture")
    there = cv.top_examples(model, LAYER, folder, k=3, preprocess="rescale", client=client, batch_size=6)
    assert (there.count, there.skipped) == (19, 1)
    assert "image 7" in there.skip_reasons[0]
    assert 7 not in set(there.indices.ravel().tolist())
    assert_same_examples(there, cv.top_examples(model, LAYER, folder, k=3, preprocess="rescale"))


def test_npy_shards_give_the_same_examples_as_one_array(model, images, tmp_path) -> None:
    np.save(tmp_path / "a.npy", images[:40])
    np.save(tmp_path / "b.npy", images[40:])
    (shards,), stats, _ = dataset_examples(model, [LAYER], [tmp_path / "a.npy", tmp_path / "b.npy"], k=4,
                                           batch_size=16, preprocess="rescale")
    assert stats.batches == 3 + 2  # batches never span two shards
    assert_same_examples(shards, cv.top_examples(model, LAYER, images, k=4, preprocess="rescale"))


def test_a_resumed_run_does_not_recompute_finished_batches(model, images, tmp_path) -> None:
    calls = []

    def stop_after_three_batches(done, total):
        calls.append(done)
        return len(calls) <= 3  # the start report, then two batches finish; the third stops the run

    with pytest.raises(Cancelled):
        dataset_examples(model, [LAYER], images, k=4, batch_size=8, preprocess="rescale", out=tmp_path,
                         progress=stop_after_three_batches)
    results, stats, _ = dataset_examples(model, [LAYER], images, k=4, batch_size=8, preprocess="rescale",
                                         out=tmp_path)
    assert (stats.batches, stats.resumed, stats.computed) == (8, 3, 5)
    assert_same_examples(results[0], cv.top_examples(model, LAYER, images, k=4, preprocess="rescale"))


def test_a_resumed_evaluation_gives_the_same_table(model, images, tmp_path) -> None:
    def stop_after_one_batch(done, total):
        return done < 3

    with pytest.raises(Cancelled):
        cv.evaluate(model, images[:6], steps=3, batch_size=3, out=tmp_path, progress=stop_after_one_batch,
                    randomization=False)
    resumed = cv.evaluate(model, images[:6], steps=3, batch_size=3, out=tmp_path, randomization=False)
    fresh = cv.evaluate(model, images[:6], steps=3, batch_size=3, randomization=False)
    assert (resumed.stats.resumed, resumed.stats.computed) == (1, 1)
    for metric, values in fresh.per_image["gradcam"].items():
        np.testing.assert_array_equal(resumed.per_image["gradcam"][metric], values)  # NaN (no mask) equals NaN
    assert resumed.to_csv() == fresh.to_csv()


def test_a_worker_killed_mid_run_still_gives_the_exact_result(model, client) -> None:
    many = demo.example_images(160)
    killed = []

    def kill_one_worker(done, total):
        if done and not killed:
            pids = client.run(os.getpid)
            victim = sorted(pids.values())[0]
            os.kill(victim, signal.SIGKILL)
            killed.append(victim)

    log = client.cluster.scheduler.transition_log
    before = {entry[0] for entry in log}  # tasks of earlier tests
    there = cv.top_examples(model, LAYER, many, k=4, preprocess="rescale", client=client, batch_size=4,
                            progress=kill_one_worker)
    assert killed and killed[0] not in client.run(os.getpid).values()
    started = {}  # how many times each of our tasks was handed to a worker
    for key, _, finish, *_ in log:
        if key not in before and str(key).startswith("convviz-examples_task") and finish == "processing":
            started[key] = started.get(key, 0) + 1
    assert len(started) == 40 and max(started.values()) >= 2  # the lost worker's batches were run again
    assert_same_examples(there, cv.top_examples(model, LAYER, many, k=4, preprocess="rescale"))


def test_workers_without_dask_is_an_error_naming_the_extra(model, images, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the extra were not installed
    with pytest.raises(ConvVizError, match=re.escape("[dask]")):
        cv.top_examples(model, LAYER, images[:2], workers=2)


def test_only_the_engine_imports_dask_and_only_when_asked() -> None:
    from test_rooms import PACKAGE, imported_modules

    importers = sorted(str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
                       if any(m.split(".")[0] in ("dask", "distributed") for m in imported_modules(p)))
    assert importers == ["scale/engine.py"]
    source = (PACKAGE / "scale" / "engine.py").read_text()
    assert "\nimport distributed" not in source and "\nfrom distributed" not in source  # inside functions only


def test_the_engine_refuses_a_generator_and_a_bad_worker_count(model, images, tmp_path) -> None:
    with pytest.raises(ConvVizError, match="top_examples in one process"):
        cv.atlas(model, (img for img in images), tmp_path / "atlas")
    assert not (tmp_path / "atlas").exists()  # refused before anything is written
    pytest.importorskip("distributed", reason="the dask extra is not installed")
    with pytest.raises(ConvVizError, match="workers must be"):
        cv.top_examples(model, LAYER, images, workers=0)


def test_atlas_refuses_a_folder_of_foreign_files(model, images, tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ConvVizError, match="did not write"):
        cv.atlas(model, images[:4], tmp_path, layers=["conv5"], k=1, patterns=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_cli_evaluate_writes_the_table_as_csv_and_html(tmp_path: Path, capsys) -> None:
    from convviz_widgets.cli import main

    assert main(["evaluate", "--scenes", "6", "--steps", "3", "--cam-methods", "gradcam,eigencam",
                 "--out", str(tmp_path)]) == 0
    rows = (tmp_path / "evaluation.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows] == ["method", "gradcam", "eigencam"]
    assert "CAM faithfulness" in (tmp_path / "evaluation.html").read_text()


def test_cli_evaluate_on_a_scheduler_address_writes_the_in_process_table(client, tmp_path: Path) -> None:
    from convviz_widgets.cli import main

    common = ["evaluate", "--scenes", "3", "--steps", "3", "--batch-size", "2"]
    assert main([*common, "--out", str(tmp_path / "here")]) == 0
    assert main([*common, "--out", str(tmp_path / "there"), "--scheduler", client.scheduler.address]) == 0
    here, there = ((tmp_path / d / "evaluation.csv").read_text() for d in ("here", "there"))
    assert there == here and len(here.splitlines()) == 2


def test_cli_atlas_writes_a_site_that_opens_from_disk(tmp_path: Path) -> None:
    from convviz_widgets.cli import main

    assert main(["atlas", "--scenes", "12", "--layers", "conv5", "-k", "2", "--steps", "2",
                 "--out", str(tmp_path)]) == 0
    assert (tmp_path / "index.html").is_file() and (tmp_path / "conv5" / "channel-0127.html").is_file()
    assert "http" not in (tmp_path / "conv5" / "index.html").read_text()


def test_the_progress_line_shows_images_rate_and_time_left() -> None:
    import io

    from convviz_widgets.scale.progress import DatasetProgress

    bar = DatasetProgress(stream=io.StringIO())
    bar.line(100, 1000)  # the start (e.g. 100 images resumed from saved batches)
    bar._t0 -= 2.0  # two seconds later, 400 more images: 200 img/s, 500 images left
    text = bar.line(500, 1000)
    assert text.startswith("Images 500/1,000 [############------------] 200 img/s")
    assert text.endswith(", 2 s left") or text.endswith(", 3 s left")


def test_the_notebook_bar_label_shows_images_rate_and_time_left() -> None:
    from convviz_widgets.scale.progress import counts_text

    assert counts_text(500, 1000, 200.0) == f"500/1,000 images, 200 img/s, {500 / 200:,.0f} s left"
    assert counts_text(1000, 1000, 200.0) == "1,000/1,000 images, 200 img/s"  # done: no time left
    assert counts_text(1280, None, 0.0) == "1,280 images, 0 img/s"  # no total, no rate yet: no ETA


def test_in_a_running_kernel_progress_is_a_widget_bar_and_elsewhere_a_text_line(monkeypatch) -> None:
    import types

    import IPython
    import IPython.display
    import ipywidgets

    from convviz_widgets.scale import progress_bar
    from convviz_widgets.scale.progress import DatasetProgress, NotebookProgress

    monkeypatch.setattr(IPython, "get_ipython", lambda: None)
    assert type(progress_bar()) is DatasetProgress  # a terminal or a script: the text line
    shown = []
    monkeypatch.setattr(IPython, "get_ipython", lambda: types.SimpleNamespace(kernel=object()))
    monkeypatch.setattr(IPython.display, "display", shown.append)
    bar = progress_bar("Images")
    assert isinstance(bar, NotebookProgress)
    bar(0, 1000)
    bar._t0 -= 100.0  # 100 seconds later, 500 images done: 5 img/s, 500 images (100 s) left
    bar(500, 1000)
    assert isinstance(bar.bar, ipywidgets.IntProgress) and (bar.bar.value, bar.bar.max) == (500, 1000)
    assert bar.text.value == "500/1,000 images, 5 img/s, 100 s left"
    assert shown == [bar.box], "the bar is displayed once, then updated in place"
    assert type(progress_bar(stream=sys.stderr)) is DatasetProgress  # an explicit stream keeps the line


def test_an_atlas_channel_lists_only_the_classes_its_positive_weights_feed(model):
    """The CAM layer's channel page names the classes with the largest positive head weights, none it argues against."""
    from convviz_widgets.scale.atlas import _fed_classes

    ins = cv.Inspector(model)
    head = model.layers[-1].get_weights()[0]  # the demo's Dense head after global average pooling: (channels, classes)
    names = list(ins.class_names)
    for channel in range(head.shape[0]):
        w = head[channel]
        want = [(names[i], float(w[i])) for i in np.argsort(-w, kind="stable")[:3] if w[i] > 0]
        assert _fed_classes(ins, ins.default_cam_layer, channel) == want
    assert any((head[c] <= 0).sum() > head.shape[1] - 3 for c in range(head.shape[0]))  # some channel has < 3 to list
