import math

import pytest
import torch
import torch.nn.functional as F

from restoration.data.metrics import (
    CHECKER,
    LAPLACIAN,
    QualityMeter,
    SsimTarget,
    flat_mask,
    gradient_energy,
    grain,
    psnr,
    psnr_from_mse,
    ssim,
)


def test_psnr_of_a_known_error():
    target = torch.full((1, 3, 8, 8), 0.5)
    assert psnr(target + 0.1, target).item() == pytest.approx(20.0, abs=1e-4)  # MSE 0.01
    assert psnr(target, target).item() == pytest.approx(100.0)  # capped, not infinite


def test_pooled_and_mean_psnr_differ_as_defined():
    target = torch.zeros(2, 3, 4, 4)
    out = torch.stack([torch.full((3, 4, 4), 0.1), torch.full((3, 4, 4), 0.01)])
    meter = QualityMeter()
    meter.update(out, target)
    s = meter.summary()
    assert s["psnr_pooled"] == pytest.approx(10 * math.log10(1 / ((0.01 + 0.0001) / 2)), abs=1e-3)
    assert s["psnr_mean"] == pytest.approx((20 + 40) / 2, abs=1e-3)


def test_ssim_of_constant_images_follows_the_formula():
    a, b = 0.3, 0.6
    c1 = 0.01**2
    expected = (2 * a * b + c1) / (a**2 + b**2 + c1)  # variances are 0, so the contrast term is 1
    got = ssim(torch.full((1, 3, 16, 16), a), torch.full((1, 3, 16, 16), b))
    assert got.item() == pytest.approx(expected, abs=1e-5)


def test_ssim_is_one_for_identical_images_and_falls_with_noise():
    x = torch.rand(2, 3, 32, 32)
    assert torch.allclose(ssim(x, x), torch.ones(2), atol=1e-5)
    noisy = [ssim((x + s * torch.randn_like(x)).clamp(0, 1), x).mean().item() for s in (0.02, 0.1, 0.3)]
    assert noisy[0] > noisy[1] > noisy[2]
    assert ssim(torch.rand(1, 3, 5, 6), torch.rand(1, 3, 5, 6)).shape == (1,)  # smaller than the window


def test_blur_lowers_sharpness():
    x = torch.rand(1, 3, 32, 32)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert gradient_energy(blurred) < gradient_energy(x) * 0.5
    meter = QualityMeter()
    meter.update(x, x)
    assert meter.summary()["sharpness"] == pytest.approx(1.0)


def test_meter_accumulates_over_batches():
    a, b = torch.rand(3, 3, 8, 8), torch.rand(3, 3, 8, 8)
    whole, parts = QualityMeter(), QualityMeter()
    whole.update(a, b, seconds=0.3)
    parts.update(a[:1], b[:1], seconds=0.1)
    parts.update(a[1:], b[1:], seconds=0.2)
    for k, v in whole.summary().items():
        assert parts.summary()[k] == pytest.approx(v, rel=1e-5)
    assert whole.summary()["ms_per_image"] == pytest.approx(100.0)
    assert psnr_from_mse(0.001) == pytest.approx(30.0)


def _example(name):
    from restoration.data.images import open_image, to_tensor
    from restoration.settings import REPO

    return to_tensor(open_image(REPO / "examples" / name))


@pytest.mark.parametrize("name", ["chelsea.png", "rocket.jpg", "tinyimagenet-val_11-banana.jpg"])
def test_ssim_matches_scikit_image(name):
    """The reference implementation (Gaussian window σ 1.5, population covariance, valid region)."""
    structural_similarity = pytest.importorskip("skimage.metrics").structural_similarity
    from restoration.data.degrade import degrade, even_crop

    reference = even_crop(_example(name))
    restored = degrade(reference)  # a realistic pair: the nearest-neighbour ×2 of the ×½
    ours = ssim(restored, reference).item()
    theirs = structural_similarity(restored.permute(1, 2, 0).double().numpy(), reference.permute(1, 2, 0).double().numpy(),
                                   data_range=1.0, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                   channel_axis=2)
    assert abs(ours - theirs) < 1e-6


