import pytest
import torch

from restoration.models.classifier import TINY_IMAGENET_STD, Classifier
from restoration.models.losses import NormalisedMSE, PerceptualLoss, detail_error, flat_error, parse_features


def test_normalised_mse_divides_by_the_dataset_std():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    std = torch.tensor(TINY_IMAGENET_STD).view(1, 3, 1, 1)
    assert NormalisedMSE()(a, b).item() == pytest.approx(((a - b) / std).pow(2).mean().item(), rel=1e-5)


def test_perceptual_loss_adds_weighted_feature_mse_through_a_frozen_classifier():
    classifier = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=4)
    loss = PerceptualLoss(classifier, {3: 0.1})
    target = torch.rand(2, 3, 32, 32)
    assert loss(target, target).item() == pytest.approx(0.0, abs=1e-6)
    out = target.clone().add_(0.05 * torch.randn_like(target)).requires_grad_(True)
    value = loss(out, target)
    pixel = NormalisedMSE()(out, target)
    feats = torch.nn.functional.mse_loss(classifier.features(out, 3), classifier.features(target, 3))
    assert value.item() == pytest.approx((pixel + 0.1 * feats).item(), rel=1e-4)
    value.backward()
    assert out.grad is not None and out.grad.abs().sum() > 0
    assert all(p.grad is None for p in classifier.parameters())
    loss.train()
    assert not classifier.training  # its BatchNorm statistics must stay as trained


def test_several_stages_add_their_weighted_feature_mse():
    classifier = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=4)
    target = torch.rand(2, 3, 32, 32)
    out = (target + 0.05 * torch.randn_like(target)).clamp(0, 1)
    loss = PerceptualLoss(classifier, parse_features("1:1,3:0.1"))  # puts the classifier in eval mode
    feats = {s: torch.nn.functional.mse_loss(classifier.features(out, s), classifier.features(target, s)).item()
             for s in (1, 3)}
    value = loss(out, target).item()
    assert value == pytest.approx(NormalisedMSE()(out, target).item() + feats[1] + 0.1 * feats[3], rel=1e-4)
    with pytest.raises(ValueError, match="stages must be in 1..3"):
        PerceptualLoss(classifier, {4: 1.0})
    for bad in ("3", "a:1", "1:-1"):
        with pytest.raises(ValueError, match="STAGE:WEIGHT|negative"):
            parse_features(bad)


def test_the_grain_term_counts_a_checker_in_flat_areas_and_not_in_texture():
    target = torch.full((1, 3, 32, 32), 0.5)
    target[..., :16] = torch.rand(1, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    checker = ((torch.arange(32)[:, None] + torch.arange(32)[None, :]) % 2 * 2 - 1) * 0.02
    flat_half, textured_half = target.clone(), target.clone()
    flat_half[..., 16:] += checker[:, 16:]
    textured_half[..., :16] += checker[:, :16]
    assert flat_error(target, target).item() == 0
    assert flat_error(flat_half, target).item() > 100 * flat_error(textured_half, target).item()
    classifier = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=4)
    plain, with_grain = PerceptualLoss(classifier, {3: 0.1}), PerceptualLoss(classifier, {3: 0.1}, grain=1.0)
    assert with_grain(flat_half, target).item() == pytest.approx(
        plain(flat_half, target).item() + flat_error(flat_half, target).item(), rel=1e-5)


def test_the_detail_term_asks_for_the_originals_detail_patch_by_patch():
    target = torch.full((1, 3, 32, 32), 0.5)
    target[..., :16] = torch.rand(1, 3, 32, 16, generator=torch.Generator().manual_seed(0))
    blurred = torch.nn.functional.avg_pool2d(target, 3, stride=1, padding=1, count_include_pad=False)
    shifted = torch.roll(target, 1, dims=-2)  # the same detail, one pixel off: nearly as much locally
    assert detail_error(target, target).item() == pytest.approx(0.0, abs=1e-6)
    assert detail_error(blurred, target).item() > 5 * detail_error(shifted, target).item()
    classifier = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=4)
    plain, with_detail = PerceptualLoss(classifier, {3: 0.1}), PerceptualLoss(classifier, {3: 0.1}, detail=2.0)
    assert with_detail(blurred, target).item() == pytest.approx(
        plain(blurred, target).item() + 2 * detail_error(blurred, target).item(), rel=1e-5)
