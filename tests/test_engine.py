"""The start-up choice of precision (restoration/inference/engine.py), the eligibility bar it applies
(restoration/inference/eligibility.py) and the fast path's copy of a model (batch norms folded)."""

import pytest
import torch

from restoration.data.images import quantize
from restoration.data.uploads import list_images
from restoration.inference import engine
from restoration.inference.eligibility import Agreement, agreement, level_histogram, percentile_level
from restoration.inference.runner import Restorer
from restoration.inference.windows import NearestInput
from restoration.models.unet import UNet
from restoration.settings import REPO, Settings, SettingsError
from tests.support import TINY
from tests.test_runner import a_trained_looking_unet

CPU = torch.device("cpu")
SAME = Agreement(0.004, -0.0001, 1, 3)


def image_like_unet():
    """A tiny U-Net whose zero-initialised layers get small weights: its outputs stay near [0, 1],
    like a trained model's (large random weights send values to ±4, where bf16's steps are 4× coarser)."""
    torch.manual_seed(0)
    model = UNet(**TINY)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.02)
    return model.eval()


def fake_check(gains: dict[str, float], agreements: dict[str, Agreement] | None = None):
    """A check that reports `gains[precision]`× over fp32 and the given agreement (default: the same picture)."""
    def check(models, images, precision, device):
        return engine.Check((agreements or {}).get(precision, SAME), 1.0, 1.0 / gains[precision])
    return check


def choose(**kwargs):
    kwargs = {"check": fake_check({"bf16": 2.5}), "cpu_bf16": lambda: "AVX-512 BF16", "openvino": lambda: False} | kwargs
    return engine.choose([object()] * 6, [], **kwargs)


# ------------------------------------------------------------------------------ the bar

def test_the_bar_reads_the_percentile_not_the_largest_move():
    assert Agreement(0.02, -0.001, 2, 9).eligible  # every figure at its limit, one stray pixel far off
    for failing, word in [(Agreement(0.0201, 0, 0, 0), "ΔPSNR"), (Agreement(0, 0.0011, 0, 0), "ΔSSIM"),
                          (Agreement(0, 0, 3, 3), "99.9 %")]:
        assert not failing.eligible and word in failing.failures()[0]
    worst = Agreement.worst([Agreement(0.01, 0.0002, 1, 6), Agreement(-0.015, 0.0, 2, 2)])
    assert (worst.psnr_delta, worst.ssim_delta, worst.p999, worst.max_levels, worst.cases) == (-0.015, 0.0002, 2, 6, 2)


def test_percentile_and_maximum_of_pixel_moves():
    a = torch.full((3, 100, 100), 100, dtype=torch.uint8)
    b = a.clone()
    b[0, 0, :29] += 3  # 29 of 30,000 values: under 0.1 %
    b[1, 5, 5] -= 6  # one stray value
    histogram = level_histogram(b, a)
    assert histogram.sum() == a.numel() and histogram[3] == 29 and histogram[6] == 1
    assert percentile_level(histogram) == 0
    b[0, 1, :2] += 3  # 31 values at 3 or more: over 0.1 %
    assert percentile_level(level_histogram(b, a)) == 3
    original = torch.full_like(a, 110)
    found = agreement([b], [a], [original])
    assert (found.p999, found.max_levels) == (3, 6) and found.psnr_delta != 0


# ------------------------------------------------------------------------------ the choice on a CPU

def test_fp32_forced_in_one_line():
    choice = choose(engine="fp32")
    assert choice.precision == "fp32" and "forced by RESTORATION_ENGINE=fp32" in choice.line and "\n" not in choice.line


@pytest.mark.parametrize("simulate", [False, True])
def test_a_cpu_without_bfloat16_runs_fp32_and_says_so(simulate):
    choice = choose(cpu_bf16=lambda: None if not simulate else "AVX-512 BF16", simulate_no_bf16=simulate)
    assert choice.precision == "fp32" and "this CPU has no bfloat16 instructions" in choice.line
    assert ("RESTORATION_SIMULATE_NO_BF16" in choice.line) == simulate
    assert "openvino" not in choice.line.lower()  # no package the user never installed


def test_bf16_ships_where_the_cpu_has_it_and_it_is_eligible_and_faster():
    choice = choose()
    assert choice.precision == "bf16" and choice.device == CPU
    assert "this CPU has bfloat16 instructions (AVX-512 BF16)" in choice.line and "2.5× faster" in choice.line
    assert "same picture" in choice.line and "6 models × 3 degradations" in choice.line and "\n" not in choice.line


