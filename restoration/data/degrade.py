"""The ×2 degradations (how a low-resolution image is made), and the classic upscalers the U-Nets
are compared with.

All functions take float images in [0, 1], shaped (C, H, W) or (N, C, H, W). One implementation,
used by the training data, the evaluation and the app.

A degradation is named by a string:
- ``lesson``: antialiased bilinear ×½ (torchvision's resize; lesson 23's only degradation);
- ``bicubic``: antialiased bicubic ×½, as Pillow's ``Image.resize(..., Image.BICUBIC)`` does it
  (how image editors and browsers downscale);
- ``area``: 2×2 box average; ``lanczos``: antialiased Lanczos-3, as Pillow's ``Image.LANCZOS``;
- ``jpeg<Q>`` (e.g. ``jpeg75``): the lesson's bilinear ×½, then the low-resolution image saved
  as a JPEG of quality Q (Pillow's encoder, its default 4:2:0 chroma subsampling) and decoded;
- ``mix``: training only: a random draw per image over the four kernels, mild Gaussian blur
  before the downscale, mild noise and JPEG at random qualities (`MixConfig`), the way practical
  super-resolution models (Real-ESRGAN, BSRGAN) learn to cope with unknown downscales.
"""

import concurrent.futures
import functools
import io
import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# KERNELS, MixConfig: the mix's draw, also what train.superres offers. STANDARD: what the evaluation
# reports and the app offers, read as degrade.STANDARD.
from restoration.choices import KERNELS, STANDARD, MixConfig  # noqa: F401  (STANDARD: re-exported)
from restoration.data.images import quantize, to_float

SCALE = 2
TITLES = {"lesson": "bilinear ×½ (the lesson's)", "bicubic": "bicubic ×½ (Pillow's, as editors do)",
          "area": "area ×½ (2×2 average)", "lanczos": "Lanczos-3 ×½", "mix": "random mix (training)"}


def title(name: str) -> str:
    """How people read a degradation's name: "bilinear ×½ + JPEG q75" for jpeg75."""
    name = check(name)
    if name.startswith("jpeg"):
        return f"bilinear ×½ + JPEG q{name[4:]}"
    return TITLES[name]


def check(name: str) -> str:
    """`name` if it names a degradation, else a ValueError that lists the choices."""
    if name in KERNELS or name == "mix":
        return name
    if name.startswith("jpeg") and name[4:].isdigit() and 1 <= int(name[4:]) <= 100:
        return name
    raise ValueError(f"unknown degradation {name!r}: choose from {', '.join(KERNELS)}, jpeg<quality 1-100> "
                     f"(e.g. jpeg75) or mix")


def even_crop(x):
    """Drop a last row/column so both sides divide by the scale (the degradation needs it)."""
    h, w = x.shape[-2:]
    return x[..., : h - h % SCALE, : w - w % SCALE]


def _as_batch(x):
    return (x[None], True) if x.dim() == 3 else (x, False)


def _batched(fn):
    """Let `fn` (written for (N, C, H, W)) take a single (C, H, W) image too."""
    def run(x, *args, **kwargs):
        x, single = _as_batch(x)
        out = fn(x, *args, **kwargs)
        return out[0] if single else out
    run.__name__, run.__doc__ = fn.__name__, fn.__doc__
    return run


def _check_size(x):
    h, w = x.shape[-2:]
    if h < SCALE or w < SCALE:
        raise ValueError(f"an image of {w}×{h} pixels is too small to downscale ×{SCALE}")
    return h // SCALE, w // SCALE


# ---------------------------------------------------------------------------------------------
# Kernels


@_batched
def downscale(x, kernel: str = "lesson"):
    """Antialiased ×½ with one of `KERNELS` (default: the lesson's bilinear)."""
    size = _check_size(x)
    if kernel == "lesson":
        return F.interpolate(x, size=size, mode="bilinear", antialias=True, align_corners=False)
    if kernel == "bicubic":  # torch's antialiased bicubic uses Pillow's a = -0.5
        return F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    if kernel == "area":
        return F.avg_pool2d(x[..., : size[0] * SCALE, : size[1] * SCALE], SCALE)
    if kernel == "lanczos":
        return _lanczos_half(x).clamp(0, 1)
    raise ValueError(f"unknown kernel {kernel!r}: choose from {', '.join(KERNELS)}")


