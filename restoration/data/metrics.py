"""Image-quality metrics on RGB images shaped (N, 3, H, W) or (3, H, W): float in [0, 1], or uint8
(read as value / 255, a band at a time: no full-size float copy).

- PSNR, two ways: per image (then averaged over images), and pooled (one MSE over every pixel of
  the set). They differ; both are reported, and each figure says which it is.
- SSIM (Wang et al. 2004): 11×11 Gaussian window, σ = 1.5, data range 1, computed on each RGB
  channel over the valid region (no padding) and averaged.
- Luma PSNR and SSIM, the super-resolution literature's protocol: on the BT.601 luma channel
  (Y of Y'CbCr, 16–235 scaled to [0, 1], as MATLAB's rgb2ycbcr), with a border of `SCALE` pixels
  shaved off every side, averaged over images. Published ×2 figures are read this way.
- Sharpness: gradient energy, the mean squared difference between neighbouring pixels of the
  luma. As a ratio to the original's it reads: 1.0 = as much fine detail as the original, below
  1 = blurrier. (Blocky nearest-neighbour edges count as detail too: read it beside PSNR.)
- Grain in flat areas (`grid`, `flat`): where the original is flattest (its pixels whose 7×7 local
  standard deviation of luma is in the lowest 30 %: sky, walls, out-of-focus backgrounds), the mean
  squared response of the output's luma to a 2×2 checker kernel (`grid`) or to the 3×3 Laplacian
  (`flat`), divided by the original's own there. 1.0 = as much fine texture as the original has in
  its flat areas; a restorer that invents a periodic pattern there scores above what it restores
  elsewhere. Per image; a set's figure is the median over its images. A denominator below what
  8-bit rounding alone would give is taken as that rounding noise (a perfectly flat original would
  otherwise divide by zero).
"""

import functools
import math
import statistics

import torch
import torch.nn.functional as F

from restoration.data.images import to_float

_LUMA = torch.tensor([0.299, 0.587, 0.114])


def _batch(x):
    return x[None] if x.dim() == 3 else x


# Full-size images are scored a band of rows at a time, so the temporaries of a 4-megapixel
# comparison stay a few megabytes instead of a dozen full-size float copies.
BAND_ELEMENTS = 1 << 20


