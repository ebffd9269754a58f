"""Where the Judge's photo scenes are cut from a photo, and how large a scene is shown.

A photo-family scene is a crop of a photo, not the whole photo: a judge compares restorations at
their own pixels (1:1), and two or three whole photos do not fit on a screen side by side. The
crop's low-resolution input is `CROP_SIDE / 2` = 160 pixels on its long side, so each restoration
is 320: the input and two restorations side by side, at one scale, fit a 1280-pixel page with room
to spare, a 500-pixel val photo still yields four crops that overlap by at most half, and a render
costs only the crop.

Which crops: those where the photo has both detail and smooth areas, since that is where the
recipes differ (texture kept or smeared, grain or ringing added where the original is flat). It is
measured on the original's luma, in 8×8 blocks: each block's standard deviation (its local
contrast), then, over the blocks of a candidate crop, `detail_contrast` = log((1 + p80) / (1 + p20))
of their 20th and 80th percentiles. A crop of sky alone (p80 small) or of foliage alone (p20
large) scores near 0; a crop of a branch against the sky scores high. Candidates lie on a 32-pixel
grid; the best are taken in turn, each overlapping every one already taken by at most half its
area, so the (up to) `count` crops of a photo show different parts of it; a photo too small for
that gives fewer. The boxes depend on the pixels only: every replica, and the
render child, cut the same crops.
"""

import math

import numpy as np
from PIL import Image

CROP_SIDE = 320  # the long side of a photo scene's original (and of each restoration); the input is half
PHOTO_MIN_SIDE = 320  # an image this large on its long side is a photo (its crop is at least this); else a thumbnail
CROPS_PER_PHOTO = 4
BLOCK = 8  # the side of the blocks whose contrast is measured
STEP = 32  # the grid the candidate crops lie on
MAX_OVERLAP = 0.5  # of a crop's area, shared with any crop already taken
THUMBNAIL_ZOOM_TARGET = 320  # thumbnails are shown enlarged to at least this many pixels ...
MAX_ZOOM = 5  # ... at an integer zoom of at most this


def is_photo(size: tuple[int, int]) -> bool:
    """Whether an image of this (width, height) is cut into photo scenes (else: a thumbnail)."""
    return max(size) >= PHOTO_MIN_SIDE


def display_zoom(size: tuple[int, int]) -> int:
    """The integer zoom a picture of this (width, height) is shown at: 1 (its own pixels) from
    `THUMBNAIL_ZOOM_TARGET` up, else the smallest that reaches it, at most `MAX_ZOOM` (a 64-pixel
    thumbnail: 5×)."""
    side = max(size)
    return 1 if side >= THUMBNAIL_ZOOM_TARGET else min(MAX_ZOOM, math.ceil(THUMBNAIL_ZOOM_TARGET / side))


def block_contrast(image: Image.Image) -> np.ndarray:
    """The standard deviation of the luma (BT.601, 0-255) in each BLOCK × BLOCK block, (H/8, W/8)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
    luma = rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    h, w = (s - s % BLOCK for s in luma.shape)
    blocks = luma[:h, :w].reshape(h // BLOCK, BLOCK, w // BLOCK, BLOCK)
    return blocks.std(axis=(1, 3))


def detail_contrast(contrast: np.ndarray) -> float:
    """How much a region has both detail and smooth parts: log((1 + p80) / (1 + p20)) of its blocks'
    contrast (`block_contrast`)."""
    p20, p80 = np.percentile(contrast, [20, 80])
    return float(np.log((1 + p80) / (1 + p20)))


def _positions(length: int, side: int) -> list[int]:
    """Offsets of a `side`-long window along `length`, on the STEP grid, the far end included."""
    return sorted({*range(0, length - side + 1, STEP), length - side})


def _overlap(a, b) -> float:
    """The area two boxes share, as a share of the first's."""
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0) * max(h, 0) / ((a[2] - a[0]) * (a[3] - a[1]))


def crop_boxes(image: Image.Image, count: int = CROPS_PER_PHOTO, side: int = CROP_SIDE) -> list[tuple]:
    """Up to `count` (left, top, right, bottom) boxes of at most `side` × `side` pixels (sides a
    multiple of BLOCK; the width or height of a photo smaller than that), the crops with the
    most `detail_contrast` first, each overlapping those before it by at most MAX_OVERLAP."""
    w, h = image.size
    cw, ch = min(side, w) // BLOCK * BLOCK, min(side, h) // BLOCK * BLOCK
    if cw < BLOCK or ch < BLOCK:
        return [(0, 0, w - w % 2, h - h % 2)]
    contrast = block_contrast(image)
    scored = []
    for top in _positions(h, ch):
        for left in _positions(w, cw):
            # The blocks wholly inside the crop (the crop need not lie on the block grid at the far end).
            region = contrast[-(-top // BLOCK):(top + ch) // BLOCK, -(-left // BLOCK):(left + cw) // BLOCK]
            scored.append((detail_contrast(region), (left, top, left + cw, top + ch)))
    scored.sort(key=lambda s: (-s[0], s[1]))  # best first; ties by position, so the choice is stable
    chosen = []
    for _, box in scored:
        if len(chosen) < count and all(_overlap(box, c) <= MAX_OVERLAP for c in chosen):
            chosen.append(box)
    return chosen
