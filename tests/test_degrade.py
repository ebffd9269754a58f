import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from restoration.data.degrade import degrade, downscale, even_crop, upscale_bicubic, upscale_nearest


def test_downscale_is_torchvision_antialiased_bilinear_resize():
    x = torch.rand(2, 3, 64, 48)
    expected = TF.resize(x, [32, 24], interpolation=TF.InterpolationMode.BILINEAR, antialias=True)
    assert torch.allclose(downscale(x), expected, atol=1e-6)


def test_antialiasing_turns_a_checkerboard_grey_instead_of_aliasing_it():
    board = (torch.arange(8)[:, None] + torch.arange(8)[None, :]) % 2
    x = board.float().expand(3, 8, 8)
    inner = downscale(x)[:, 1:-1, 1:-1]  # the borders see the edge clamping of the filter
    assert torch.allclose(inner, torch.full_like(inner, 0.5), atol=1e-6)


def test_nearest_upscale_repeats_pixels():
    lr = torch.rand(3, 4, 5)
    up = upscale_nearest(lr)
    assert up.shape == (3, 8, 10)
    assert torch.equal(up[:, ::2, ::2], lr) and torch.equal(up[:, 1::2, 1::2], lr)


def test_degrade_keeps_size_and_constants():
    x = torch.full((3, 10, 6), 0.3)
    assert torch.allclose(degrade(x), x, atol=1e-6)
    y = torch.rand(1, 3, 10, 6)
    assert degrade(y).shape == y.shape


def test_bicubic_is_clamped_and_matches_torch():
    lr = torch.rand(1, 3, 8, 8)
    up = upscale_bicubic(lr)
    assert up.min() >= 0 and up.max() <= 1
    assert torch.allclose(up, F.interpolate(lr, scale_factor=2, mode="bicubic").clamp(0, 1))


def test_even_crop_and_too_small_images():
    assert even_crop(torch.rand(3, 7, 9)).shape == (3, 6, 8)
    with pytest.raises(ValueError, match="too small"):
        downscale(torch.rand(3, 1, 5))


# ---------------------------------------------------------------------------------------------
# The named family


from PIL import Image  # noqa: E402

from restoration.data.degrade import KERNELS, STANDARD, check, jpeg, low_res, mix, title  # noqa: E402


