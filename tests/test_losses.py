import pytest
import torch

from restoration.classifier import TINY_IMAGENET_STD, Classifier
from restoration.losses import NormalisedMSE, PerceptualLoss


def test_normalised_mse_divides_by_the_dataset_std():
    a, b = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    std = torch.tensor(TINY_IMAGENET_STD).view(1, 3, 1, 1)
    assert NormalisedMSE()(a, b).item() == pytest.approx(((a - b) / std).pow(2).mean().item(), rel=1e-5)


def test_perceptual_loss_adds_weighted_feature_mse_through_a_frozen_classifier():
    classifier = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=4)
    loss = PerceptualLoss(classifier, stage=3, weight=0.1)
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
