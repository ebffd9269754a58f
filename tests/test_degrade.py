import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from restoration.degrade import degrade, downscale, even_crop, upscale_bicubic, upscale_nearest


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