def test_scores_in_bands_equal_scores_in_one_piece(monkeypatch):
    import restoration.data.metrics as metrics

    a = torch.rand(2, 3, 70, 45)
    b = (a + 0.1 * torch.randn_like(a)).clamp(0, 1)
    whole_ssim, whole_psnr = ssim(a, b), psnr(a, b)
    monkeypatch.setattr(metrics, "BAND_ELEMENTS", 2 * 3 * 45 * 13)  # bands of a few rows
    assert torch.allclose(ssim(a, b), whole_ssim, atol=1e-6) and torch.allclose(psnr(a, b), whole_psnr, atol=1e-5)
    # and against the textbook definition computed in one piece
    mse = (a - b).pow(2).flatten(1).mean(1)
    assert torch.allclose(psnr(a, b), 10 * torch.log10(1 / mse), atol=1e-4)


def test_ssim_against_a_target_computed_once_equals_ssim(monkeypatch):
    import restoration.data.metrics as metrics

    monkeypatch.setattr(metrics, "BAND_ELEMENTS", 3 * 41 * 11)  # several bands, as a large image has
    target = torch.randint(0, 256, (3, 50, 41), dtype=torch.uint8)
    known = SsimTarget(target)
    for noise in (2, 20, 80):  # from nearly the target to far from it
        out = (target.int() + torch.randint(-noise, noise + 1, target.shape)).clamp(0, 255).to(torch.uint8)
        assert torch.allclose(ssim(out, known), ssim(out, target), atol=1e-6)
    assert ssim(target, known).item() == pytest.approx(1.0, abs=1e-5)
    with pytest.raises(ValueError, match="different shapes"):
        ssim(target[:, :40], known)


def test_uint8_images_score_as_their_values_over_255(monkeypatch):
    import restoration.data.metrics as metrics

    a = torch.randint(0, 256, (2, 3, 40, 37), dtype=torch.uint8)
    b = (a.int() + torch.randint(-20, 21, a.shape)).clamp(0, 255).to(torch.uint8)
    fa, fb = a.float() / 255, b.float() / 255
    monkeypatch.setattr(metrics, "BAND_ELEMENTS", 2 * 3 * 37 * 9)  # in bands, as a large image is
    assert torch.allclose(psnr(a, b), psnr(fa, fb), atol=1e-4)
    assert torch.allclose(ssim(a, b), ssim(fa, fb), atol=1e-5)
    assert torch.allclose(gradient_energy(a), gradient_energy(fa), atol=1e-6)
    assert torch.allclose(psnr(a, fb), psnr(fa, fb), atol=1e-4)  # and mixed


def test_luma_psnr_by_hand():
    """A constant error of d on every channel moves BT.601 Y by d × (65.481 + 128.553 + 24.966) / 255
    everywhere: PSNR = -20 log10 of that; the shaved border does not count."""
    from restoration.data.metrics import luma_bt601, psnr_y

    target = torch.full((1, 3, 12, 12), 0.5)
    out = target + 0.01
    out[..., :2, :] = 1.0  # errors in the 2-pixel border are shaved off
    dy = 0.01 * (65.481 + 128.553 + 24.966) / 255
    assert float(psnr_y(out, target, border=2)) == pytest.approx(-20 * math.log10(dy), abs=1e-3)
    assert float(psnr_y(out, target, border=0)) < float(psnr_y(out, target, border=2))
    assert float(luma_bt601(torch.zeros(1, 3, 1, 1))) == pytest.approx(16 / 255)
    assert float(luma_bt601(torch.ones(1, 3, 1, 1))) == pytest.approx(235 / 255)


