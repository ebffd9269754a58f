"""Running a restoration model on an image of any size, with bounded memory.

`restore` takes the U-Net's input (a nearest-neighbour ×2 upscale, float (3, H, W) in [0, 1])
and returns the restored image. Large images are processed in overlapping tiles: each tile is
run with `overlap` pixels of context on every side and only its core is kept, so seams do not
show and memory depends on the tile size, not the image size.
"""

import time

import torch

from restoration.degrade import even_crop, low_res, upscale_nearest

# Tile edges fall on multiples of this, so the nearest-neighbour 2×2 blocks and the network's
# stride line up exactly as they would for the whole image.
TILE_ALIGN = 16


def _tiles(length, tile, overlap):
    """(start of core, end of core, start of context, end of context) along one axis."""
    tile = max(TILE_ALIGN, tile // TILE_ALIGN * TILE_ALIGN)
    for start in range(0, length, tile):
        end = min(start + tile, length)
        yield start, end, max(0, start - overlap), min(length, end + overlap)


@torch.inference_mode()
def restore(model, x, tile_pixels: int = 1 << 20, tile_size: int = 512, overlap: int = 32):
    """Run `model.restore` on one image (3, H, W); tiles when H × W exceeds `tile_pixels`."""
    model.eval()
    h, w = x.shape[-2:]
    if h * w <= tile_pixels:
        return model.restore(x[None])[0]
    overlap = -(-overlap // TILE_ALIGN) * TILE_ALIGN
    out = torch.empty_like(x)
    for y0, y1, cy0, cy1 in _tiles(h, tile_size, overlap):
        for x0, x1, cx0, cx1 in _tiles(w, tile_size, overlap):
            part = model.restore(x[None, :, cy0:cy1, cx0:cx1])[0]
            out[:, y0:y1, x0:x1] = part[:, y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
    return out


def timed(fn, *args, **kwargs):
    """(result, milliseconds)."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t0) * 1000


def prepare(image, mode: str, degradation: str = "lesson"):
    """The (low-resolution image, model input, reference or None) for an image in [0, 1].

    mode "degrade": the image is the ground truth; it is cropped to even sides and degraded ×2 by
    `degradation` (see restoration/degrade.py).
    mode "upscale": the image itself is the low-resolution input; there is no reference.
    """
    if mode == "degrade":
        reference = even_crop(image)
        low = low_res(reference, degradation)
        return low, upscale_nearest(low), reference
    if mode == "upscale":
        return image, upscale_nearest(image), None
    raise ValueError(f"mode must be 'degrade' or 'upscale', got {mode!r}")
