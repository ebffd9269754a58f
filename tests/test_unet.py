import pytest
import torch

from restoration.models.classifier import PRESETS, Classifier
from restoration.models.unet import Autoencoder, UNet, pad_to_multiple
from tests.support import TINY


@pytest.mark.parametrize("cross_conv", [False, True])
@pytest.mark.parametrize("training", [False, True])
def test_untrained_unet_returns_its_input(cross_conv, training):
    model = UNet(**PRESETS["compact"], cross_conv=cross_conv).train(training)
    x = torch.rand(2, 3, 64, 64)
    assert (model(x) - x).abs().max().item() < 1e-6


@pytest.mark.parametrize("size", [(1, 1), (37, 53), (64, 64), (17, 100)])
def test_any_size_is_padded_and_cropped_back(size):
    model = UNet(**TINY).eval()
    x = torch.rand(1, 3, *size)
    out = model.restore(x)
    assert out.shape == x.shape
    assert (out - x).abs().max().item() < 1e-6


def test_pad_to_multiple():
    x, (h, w) = pad_to_multiple(torch.rand(1, 3, 5, 9), 4)
    assert x.shape[-2:] == (8, 12) and (h, w) == (5, 9)


def test_compact_unets_stay_under_2_5_million_parameters():
    for cross in (False, True):
        model = UNet(**PRESETS["compact"], cross_conv=cross)
        assert sum(p.numel() for p in model.parameters()) <= 2.5e6


def test_cross_conv_adds_a_resblock_and_conv_per_skip():
    plain, cross = UNet(**TINY), UNet(**TINY, cross_conv=True)
    assert plain.cross is None and len(cross.cross) == len(TINY["nfs"]) - 1
    assert sum(p.numel() for p in cross.parameters()) > sum(p.numel() for p in plain.parameters())


def test_encoder_loads_from_the_classifier_by_name():
    classifier, unet = Classifier(**TINY, n_classes=5), UNet(**TINY)
    unet.load_encoder_from(classifier)
    for (k, a), (k2, b) in zip(unet.encoder.state_dict().items(), classifier.encoder.state_dict().items()):
        assert k == k2 and torch.equal(a, b)
    with pytest.raises(RuntimeError):
        UNet(nfs=(8, 16, 48), nbks=(1, 1)).load_encoder_from(classifier)


def test_freezing_the_encoder():
    unet = UNet(**TINY)
    unet.set_encoder_trainable(False)
    assert not any(p.requires_grad for p in unet.encoder.parameters())
    assert all(p.requires_grad for p in unet.up.parameters())
    before = {k: v.clone() for k, v in unet.encoder.state_dict().items()}
    unet.train()(torch.rand(2, 3, 16, 16))
    assert unet.training and not unet.encoder.training  # BatchNorm statistics stay frozen too
    assert all(torch.equal(before[k], v) for k, v in unet.encoder.state_dict().items())
    unet.set_encoder_trainable(True)
    assert all(p.requires_grad for p in unet.parameters()) and unet.encoder.training


def test_one_training_step_moves_the_output_away_from_the_input():
    model = UNet(**TINY)
    x, target = torch.rand(4, 3, 16, 16), torch.rand(4, 3, 16, 16)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    (model(x) - target).pow(2).mean().backward()
    opt.step()
    assert (model.eval()(x) - x).abs().max().item() > 1e-4


def test_autoencoder_shapes_and_restore_clamps():
    model = Autoencoder(**TINY).eval()
    x = torch.rand(1, 3, 30, 30)
    out = model.restore(x)
    assert out.shape == x.shape and out.min() >= 0 and out.max() <= 1
