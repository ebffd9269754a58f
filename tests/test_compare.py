"""The Compare computations, on tiny U-Nets."""

import dataclasses

import numpy as np
import pytest
import torch
from PIL import Image

from restoration.data.degrade import downscale, even_crop, low_res, prepare, upscale_bicubic
from restoration.data.images import ImageError, quantize, to_float, to_pil, to_tensor, to_uint8
from restoration.data.metrics import psnr, ssim
from restoration.data.uploads import input_pixel_limit, open_upload
from restoration.inference.compare import Stopwatch, compare, compare_stream, png_downloads, save_panels, slider_files
from restoration.inference.runner import Restorer
from tests.support import CountingModel


def photo(w, h, seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    coarse = Image.fromarray((rng.random((h // 8 + 1, w // 8 + 1, 3)) * 255).astype(np.uint8))
    return coarse.resize((w, h), Image.Resampling.BICUBIC)


def test_degrade_mode_panels_and_scores(settings, tiny_models):
    image = photo(75, 50)
    steps = []
    panels = compare(image, "degrade", tiny_models, settings, progress=lambda f, text: steps.append((f, text)))
    keys = [p.key for p in panels]
    assert keys == ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]
    # Every panel is 8-bit, the low-resolution input too: the models see exactly what is shown.
    reference = even_crop(to_uint8(image))
    low = quantize(downscale(to_float(reference)))
    by_key = {p.key: p for p in panels}
    assert all(p.image.dtype == torch.uint8 for p in panels)
    assert by_key["input"].size == (37, 25) and by_key["original"].size == (74, 50)
    assert torch.equal(by_key["original"].image, reference) and torch.equal(by_key["input"].image, low)
    assert torch.equal(by_key["bicubic"].image, quantize(upscale_bicubic(to_float(low))))
    for p in panels[1:-1]:
        assert p.size == (74, 50) and p.ms is not None and p.ms >= 0
        assert p.psnr == pytest.approx(float(psnr(p.image, reference)[0]))
        assert p.ssim == pytest.approx(float(ssim(p.image, reference)[0]))
    assert by_key["original"].psnr is None
    assert len({round(p.psnr, 6) for p in panels[1:-1]}) == 4  # the models really differ
    assert by_key["unet-mse"].caption() == f"MSE U-Net · {by_key['unet-mse'].psnr:.2f} dB"  # one figure
    assert by_key["original"].caption() == "Original"
    fractions = [f for f, _ in steps]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and "MSE U-Net" in steps[1][1]


def test_upscale_mode_has_no_reference(settings, tiny_models):
    panels = compare(photo(30, 20), "upscale", tiny_models, settings)
    assert [p.key for p in panels] == ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv"]
    assert panels[0].size == (30, 20) and all(p.size == (60, 40) for p in panels[1:])
    assert all(p.psnr is None and p.ssim is None for p in panels)


def test_large_outputs_are_restored_in_tiles(settings, tiny_models):
    model = tiny_models[0]
    counting = CountingModel(model.model)
    wrapped = dataclasses.replace(model, model=counting)
    image = photo(400, 300)  # larger than a 128-pixel window
    [panel] = [p for p in compare(image, "degrade", [wrapped], settings) if p.key == model.entry.name]
    assert len(counting.calls) > 1 and set(counting.calls) == {(settings.tile_size, settings.tile_size)}
    with torch.inference_mode():
        whole = model.model.restore(to_float(prepare(to_uint8(image), "degrade")[1])[None])[0]
    # tiles with overlapping context: no visible seams (within 5 of 255 levels)
    assert (to_float(panel.image) - whole).abs().max() < 0.02


def test_compare_streams_the_panels_and_takes_a_degradation(settings, tiny_models):
    image = photo(75, 50)
    steps = list(compare_stream(image, "degrade", tiny_models, settings, degradation="jpeg75"))
    assert [p.key for p in steps[0].panels] == ["input", "bicubic", "original"]  # at once, before any model
    assert steps[0].panels[0].psnr is None and steps[1].panels[0].psnr is not None  # then their scores
    keys = [[p.key for p in s.panels] for s in steps]
    assert keys[-1] == ["input", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"]
    assert all(set(a) <= set(b) for a, b in zip(keys, keys[1:])) and steps[-1].done and not steps[-2].done
    assert [s.fraction for s in steps] == sorted(s.fraction for s in steps) and steps[-1].fraction == 1.0
    # a model's panel shows before its scores are in
    mse = [next((p for p in s.panels if p.key == "unet-mse"), None) for s in steps]
    assert any(p is not None and p.psnr is None for p in mse) and mse[-1].psnr is not None
    low = quantize(low_res(even_crop(to_tensor(image)), "jpeg75"))
    assert torch.equal(steps[-1].panels[0].image, low)
    fast = {m.entry.name: Restorer.from_settings(m.model, settings, fast=True) for m in tiny_models}
    eager = compare(image, "degrade", tiny_models, settings, degradation="jpeg75")
    for a, b in zip(compare(image, "degrade", tiny_models, settings, restorers=fast, degradation="jpeg75"), eager):
        # the fast path agrees within float rounding: at most one level of 255 after rounding
        assert (a.image.int() - b.image.int()).abs().max() <= 1 and a.psnr == pytest.approx(b.psnr, abs=1e-3)
    with pytest.raises(ValueError, match="unknown degradation"):
        compare(image, "degrade", tiny_models, settings, degradation="sharpen")


def test_output_limit_is_enforced_from_the_header(settings, tmp_path):
    big = tmp_path / "big.png"
    photo(1100, 1000).save(big)  # 1.1 megapixels > max_pixels = 1,048,576
    with pytest.raises(ImageError, match="megapixels"):
        open_upload(big, "degrade", settings)
    medium = tmp_path / "medium.png"
    photo(600, 500).save(medium)  # fine to degrade, but ×2 would make 1.2 megapixels
    assert open_upload(medium, "degrade", settings).size == (600, 500)
    with pytest.raises(ImageError, match="Upscale ×2 makes an output with 4× the pixels"):
        open_upload(medium, "upscale", settings)
    assert input_pixel_limit("upscale", 1000) == 250 and input_pixel_limit("degrade", 1000) == 1000
    with pytest.raises(ValueError, match="mode"):
        open_upload(medium, "sideways", settings)


def test_compare_refuses_outputs_over_the_limit_itself(settings, tiny_models):
    small = dataclasses.replace(settings, max_pixels=1000)
    with pytest.raises(ImageError, match="the output would be 40×40"):
        compare(photo(20, 20), "upscale", tiny_models, small)


def test_panels_are_saved_losslessly_and_the_png_downloads_written_once_when_asked(settings, tiny_models, tmp_path):
    clock = Stopwatch()
    panels = compare(photo(40, 30), "degrade", tiny_models[:1], settings)
    files = save_panels(panels, tmp_path, "photo", clock)
    assert sorted(f.name for f in files.values()) == sorted(f"photo-{p.key}.webp" for p in panels)
    assert list(clock.ms) == [f"encode: {p.key}" for p in panels] and "encode: input" in clock.line()
    for p in panels:
        with Image.open(files[p.key]) as im:
            assert im.format == "WEBP" and np.array_equal(np.asarray(im.convert("RGB")), np.asarray(to_pil(p.image)))
    assert not list(tmp_path.glob("*.png"))  # no download written until asked for
    pngs = png_downloads(files.values())
    assert [f.name for f in pngs] == [f"photo-{p.key}.png" for p in panels]
    for p, f in zip(panels, pngs):
        with Image.open(f) as im:
            assert im.format == "PNG" and np.array_equal(np.asarray(im), np.asarray(to_pil(p.image)))
    written = [f.stat().st_mtime_ns for f in pngs]
    assert png_downloads(files.values()) == pngs and [f.stat().st_mtime_ns for f in pngs] == written  # once
    assert not list(tmp_path.glob("*.part"))


def test_the_stopwatch_keeps_every_step_of_a_compare(settings, tiny_models):
    clock = Stopwatch()
    list(compare_stream(photo(40, 30), "degrade", tiny_models, settings, clock=clock))
    titles = [m.entry.title for m in tiny_models]
    assert list(clock.ms)[:2] == ["degrade", "bicubic"] and all(t in clock.ms for t in titles)
    assert all(f"scores: {t}" in clock.ms for t in [*titles, "Bicubic", "Low-resolution input"])
    assert all(ms >= 0 for ms in clock.ms.values()) and clock.line().endswith("(ms)")


def test_slider_files_enlarge_the_smaller_image_without_smoothing(tmp_path):
    for suffix in (".png", ".webp"):
        Image.new("RGB", (10, 8), (10, 20, 30)).save(tmp_path / f"low{suffix}", lossless=True)
        Image.new("RGB", (20, 16)).save(tmp_path / f"big{suffix}", lossless=True)
        a, b = slider_files(tmp_path / f"low{suffix}", tmp_path / f"big{suffix}")
        assert a == tmp_path / f"low-enlarged{suffix}" and b == tmp_path / f"big{suffix}"
        with Image.open(a) as enlarged:
            assert enlarged.size == (20, 16) and enlarged.convert("RGB").getpixel((19, 15)) == (10, 20, 30)
        assert slider_files(tmp_path / f"big{suffix}", tmp_path / f"big{suffix}") == (tmp_path / f"big{suffix}",) * 2


def test_upscale_captions_give_the_time_and_the_classifier_says_when_it_is_unsure(monkeypatch):
    import restoration.inference.compare as compare_module
    from restoration.inference.compare import Panel, score_table, what_the_classifier_sees

    image = torch.zeros(3, 8, 8, dtype=torch.uint8)
    panel = Panel("unet-mse", "MSE U-Net", image, ms=12.4)
    assert panel.caption() == "MSE U-Net · 12 ms"
    answers = iter([("school bus", 0.71), ("Chihuahua", 0.25)])
    monkeypatch.setattr(compare_module, "top_class", lambda fidelity, image: next(answers))
    sure, unsure = what_the_classifier_sees(None, panel), what_the_classifier_sees(None, panel)
    assert sure == "“school bus” 71%" and unsure.startswith("“Chihuahua” 25% (unsure")
    table = score_table([panel], "upscale", {"unet-mse": sure})
    assert table.splitlines()[0].endswith("| Tiny ImageNet class (fidelity classifier) |")
    assert table.splitlines()[-1] == "| MSE U-Net | 8×8 | 12 | “school bus” 71% |"
    assert "fidelity classifier" not in score_table([panel], "upscale")


def test_the_stopwatch_line_reads_back():
    clock = Stopwatch()
    clock.ms = {"degrade": 41.2, "MSE U-Net · photos": 812.0, "scores: MSE U-Net · photos": 64.4}
    assert Stopwatch.parse(clock.line()) == {"degrade": 41.0, "MSE U-Net · photos": 812.0,
                                             "scores: MSE U-Net · photos": 64.0}
