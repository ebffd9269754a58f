"""When a faster path (a lower precision, another engine) may replace fp32 eager: the eligibility bar.

A faster path is compared with fp32 eager through the app's 8-bit path (degrade → model → uint8
panel), on every shipped restorer and degradation, and is eligible only if on each of them:

- its PSNR against the original moves by at most `MAX_PSNR_DELTA` dB (0.02),
- its SSIM by at most `MAX_SSIM_DELTA` (0.001),
- and 99.9 % of its pixel values are within `MAX_P999_LEVELS` levels of 255 (2) of fp32's.

The largest single move is reported too, but does not decide: over millions of pixel values it
measures one stray rounding, not what a person can see (issue 31; the field's reference tools run
reduced precision by default). Used by the start-up check (engine.py) and bench.speed's accuracy table.
"""

import dataclasses
import statistics
from collections.abc import Sequence

import torch

from restoration.data.metrics import psnr, ssim

MAX_PSNR_DELTA = 0.02  # dB
MAX_SSIM_DELTA = 0.001
MAX_P999_LEVELS = 2  # levels of 255
PERCENTILE = 0.999


@dataclasses.dataclass(frozen=True)
class Agreement:
    """How far a candidate's 8-bit outputs are from fp32 eager's over some images (one model and
    degradation, or the worst of several: `worst`)."""

    psnr_delta: float  # mean PSNR of the candidate − mean PSNR of fp32, dB, both against the originals
    ssim_delta: float  # the same for SSIM
    p999: int  # 99.9th percentile of |candidate − fp32| over every pixel value, levels of 255
    max_levels: int  # the largest |candidate − fp32|
    cases: int = 1  # model × degradation pairs this covers

    @property
    def eligible(self) -> bool:
        return (abs(self.psnr_delta) <= MAX_PSNR_DELTA and abs(self.ssim_delta) <= MAX_SSIM_DELTA
                and self.p999 <= MAX_P999_LEVELS)

    def failures(self) -> list[str]:
        """What breaks the bar, in words ("ΔPSNR 0.031 dB > 0.02"); empty when eligible."""
        out = []
        if abs(self.psnr_delta) > MAX_PSNR_DELTA:
            out.append(f"|ΔPSNR| {abs(self.psnr_delta):.3f} dB > {MAX_PSNR_DELTA}")
        if abs(self.ssim_delta) > MAX_SSIM_DELTA:
            out.append(f"|ΔSSIM| {abs(self.ssim_delta):.4f} > {MAX_SSIM_DELTA}")
        if self.p999 > MAX_P999_LEVELS:
            out.append(f"99.9 % of pixel values within {self.p999}/255 > {MAX_P999_LEVELS}/255")
        return out

    def text(self) -> str:
        """'|ΔPSNR| ≤ 0.0041 dB, |ΔSSIM| ≤ 0.00012, 99.9 % of pixel values within 1/255 (the most 3/255)'."""
        return (f"|ΔPSNR| ≤ {abs(self.psnr_delta):.4f} dB, |ΔSSIM| ≤ {abs(self.ssim_delta):.5f}, 99.9 % of pixel "
                f"values within {self.p999}/255 (the most {self.max_levels}/255)")

    @classmethod
    def worst(cls, agreements: Sequence["Agreement"]) -> "Agreement":
        """The worst of each figure over `agreements` (each on its own: one case may hold the worst
        PSNR and another the worst pixel)."""
        return cls(max((a.psnr_delta for a in agreements), key=abs), max((a.ssim_delta for a in agreements), key=abs),
                   max(a.p999 for a in agreements), max(a.max_levels for a in agreements),
                   sum(a.cases for a in agreements))


def level_histogram(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Counts of |a − b| for two uint8 images, per level 0…255."""
    return torch.bincount((a.to(torch.int16) - b.to(torch.int16)).abs().flatten().to(torch.int64), minlength=256)


def percentile_level(histogram: torch.Tensor, q: float = PERCENTILE) -> int:
    """The least level L such that a fraction `q` of the counted values is at most L."""
    cumulative = histogram.cumsum(0)
    return int(torch.searchsorted(cumulative, q * cumulative[-1].item(), side="left").item())


def agreement(outputs: Sequence[torch.Tensor], references: Sequence[torch.Tensor],
              originals: Sequence[torch.Tensor]) -> Agreement:
    """The candidate's 8-bit `outputs` against fp32 eager's `references`, both scored against the
    `originals` (uint8 images (3, H, W), in the same order): PSNR and SSIM averaged over the images."""
    histogram = torch.zeros(256, dtype=torch.int64)
    ours, theirs, ours_s, theirs_s = [], [], [], []
    for out, ref, original in zip(outputs, references, originals, strict=True):
        histogram += level_histogram(out, ref)
        ours.append(float(psnr(out, original)[0]))
        theirs.append(float(psnr(ref, original)[0]))
        ours_s.append(float(ssim(out, original)[0]))
        theirs_s.append(float(ssim(ref, original)[0]))
    return Agreement(statistics.mean(ours) - statistics.mean(theirs), statistics.mean(ours_s) - statistics.mean(theirs_s),
                     percentile_level(histogram), int(torch.nonzero(histogram)[-1].item()))
