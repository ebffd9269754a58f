import numpy as np
import pytest
import torch
from PIL import Image

from restoration.data.datasets import (
    PAD,
    BatchAugment,
    ClassifierItems,
    ImageFolder,
    SRPairs,
    TinyImageNet,
    load_cache,
    load_photos,
    open_dataset,
    random_erase_,
    subset,
)
from restoration.data.degrade import degrade
from tests.conftest import WNIDS


def test_tiny_imagenet_layout(tiny_imagenet):
    train, val = TinyImageNet(tiny_imagenet, "train"), TinyImageNet(tiny_imagenet, "val")
    assert len(train) == 48 and len(val) == 12
    assert train.wnids == WNIDS
    assert train.names == ["goldfish", "European fire salamander", "bullfrog"]
    labels = [label for _, label in train.items]
    assert labels == sorted(labels) and set(labels) == {0, 1, 2}
    assert [label for _, label in val.items[:4]] == [0, 1, 2, 0]  # from val_annotations.txt
    img, label = train[16]  # the grayscale JPEG
    assert img.shape == (3, 64, 64) and img.dtype == torch.uint8 and label == 1
    assert torch.equal(img[0], img[1])


def test_tiny_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="--download"):
        TinyImageNet(tmp_path)
    with pytest.raises(ValueError, match="split"):
        TinyImageNet(tmp_path, "test")