def test_bf16_is_refused_when_it_changes_the_picture_or_is_not_faster():
    changed = choose(check=fake_check({"bf16": 2.5}, {"bf16": Agreement(0.03, 0, 1, 4)}))
    assert changed.precision == "fp32" and "bf16 would change the picture (|ΔPSNR| 0.030 dB > 0.02)" in changed.line
    slow = choose(check=fake_check({"bf16": 1.2}))
    assert slow.precision == "fp32" and "only 1.2× faster than fp32 here (needs 1.6×)" in slow.line


def test_bf16_forced_runs_even_off_the_bar_and_says_so():
    choice = choose(engine="bf16", check=fake_check({"bf16": 2.0}, {"bf16": Agreement(0, 0, 3, 6)}))
    assert choice.precision == "bf16" and "forced by RESTORATION_ENGINE=bf16" in choice.line
    assert "NOT the same picture" in choice.line
    refused = choose(engine="bf16", cpu_bf16=lambda: None)
    assert refused.precision == "fp32" and "RESTORATION_ENGINE=bf16, but this CPU has no bfloat16" in refused.line
    assert "CUDA GPU only" in choose(engine="fp16").line


def test_a_failing_check_falls_back_to_fp32():
    def broken(*args):
        raise RuntimeError("oneDNN: no bf16 kernels")
    choice = choose(check=broken)
    assert choice.precision == "fp32" and "the bf16 check failed (RuntimeError: oneDNN: no bf16 kernels)" in choice.line


def test_openvino_f32_where_installed_and_bf16_is_not_chosen():
    choice = choose(cpu_bf16=lambda: None, openvino=lambda: True)
    assert choice.precision == "openvino-f32" and "no bfloat16 instructions" in choice.line


# ------------------------------------------------------------------------------ the choice on a GPU (decided on the CPU)

def test_on_a_gpu_the_fastest_eligible_half_precision_ships():
    cuda = torch.device("cuda")
    both = choose(device=cuda, where="CUDA (a card)", gpu_bf16=lambda: True,
                  check=fake_check({"fp16": 3.0, "bf16": 2.4}))
    assert both.precision == "fp16" and both.device == cuda and "CUDA (a card)" in both.line and "3.0×" in both.line
    no_fp16 = choose(device=cuda, gpu_bf16=lambda: True, check=fake_check({"fp16": 3.0, "bf16": 2.4},
                                                                          {"fp16": Agreement(0, 0, 4, 9)}))
    assert no_fp16.precision == "bf16"
    t4 = choose(device=cuda, gpu_bf16=lambda: False, check=fake_check({"fp16": 1.05}))
    assert t4.precision == "fp32" and "only 1.1× faster" in t4.line  # a GPU's fp32 is not compiled: 1.1× suffices


# ------------------------------------------------------------------------------ the real check and the fast copy

def test_the_fast_copy_folds_batch_norms_and_keeps_the_function():
    model = a_trained_looking_unet()
    with torch.no_grad():  # running statistics that are not the identity
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
    fast = engine.fast_copy(model)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())  # the caller's model is untouched
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fast.modules())
    x = torch.rand(2, 3, 40, 36)
    with torch.inference_mode():
        assert (fast.restore(x.contiguous(memory_format=torch.channels_last)) - model.restore(x)).abs().max() < 1e-5


def test_the_check_runs_every_model_and_degradation_in_fp32():
    images = [quantize(engine.check_image(40)[0])]
    models = [NearestInput(image_like_unet()), NearestInput(a_trained_looking_unet())]  # as the runner gives them
    check = engine.check_precision(models, images, "fp32", side=32)
    assert check.agreement.cases == 2 * 3 and check.agreement.eligible and check.agreement.max_levels <= 1
    assert check.reference_seconds > 0 and check.seconds > 0


