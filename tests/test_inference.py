import pytest
import torch

from restoration.degrade import degrade, downscale, upscale_nearest
from restoration.inference import prepare, restore, timed
from restoration.unet import UNet


def a_trained_looking_unet():
    """A U-Net whose zero-initialised layers are made non-zero, so it is not the identity."""
    model = UNet(nfs=(8, 16, 32), nbks=(1, 1))
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.normal_(0, 0.1)
    return model.eval()


def test_tiles_match_the_whole_image():
    model = a_trained_looking_unet()
    x = torch.rand(3, 160, 144)
    whole = restore(model, x, tile_pixels=10**9)
    tiled = restore(model, x, tile_pixels=1000, tile_size=64, overlap=64)
    assert not torch.allclose(whole, x, atol=1e-3)
    assert (whole - tiled).abs().max().item() < 1e-4


def test_tiles_cover_images_of_any_size():
    model = a_trained_looking_unet()
    x = torch.rand(3, 101, 75)
    tiled = restore(model, x, tile_pixels=1000, tile_size=48, overlap=16)
    assert tiled.shape == x.shape and tiled.min() >= 0 and tiled.max() <= 1
    assert (tiled - restore(model, x, tile_pixels=10**9)).abs().mean().item() < 0.05


def test_prepare_degrade_and_upscale_modes():
    image = torch.rand(3, 31, 40)
    low, inp, ref = prepare(image, "degrade")
    assert ref.shape == (3, 30, 40) and low.shape == (3, 15, 20) and torch.equal(inp, degrade(ref))
    low, inp, ref = prepare(image, "upscale")
    assert ref is None and torch.equal(low, image) and inp.shape == (3, 62, 80)
    assert torch.equal(inp, upscale_nearest(image))
    with pytest.raises(ValueError, match="mode"):
        prepare(image, "sharpen")


def test_timed_returns_milliseconds():
    result, ms = timed(downscale, torch.rand(3, 8, 8))
    assert result.shape == (3, 4, 4) and ms >= 0
