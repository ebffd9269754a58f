"""The benchmarks' test photo: made, not shipped, so that any size can be asked for. Light to
import (numpy and PIL, no torch), so that a benchmark that only drives a running app answers
`--help` at once."""

from pathlib import Path

import numpy as np
from PIL import Image


def test_image(side: int, folder: Path) -> Path:
    """A photo-like PNG (smooth colour fields plus fine texture) of side × side pixels."""
    rng = np.random.default_rng(side)
    coarse = Image.fromarray((rng.random((side // 16, side // 16, 3)) * 255).astype(np.uint8))
    smooth = np.asarray(coarse.resize((side, side), Image.Resampling.BICUBIC), dtype=np.float64)
    pixels = np.clip(smooth + rng.normal(0, 12, smooth.shape), 0, 255).astype(np.uint8)
    path = folder / f"{side}.png"
    Image.fromarray(pixels).save(path)
    return path
