"""Where the models run (restoration/inference/device.py): the choice of device, ZeroGPU's decorator, and on a
GPU the Restorer against fp32 eager on the CPU (skipped, saying so, where there is no GPU)."""

import os
import subprocess
import sys
import types

import pytest
import torch

from restoration.data.images import quantize
from restoration.inference import device, engine
from restoration.inference.eligibility import level_histogram, percentile_level
from restoration.inference.runner import Restorer, choose_engine
from restoration.settings import REPO, Settings, zero_gpu
from tests.test_engine import image_like_unet

CUDA = torch.cuda.is_available()


def test_auto_takes_cuda_only_where_torch_sees_a_gpu():
    assert device.resolve("auto", cuda_available=lambda: False) == torch.device("cpu")
    assert device.resolve("cpu", cuda_available=lambda: True) == torch.device("cpu")
    assert device.resolve("auto") == torch.device("cuda" if CUDA else "cpu")


def test_cuda_asked_for_without_a_gpu_is_one_line():
    with pytest.raises(device.DeviceError) as refused:
        device.resolve("cuda", cuda_available=lambda: False)
    assert "RESTORATION_DEVICE=cuda" in str(refused.value) and "\n" not in str(refused.value)


@pytest.mark.skipif(CUDA, reason="this machine has a GPU: RESTORATION_DEVICE=cuda starts there")
def test_the_app_refuses_to_start_on_cuda_without_a_gpu(tmp_path):
    env = dict(os.environ, RESTORATION_DEVICE="cuda", RESTORATION_VOTES_DB=str(tmp_path / "votes.db"))
    done = subprocess.run([sys.executable, "app.py"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert len(said) == 1 and said[0].startswith("Cannot start: RESTORATION_DEVICE=cuda"), said


def test_zero_gpu_decorates_only_where_the_platform_says_so(monkeypatch):
    decorated = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda fn: decorated.append(fn) or (lambda *a, **k: ("on a GPU", fn(*a, **k)))
    fake.__spec__ = types.SimpleNamespace(name="spaces")
    monkeypatch.setitem(sys.modules, "spaces", fake)
    monkeypatch.setattr(device.importlib.util, "find_spec", lambda name: object() if name == "spaces" else None)
    monkeypatch.delenv("SPACES_ZERO_GPU", raising=False)
    add = lambda a, b: a + b  # noqa: E731
    assert device.gpu_function(add) is add and not decorated  # `spaces` present, but not a ZeroGPU Space
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    assert zero_gpu() and device.on_zero_gpu()
    assert device.gpu_function(add)(1, 2) == ("on a GPU", 3) and decorated == [add]
    assert not zero_gpu({"SPACES_ZERO_GPU": "0"})


def test_auto_without_a_gpu_says_the_cpu_in_the_start_up_line():
    """What `python app.py` prints first on a CPU-only machine: the device and why the precision."""
    cpu = device.resolve("auto", cuda_available=lambda: False)
    settings = Settings.from_env({"RESTORATION_SIMULATE_NO_BF16": "1"})  # as on an AVX2-only CPU
    line = choose_engine([types.SimpleNamespace(model=image_like_unet())], settings, cpu).line
    assert line.startswith("engine: ") and "on the CPU" in line and "this CPU has no bfloat16 instructions" in line
    assert "\n" not in line


def test_on_the_cpu_the_window_is_the_settings_one():
    assert device.window_side(image_like_unet(), torch.device("cpu"), 4, 320) == 320
    assert device.describe(torch.device("cpu")) == "the CPU"


@pytest.mark.skipif(not CUDA, reason="no CUDA GPU here: the GPU path is tested where there is one")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_on_cuda_whole_images_and_windows_match_fp32_on_the_cpu(precision):
    model = image_like_unet()
    gpu = Restorer(model, window=64, overlap=8, precision=precision, device="cuda")
    assert gpu.window >= 32 and "CUDA" in gpu.status  # 64 output pixels: 32 on the low-resolution image
    reference = Restorer(model, window=64, overlap=8, fast=False, fit=True)  # the fast path's windows
    image = quantize(engine.check_image(80)[0])  # low-resolution, as the runner takes it
    out = gpu(image)
    assert out.device.type == "cpu" and out.dtype == torch.uint8 and out.shape == (3, 160, 160)
    assert percentile_level(level_histogram(out, reference(image))) <= 2
    small = Restorer(model, window=64, overlap=8, precision=precision, device="cuda")
    small.window = 32  # force windows on the GPU too
    assert percentile_level(level_histogram(small(image), reference(image))) <= 2