def test_luma_ssim_matches_scikit_image_on_y():
    from skimage.metrics import structural_similarity

    from restoration.data.metrics import luma_bt601, ssim_y

    g = torch.Generator().manual_seed(3)
    target = torch.rand(2, 3, 40, 36, generator=g)
    out = (target + 0.1 * torch.randn(target.shape, generator=g)).clamp(0, 1)
    ours = ssim_y(out, target, border=2)
    ya, yb = luma_bt601(out)[:, 0, 2:-2, 2:-2].double().numpy(), luma_bt601(target)[:, 0, 2:-2, 2:-2].double().numpy()
    for i in range(2):
        ref = structural_similarity(ya[i], yb[i], gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                    data_range=1.0)
        assert float(ours[i]) == pytest.approx(ref, abs=1e-4)


def test_meter_reports_the_luma_figures():
    from restoration.data.metrics import QualityMeter, psnr_y, ssim_y

    target = torch.rand(3, 3, 20, 20, generator=torch.Generator().manual_seed(1))
    out = (target * 0.9).clamp(0, 1)
    meter = QualityMeter()
    meter.update(out[:2], target[:2])
    meter.update(out[2:], target[2:])
    summary = meter.summary()
    assert summary["psnr_y"] == pytest.approx(float(psnr_y(out, target).mean()), abs=1e-4)
    assert summary["ssim_y"] == pytest.approx(float(ssim_y(out, target).mean()), abs=1e-4)


def _flat_with_detail(size=64, seed=0):
    """A grey image with a little sensor noise whose left half holds strong random texture: a flat
    area to measure grain in."""
    generator = torch.Generator().manual_seed(seed)
    x = 0.5 + 0.004 * torch.randn(1, 3, size, size, generator=generator)
    x[..., : size // 2] = torch.rand(1, 3, size, size // 2, generator=generator)
    return x.clamp(0, 1)


def test_a_perfectly_flat_original_divides_by_rounding_noise():
    original, out = torch.full((1, 3, 32, 32), 0.5), torch.full((1, 3, 32, 32), 0.5)
    out[..., ::2, ::2] += 1 / 255  # one 8-bit step in a checker: about what rounding noise gives
    assert 0.5 < grain(out, original, CHECKER).item() < 20


def test_a_checker_pattern_in_flat_areas_is_large_grain():
    original = _flat_with_detail()
    checker = (torch.arange(64)[:, None] + torch.arange(64)[None, :]) % 2 * 2 - 1  # ±1 in a 2×2 checker
    grainy = (original + 0.02 * checker).clamp(0, 1)
    assert grain(grainy, original, CHECKER).item() > 10  # the flat half had only faint noise
    assert grain(grainy, original, LAPLACIAN).item() > 10
    assert grain(original, original, CHECKER).item() == pytest.approx(1.0)


def test_blur_gives_less_grain_than_the_original():
    original = _flat_with_detail()
    blurred = F.avg_pool2d(original, 3, stride=1, padding=1, count_include_pad=False)
    assert grain(blurred, original, CHECKER).item() < 1
    assert grain(blurred, original, LAPLACIAN).item() < 1


def test_the_flat_mask_takes_the_flattest_share():
    mask = flat_mask(_flat_with_detail().mean(1, keepdim=True))
    assert mask.float().mean().item() == pytest.approx(0.3, abs=0.01)
    assert not mask[..., :, :28].any()  # none in the textured half (away from its edge)


def test_a_sets_grain_is_the_median_over_images():
    originals = torch.cat([_flat_with_detail(seed=i) for i in range(3)])
    outputs = originals.clone()
    outputs[0] += 0.05 * torch.randn(3, 64, 64, generator=torch.Generator().manual_seed(2))  # one noisy image
    meter = QualityMeter()
    meter.update(outputs.clamp(0, 1), originals)
    assert meter.summary()["grid"] == pytest.approx(1.0)  # the median ignores the one outlier
    assert meter.summary()["flat"] == pytest.approx(1.0)