def test_image_folder_is_recursive_and_filters_suffixes(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    Image.new("RGB", (10, 12), "red").save(tmp_path / "one.png")
    Image.new("RGB", (8, 8), "blue").save(tmp_path / "a" / "two.JPG")
    Image.new("RGBA", (9, 7)).save(tmp_path / "a" / "b" / "three.webp")
    (tmp_path / "notes.txt").write_text("not an image")
    folder = ImageFolder(tmp_path)
    assert [p.name for p, _ in folder.items] == ["three.webp", "two.JPG", "one.png"]  # sorted paths: a/b/…, a/…, …
    assert folder[2][0].shape == (3, 12, 10) and folder[0][0].shape == (3, 7, 9)
    assert isinstance(open_dataset(tmp_path), ImageFolder)
    with pytest.raises(FileNotFoundError, match="no images"):
        ImageFolder(tmp_path / "a" / "b" / "nothing")


def test_subset_is_random_but_fixed(tiny_imagenet):
    train = TinyImageNet(tiny_imagenet)
    a, b = subset(train, 10, seed=1), subset(train, 10, seed=1)
    assert a.indices == b.indices and len(set(a.indices)) == 10 and a.indices != list(range(10))
    assert subset(train, None) is train


def _find_crop(original, target):
    """Where (and whether flipped) `target` sits inside the reflect-padded `original`."""
    padded = torch.nn.functional.pad(original[None], (PAD,) * 4, mode="reflect")[0]
    s = target.shape[-1]
    for flip in (False, True):
        t = target.flip(-1) if flip else target
        for y in range(padded.shape[-2] - s + 1):
            for x in range(padded.shape[-1] - s + 1):
                if torch.equal(padded[:, y:y + s, x:x + s], t):
                    return y, x, flip
    return None


def test_sr_pairs_stay_aligned_under_augmentation(tiny_imagenet):
    """The target is a crop/flip of the original, and the input is exactly the degraded target:
    augmentation happens once, before the degradation, so the two can never drift apart."""
    train = TinyImageNet(tiny_imagenet)
    pairs = SRPairs(train, size=32, train=True, erase=False)
    seen = set()
    for i in range(12):
        lr, hr = pairs[i % 3]
        original = train[i % 3][0].float() / 255
        where = _find_crop(original, hr)
        assert where is not None, "the target is not a crop of the original"
        seen.add(where)
        assert torch.equal(lr, degrade(hr))
    assert len(seen) > 3  # the augmentation really varies


def test_erasing_touches_only_the_input(tiny_imagenet):
    train = TinyImageNet(tiny_imagenet)
    pairs = SRPairs(train, size=64, train=True, erase=True)
    changed = 0
    for i in range(20):
        lr, hr = pairs[i]
        differs = (lr != degrade(hr)).any(0)
        changed += differs.any().item()
        assert differs.float().mean() < 0.2 * 4  # at most 4 rectangles of at most 20 % × 20 %
    assert changed > 5
    val_pairs = SRPairs(TinyImageNet(tiny_imagenet, "val"), size=64, train=False)
    lr, hr = val_pairs[0]
    assert torch.equal(hr, TinyImageNet(tiny_imagenet, "val")[0][0].float() / 255) and torch.equal(lr, degrade(hr))


def test_batch_augment_crops_are_real_crops_and_pairs_are_aligned():
    g = torch.Generator().manual_seed(0)
    aug = BatchAugment(size=16, generator=g)
    images = torch.randint(0, 256, (6, 3, 20, 20), dtype=torch.uint8)
    crops = aug.crop_flip(images)
    flips = 0
    for img, crop in zip(images, crops):
        where = _find_crop(img.float(), crop)
        assert where is not None
        flips += where[2]
    assert 0 < flips < 6
    lr, hr = aug.sr_pairs(images, train=True, erase=False)
    assert torch.equal(lr, degrade(hr)) and hr.shape == (6, 3, 16, 16)
    lr, hr = aug.sr_pairs(images, train=False)
    assert torch.equal(hr, images.float() / 255)


def test_batch_erase_matches_the_per_item_rule():
    aug = BatchAugment(size=32, generator=torch.Generator().manual_seed(1))
    x = torch.zeros(64, 3, 32, 32)
    out = aug.erase_(x.clone())
    erased = (out != 0).any(1).flatten(1).float().mean(1)
    assert (erased == 0).any() and (erased > 0).sum() > 30  # 0 to 4 rectangles each
    assert erased.max() <= 4 * 0.2 * 0.2 + 1e-6 and out.min() >= 0 and out.max() <= 1


def test_classifier_items_and_batches(tiny_imagenet):
    train = TinyImageNet(tiny_imagenet)
    x, y = ClassifierItems(train)[5]
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and y == 0
    aug = BatchAugment(64, torch.Generator().manual_seed(0))
    images, labels = load_cache(train, 64)
    batch = aug.classifier_batch(images[:16])
    assert batch.shape == (16, 3, 64, 64) and batch.dtype == torch.float32
    assert torch.equal(aug.classifier_batch(images[:4], train=False), images[:4].float() / 255)
    plain = aug.classifier_batch(images[:4], train=True, trivial_augment=False, erase=False)
    for img, crop in zip(images[:4], plain):  # only the crop and flip
        assert _find_crop(img.float(), crop * 255) is not None


def test_random_erase_fills_rectangles_with_noise():
    import random

    x = torch.zeros(3, 40, 40)
    random_erase_(x, max_num=4, rng=random.Random(3))
    assert (x != 0).any()


def test_cache_decodes_once_and_is_reused(tiny_imagenet, tmp_path):
    train = subset(TinyImageNet(tiny_imagenet), 10)
    images, labels = load_cache(train, 64, tmp_path)
    assert images.shape == (10, 3, 64, 64) and images.dtype == torch.uint8 and labels.dtype == torch.int64
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(f.endswith(".npy") for f in files)
    for f in tmp_path.iterdir():
        np.load(f, allow_pickle=False)  # plain arrays, no pickles
    again, labels2 = load_cache(train, 64, tmp_path)
    assert torch.equal(images, again) and torch.equal(labels, labels2)
    assert torch.equal(images[3], train[3][0])


def test_cache_resizes_other_sizes(tmp_path):
    Image.new("RGB", (100, 50), "red").save(tmp_path / "wide.png")
    images, _ = load_cache(ImageFolder(tmp_path), 32)
    assert images.shape == (1, 3, 32, 32) and images[0, 0].float().mean() > 250


def _photo_folder(folder, sizes, seed=0):
    rng = np.random.default_rng(seed)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray((rng.random((h, w, 3)) * 255).astype(np.uint8)).save(folder / f"{i}.png")
    return ImageFolder(folder)


def test_photos_keep_their_own_resolution_and_are_cached(tmp_path):
    (tmp_path / "photos").mkdir()
    folder = _photo_folder(tmp_path / "photos", [(120, 80), (50, 70), (33, 33)])
    photos = load_photos(folder, tmp_path / "cache")
    assert [tuple(p.shape) for p in photos] == [(3, 80, 120), (3, 70, 50), (3, 33, 33)]
    assert all(p.dtype == torch.uint8 for p in photos) and torch.equal(photos[1], folder[1][0])
    for f in (tmp_path / "cache").iterdir():
        np.load(f, allow_pickle=False)  # plain arrays, no pickles
    again = load_photos(folder, tmp_path / "cache")  # from the cache: the same pixels
    assert all(torch.equal(a, b) for a, b in zip(photos, again))


def test_photo_crops_are_real_crops_drawn_by_area():
    """Every crop is a window of one photo under one of the 8 flips/rotations, and photos are drawn
    in proportion to their area."""
    big = torch.arange(3 * 60 * 80, dtype=torch.int64).remainder(251).to(torch.uint8).view(3, 60, 80)
    small = torch.full((3, 20, 20), 255, dtype=torch.uint8)  # 400 of the 5,200 pixels
    augment = BatchAugment(16, torch.Generator().manual_seed(0))
    crops = augment.photo_crops([big, small], 600)
    assert crops.shape == (600, 3, 16, 16) and crops.dtype == torch.uint8
    from_small = (crops == 255).flatten(1).all(1)
    share = from_small.float().mean().item()
    assert 400 / 5200 / 2 < share < 400 / 5200 * 2  # by area (1/13), not one photo in two
    windows = [big[:, y:y + 16, x:x + 16] for y in range(60 - 15) for x in range(80 - 15)]
    orientations = set()
    for crop in crops[~from_small][:40]:  # undo each of the 8 flips/rotations until a window matches
        undone = [(k, f) for k in range(4) for f in (False, True)
                  if any(torch.equal(w, (lambda c: c.flip(-1) if f else c)(torch.rot90(crop, k, (1, 2)))) for w in windows)]
        assert undone, "a crop that is no window of the photo"
        orientations.add(undone[0])
    assert len(orientations) > 4  # the flips and rotations are drawn


def test_photo_crops_pad_photos_smaller_than_the_crop():
    tiny = torch.randint(0, 256, (3, 10, 12), dtype=torch.uint8)
    crops = BatchAugment(16, torch.Generator().manual_seed(0)).photo_crops([tiny], 4)
    assert crops.shape == (4, 3, 16, 16)
