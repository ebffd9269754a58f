"""Training losses for the U-Nets, in the lesson's normalised units (pixels divided by the
dataset's per-channel std), so the numbers compare with the lesson's (MSE val loss ≈ 0.073)."""

import torch
import torch.nn.functional as F
from torch import nn

from restoration.data.metrics import CHECKER, LAPLACIAN, flat_mask, kernel_response, luma_bt601
from restoration.models.classifier import TINY_IMAGENET_STD, Classifier

LUMA_STD = 0.25  # luma differences are divided by about its std, to weigh like the pixel term


class NormalisedMSE(nn.Module):
    """MSE of images in [0, 1], measured after dividing each channel by its std."""

    def __init__(self, std=TINY_IMAGENET_STD):
        super().__init__()
        self.register_buffer("scale", 1.0 / torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, out, target):
        return F.mse_loss(out * self.scale, target * self.scale)


def parse_features(spec: str) -> dict[int, float]:
    """"1:1,3:0.1" → {1: 1.0, 3: 0.1}: which classifier stages the feature loss compares, and how much."""
    try:
        features = {int(stage): float(weight) for stage, weight in (part.split(":") for part in spec.split(","))}
    except ValueError:
        raise ValueError(f"features take STAGE:WEIGHT pairs separated by commas, e.g. 1:1,3:0.1 (got {spec!r})") from None
    if any(w < 0 for w in features.values()):
        raise ValueError(f"feature weights must not be negative (got {spec!r})")
    return features


class PerceptualLoss(nn.Module):
    """MSE(pixels) + Σ weight × MSE(classifier features after that stage) + `grain` × the grain term.

    The lesson's is one stage, the third, at 0.1 (`{3: 0.1}`). With `antialias`, both images are
    blurred a little before the classifier (`binomial_blur`). The grain term is the squared
    high-frequency error (2×2 checker and 3×3 Laplacian responses of the luma) over the target's
    flattest 30 % (restoration/data/metrics.py's `flat_mask`): where the original is smooth, nothing of
    that frequency should appear, whereas the feature terms alone are nearly blind to a faint
    pixel-scale pattern and let one grow there. Elsewhere the term is zero, so texture is free to
    follow the features. The classifier is frozen and kept in eval mode (its BatchNorm statistics
    must not drift).
    """

    def __init__(self, classifier: Classifier, features: dict[int, float] | None = None, grain: float = 0.0,
                 antialias: bool = False, detail: float = 0.0, std=TINY_IMAGENET_STD):
        super().__init__()
        self.pixel = NormalisedMSE(std)
        self.classifier = classifier.eval().requires_grad_(False)
        self.features = dict(features if features is not None else {3: 0.1})
        self.grain, self.antialias, self.detail = grain, antialias, detail
        n_stages = len(classifier.encoder.stages)
        if not all(1 <= s <= n_stages for s in self.features):
            raise ValueError(f"feature stages must be in 1..{n_stages}, got {sorted(self.features)}")

    def train(self, mode: bool = True):
        super().train(mode)
        self.classifier.eval()
        return self

    def forward(self, out, target):
        loss = self.pixel(out, target)
        deepest = max(self.features, default=0)
        if deepest:
            def encode(x):
                return self.classifier.encoder(self.classifier.normalize(binomial_blur(x) if self.antialias else x),
                                               upto=deepest)

            with torch.no_grad():
                targets = encode(target)
            outputs = encode(out)
            for stage, weight in self.features.items():
                # encoder(...)[i] is the stem's output for i = 0, then one entry per stage
                loss = loss + weight * F.mse_loss(outputs[stage].float(), targets[stage].float())
        if self.grain:
            loss = loss + self.grain * flat_error(out, target)
        if self.detail:
            loss = loss + self.detail * detail_error(out, target)
        return loss


def local_detail(x, window: int = 8):
    """The root-mean-square luma gradient in each `window`² patch (half-overlapping), in units of the
    luma's std: how much fine detail each part of an image holds."""
    luma = luma_bt601(x) / LUMA_STD
    dx, dy = luma[..., :, 1:] - luma[..., :, :-1], luma[..., 1:, :] - luma[..., :-1, :]
    energy = F.avg_pool2d(dx[..., :-1, :].pow(2) + dy[..., :, :-1].pow(2), window, stride=window // 2)
    return (energy + 1e-6).sqrt()


def detail_error(out, target):
    """MSE between the local detail of the output and of the target: it asks for as much fine
    detail as the original has in each patch (where MSE alone smooths it away), and none where the
    original is smooth; unlike the pixel terms, it does not ask the detail to be in the exact place."""
    with torch.no_grad():
        wanted = local_detail(target)
    return F.mse_loss(local_detail(out), wanted)


def binomial_blur(x):
    """The 3×3 binomial filter ([1, 2, 1] ⊗ [1, 2, 1] / 16) on each channel: zero response at the
    pixel grid's Nyquist frequency, so a classifier's stride-2 convolutions after it cannot alias a
    2×2 checker into their features (and the feature loss cannot be lowered by drawing one)."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    k = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), k, groups=x.shape[1])


def flat_error(out, target):
    """Mean squared checker and Laplacian response of (out − target)'s luma over the target's flat
    mask, in units of the luma's std."""
    error = (luma_bt601(out) - luma_bt601(target)) / LUMA_STD
    with torch.no_grad():
        mask = flat_mask(luma_bt601(target)).float()
    return sum((kernel_response(error, k).pow(2) * mask).sum() for k in (CHECKER, LAPLACIAN)) / mask.sum().clamp_min(1)