def _lanczos_weights(n_in: int, a: int = 3, device=None, dtype=torch.float32):
    """(n_in // 2, n_in) matrix of Pillow's antialiased Lanczos-a ×½ (support scaled by 2, taps
    that fall outside the image dropped and the rest renormalised, as Pillow does at borders)."""
    n_out = n_in // SCALE
    centre = (torch.arange(n_out, device=device, dtype=torch.float64) + 0.5) * SCALE
    pos = torch.arange(n_in, device=device, dtype=torch.float64) + 0.5
    t = (pos[None, :] - centre[:, None]) / SCALE
    w = torch.where(t.abs() < a, torch.sinc(t) * torch.sinc(t / a), torch.zeros_like(t))
    return (w / w.sum(1, keepdim=True)).to(dtype)


def _lanczos_half(x):
    h, w = x.shape[-2:]
    wy = _lanczos_weights(h, device=x.device, dtype=x.dtype)
    wx = _lanczos_weights(w, device=x.device, dtype=x.dtype)
    return torch.einsum("yh,nchw,xw->ncyx", wy, x, wx)


def gaussian_blur(x, sigma: torch.Tensor):
    """Blur each image of a batch with its own Gaussian σ (pixels; 0 leaves it as it is)."""
    n, c, h, w = x.shape
    sigma = sigma.to(x.device, x.dtype).clamp_min(1e-3).view(n, 1)
    radius = max(1, math.ceil(3 * float(sigma.max())))
    radius = min(radius, (min(h, w) - 1) // 2) if min(h, w) > 2 else 0
    if radius == 0:
        return x
    t = torch.arange(-radius, radius + 1, device=x.device, dtype=x.dtype).view(1, -1)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = (k / k.sum(1, keepdim=True)).repeat_interleave(c, 0)  # (n·c, taps)
    y = F.pad(x.reshape(1, n * c, h, w), (radius,) * 4, mode="reflect")
    y = F.conv2d(y, k.view(n * c, 1, 1, -1), groups=n * c)
    y = F.conv2d(y, k.view(n * c, 1, -1, 1), groups=n * c)
    return y.view(n, c, h, w)


# ---------------------------------------------------------------------------------------------
# JPEG (Pillow's encoder, on the CPU; the result comes back to the input's device)


@_batched
def jpeg(x, quality):
    """Each image saved as a JPEG of `quality` (an int, or one per image) and decoded again."""
    qualities = [int(quality)] * len(x) if isinstance(quality, (int, np.integer)) else [int(q) for q in quality]
    pixels = x.detach().clamp(0, 1).mul(255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
    out = np.empty_like(pixels)

    def one(i):
        buf = io.BytesIO()
        Image.fromarray(pixels[i]).save(buf, format="JPEG", quality=qualities[i])  # Pillow's default: 4:2:0
        out[i] = np.asarray(Image.open(buf).convert("RGB"))

    if len(pixels) >= 32:  # Pillow codes without the GIL: a training batch uses every core
        list(_jpeg_pool().map(one, range(len(pixels))))
    else:
        for i in range(len(pixels)):
            one(i)
    return torch.from_numpy(out).to(x.device).permute(0, 3, 1, 2).to(x.dtype).div(255)


@functools.cache
def _jpeg_pool():
    return concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1), thread_name_prefix="jpeg")


# ---------------------------------------------------------------------------------------------
# The named degradations


def _uniform(n, lo_hi, generator):
    lo, hi = lo_hi
    return lo + (hi - lo) * torch.rand(n, generator=generator)


