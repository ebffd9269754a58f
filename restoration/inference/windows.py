"""Where a `Restorer`'s windows go (restoration/inference/runner.py): a model as a model of the
low-resolution image (ours through `NearestInput`, a foreign one as it is), where windows start
along an axis, and which part of each window's output is kept."""

import math

from torch import nn

from restoration.data.degrade import SCALE, upscale_nearest


class NearestInput(nn.Module):
    """One of our U-Nets as a model of the low-resolution image: `restore` upscales its input ×2
    with nearest neighbour, then restores that (inside the windows, so compiled code includes it).
    Its sides must divide by half the U-Net's stride (its encoder's total downsampling)."""

    takes_low_resolution, scale, minimum = True, SCALE, 1
    # Its compiled code takes windows of any size on its stride grid (runner.py compiles it with
    # dynamic shapes), so the windows can be fitted to each image (`fitted_window`).
    fits_windows = True

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.multiple = -(-int(getattr(getattr(model, "encoder", None), "stride", 1)) // SCALE)

    def restore(self, low):
        return self.model.restore(upscale_nearest(low))


def low_resolution_model(model) -> nn.Module:
    """`model` as a model of the low-resolution image (with `scale`, `multiple`, `minimum`): a
    foreign one (foreign.py) as it is, ours through `NearestInput`."""
    return model if getattr(model, "takes_low_resolution", False) else NearestInput(model)


def window_starts(length: int, window: int, overlap: int, stride: int) -> list[int]:
    """Where windows of `window` pixels start along an axis of `length` (≥ window) pixels: on the
    stride grid, the first at 0 and the last at length − window, close enough together that the
    middle of each overlap has `overlap` pixels of context on both sides."""
    if length <= window:
        return [0]
    span, step = length - window, window - 2 * overlap
    if step < stride:
        raise ValueError(f"a window of {window} pixels leaves no core with {overlap} pixels of context each side")
    n = math.ceil(span / step) + 1
    while True:
        starts = [i * span // (n - 1) // stride * stride for i in range(n - 1)] + [span]
        if all(b - a <= step for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


def window_cores(starts: list[int], window: int, length: int) -> list[tuple[int, int]]:
    """(start, end) of the output each window keeps: up to the middle of its overlap with the next."""
    seams = [(b + a + window) // 2 for a, b in zip(starts, starts[1:])]
    return list(zip([0, *seams], [*seams, length]))


def fitted_window(length: int, window: int, overlap: int, stride: int, least: int) -> int:
    """The side of the windows along an axis of `length` pixels (a multiple of `stride`): no larger
    than `window`, in as few windows as `window` would need, and as small as that allows (on the
    stride grid, at least `least`), so that the windows' overlaps waste as few pixels as they can.
    A 1024-pixel side in 576-pixel windows with 32 pixels of context: two windows of 544, not 576."""
    least = min(window, max(least, 2 * overlap + stride))
    if length <= window:
        return max(length, least)
    n = len(window_starts(length, window, overlap, stride))
    side = max(least, -(-(length + (n - 1) * 2 * overlap) // n // stride) * stride)
    while side < window and len(window_starts(length, side, overlap, stride)) > n:
        side += stride
    return min(side, window)
