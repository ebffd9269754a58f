"""The start-up choice of engine and precision (restoration/engine.py) and the bf16 path's output."""

import pytest
import torch

from restoration import engine
from restoration.images import quantize
from restoration.inference import Restorer
from restoration.settings import Settings, SettingsError
from restoration.unet import UNet
from tests.test_inference import a_trained_looking_unet


def image_like_unet():
    """A tiny U-Net whose zero-initialised layers get small weights: its outputs stay near [0, 1],
    like a trained model's (large random weights send values to ±4, where bf16's steps are 4× coarser)."""
    torch.manual_seed(0)
    model = UNet(nfs=(8, 16, 32), nbks=(1, 1))
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return model.eval()


def fake_check(t32, t16, apart):
    return lambda model, side: (t32, t16, apart)


@pytest.mark.parametrize("kwargs,why", [({"engine": "fp32"}, "forced by RESTORATION_ENGINE=fp32"),
                                        ({"engine": "bf16", "simulate_no_bf16": True},
                                         "RESTORATION_SIMULATE_NO_BF16 is set")])
def test_a_setting_forces_todays_path_in_one_line(kwargs, why):
    choice = engine.choose(object(), check=fake_check(1.0, 0.1, 0), supported=lambda: True,
                           openvino=lambda: True, **kwargs)
    assert choice.precision == "fp32" and why in choice.line and "today's path" in choice.line
    assert "\n" not in choice.line


@pytest.mark.parametrize("simulate", [False, True])
def test_auto_takes_openvino_f32_where_installed_and_never_bf16(simulate):
    choice = engine.choose(object(), "auto", simulate, check=fake_check(1.0, 0.1, 0), supported=lambda: True,
                           openvino=lambda: True)
    assert choice.precision == "openvino-f32" and "OpenVINO f32" in choice.line and "\n" not in choice.line
    assert ("SIMULATE_NO_BF16" in choice.line) if simulate else ("bf16 not used" in choice.line)


def test_auto_without_openvino_keeps_todays_path():
    choice = engine.choose(object(), "auto", openvino=lambda: False)
    assert choice.precision == "fp32" and "openvino not installed" in choice.line and "today's path" in choice.line


def test_a_cpu_without_bf16_keeps_todays_path():
    choice = engine.choose(object(), "bf16", check=fake_check(1.0, 0.1, 0), supported=lambda: False)
    assert choice.precision == "fp32" and "no bf16 instructions" in choice.line


def test_bf16_is_chosen_when_it_is_fast_enough_and_keeps_the_pixels():
    choice = engine.choose(object(), "bf16", check=fake_check(1.0, 0.3, 1), supported=lambda: True)
    assert choice.precision == "bf16" and "3.3× fp32 eager" in choice.line and "\n" not in choice.line


@pytest.mark.parametrize("t16,apart,why", [(0.3, 3, "moved a pixel by 3/255"), (0.7, 0, "under 1.6× fp32 eager")])
def test_bf16_is_refused_when_it_moves_pixels_or_is_not_fast_enough(t16, apart, why):
    choice = engine.choose(object(), "bf16", check=fake_check(1.0, t16, apart), supported=lambda: True)
    assert choice.precision == "fp32" and why in choice.line


def test_a_failing_self_check_falls_back():
    def broken(model, side):
        raise RuntimeError("oneDNN: no bf16 kernels")
    choice = engine.choose(object(), "bf16", check=broken, supported=lambda: True)
    assert choice.precision == "fp32" and "self-check failed (RuntimeError)" in choice.line


def test_the_settings_parse_and_refuse():
    s = Settings.from_env({"RESTORATION_ENGINE": "fp32", "RESTORATION_SIMULATE_NO_BF16": "1"})
    assert s.engine == "fp32" and s.simulate_no_bf16 and Settings.from_env({}).engine == "auto"
    with pytest.raises(SettingsError, match="RESTORATION_ENGINE"):
        Settings.from_env({"RESTORATION_ENGINE": "int4"})


def test_the_self_check_runs_on_a_tiny_model():
    t32, t16, apart = engine.self_check(a_trained_looking_unet(), side=32)
    assert t32 > 0 and t16 > 0 and apart >= 0


@pytest.mark.skipif(not engine.bf16_supported(), reason="this CPU has no bf16 instructions")
def test_the_bf16_path_stays_within_its_measured_levels_of_fp32_on_a_tiny_model(monkeypatch):
    """Autocast keeps weights and accumulation in fp32: the 8-bit outputs stay close to fp32 eager
    (windows and a small image run whole), also after the warm-up. The runner feeds a U-Net the ×2
    nearest upscale of a low-resolution image, as the app does: on its blocky edges autocast moved
    pixels by up to 4/255 on this model (2/255 on the full-resolution test image fed directly,
    which no caller does), within the 6/255 bench.speed measured on the shipped models, which is
    why "auto" never picks bf16 (engine.BF16_MEASURED_LEVELS)."""
    monkeypatch.setenv("RESTORATION_NO_OPENVINO", "1")
    engine.openvino_module.cache_clear()
    try:
        model = image_like_unet()
        reference = Restorer(model, window=64, overlap=8, fast=False)
        bf16 = Restorer(model, window=64, overlap=8, precision="bf16")
        bf16.warm_up()
        assert "bf16" in bf16.status
        image = quantize(engine.check_image(80)[0])  # low-resolution: the U-Net sees its ×2 upscale
        for x in [image[:, :75, :65], image[:, :10, :8], image[:, :32, :32]]:  # windows, whole, one window
            apart = (bf16(x).int() - reference(x).int()).abs()
            assert apart.max().item() <= engine.BF16_MEASURED_LEVELS and apart.float().mean().item() < 0.5
    finally:
        engine.openvino_module.cache_clear()


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        Restorer(a_trained_looking_unet(), window=64, overlap=8, precision="int8")


def test_instruction_sets_read_from_flags():
    sets = engine.instruction_sets({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
    assert sets["avx512_bf16"] and sets["vnni"] and not sets["amx_bf16"]


def test_openvino_f32_falls_back_to_todays_path_without_openvino(monkeypatch):
    """Where openvino is missing (or fails), an "openvino-f32" Restorer compiles as today, exact."""
    monkeypatch.setattr(engine, "openvino_module", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # compiling itself is not under test
    model = image_like_unet()
    r = Restorer(model, window=64, overlap=8, precision="openvino-f32", notice=lambda _: None)
    r.warm_up()
    assert "openvino not installed" in r.status
    x = torch.rand(3, 50, 45)
    assert (r(x) - Restorer(model, window=64, overlap=8, fast=False)(x)).abs().max() <= 1e-4


@pytest.mark.skipif(engine.openvino_module() is None, reason="openvino is not installed (it is optional)")
def test_openvino_f32_windows_match_fp32_on_a_tiny_model():
    model = image_like_unet()
    r = Restorer(model, window=64, overlap=8, precision="openvino-f32", notice=lambda _: None)
    r.warm_up()
    x = torch.rand(3, 50, 45)
    assert (r(x) - Restorer(model, window=64, overlap=8, fast=False)(x)).abs().max() <= 1e-4