@_batched
def mix(x, config: MixConfig = MixConfig(), generator: torch.Generator | None = None):
    """The training degradation: per image, a random kernel, maybe blur, maybe noise, maybe JPEG.
    Draws come from `generator` (a CPU generator), so a seeded run is reproducible."""
    n = len(x)
    size = _check_size(x)
    pick = torch.multinomial(torch.tensor(config.kernel_weights, dtype=torch.float), n, replacement=True,
                             generator=generator)
    blur = torch.rand(n, generator=generator) < config.blur_p
    sigma = torch.where(blur, _uniform(n, config.blur_sigma, generator), torch.zeros(n))
    noisy = torch.rand(n, generator=generator) < config.noise_p
    noise_sigma = torch.where(noisy, _uniform(n, config.noise_sigma, generator), torch.zeros(n))
    compress = torch.rand(n, generator=generator) < config.jpeg_p
    lo, hi = config.jpeg_quality
    quality = torch.randint(lo, hi + 1, (n,), generator=generator)

    if blur.any():
        x = torch.where(blur.to(x.device).view(n, 1, 1, 1), gaussian_blur(x, sigma), x)
    low = torch.empty(n, x.shape[1], *size, device=x.device, dtype=x.dtype)
    for k, kernel in enumerate(config.kernels):
        idx = (pick == k).nonzero().flatten().to(x.device)
        if len(idx):
            low[idx] = downscale(x[idx], kernel)
    if noisy.any():
        noise = torch.randn(low.shape, generator=generator).to(x.device, x.dtype)
        low = (low + noise * noise_sigma.to(x.device, x.dtype).view(n, 1, 1, 1)).clamp(0, 1)
    if compress.any():
        idx = compress.nonzero().flatten()
        low[idx.to(x.device)] = jpeg(low[idx.to(x.device)], quality[idx].tolist())
    return low


def low_res(hr, degradation: str = "lesson", generator: torch.Generator | None = None,
            mix_config: MixConfig = MixConfig()):
    """The low-resolution image (half the size) that `degradation` makes of `hr`."""
    name = check(degradation)
    if name == "mix":
        return mix(hr, mix_config, generator)
    if name.startswith("jpeg"):
        return jpeg(downscale(hr, "lesson"), int(name[4:]))
    return downscale(hr, name)


@_batched
def upscale_nearest(x):
    """Nearest-neighbour ×2: how a low-resolution image becomes a U-Net's input."""
    return F.interpolate(x, scale_factor=SCALE, mode="nearest")


@_batched
def upscale_bicubic(x):
    """Bicubic ×2 (torch's, a = -0.75), clamped to [0, 1]: the classic baseline."""
    return F.interpolate(x, scale_factor=SCALE, mode="bicubic", align_corners=False).clamp_(0, 1)


def degrade(hr, degradation: str = "lesson", generator: torch.Generator | None = None,
            mix_config: MixConfig = MixConfig()):
    """The U-Net's input for a high-resolution image: `low_res`, then nearest ×2.

    `hr` must have even sides (see `even_crop`); the result has the same size as `hr`.
    """
    return upscale_nearest(low_res(hr, degradation, generator, mix_config))


MODES = {"degrade": "Degrade, then restore", "upscale": "Upscale ×2"}  # value → what the page says


def prepare(image, mode: str, degradation: str = "lesson"):
    """The (low-resolution image, model input, reference or None) for an image (3, H, W).

    mode "degrade": the image is the ground truth; it is cropped to even sides and degraded ×2 by
    `degradation` (see restoration/data/degrade.py).
    mode "upscale": the image itself is the low-resolution input; there is no reference.

    A uint8 image gives uint8 results: the low-resolution image is rounded to 8 bits, as every
    real one is, so the model sees exactly the input a user can download and upscale again.
    A float image in [0, 1] gives float results, as in training and evaluation.
    """
    if mode == "degrade":
        reference = even_crop(image)
        low = low_res(to_float(reference), degradation)
        if image.dtype == torch.uint8:
            low = quantize(low)
        return low, upscale_nearest(low), reference
    if mode == "upscale":
        return image, upscale_nearest(image), None
    raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