def _photo(w=96, h=64, seed=0):
    """A smooth random image with some edges (noise alone would make every kernel look alike)."""
    g = torch.Generator().manual_seed(seed)
    base = F.interpolate(torch.rand(1, 3, h // 8, w // 8, generator=g), size=(h, w), mode="bicubic").clamp(0, 1)
    base[..., h // 3: h // 2, :] = torch.rand(3, 1, 1, generator=g)
    return (base[0] * 255).round() / 255


def _pil(x):
    return Image.fromarray((x.permute(1, 2, 0) * 255).round().byte().numpy())


def _tensor(img):
    return torch.from_numpy(__import__("numpy").array(img)).permute(2, 0, 1).float() / 255


@pytest.mark.parametrize("kernel, pil_filter, tolerance", [
    ("bicubic", Image.BICUBIC, 1.5 / 255), ("lanczos", Image.LANCZOS, 1.5 / 255), ("area", Image.BOX, 1.5 / 255)])
def test_kernels_match_pillow(kernel, pil_filter, tolerance):
    """Pillow rounds to uint8, so the mean difference is about a quantisation step."""
    x = _photo()
    ours = downscale(x, kernel)
    ref = _tensor(_pil(x).resize((48, 32), pil_filter))
    assert (ours - ref).abs().mean() < tolerance
    # and it is closer to Pillow's own filter than to the lesson's bilinear
    assert (ours - ref).abs().mean() < (downscale(x, "lesson") - ref).abs().mean() or kernel == "area"


def test_bicubic_is_sharper_than_the_lessons_bilinear():
    x = _photo()
    grad = lambda y: (y[..., 1:] - y[..., :-1]).abs().mean()  # noqa: E731
    assert grad(downscale(x, "bicubic")) > grad(downscale(x, "lesson"))


def test_jpeg_is_pillows_encoder_at_that_quality():
    low = downscale(_photo(), "lesson")
    import io
    buf = io.BytesIO()
    _pil(low).save(buf, format="JPEG", quality=75)
    expected = _tensor(Image.open(buf))
    assert torch.equal(jpeg(low, 75), expected)
    assert torch.equal(low_res(_photo(), "jpeg75"), expected)
    assert (jpeg(low, 30) - low).abs().mean() > (jpeg(low, 95) - low).abs().mean()  # lower quality, more loss


def test_jpeg_per_image_qualities_and_batches():
    lows = torch.stack([downscale(_photo(seed=s), "lesson") for s in range(3)])
    out = jpeg(lows, [20, 60, 95])
    for i, q in enumerate([20, 60, 95]):
        assert torch.equal(out[i], jpeg(lows[i], q))


def test_standard_names_titles_and_bad_names():
    assert STANDARD == ("lesson", "bicubic", "jpeg75")
    assert title("jpeg75") == "bilinear ×½ + JPEG q75" and "Pillow" in title("bicubic")
    for bad in ("jpeg", "jpeg0", "jpeg101", "Bicubic", "nearest", ""):
        with pytest.raises(ValueError, match="unknown degradation"):
            check(bad)
    with pytest.raises(ValueError, match="unknown degradation"):
        low_res(_photo(), "sideways")


def test_every_member_keeps_the_image_aligned_with_its_target():
    """A shifted low-resolution image would teach a U-Net to shift: each member's low-res image,
    upscaled back, must correlate best with the original at zero offset."""
    x = _photo(128, 96)
    for name in (*KERNELS, "jpeg75", "mix"):
        up = F.interpolate(low_res(x, name, torch.Generator().manual_seed(1))[None], scale_factor=2, mode="bilinear")[0]
        errors = {(dy, dx): (up[:, 4 + dy: 92 + dy, 4 + dx: 124 + dx] - x[:, 4:92, 4:124]).pow(2).mean().item()
                  for dy in (-1, 0, 1) for dx in (-1, 0, 1)}
        assert min(errors, key=errors.get) == (0, 0), name


def test_mix_is_seeded_varied_and_mild():
    x = torch.stack([_photo(64, 64, seed=s) for s in range(16)])
    a = mix(x, generator=torch.Generator().manual_seed(0))
    b = mix(x, generator=torch.Generator().manual_seed(0))
    c = mix(x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.shape == (16, 3, 32, 32) and a.min() >= 0 and a.max() <= 1
    # per image, the draw differs from the lesson's bilinear by more than rounding for most images ...
    lesson = downscale(x, "lesson")
    differs = ((a - lesson).abs().flatten(1).mean(1) > 1e-3).float().mean()
    assert differs > 0.5
    # ... but stays a mild degradation of the same picture
    assert (a - lesson).abs().mean() < 0.05


def test_mix_draws_every_kernel_and_jpeg():
    """With one kernel forced at a time, mix gives exactly that kernel; with JPEG certain, it
    gives the JPEG of that kernel's output."""
    from restoration.data.degrade import MixConfig
    x = _photo(64, 64)[None].repeat(4, 1, 1, 1)
    for kernel in KERNELS:
        plain = MixConfig(kernels=(kernel,), blur_p=0, noise_p=0, jpeg_p=0)
        assert torch.allclose(mix(x, plain), downscale(x, kernel), atol=1e-6)
        compressed = MixConfig(kernels=(kernel,), blur_p=0, noise_p=0, jpeg_p=1, jpeg_quality=(70, 70))
        assert torch.equal(mix(x, compressed), jpeg(downscale(x, kernel), 70))
    blurred = MixConfig(kernels=("area",), blur_p=1, blur_sigma=(1.0, 1.0), noise_p=0, jpeg_p=0)
    assert (mix(x, blurred) - downscale(x, "area")).abs().mean() > 1e-3


def test_degrade_with_a_name_is_nearest_of_low_res():
    x = _photo()
    for name in ("lesson", "bicubic", "jpeg75"):
        assert torch.equal(degrade(x, name), upscale_nearest(low_res(x, name)))
