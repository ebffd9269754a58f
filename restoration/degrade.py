"""The ×2 degradation of lesson 23, and the classic upscalers the U-Nets are compared with.

All functions take float images in [0, 1], shaped (..., C, H, W). One implementation, used by the
training data, the evaluation and the app.
"""

import torch.nn.functional as F

SCALE = 2


def even_crop(x):
    """Drop a last row/column so both sides divide by the scale (the degradation needs it)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % SCALE, : w - w % SCALE]


def _as_batch(x):
    return (x[None], True) if x.dim() == 3 else (x, False)


def downscale(x):
    """Antialiased bilinear ×½ (what torchvision's resize does): the low-resolution image."""
    x, single = _as_batch(x)
    h, w = x.shape[-2:]
    if h < SCALE or w < SCALE:
        raise ValueError(f"an image of {w}×{h} pixels is too small to downscale ×{SCALE}")
    lr = F.interpolate(x, size=(h // SCALE, w // SCALE), mode="bilinear", antialias=True, align_corners=False)
    return lr[0] if single else lr


def upscale_nearest(x):
    """Nearest-neighbour ×2: how a low-resolution image becomes a U-Net's input."""
    x, single = _as_batch(x)
    up = F.interpolate(x, scale_factor=SCALE, mode="nearest")
    return up[0] if single else up


def upscale_bicubic(x):
    """Bicubic ×2 (torch's, a = -0.75), clamped to [0, 1]: the classic baseline."""
    x, single = _as_batch(x)
    up = F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp(0, 1)
    return up[0] if single else up


def degrade(hr):
    """The U-Net's input for a high-resolution image: downscale ×½, then nearest ×2.

    `hr` must have even sides (see `even_crop`); the result has the same size as `hr`.
    """
    return upscale_nearest(downscale(hr))
