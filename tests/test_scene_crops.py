"""Where photo scenes are cut: crops where the photo has both detail and smooth areas, several per
photo overlapping by at most half; and the integer zoom a scene is shown at."""

import numpy as np
from PIL import Image

from restoration.arena.scene_crops import (
    CROP_SIDE,
    MAX_OVERLAP,
    _overlap,
    block_contrast,
    crop_boxes,
    detail_contrast,
    display_zoom,
    is_photo,
)


def test_detail_contrast_is_high_only_where_detail_meets_smooth():
    rng = np.random.default_rng(0)
    flat = np.full((64, 64, 3), 128, np.uint8)
    noise = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    half = flat.copy()
    half[:, 32:] = noise[:, 32:]
    score = lambda a: detail_contrast(block_contrast(Image.fromarray(a)))  # noqa: E731
    assert score(flat) < 0.01 and score(noise) < 0.5 and score(half) > 3  # log((1 + ~74) / (1 + 0))


def test_crops_are_where_detail_meets_smooth_several_per_photo_overlapping_at_most_half():
    rng = np.random.default_rng(1)
    photo = np.full((500, 800, 3), 90, np.uint8)  # a smooth sky ...
    photo[:, 400:] = rng.integers(0, 256, (500, 400, 3), dtype=np.uint8)  # ... beside foliage
    boxes = crop_boxes(Image.fromarray(photo))
    assert 2 <= len(boxes) <= 4 and boxes == crop_boxes(Image.fromarray(photo))  # the same every time
    for left, top, right, bottom in boxes:
        assert (right - left, bottom - top) == (CROP_SIDE, CROP_SIDE) and 0 <= left and right <= 800 and bottom <= 500
    left, _, right, _ = boxes[0]
    assert 400 - left > 0.2 * CROP_SIDE and right - 400 > 0.2 * CROP_SIDE  # the best straddles the edge
    assert all(_overlap(a, b) <= MAX_OVERLAP for i, a in enumerate(boxes) for b in boxes[:i])


def test_a_small_photo_gives_fewer_crops_of_its_own_size():
    wide = Image.new("RGB", (451, 300), "gray")  # chelsea.png's size: room for one crop only
    assert crop_boxes(wide) == [(0, 0, 320, 296)]
    assert crop_boxes(Image.new("RGB", (5, 3))) == [(0, 0, 4, 2)]


def test_photos_are_shown_at_their_own_pixels_and_thumbnails_enlarged_by_an_integer():
    assert is_photo((320, 100)) and not is_photo((319, 319))
    assert display_zoom((320, 296)) == 1 and display_zoom((64, 64)) == 5 and display_zoom((96, 80)) == 4
    assert display_zoom((20, 20)) == 5  # at most 5×