@pytest.mark.skipif(not engine.bf16_supported(), reason="this CPU has no bfloat16 instructions")
def test_bf16_windows_and_whole_images_meet_the_pixel_bar_on_a_tiny_model():
    """Autocast keeps weights and accumulation in fp32: the 8-bit outputs stay within 2/255 of fp32
    eager for 99.9 % of the values and most do not move, also after the warm-up (the shipped models:
    test_shipped_weights). The runner feeds the U-Net the ×2 nearest upscale of a low-resolution
    image, as the app does; on its blocky edges single values moved by up to 4/255 on this model,
    which the bar reports and does not hold to a limit (eligibility.py)."""
    with engine.without_openvino():
        model = image_like_unet()
        reference = Restorer(model, window=64, overlap=8, fast=False, fit=True)  # the same windows
        bf16 = Restorer(model, window=64, overlap=8, precision="bf16")
        bf16.warm_up()
        assert "bf16" in bf16.status
        image = quantize(engine.check_image(80)[0])  # low-resolution: the U-Net sees its ×2 upscale
        for x in [image[:, :75, :65], image[:, :10, :8], image[:, :32, :32]]:  # windows, whole, one window
            moved = level_histogram(bf16(x), reference(x))
            largest = int(torch.nonzero(moved)[-1].item())
            assert percentile_level(moved) <= 2 and moved[1:].sum() < 0.5 * moved.sum(), f"the most {largest}/255"


def test_the_check_images_are_a_thumbnail_and_a_photo_crop(tmp_path):
    images = engine.check_images(list_images(REPO / "examples"))
    assert len(images) == 2 and max(images[0].shape[1:]) <= 128 and images[1].shape[1:] == (engine.CHECK_IMAGE_SIDE,) * 2
    assert all(x.dtype == torch.uint8 for x in images)
    [synthetic] = engine.check_images([tmp_path / "missing.png"])
    assert synthetic.shape == (3, engine.CHECK_IMAGE_SIDE, engine.CHECK_IMAGE_SIDE)


def test_the_settings_parse_and_refuse():
    s = Settings.from_env({"RESTORATION_ENGINE": "fp16", "RESTORATION_SIMULATE_NO_BF16": "1",
                           "RESTORATION_DEVICE": "cpu"})
    assert s.engine == "fp16" and s.simulate_no_bf16 and s.device == "cpu"
    assert Settings.from_env({}).engine == "auto" and Settings.from_env({}).device == "auto"
    with pytest.raises(SettingsError, match="RESTORATION_ENGINE"):
        Settings.from_env({"RESTORATION_ENGINE": "int4"})
    with pytest.raises(SettingsError, match="RESTORATION_DEVICE"):
        Settings.from_env({"RESTORATION_DEVICE": "tpu"})


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        Restorer(a_trained_looking_unet(), window=64, overlap=8, precision="int8")
    with pytest.raises(ValueError, match="CUDA"):
        Restorer(a_trained_looking_unet(), window=64, overlap=8, precision="fp16")


def test_instruction_sets_read_from_flags():
    sets = engine.instruction_sets({"avx2", "avx512f", "avx512_bf16", "avx512_vnni"})
    assert sets["avx512_bf16"] and sets["vnni"] and not sets["amx_bf16"]
    assert engine.bf16_instructions({"avx2", "avx512f", "avx512_bf16"}) == "AVX-512 BF16"
    assert engine.bf16_instructions({"avx2", "amx_bf16", "avx512_bf16"}) == "AMX"


@pytest.mark.skipif(engine.platform.system() != "Linux", reason="the flags come from /proc/cpuinfo")
def test_an_avx2_only_cpu_has_no_bfloat16():
    assert engine.bf16_instructions({"avx", "avx2", "fma"}) is None


def test_openvino_f32_falls_back_to_todays_path_without_openvino(monkeypatch):
    """Where openvino is missing (or fails), an "openvino-f32" Restorer compiles as today, exact."""
    monkeypatch.setattr(engine, "openvino_module", lambda: None)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # compiling itself is not under test
    model = image_like_unet()
    r = Restorer(model, window=64, overlap=8, precision="openvino-f32", notice=lambda _: None)
    r.warm_up()
    assert "openvino not installed" in r.status
    x = torch.rand(3, 50, 45)
    assert (r(x) - Restorer(model, window=64, overlap=8, fast=False, fit=True)(x)).abs().max() <= 1e-4


@pytest.mark.skipif(engine.openvino_module() is None, reason="openvino is not installed (it is optional)")
def test_openvino_f32_windows_match_fp32_on_a_tiny_model():
    model = image_like_unet()
    r = Restorer(model, window=64, overlap=8, precision="openvino-f32", notice=lambda _: None)
    r.warm_up()
    x = torch.rand(3, 50, 45)
    assert (r(x) - Restorer(model, window=64, overlap=8, fast=False, fit=True)(x)).abs().max() <= 1e-4
