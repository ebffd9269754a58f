"""The super-resolution U-Nets of lesson 23 (`25_superres`), and the autoencoder baseline.

Every model maps RGB in [0, 1] (the nearest-neighbour ×2 upscale of a low-resolution image) to RGB
in [0, 1] at the same size. Inputs of any size are padded to a multiple of the network's stride
and cropped back.
"""

import torch.nn.functional as F
from torch import nn

from restoration.models import layers
from restoration.models.checkpoint import Pretrained, capture_config
from restoration.models.classifier import TINY_IMAGENET_MEAN, TINY_IMAGENET_STD, Classifier, Normalize
from restoration.models.layers import ResBlock, ResNetEncoder, activation, conv, init_weights, norm_layer, up_block


def pad_to_multiple(x, multiple):
    """Replicate-pad the bottom and right edges up to a multiple; returns the padded tensor and the
    original (height, width) to crop back to."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)


class SuperResModel(nn.Module, Pretrained):
    """What the U-Net and the autoencoder share: normalisation and any-size padding.

    `forward` returns the unclamped image (training takes gradients through it); `restore` is the
    inference entry point and clamps to [0, 1].
    """

    def forward(self, x):
        x, (h, w) = pad_to_multiple(x, self.encoder.stride)
        out = self.norm.inverse(self.net(self.norm(x)))
        return out[..., :h, :w]

    def restore(self, x):
        return self.forward(x).clamp(0, 1)

    def load_encoder_from(self, classifier: Classifier):
        """Copy the classifier's stem and stages into this encoder, by name and strictly."""
        self.encoder.load_state_dict(classifier.encoder.state_dict(), strict=True)

    def set_encoder_trainable(self, trainable: bool):
        """Freeze or unfreeze the encoder. Frozen means its BatchNorm statistics too: the encoder
        stays in eval mode while the rest trains."""
        self.encoder_frozen = not trainable
        for p in self.encoder.parameters():
            p.requires_grad_(trainable)
        return self.train(self.training)

    def train(self, mode: bool = True):
        super().train(mode)
        if getattr(self, "encoder_frozen", False):
            self.encoder.eval()
        return self


class UNet(SuperResModel, model_type="unet"):
    """ResBlock encoder; nearest-upsample + ResBlock decoder; additive skips, each optionally
    through a cross conv (ResBlock + 3×3 conv); the input added back before the last block.

    The decoder's last conv and the last block's residual start at zero, so an untrained U-Net
    returns its input exactly and training starts from the nearest-neighbour upscale.
    """

    @capture_config
    def __init__(self, nfs=(16, 32, 64, 96, 192), nbks=(1, 1, 2, 2), cross_conv: bool = False,
                 act: str = "general_relu", norm: str = "batchnorm", preact: bool = False,
                 mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD):
        super().__init__()
        act_fn, norm_fn = activation(act), norm_layer(norm)
        kw = dict(act=act_fn, norm=norm_fn)
        self.norm = Normalize(mean, std)
        self.encoder = ResNetEncoder(nfs, nbks, preact=preact, **kw)
        n = len(nfs)
        # up[0] takes the bottleneck; up[i] takes the sum of the previous up block and skip n-1-i.
        self.up = nn.ModuleList([up_block(nfs[i], nfs[i - 1], **kw) for i in range(n - 1, 0, -1)])
        self.cross = nn.ModuleList([layers.cross_conv(nf, **kw) for nf in nfs[:-1]]) if cross_conv else None
        self.to_rgb = conv(nfs[0], 3, act=None, norm=None)
        self.end = ResBlock(3, 3, act=None, norm=norm_fn)
        self.apply(init_weights)
        nn.init.zeros_(self.to_rgb[0].weight), nn.init.zeros_(self.to_rgb[0].bias)
        self.end.zero_residual_()

    def net(self, x):
        skips = self.encoder(x)  # stem output, then each stage's output; the last is the bottleneck
        h = skips.pop()
        for i, up in enumerate(self.up):
            if i:
                skip = skips[len(skips) - i]
                h = h + (self.cross[len(skips) - i](skip) if self.cross is not None else skip)
            h = up(h)
        h = h + (self.cross[0](skips[0]) if self.cross is not None else skips[0])
        return self.end(self.to_rgb(h) + x)


class Autoencoder(SuperResModel, model_type="autoencoder"):
    """The lesson's first attempt: the same encoder and decoder, no skips, no input added back.
    A baseline that shows why the U-Net's skips matter."""

    @capture_config
    def __init__(self, nfs=(16, 32, 64, 96, 192), nbks=(1, 1, 2, 2), act: str = "general_relu",
                 norm: str = "batchnorm", preact: bool = False, mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD):
        super().__init__()
        act_fn, norm_fn = activation(act), norm_layer(norm)
        kw = dict(act=act_fn, norm=norm_fn)
        self.norm = Normalize(mean, std)
        self.encoder = ResNetEncoder(nfs, nbks, preact=preact, **kw)
        self.up = nn.Sequential(*[up_block(nfs[i], nfs[i - 1], **kw) for i in range(len(nfs) - 1, 0, -1)])
        self.to_rgb = conv(nfs[0], 3, act=None, norm=None)
        self.apply(init_weights)

    def net(self, x):
        return self.to_rgb(self.up(self.encoder(x)[-1]))