def _band_rows(x, halo: int = 0) -> int:
    n, c, _, w = x.shape
    return max(1, BAND_ELEMENTS // max(1, n * c * w) - halo)


def mse_per_image(out, target):
    out, target = _batch(out), _batch(target)
    n, h = out.shape[0], out.shape[-2]
    sse = torch.zeros(n, dtype=torch.float64, device=out.device)
    rows = _band_rows(out)
    for r in range(0, h, rows):
        sse += (to_float(out[..., r:r + rows, :]).float() - to_float(target[..., r:r + rows, :]).float()).pow(2).flatten(1).sum(1, dtype=torch.float64)
    return (sse / out[0].numel()).float()


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


def _mean(x):
    """Each image's mean per channel (N, C, 1, 1), in [0, 1] units, summed a band at a time (a
    sum in float64 converts its whole input first)."""
    rows = _band_rows(x)
    total = sum(x[..., r:r + rows, :].sum((2, 3), keepdim=True, dtype=torch.float64) for r in range(0, x.shape[-2], rows))
    mean = total / (x.shape[-2] * x.shape[-1])
    return (mean / 255 if x.dtype == torch.uint8 else mean).float()


@functools.lru_cache(maxsize=64)
def _banded(n_out: int, taps: tuple[float, ...], device: str = "cpu") -> torch.Tensor:
    """The (n_out, n_out + len(taps) − 1) matrix whose rows are `taps` shifted one step each: a
    valid 1-D convolution as a matrix product."""
    m = torch.zeros(n_out, n_out + len(taps) - 1, device=device)
    for i in range(n_out):
        m[i, i:i + len(taps)] = torch.tensor(taps, device=device)
    return m


BLUR_BLOCK = 16  # outputs per block of the blur's matrix products (small blocks: little wasted multiplication)


def _blur(z, taps: tuple[float, ...]):
    """A separable valid blur of z (rows, maps, width) by `taps` along both rows and width, as
    small banded matrix products: as fast as oneDNN's depthwise convolution (11×1, then 1×11) on
    a 1024² image's maps, or a little faster on a busy machine (`python -m bench.delivery`,
    docs/speed.md), and the same values within 1e-7."""
    size, (rows_in, maps, width_in) = len(taps), z.shape
    rows, width = rows_in - size + 1, width_in - size + 1
    flat = z.reshape(rows_in, maps * width_in)
    v = torch.empty(rows, maps * width_in, dtype=z.dtype, device=z.device)
    for r in range(0, rows, BLUR_BLOCK):  # down the rows
        n = min(BLUR_BLOCK, rows - r)
        torch.mm(_banded(n, taps, str(z.device)), flat[r:r + n + size - 1], out=v[r:r + n])
    blocks = -(-width // BLUR_BLOCK)  # along the width, in blocks of BLUR_BLOCK outputs
    v = F.pad(v.view(rows * maps, width_in), (0, blocks * BLUR_BLOCK + size - 1 - width_in))
    out = v.unfold(1, BLUR_BLOCK + size - 1, BLUR_BLOCK).reshape(-1, BLUR_BLOCK + size - 1) \
        @ _banded(BLUR_BLOCK, taps, str(z.device)).T
    return out.view(rows, maps, blocks * BLUR_BLOCK)[..., :width]


def _ssim_setup(x, window: int):
    """For images shaped like x: the window's taps, its size, and the bands of rows SSIM is
    computed in (each band's input rows)."""
    n, c, h, w = x.shape
    size = min(window, h - (h % 2 == 0), w - (w % 2 == 0))
    rows = _band_rows(x, size - 1) // 5 or 1  # output rows per band; its input has size − 1 more
    bands = [slice(r, min(h, r + rows + size - 1)) for r in range(0, h - size + 1, rows)]
    return tuple(_gaussian(size).tolist()), size, bands


def _centred(x, band: slice, mean):
    """Rows `band` of x as float, minus each image's mean, rows first: (rows, n, c, w)."""
    return to_float(x[..., band, :]).float().permute(2, 0, 1, 3) - mean


def _target_maps(yc, taps):
    """(μ, σ²) of the centred target `yc` (rows, n, c, w) under the window."""
    rows, n, c, w = yc.shape
    z = torch.cat([yc, yc * yc], 2).view(rows, n * 2 * c, w)
    mu, var = _blur(z, taps).reshape(-1, n, 2 * c, w - len(taps) + 1).split(c, 2)
    return mu, var.addcmul_(mu, mu, value=-1)  # σ² = E[yc²] − E[yc]²


class SsimTarget:
    """The target's half of SSIM, computed once, for an image scored against many (the Compare's
    original, against every panel): each `ssim(out, SsimTarget(original))` then blurs three maps
    instead of five. Holds two float maps of the image's size (the target's μ and σ²)."""

    def __init__(self, target, window: int = 11):
        self.image, self.window = _batch(target), window
        n, c = self.image.shape[:2]
        taps, _, bands = _ssim_setup(self.image, window)
        self.mean = _mean(self.image).view(1, n, c, 1)
        self.maps = [_target_maps(_centred(self.image, band, self.mean), taps) for band in bands]


def ssim(out, target, window: int = 11):
    """SSIM of each image, a tensor of N values; `target` an image or an `SsimTarget` (then
    `window` is the one it was made with). Images smaller than the window use a window of their
    smaller side (odd). Computed in bands of rows (bounded memory), rows first in memory (the
    blur's matrix products want them there), and in place where a temporary can be reused."""
    known = target if isinstance(target, SsimTarget) else None
    out, target = _batch(out), known.image if known else _batch(target)
    window = known.window if known else window
    if out.shape != target.shape:
        raise ValueError(f"ssim: images of different shapes {tuple(out.shape)} and {tuple(target.shape)}")
    n, c, h, w = out.shape
    taps, size, bands = _ssim_setup(out, window)
    # (Co)variances from images centred on their mean: the same values, without the float32
    # cancellation of E[x²] − E[x]² on flat regions.
    mx, my = _mean(out).view(1, n, c, 1), known.mean if known else _mean(target).view(1, n, c, 1)
    c1, c2 = 0.01**2, 0.03**2
    total = torch.zeros(n, dtype=torch.float64, device=out.device)
    for i, band in enumerate(bands):
        xc, yc = _centred(out, band, mx), _centred(target, band, my)
        mu_yc, syy = known.maps[i] if known else _target_maps(yc, taps)
        z = torch.cat([xc, xc * xc, xc * yc], 2)
        f = _blur(z.view(z.shape[0], n * 3 * c, w), taps).reshape(-1, n, 3 * c, w - size + 1)
        mu_x, sxx, sxy = f.split(c, 2)  # the blurred maps, turned in place into:
        sxx.addcmul_(mu_x, mu_x, value=-1)  # σx² = E[xc²] − E[xc]²
        sxy.addcmul_(mu_x, mu_yc, value=-1).mul_(2).add_(c2)  # 2σxy + c2, σxy = E[xc·yc] − E[xc]·E[yc]
        mu_x.add_(mx)  # μ of the images themselves, not of the centred ones
        mu_y = mu_yc + my
        numerator = mu_x.mul(mu_y).mul_(2).add_(c1).mul_(sxy)
        denominator = mu_x.square_().add_(mu_y.square_()).add_(c1).mul_(sxx.add_(syy).add_(c2))
        total += numerator.div_(denominator).sum((0, 2, 3), dtype=torch.float64)
    return (total / (c * (h - size + 1) * (w - size + 1))).float()


def luma_bt601(x):
    """Y of BT.601 Y'CbCr (N, 1, H, W) in [0, 1] units of 8 bits: (16 + 65.481 R + 128.553 G +
    24.966 B) / 255 for RGB in [0, 1], as the super-resolution literature computes it."""
    x = to_float(_batch(x)).float()
    weights = torch.tensor([65.481, 128.553, 24.966], device=x.device).view(1, 3, 1, 1)
    return ((x * weights).sum(1, keepdim=True) + 16.0) / 255.0


def _shave(x, border: int):
    """`border` pixels off every side (fewer for an image too small to keep any pixel)."""
    border = min(border, (min(x.shape[-2:]) - 1) // 2)
    return x[..., border:-border, border:-border] if border > 0 else x


def psnr_y(out, target, border: int = 2):
    """Luma PSNR of each image (N values): BT.601 Y, `border` pixels shaved off every side."""
    return psnr(_shave(luma_bt601(out), border), _shave(luma_bt601(target), border))


def ssim_y(out, target, border: int = 2):
    """Luma SSIM of each image (N values): BT.601 Y, `border` pixels shaved off every side."""
    return ssim(_shave(luma_bt601(out), border), _shave(luma_bt601(target), border))


def gradient_energy(x):
    """Mean squared horizontal plus vertical luma difference of each image (N values)."""
    x = to_float(_batch(x)).float()
    luma = (x * _LUMA.to(x.device).view(1, 3, 1, 1)).sum(1)
    dx, dy = luma[..., :, 1:] - luma[..., :, :-1], luma[..., 1:, :] - luma[..., :-1, :]
    return dx.pow(2).flatten(1).mean(1) + dy.pow(2).flatten(1).mean(1)


FLAT_SHARE = 0.3  # the share of the original's pixels, the flattest, where grain is measured
FLAT_WINDOW = 7  # the side of the window of the local standard deviation that defines flatness
CHECKER = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]) / 4
LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])
# Uniform rounding to 1/255 has variance (1/255)² / 12; a kernel's response to such independent
# noise has that times the sum of its squared weights.
ROUNDING_VARIANCE = (1 / 255) ** 2 / 12


