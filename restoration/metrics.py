"""Image-quality metrics on float RGB in [0, 1], shaped (N, 3, H, W) or (3, H, W).

- PSNR, two ways: per image (then averaged over images), and pooled (one MSE over every pixel of
  the set). They differ; both are reported, and each figure says which it is.
- SSIM (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, data range 1, computed on each RGB
  channel over the valid region (no padding) and averaged.
- Sharpness: gradient energy, the mean squared difference between neighbouring pixels of the
  luma. As a ratio to the original's it reads: 1.0 = as much fine detail as the original, below
  1 = blurrier. (Blocky nearest-neighbour edges count as detail too: read it beside PSNR.)
"""

import math

import torch
import torch.nn.functional as F

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _batch(x):
    return x[None] if x.dim() == 3 else x


def mse_per_image(out, target):
    out, target = _batch(out).float(), _batch(target).float()
    return (out - target).pow(2).flatten(1).mean(1)


def psnr_from_mse(mse):
    """dB for images in [0, 1]; identical images are capped at 100 dB rather than infinity."""
    if isinstance(mse, torch.Tensor):
        return 10 * torch.log10(1.0 / mse.clamp_min(1e-10))
    return 10 * math.log10(1.0 / max(mse, 1e-10))


def psnr(out, target):
    """PSNR of each image, a tensor of N values."""
    return psnr_from_mse(mse_per_image(out, target))


def _gaussian(size, sigma=1.5):
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(r**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(out, target, window: int = 11):
    """SSIM of each image, a tensor of N values. Images smaller than the window use a window
    of their smaller side (odd)."""
    out, target = _batch(out).float(), _batch(target).float()
    n, c, h, w = out.shape
    size = min(window, h - (h % 2 == 0), w - (w % 2 == 0))
    # The Gaussian window is separable: a vertical then a horizontal pass.
    g = _gaussian(size).to(out.device)
    kv, kh = g.view(1, 1, size, 1).expand(c, 1, size, 1), g.view(1, 1, 1, size).expand(c, 1, 1, size)
    blur = lambda z: F.conv2d(F.conv2d(z, kv, groups=c), kh, groups=c)  # noqa: E731
    # (Co)variances from images centred on their mean: the same values, without the float32
    # cancellation of E[x²] − E[x]² on flat regions.
    mx, my = out.mean((2, 3), keepdim=True), target.mean((2, 3), keepdim=True)
    xc, yc = out - mx, target - my
    mu_xc, mu_yc = blur(xc), blur(yc)
    sxx = blur(xc * xc) - mu_xc**2
    syy = blur(yc * yc) - mu_yc**2
    sxy = blur(xc * yc) - mu_xc * mu_yc
    mu_x, mu_y = mu_xc + mx, mu_yc + my
    c1, c2 = 0.01**2, 0.03**2
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))
    return s.flatten(1).mean(1)


def gradient_energy(x):
    """Mean squared horizontal plus vertical luma difference of each image (N values)."""
    x = _batch(x).float()
    luma = (x * _LUMA.to(x.device).view(1, 3, 1, 1)).sum(1)
    dx, dy = luma[..., :, 1:] - luma[..., :, :-1], luma[..., 1:, :] - luma[..., :-1, :]
    return dx.pow(2).flatten(1).mean(1) + dy.pow(2).flatten(1).mean(1)


class QualityMeter:
    """Accumulates, over batches of (output, original), everything the evaluation reports."""

    def __init__(self):
        self.sse = 0.0  # summed squared error over all pixels (pooled PSNR)
        self.pixels = 0
        self.psnrs, self.ssims = [], []
        self.grad_out = self.grad_ref = 0.0
        self.seconds, self.images = 0.0, 0

    def update(self, out, target, seconds: float = 0.0):
        out, target = _batch(out).clamp(0, 1), _batch(target)
        err = (out.float() - target.float()).pow(2)
        self.sse += err.sum().item()
        self.pixels += err.numel()
        self.psnrs += psnr(out, target).tolist()
        self.ssims += ssim(out, target).tolist()
        self.grad_out += gradient_energy(out).sum().item()
        self.grad_ref += gradient_energy(target).sum().item()
        self.seconds += seconds
        self.images += out.shape[0]

    def summary(self) -> dict:
        n = max(self.images, 1)
        return {
            "images": self.images,
            "psnr_pooled": psnr_from_mse(self.sse / max(self.pixels, 1)),
            "psnr_mean": sum(self.psnrs) / n,
            "ssim": sum(self.ssims) / n,
            "sharpness": self.grad_out / self.grad_ref if self.grad_ref else float("nan"),
            "ms_per_image": 1000 * self.seconds / n,
        }
