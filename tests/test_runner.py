import os

import pytest
import torch

import restoration.inference.runner as runner
from restoration.data.degrade import degrade, downscale, prepare, upscale_nearest
from restoration.data.images import quantize, to_float
from restoration.inference.runner import Restorer, timed, window_starts
from restoration.inference.windows import fitted_window
from restoration.models.unet import UNet
from tests.support import TINY, CountingModel


def windowed(model, low, window: int, overlap: int, fit: bool = False):
    """The eager model on one low-resolution image (3, h, w) through `Restorer`'s windows (no
    compile): one size, as the reference path cuts them, or `fit`ted as the fast path does."""
    return Restorer(model, window, overlap, fast=False, fit=fit)(low)


def a_trained_looking_unet(cross_conv=False):
    """A U-Net whose zero-initialised layers are made non-zero, so it is not the identity."""
    torch.manual_seed(0)
    model = UNet(**TINY, cross_conv=cross_conv)
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return model.eval()


def whole_image(model, low):
    """Our U-Net on the whole ×2 nearest upscale of `low`, no windows."""
    with torch.inference_mode():
        return model.restore(upscale_nearest(low)[None])[0]


@pytest.mark.parametrize("length", [64, 65, 100, 160, 333, 1000])
def test_windows_cover_the_axis_on_the_stride_grid_with_context_at_every_seam(length):
    window, overlap, stride = 64, 8, 4
    padded = max(window, -(-length // stride) * stride)
    starts = window_starts(padded, window, overlap, stride)
    assert starts[0] == 0 and starts[-1] == padded - window and all(s % stride == 0 for s in starts)
    for a, b in zip(starts, starts[1:]):
        seam = (a + b + window) // 2
        assert 0 < b - a and seam - b >= overlap and a + window - seam >= overlap
    with pytest.raises(ValueError, match="no core"):
        window_starts(200, 64, 31, 4)


def test_tiles_match_the_whole_image():
    model = a_trained_looking_unet()
    low = torch.rand(3, 80, 72)
    tiled = windowed(model, low, window=96, overlap=32)
    assert tiled.shape == (3, 160, 144) and not torch.allclose(tiled, upscale_nearest(low), atol=1e-3)
    assert (whole_image(model, low) - tiled).abs().max().item() < 1e-4


@pytest.mark.parametrize("length", [96, 112, 160, 256, 288, 400, 512, 600, 1024])
def test_fitted_windows_are_as_few_as_the_window_needs_and_no_larger(length):
    window, overlap, stride, least = 288, 16, 8, 144
    side = fitted_window(length, window, overlap, stride, least)
    assert side % stride == 0 and least <= side <= window
    n = len(window_starts(max(length, window), window, overlap, stride))
    assert len(window_starts(max(length, side), side, overlap, stride)) == n
    if length > window:  # one stride smaller would need another window
        assert len(window_starts(length, side - stride, overlap, stride)) > n
    else:
        assert side == max(length, least)
    assert fitted_window(512, 288, 16, 8, 144) == 272  # a 1024² image: four 544² windows, not four 576²


def test_windows_are_cut_on_the_low_resolution_image_as_the_upscale_was_cut_before():
    """Cut on the low-resolution image (half a window a side, on half the stride's grid): a U-Net
    still sees windows of the size asked for, on its ×2 nearest upscale."""
    model, low = a_trained_looking_unet(), torch.rand(3, 101, 75)
    counting = CountingModel(model)
    r = Restorer(counting, window=48, overlap=8, fast=False)
    assert (r.window, r.overlap, r.stride, r.scale) == (24, 4, 2, 2)  # the tiny U-Net's stride is 4
    out = r(low)
    assert out.shape == (3, 202, 150) and set(counting.calls) == {(48, 48)}  # the U-Net sees 48² upscaled windows
    assert len(counting.calls) == len(window_starts(102, 24, 4, 2)) * len(window_starts(76, 24, 4, 2))


def test_small_images_run_whole_and_odd_sizes_are_covered():
    model = a_trained_looking_unet()
    small = torch.rand(3, 15, 21)  # under half a window: the model's own output, exactly
    assert torch.equal(windowed(model, small, window=64, overlap=8), whole_image(model, small))
    low = torch.rand(3, 51, 37)  # padded to windows at its bottom and right edges
    tiled = windowed(model, low, window=48, overlap=8)
    assert tiled.shape == (3, 102, 74) and tiled.min() >= 0 and tiled.max() <= 1
    assert (tiled - whole_image(model, low)).abs().mean().item() < 0.01


def test_batched_windows_equal_one_at_a_time():
    model = a_trained_looking_unet()
    x = torch.rand(3, 75, 65)  # 3 × 3 windows: batches of 4 leave a short last batch
    one = Restorer(model, window=64, overlap=8, batch=1, fast=False)(x)
    assert (Restorer(model, window=64, overlap=8, batch=4, fast=False)(x) - one).abs().max() < 1e-5



@pytest.mark.parametrize("shape,window", [((3, 15, 20), 64), ((3, 30, 30), 64), ((3, 75, 65), 64)])
def test_an_8_bit_image_comes_out_8_bit_as_the_float_output_rounded(shape, window):
    """Whole, one padded window, and many windows: only the windows run are ever float."""
    model = a_trained_looking_unet()
    x = torch.randint(0, 256, shape, dtype=torch.uint8)
    for fast in (False, True):
        restorer = Restorer(model, window=window, overlap=8, fast=fast)
        out = restorer(x)
        assert out.dtype == torch.uint8 and out.shape == (3, 2 * shape[1], 2 * shape[2])
        expected = quantize(restorer(to_float(x)))
        assert (out.int() - expected.int()).abs().max() <= 1  # rounding of values a hair apart
        assert (out.int() - expected.int()).abs().float().mean() < 0.01

@pytest.mark.parametrize("cross_conv", [False, True])
def test_the_fast_path_equals_the_eager_path(cross_conv):
    """Channels last before warm-up, compiled after (where a compiler works): within 1e-4 of the
    eager model on the same (fitted) windows, whatever their sizes, compiled once."""
    from torch._dynamo.utils import counters

    model = a_trained_looking_unet(cross_conv)
    # whole; one window of the image's own size; fitted windows of three sizes, not square
    images = [torch.rand(3, 10, 8), torch.rand(3, 32, 32), torch.rand(3, 50, 45), torch.rand(3, 60, 34)]
    eager = Restorer(model, window=64, overlap=8, batch=2, fast=False, fit=True)
    fast = Restorer(model, window=64, overlap=8, batch=2, fast=True)
    assert fast.fit and not Restorer(model, window=64, overlap=8, fast=False).fit
    assert next(model.parameters()).is_contiguous()  # the caller's model is left as it was
    for x in images:
        assert (fast(x) - eager(x)).abs().max().item() <= 1e-4
    fast.warm_up()
    assert fast.status.startswith("compiled") if runner.compiler_available() else "unavailable" in fast.status
    graphs = counters["stats"]["unique_graphs"]
    for x in images:
        assert (fast(x) - eager(x)).abs().max().item() <= 1e-4
    assert counters["stats"]["unique_graphs"] == graphs  # no window size compiled again
    batch = torch.rand(3, 3, 16, 16)
    assert (fast.whole(batch) - eager.whole(batch)).abs().max().item() <= 1e-4
    assert fast.whole(batch).shape == (3, 3, 32, 32)


def test_without_a_compiler_the_fast_path_stays_eager_with_a_notice(monkeypatch):
    notices = []
    monkeypatch.setattr(runner, "compiler_available", lambda: False)
    r = Restorer(a_trained_looking_unet(), window=64, overlap=8, notice=notices.append)
    r.warm_up()
    assert len(notices) == 1 and "no C++ compiler" in notices[0] and "eager" in r.status
    x = torch.rand(3, 50, 45)
    assert (r(x) - windowed(r.model, x, window=64, overlap=8, fit=True)).abs().max() <= 1e-4


def test_a_failing_compiler_falls_back_to_eager(monkeypatch):
    notices = []

    def broken(fn, **kwargs):
        def run(x):
            raise RuntimeError("InductorError: cannot build\nlong log")
        return run

    monkeypatch.setattr(runner, "compiler_available", lambda: True)
    monkeypatch.setattr(torch, "compile", broken)
    r = Restorer(a_trained_looking_unet(), window=64, overlap=8, notice=notices.append)
    r.warm_up()
    assert notices == ["fast path: torch.compile unavailable (RuntimeError: InductorError: cannot build); "
                       "running the model eagerly in channels-last format"]
    assert r(torch.rand(3, 40, 40)).shape == (3, 80, 80)
    r.warm_up()
    assert len(notices) == 1  # tried once


def test_prepare_degrade_and_upscale_modes():
    image = torch.rand(3, 31, 40)
    low, inp, ref = prepare(image, "degrade")
    assert ref.shape == (3, 30, 40) and low.shape == (3, 15, 20) and torch.equal(inp, degrade(ref))
    low, inp, ref = prepare(image, "degrade", "bicubic")
    assert torch.equal(low, downscale(ref, "bicubic")) and torch.equal(inp, upscale_nearest(low))
    low, inp, ref = prepare(image, "upscale")
    assert ref is None and torch.equal(low, image) and inp.shape == (3, 62, 80)
    assert torch.equal(inp, upscale_nearest(image))
    with pytest.raises(ValueError, match="mode"):
        prepare(image, "sharpen")
    # 8 bits in, 8 bits out: the low-resolution image rounded, as a real one is
    image8 = torch.randint(0, 256, (3, 31, 40), dtype=torch.uint8)
    low, inp, ref = prepare(image8, "degrade", "bicubic")
    assert low.dtype == inp.dtype == ref.dtype == torch.uint8 and torch.equal(ref, image8[:, :30])
    assert torch.equal(low, quantize(downscale(to_float(ref), "bicubic"))) and torch.equal(inp, upscale_nearest(low))


def test_timed_returns_milliseconds():
    result, ms = timed(downscale, torch.rand(3, 8, 8))
    assert result.shape == (3, 4, 4) and ms >= 0


def test_the_warm_up_silences_torchs_cuda_home_warning_and_nothing_else(monkeypatch, tmp_path, caplog):
    """On a machine with a CUDA toolkit but no GPU, torch.compile's import of cpp_extension logs
    "No CUDA runtime is found, using CUDA_HOME=...". The warm-up filters exactly that line."""
    import logging

    from torch.utils import cpp_extension

    if torch.cuda.is_available():
        pytest.skip("torch only logs the warning without a GPU")
    logger = logging.getLogger("torch.utils.cpp_extension")
    monkeypatch.setattr(logger, "filters", [])  # as before any warm-up in this process
    monkeypatch.setenv("CUDA_HOME", str(tmp_path))  # a toolkit folder that exists
    caplog.set_level(logging.WARNING, logger="torch.utils.cpp_extension")
    cpp_extension._find_cuda_home()
    assert any("No CUDA runtime is found" in r.getMessage() for r in caplog.records)  # torch's own behaviour

    caplog.clear()
    monkeypatch.setattr(runner, "compiler_available", lambda: True)
    monkeypatch.setattr(torch, "compile", lambda fn, **kwargs: fn)  # compiling itself is not under test
    Restorer(a_trained_looking_unet(), window=64, overlap=8, notice=lambda _: None).warm_up()
    cpp_extension._find_cuda_home()
    logger.warning("another warning")
    assert [r.getMessage() for r in caplog.records] == ["another warning"]


def test_before_window_runs_before_every_window_and_a_whole_image():
    """The scene pool's yield point (scenes.py): once per window batch, once for a small image."""
    model = a_trained_looking_unet()
    calls = []
    r = Restorer(model, window=64, overlap=8, batch=1, fast=False)
    r(torch.rand(3, 75, 65), before_window=lambda: calls.append(1))
    assert len(calls) == 9  # 3 × 3 windows
    calls.clear()
    r(torch.rand(3, 10, 8), before_window=lambda: calls.append(1))
    assert len(calls) == 1


def test_a_limited_cpu_capability_compiles_into_its_own_kernel_cache(monkeypatch):
    """Kernels cached under ATEN_CPU_CAPABILITY=avx2 and loaded without it corrupted the heap
    (torch 2.14): a process that limits the capability keeps its own cache; others are left alone."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    from restoration.inference.runner import kernel_cache_per_capability

    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    monkeypatch.delenv("ATEN_CPU_CAPABILITY", raising=False)
    kernel_cache_per_capability()
    assert "TORCHINDUCTOR_CACHE_DIR" not in os.environ  # torch's default, untouched
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    kernel_cache_per_capability()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == default_cache_dir() + "-avx2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", default_cache_dir())  # as torch writes it when it first looks
    kernel_cache_per_capability()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == default_cache_dir() + "-avx2"
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", "/somewhere/chosen")
    kernel_cache_per_capability()
    assert os.environ["TORCHINDUCTOR_CACHE_DIR"] == "/somewhere/chosen"  # a chosen cache is kept