def flat_mask(luma, share: float = FLAT_SHARE, window: int = FLAT_WINDOW):
    """(N, 1, H, W) booleans: each image's pixels whose `window`² local standard deviation of
    luma is in its lowest `share`."""
    pad = window // 2
    padded = F.pad(luma, (pad, pad, pad, pad), mode="replicate")
    mean = F.avg_pool2d(padded, window, stride=1)
    var = (F.avg_pool2d(padded * padded, window, stride=1) - mean * mean).clamp_min(0)
    flat = var.flatten(1)
    k = max(1, int(share * flat.shape[1]))
    # Exactly k pixels each: a perfectly flat region ties, and `var <= threshold` would take all of it.
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, flat.topk(k, dim=1, largest=False).indices, True)
    return mask.view_as(var)


def kernel_response(luma, kernel):
    """The response of `luma` (N, 1, H, W) to `kernel`, taken on a replicate-padded copy so that
    it is (N, 1, H, W) too and lines up with a mask pixel for pixel."""
    kh, kw = kernel.shape
    padded = F.pad(luma, ((kw - 1) // 2, kw // 2, (kh - 1) // 2, kh // 2), mode="replicate")
    return F.conv2d(padded, kernel.to(luma)[None, None])


def _response_energy(luma, kernel, mask):
    """Mean squared response of `luma` to `kernel` over `mask`, per image (N values)."""
    response = kernel_response(luma, kernel).pow(2)
    return (response * mask).flatten(1).sum(1) / mask.flatten(1).sum(1).clamp_min(1)


def grain(out, target, kernel) -> torch.Tensor:
    """The output's energy under `kernel` over the original's flat mask, relative to the
    original's (N values); see the module's docstring (`grid`: CHECKER, `flat`: LAPLACIAN)."""
    y_out, y_ref = luma_bt601(out), luma_bt601(target)
    mask = flat_mask(y_ref)
    floor = ROUNDING_VARIANCE * kernel.pow(2).sum().item()
    return _response_energy(y_out, kernel, mask) / _response_energy(y_ref, kernel, mask).clamp_min(floor)


def _median(values: list) -> float:
    return statistics.median(values) if values else float("nan")


class QualityMeter:
    """Accumulates, over batches of (output, original), everything the evaluation reports."""

    def __init__(self, border: int = 2):
        self.border = border  # shaved off every side for the luma figures: the scale, by convention
        self.sse = 0.0  # summed squared error over all pixels (pooled PSNR)
        self.pixels = 0
        self.psnrs, self.ssims = [], []
        self.psnrs_y, self.ssims_y = [], []  # the literature's: luma, border shaved
        self.grad_out = self.grad_ref = 0.0
        self.grids, self.flats = [], []  # per image: grain in the original's flat areas
        self.seconds, self.images = 0.0, 0

    def update(self, out, target, seconds: float = 0.0):
        out, target = to_float(_batch(out)).clamp(0, 1), to_float(_batch(target))
        err = (out.float() - target.float()).pow(2)
        self.sse += err.sum().item()
        self.pixels += err.numel()
        self.psnrs += psnr(out, target).tolist()
        self.ssims += ssim(out, target).tolist()
        self.psnrs_y += psnr_y(out, target, self.border).tolist()
        self.ssims_y += ssim_y(out, target, self.border).tolist()
        self.grad_out += gradient_energy(out).sum().item()
        self.grad_ref += gradient_energy(target).sum().item()
        self.grids += grain(out, target, CHECKER).tolist()
        self.flats += grain(out, target, LAPLACIAN).tolist()
        self.seconds += seconds
        self.images += out.shape[0]

    def summary(self) -> dict:
        n = max(self.images, 1)
        return {
            "images": self.images,
            "psnr_pooled": psnr_from_mse(self.sse / max(self.pixels, 1)),
            "psnr_mean": sum(self.psnrs) / n,
            "ssim": sum(self.ssims) / n,
            "psnr_y": sum(self.psnrs_y) / n,
            "ssim_y": sum(self.ssims_y) / n,
            "sharpness": self.grad_out / self.grad_ref if self.grad_ref else float("nan"),
            "grid": _median(self.grids),
            "flat": _median(self.flats),
            "ms_per_image": 1000 * self.seconds / n,
        }
