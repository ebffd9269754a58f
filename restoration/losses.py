"""Training losses for the U-Nets, in the lesson's normalised units (pixels divided by the
dataset's per-channel std), so the numbers compare with the lesson's (MSE val loss ≈ 0.073)."""

import torch
import torch.nn.functional as F
from torch import nn

from restoration.classifier import TINY_IMAGENET_STD, Classifier


class NormalisedMSE(nn.Module):
    """MSE of images in [0, 1], measured after dividing each channel by its std."""

    def __init__(self, std=TINY_IMAGENET_STD):
        super().__init__()
        self.register_buffer("scale", 1.0 / torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, out, target):
        return F.mse_loss(out * self.scale, target * self.scale)


class PerceptualLoss(nn.Module):
    """MSE(pixels) + `weight` × MSE(classifier features after `stage` stride-2 stages).

    The classifier is frozen and kept in eval mode (its BatchNorm statistics must not drift).
    """

    def __init__(self, classifier: Classifier, stage: int = 3, weight: float = 0.1, std=TINY_IMAGENET_STD):
        super().__init__()
        self.pixel = NormalisedMSE(std)
        self.classifier, self.stage, self.weight = classifier.eval().requires_grad_(False), stage, weight

    def train(self, mode: bool = True):
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, out, target):
        target_features = self.classifier.features(target, self.stage).detach()
        features = self.classifier.features(out, self.stage)
        return self.pixel(out, target) + self.weight * F.mse_loss(features.float(), target_features.float())
