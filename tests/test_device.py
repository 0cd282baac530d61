"""The device that computes: GPU memory growth at start-up, batch budgets from its memory, mixed precision."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from conftest import rng_image, small_convnet
from scipy.stats import spearmanr

import convviz_widgets as cv
from convviz_widgets import _quiet, limits
from convviz_widgets.core import backend as bk
from convviz_widgets.core import device


class FakeConfig:
    """tf.config with two GPUs, one of them already initialised."""

    def __init__(self) -> None:
        self.grown: list[str] = []
        self.experimental = self

    def list_physical_devices(self, kind: str) -> list:
        return [type("Gpu", (), {"name": n})() for n in ("GPU:0", "GPU:1")]

    def set_memory_growth(self, gpu, on: bool) -> None:
        if gpu.name == "GPU:1":
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.grown.append(gpu.name)


class FakeTF:
    def __init__(self) -> None:
        self.config = FakeConfig()


def test_memory_growth_is_set_for_every_gpu_that_allows_it(monkeypatch):
    monkeypatch.delenv("CONVVIZ_GPU_MEMORY_GROWTH", raising=False)
    tf = FakeTF()
    assert _quiet.enable_memory_growth(tf) == ["GPU:0"] and tf.config.grown == ["GPU:0"]


@pytest.mark.parametrize("value", ["0", "false", "off"])
def test_memory_growth_env_var_turns_it_off(monkeypatch, value):
    monkeypatch.setenv("CONVVIZ_GPU_MEMORY_GROWTH", value)
    tf = FakeTF()
    assert _quiet.enable_memory_growth(tf) == [] and tf.config.grown == []


@pytest.mark.backends
def test_batch_budget_follows_the_device_memory(monkeypatch):
    monkeypatch.setattr(limits, "memory_budget", None)
    monkeypatch.setattr(limits, "device_memory", lambda: None)
    host = limits.budget_bytes()
    monkeypatch.setattr(limits, "device_memory", lambda: 2 * host)  # a roomy GPU: the host bound stays
    assert limits.budget_bytes() == host
    small = 4 * limits.MIN_BUDGET
    monkeypatch.setattr(limits, "device_memory", lambda: small)  # a nearly full GPU: its share bounds batches
    assert limits.budget_bytes() == max(limits.MIN_BUDGET, int(small * limits.AVAILABLE_SHARE)) < host
    per_item = limits.budget_bytes() / 3
    assert limits.fit_batch(per_item, 100) == 3


@pytest.mark.backends
def test_device_hook_is_installed_and_cpu_is_described():
    assert limits.device_memory is device.device_free_bytes
    if not device.gpus():
        assert device.device_free_bytes() is None
        assert cv.describe_device().startswith("CPU, ") and "thread" in cv.describe_device()
    else:
        assert not cv.describe_device().startswith("CPU")


@pytest.mark.backends
@pytest.mark.parametrize("method", ["gradcam", "hirescam", "eigencam"])
def test_a_bfloat16_model_is_explained_like_its_float32_twin(method):
    twin = small_convnet(size=48, seed=5)
    image = rng_image(48, 48, seed=6)
    policy = keras.mixed_precision.global_policy()
    try:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        mixed = small_convnet(size=48, seed=5)
    finally:
        keras.mixed_precision.set_global_policy(policy)
    mixed.set_weights(twin.get_weights())
    assert mixed.get_layer("conv3").compute_dtype == "bfloat16"
    want = cv.gradcam(twin, image, preprocess="rescale", class_index=1, method=method)
    got = cv.gradcam(mixed, image, preprocess="rescale", class_index=1, method=method)
    assert got.raw.dtype == np.float32 and np.isfinite(got.raw).all()
    assert spearmanr(got.raw.ravel(), want.raw.ravel())[0] >= 0.99


@pytest.mark.backends
@pytest.mark.parametrize("gpu, threads, want", [
    ("NVIDIA H200", 16, "GPU: NVIDIA H200"),
    ("NVIDIA H200 (1 of 2 GPUs)", 16, "GPU: NVIDIA H200 (1 of 2 GPUs)"),
    (None, 16, "CPU, 16 threads"),
    (None, 1, "CPU, 1 thread"),
])
def test_the_device_is_described_from_the_backends_facts(monkeypatch, gpu, threads, want):
    monkeypatch.setattr(bk, "gpu_name", lambda: gpu)
    monkeypatch.setattr(bk, "cpu_threads", lambda: threads)
    assert cv.describe_device() == want


@pytest.mark.backends
@pytest.mark.parametrize("held, smi, free", [
    ((3 * 2**30, 8 * 2**30), None, 5 * 2**30),  # the backend knows its total (JAX, PyTorch)
    ((3 * 2**30, 0), 10 * 2**30, 7 * 2**30),  # no total from the backend (TensorFlow): nvidia-smi's
    ((3 * 2**30, 0), None, None),  # neither: unknown, batches follow the host's memory only
    ((9 * 2**30, 8 * 2**30), None, 0),  # more in use than the total: nothing free, never negative
    (None, 10 * 2**30, None),  # no GPU computes
])
def test_free_device_memory_is_the_total_less_what_is_held(monkeypatch, held, smi, free):
    monkeypatch.setattr(bk, "gpu_memory", lambda: held)
    monkeypatch.setattr(device, "_gpu_total_bytes", lambda: smi)
    assert device.device_free_bytes() == free


@pytest.mark.backends
def test_the_backend_reports_its_cpu_threads_and_no_gpu_on_a_cpu_machine(backend):
    assert bk.name() == backend
    assert bk.cpu_threads() >= 1
    if bk.gpu_name() is None:
        assert bk.gpu_names() == [] and bk.gpu_memory() is None and device.device_free_bytes() is None
