"""Small building blocks shared by the classifier and the U-Nets (lesson 23's miniai layers).

Activations and norms are named by strings in configs ("general_relu", "batchnorm") so that a
model's constructor arguments stay JSON-serialisable; `activation` and `norm_layer` turn the names
into module factories.
"""

from functools import partial

import torch.nn.functional as F
from torch import nn


class GeneralRelu(nn.Module):
    """Leaky ReLU shifted down by `sub` so activations are roughly zero-mean (the lesson's act_gr)."""

    def __init__(self, leak: float = 0.1, sub: float = 0.4, maxv: float | None = None):
        super().__init__()
        self.leak, self.sub, self.maxv = leak, sub, maxv

    def forward(self, x):
        x = F.leaky_relu(x, self.leak) - self.sub
        return x.clamp_max(self.maxv) if self.maxv is not None else x


ACTIVATIONS = {
    "general_relu": partial(GeneralRelu, leak=0.1, sub=0.4),
    "relu": nn.ReLU,
    "silu": nn.SiLU,
}
NORMS = {"batchnorm": nn.BatchNorm2d, "instancenorm": partial(nn.InstanceNorm2d, affine=True), "none": None}


def activation(name: str):
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose from {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def norm_layer(name: str):
    if name not in NORMS:
        raise ValueError(f"unknown norm {name!r}; choose from {sorted(NORMS)}")
    return NORMS[name]


def conv(ni, nf, ks=3, stride=1, act=None, norm=None, bias=None, preact=False):
    """Conv → norm → act (or norm → act → conv when `preact`)."""
    if bias is None:
        bias = norm is None
    layers = [nn.Conv2d(ni, nf, ks, stride=stride, padding=ks // 2, bias=bias)]
    post = []
    if norm:
        post.append(norm(ni if preact else nf))
    if act:
        post.append(act())
    return nn.Sequential(*(post + layers if preact else layers + post))


class ResBlock(nn.Module):
    """Two convs plus an identity path (avg-pool and 1×1 conv when the shape changes).

    The plain variant ends with the activation after the sum (lesson 24's first ResNets); the
    pre-activation variant normalises and activates before each conv and adds nothing after.
    """

    def __init__(self, ni, nf, stride=1, ks=3, act=None, norm=None, preact=False):
        super().__init__()
        c = partial(conv, ks=ks, norm=norm, preact=preact)
        if preact:
            self.convs = nn.Sequential(c(ni, nf, act=act), c(nf, nf, stride=stride, act=act))
        else:
            self.convs = nn.Sequential(c(ni, nf, act=act), c(nf, nf, stride=stride, act=None))
        self.idconv = nn.Identity() if ni == nf else conv(ni, nf, ks=1, act=None, bias=True)
        self.pool = nn.Identity() if stride == 1 else nn.AvgPool2d(2, ceil_mode=True)
        self.act = act() if (act and not preact) else nn.Identity()

    def forward(self, x):
        return self.act(self.convs(x) + self.idconv(self.pool(x)))

    def zero_residual_(self):
        """Make the conv path output zero, so the block starts as its identity path."""
        last = next(m for m in reversed(self.convs[-1]) if isinstance(m, (nn.Conv2d, nn.BatchNorm2d, nn.InstanceNorm2d)))
        nn.init.zeros_(last.weight)
        if last.bias is not None:
            nn.init.zeros_(last.bias)


def res_blocks(n, ni, nf, stride=1, **kwargs):
    """A stage: `n` ResBlocks, the first changing channels, the last applying the stride."""
    return nn.Sequential(*[ResBlock(ni if i == 0 else nf, nf, stride=stride if i == n - 1 else 1, **kwargs)
                           for i in range(n)])


def up_block(ni, nf, **kwargs):
    """Nearest ×2 upsample, then a ResBlock."""
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), ResBlock(ni, nf, **kwargs))


def cross_conv(nf, **kwargs):
    """What a skip of the cross-connection U-Net passes through before it is added."""
    return nn.Sequential(ResBlock(nf, nf, **kwargs), conv(nf, nf, act=None, norm=None))


def init_weights(m, leaky=0.1):
    if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, a=leaky)


class ResNetEncoder(nn.Module):
    """5×5 ResBlock stem, then one stride-2 stage per entry of `nbks`.

    The classifier and the U-Nets share this module, so the U-Net encoder is loaded from the
    classifier with a plain, strict `load_state_dict`: matching names, not positions.
    """

    def __init__(self, nfs, nbks, act, norm, preact=False, in_channels=3):
        super().__init__()
        if len(nbks) != len(nfs) - 1:
            raise ValueError(f"nbks needs one entry per stride-2 stage: len(nfs) - 1 = {len(nfs) - 1}, got {len(nbks)}")
        kw = dict(act=act, norm=norm, preact=preact)
        self.stem = ResBlock(in_channels, nfs[0], ks=5, **kw)
        self.stages = nn.ModuleList([res_blocks(n, nfs[i], nfs[i + 1], stride=2, **kw) for i, n in enumerate(nbks)])

    @property
    def stride(self):
        return 2 ** len(self.stages)

    def forward(self, x, upto=None):
        """The stem's output and each stage's output, as a list (the U-Net's skips); `upto` stops
        after that many stages."""
        feats = [self.stem(x)]
        for stage in self.stages[:upto]:
            feats.append(stage(feats[-1]))
        return feats
