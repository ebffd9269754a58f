"""The Tiny ImageNet classifier (lesson 23's `24_imgnet_tiny`): a ResNet of ResBlocks.

It takes RGB in [0, 1] and normalises inside, like every model here. Besides classifying, it
supplies the perceptual loss (`features`) and the U-Nets' encoder weights (`encoder`).
"""

import torch
import torch.nn.functional as F
from torch import nn

from restoration.choices import PRESETS  # noqa: F401  the model sizes, also classifier.PRESETS
from restoration.data.datasets import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD
from restoration.data.images import to_float
from restoration.models.checkpoint import Pretrained, capture_config
from restoration.models.layers import ResNetEncoder, activation, init_weights, norm_layer


class Normalize(nn.Module):
    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std

    def inverse(self, x):
        return x * self.std + self.mean


class Classifier(nn.Module, Pretrained, model_type="classifier"):
    @capture_config
    def __init__(self, nfs=(16, 32, 64, 96, 192), nbks=(1, 1, 2, 2), n_classes: int = 200,
                 act: str = "general_relu", norm: str = "batchnorm", preact: bool = False,
                 drop: float = 0.1, mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD, labels: list[str] | None = None):
        super().__init__()
        if labels is not None and len(labels) != n_classes:
            raise ValueError(f"{len(labels)} labels for {n_classes} classes")
        self.labels = labels  # the class names, in output order (kept in config.json)
        act_fn, norm_fn = activation(act), norm_layer(norm)
        self.normalize = Normalize(mean, std)
        self.encoder = ResNetEncoder(nfs, nbks, act=act_fn, norm=norm_fn, preact=preact)
        tail = [act_fn(), norm_fn(nfs[-1])] if preact else []  # pre-activation nets end un-activated
        self.head = nn.Sequential(*tail, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop),
                                  nn.Linear(nfs[-1], n_classes, bias=False), nn.BatchNorm1d(n_classes))
        self.apply(init_weights)

    def forward(self, x):
        """Logits for images in [0, 1]."""
        return self.head(self.encoder(self.normalize(x))[-1])

    def features(self, x, stage: int = 3):
        """Activations after `stage` stride-2 stages: what the perceptual loss compares."""
        if not 1 <= stage <= len(self.encoder.stages):
            raise ValueError(f"stage must be in 1..{len(self.encoder.stages)}, got {stage}")
        return self.encoder(self.normalize(x), upto=stage)[-1]


@torch.inference_mode()
def top_class(model: Classifier, image: torch.Tensor, size: int = 64) -> tuple[str, float]:
    """What the classifier sees in one image (3, H, W), float in [0, 1] or uint8: its top class and probability.
    The image is shown as the model was trained: shorter side resized to `size`, centre crop."""
    h, w = image.shape[-2:]
    scale = size / min(h, w)
    x = F.interpolate(to_float(image[None]).float(), size=(max(size, round(h * scale)), max(size, round(w * scale))),
                      mode="bilinear", antialias=True, align_corners=False)
    top, left = (x.shape[-2] - size) // 2, (x.shape[-1] - size) // 2
    x = x[..., top:top + size, left:left + size].clamp(0, 1)
    was_training = model.training
    model.eval()
    probs = model(x).float().softmax(1)[0]
    model.train(was_training)
    i = int(probs.argmax())
    return (model.labels[i] if model.labels else f"class {i}"), float(probs[i])


@torch.inference_mode()
def top1_accuracy(model: Classifier, images: torch.Tensor, labels: torch.Tensor, device="cpu", batch_size=500,
                  desc: str | None = None):
    """Top-1 accuracy and mean cross-entropy over uint8 images (N, 3, H, W), in eval mode and
    without augmentation; the model is left in the mode it was in. With `desc`, a progress bar."""
    from tqdm.auto import tqdm

    was_training = model.training
    model.eval()
    correct, loss = 0, 0.0
    for i in tqdm(range(0, len(images), batch_size), desc=desc, disable=desc is None, unit="batch", leave=False,
                  mininterval=1):
        x = images[i:i + batch_size].to(device).float().div_(255)
        y = labels[i:i + batch_size].to(device)
        logits = model(x).float()
        correct += (logits.argmax(1) == y).sum().item()
        loss += F.cross_entropy(logits, y, reduction="sum").item()
    model.train(was_training)
    return {"val_accuracy": correct / len(images), "val_loss": loss / len(images)}
