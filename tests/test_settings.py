"""Settings: every CONVVIZ_* variable read once, named in its messages, in units that match; honest sizes."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from conftest import rng_image, small_convnet

import convviz_widgets as cv
from convviz_widgets import cli, limits

VARIABLES = {"max_pixels": "CONVVIZ_MAX_PIXELS", "memory_budget": "CONVVIZ_MEMORY_BUDGET",
             "max_model_bytes": "CONVVIZ_MAX_MODEL_BYTES"}


@pytest.fixture
def from_env(monkeypatch):
    """Set a variable and forget the setting's value, so the next read takes the variable (undone afterwards)."""
    saved = {name: vars(limits)[name] for name in VARIABLES if name in vars(limits)}

    def set_variable(setting: str, text: str) -> None:
        vars(limits).pop(setting, None)
        monkeypatch.setenv(VARIABLES[setting], text)

    yield set_variable
    for name in VARIABLES:
        vars(limits).pop(name, None)
    vars(limits).update(saved)


@pytest.mark.parametrize(("text", "pixels"), [("50000000", 50_000_000), ("50M", 50_000_000), ("2G", 2_000_000_000),
                                              ("1.5M", 1_500_000), ("12k", 12_000), ("1_000", 1000)])
def test_pixel_counts_take_decimal_k_m_g(from_env, text, pixels):
    from_env("max_pixels", text)
    assert limits.max_pixels == pixels


@pytest.mark.parametrize(("setting", "text", "what"), [
    ("max_pixels", "abc", "not a whole number of pixels"), ("max_pixels", "1.5", "whole number"),
    ("max_pixels", "0", "at least 1"), ("max_pixels", "2GB", "not a whole number of pixels"),
    ("memory_budget", "abc", "not a size in bytes"), ("memory_budget", "1.5", "must be whole"),
    ("memory_budget", "-2G", "not a size in bytes"), ("memory_budget", "0", "positive"),
    ("max_model_bytes", "lots", "not a size in bytes"), ("max_model_bytes", "inf", "not a size in bytes"),
])
def test_bad_variable_is_named_with_its_value_where_the_setting_is_used(from_env, setting, text, what):
    from_env(setting, text)
    with pytest.raises(cv.ConvVizError) as err:
        getattr(limits, setting)
    message = str(err.value)
    assert f"{VARIABLES[setting]}={text!r}" in message and what in message
    if setting == "max_pixels":
        assert "bytes" not in message


def test_bad_pixel_variable_reaches_load_image_as_its_own_message(from_env):
    from_env("max_pixels", "abc")
    with pytest.raises(cv.ConvVizError, match="CONVVIZ_MAX_PIXELS='abc'"):
        cv.load_image(rng_image(8, 8))


@pytest.mark.parametrize(("text", "n_bytes"), [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("2GiB", 2 * 2**30),
                                               ("1.5G", 3 * 2**29), ("10KB", 10_240), ("1500000", 1_500_000)])
def test_byte_sizes_take_binary_k_m_g(from_env, text, n_bytes):
    from_env("memory_budget", text)
    from_env("max_model_bytes", text)
    assert limits.memory_budget == n_bytes == limits.max_model_bytes


def test_setting_is_read_once(from_env, monkeypatch):
    from_env("max_pixels", "7M")
    assert limits.max_pixels == 7_000_000
    monkeypatch.setenv("CONVVIZ_MAX_PIXELS", "9M")
    assert limits.max_pixels == 7_000_000


def test_bad_variable_does_not_fail_the_import(from_env):
    """The module's own code runs (a reload, as an import does) without reading the bad variable."""
    from_env("max_pixels", "abc")
    saved = dict(vars(limits))
    try:
        importlib.reload(limits)
        with pytest.raises(cv.ConvVizError, match="CONVVIZ_MAX_PIXELS='abc'"):
            limits.check_settings()
    finally:
        vars(limits).clear()
        vars(limits).update(saved)


@pytest.mark.parametrize("setting", sorted(VARIABLES))
def test_cli_reports_a_bad_variable_in_one_line_and_exit_status_2(from_env, setting, tmp_path, capsys):
    from_env(setting, "1.5x")
    assert cli.main(["report", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("convviz: error: ") and VARIABLES[setting] in err[0]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("n_bytes", "text"), [(0, "0 bytes"), (1, "1 byte"), (1023, "1023 bytes"),
                                               (1536, "1.5 KB"), (300 * 2**20, "300 MB"), (2**30, "1.00 GB"),
                                               (12.5 * 2**30, "12.5 GB")])
def test_sizes_are_written_honestly_at_every_scale(n_bytes, text):
    assert limits.size_text(n_bytes) == text


def test_budget_of_one_byte_reads_one_byte_not_zero_mb(monkeypatch):
    monkeypatch.setattr(limits, "memory_budget", 1)
    with pytest.raises(cv.ConvVizError) as err:
        limits.check_fits(5 * 2**20, what="This", lower="it")
    assert "memory budget of 1 byte" in str(err.value) and "about 5.0 MB" in str(err.value)
    assert "of 0 MB" not in str(err.value)


def test_predict_is_budgeted_like_the_rest(monkeypatch):
    model = small_convnet()
    image = rng_image(32, 32)
    assert len(cv.predict(model, image, preprocess="rescale", top=2)) == 2
    monkeypatch.setattr(limits, "memory_budget", 1000)
    with pytest.raises(cv.ConvVizError, match="A forward pass of this image needs .* memory budget of 1000 bytes"):
        cv.Inspector(model, preprocess="rescale").predict(np.asarray(image), top=2)
