"""Datasets and augmentation for both the classifier and the super-resolution U-Nets.

Two ways to feed training, producing the same kind of batches:
- per item (`SRPairs`, `ClassifierItems` over a dataset, with DataLoader workers);
- the fast path: decode a dataset once into uint8 (`load_cache` for thumbnails of one size,
  `load_photos` for photos at their own resolution), then augment whole batches on the training
  device (`BatchAugment`), so a GPU is not starved by JPEG decoding.
"""

import hashlib
import os
import random
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from restoration.data.degrade import MixConfig, degrade, gaussian_blur
from restoration.data.degrade import check as check_degradation
from restoration.data.images import open_image, to_uint8

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}
PAD = 4  # pixels of reflection padding before the random crop

# Tiny ImageNet's per-channel statistics (from the lesson): the classifier's and the U-Nets'
# normalisation, and the fill of random erasing.
TINY_IMAGENET_MEAN = (0.47565, 0.40303, 0.31555)
TINY_IMAGENET_STD = (0.28858, 0.24402, 0.26615)


# ---------------------------------------------------------------------------------------------
# Datasets: items are (uint8 tensor (3, H, W), label)


class TinyImageNet(torch.utils.data.Dataset):
    """Tiny ImageNet in its published layout: train labelled by folder, val by
    `val/val_annotations.txt`, classes from `wnids.txt`, names from `words.txt`."""

    def __init__(self, root, split: str = "train"):
        self.root, self.split = Path(root), split
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        if not (self.root / "wnids.txt").is_file():
            raise FileNotFoundError(f"{self.root} is not a Tiny ImageNet folder (no wnids.txt); "
                                    f"pass --download to fetch it")
        self.wnids = (self.root / "wnids.txt").read_text().split()
        index = {w: i for i, w in enumerate(self.wnids)}
        words = dict(line.split("\t", 1) for line in (self.root / "words.txt").read_text().splitlines() if "\t" in line)
        self.names = [words.get(w, w).split(",")[0].strip() for w in self.wnids]
        if split == "train":
            self.items = sorted((p, index[p.parent.parent.name])
                                for p in (self.root / "train").glob("*/images/*.JPEG"))
        else:
            rows = [line.split("\t") for line in (self.root / "val" / "val_annotations.txt").read_text().splitlines() if line]
            self.items = [(self.root / "val" / "images" / r[0], index[r[1]]) for r in rows]
        if not self.items:
            raise FileNotFoundError(f"no {split} images under {self.root}")

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        return to_uint8(open_image(path)), label

    @staticmethod
    def download(root):
        """Fetch (HTTPS, verified, resumable) and unpack the official zip so that `root` is the
        dataset folder; see restoration/data/download.py."""
        from restoration.data.download import fetch_tiny_imagenet

        return fetch_tiny_imagenet(root)


class ImageFolder(torch.utils.data.Dataset):
    """Every png/jpg/webp under a folder, recursively, in sorted order; labels are all 0."""

    def __init__(self, root):
        self.root = Path(root)
        self.items = [(p, 0) for p in sorted(self.root.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES]
        if not self.items:
            raise FileNotFoundError(f"no images ({', '.join(sorted(IMAGE_SUFFIXES))}) under {self.root}")
        self.names = ["image"]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        path, label = self.items[i]
        return to_uint8(open_image(path)), label


def open_dataset(path, split: str = "train"):
    """Tiny ImageNet when `path` has wnids.txt, otherwise a folder of images."""
    return TinyImageNet(path, split) if (Path(path) / "wnids.txt").is_file() else ImageFolder(path)


def hold_out(dataset, fraction: float = 0.05, seed: int = 0):
    """(train, val) Subsets of a dataset that has no val split of its own (a plain image folder):
    a seeded random `fraction` (at least one image) is held out and never trained on."""
    if len(dataset) < 2:
        raise ValueError(f"{len(dataset)} image(s): too few to hold any out for validation")
    perm = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = max(1, round(len(dataset) * fraction))
    return (torch.utils.data.Subset(dataset, sorted(perm[n_val:])),
            torch.utils.data.Subset(dataset, sorted(perm[:n_val])))


def subset(dataset, limit: int | None, seed: int = 0):
    """A random `limit` items (all when None): for smoke runs that still see every class."""
    if limit is None or limit >= len(dataset):
        return dataset
    idx = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))[:limit]
    return torch.utils.data.Subset(dataset, sorted(idx.tolist()))


# ---------------------------------------------------------------------------------------------
# Per-item augmentation


def random_erase_(x, max_num: int = 4, pct: float = 0.2, mean=TINY_IMAGENET_MEAN, std=TINY_IMAGENET_STD, rng=random):
    """Lesson 24's random erasing, on a float image (C, H, W) in [0, 1]: up to `max_num`
    rectangles (each side up to `pct` of the image's) filled with noise that is N(0, 1) after
    normalisation."""
    h, w = x.shape[-2:]
    for _ in range(rng.randint(0, max_num)):
        eh, ew = max(1, int(rng.random() * pct * h)), max(1, int(rng.random() * pct * w))
        y0, x0 = rng.randint(0, h - eh), rng.randint(0, w - ew)
        noise = torch.randn(x.shape[0], eh, ew) * torch.tensor(std)[:, None, None] + torch.tensor(mean)[:, None, None]
        x[:, y0:y0 + eh, x0:x0 + ew] = noise.clamp(0, 1)
    return x


def crop_flip(size: int):
    return v2.Compose([v2.RandomCrop(size, padding=PAD, padding_mode="reflect", pad_if_needed=True),
                       v2.RandomHorizontalFlip()])


class SRPairs(torch.utils.data.Dataset):
    """(input, target) float pairs in [0, 1]. Augmentation is applied once, to the
    high-resolution image; the input is then derived from it (by `degradation`, see
    restoration/data/degrade.py), so the two stay aligned."""

    def __init__(self, dataset, size: int = 64, train: bool = True, erase: bool = True, degradation: str = "lesson",
                 mix_config: MixConfig = MixConfig()):
        self.dataset, self.train, self.erase = dataset, train, erase and train
        self.degradation, self.mix_config = check_degradation(degradation), mix_config
        self.augment = crop_flip(size) if train else v2.CenterCrop(size)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        hr = self.augment(self.dataset[i][0]).float().div(255)
        # mix draws from torch's global generator here: DataLoader seeds it per worker
        lr = degrade(hr, self.degradation, mix_config=self.mix_config)
        if self.erase:
            random_erase_(lr)
        return lr, hr


class ClassifierItems(torch.utils.data.Dataset):
    """(image in [0, 1], label): pad + crop + flip and TrivialAugmentWide for training,
    then random erasing (noise that is N(0, 1) after the model's normalisation)."""

    def __init__(self, dataset, size: int = 64, train: bool = True, trivial_augment: bool = True, erase: bool = True):
        self.dataset, self.erase = dataset, erase and train
        steps = [crop_flip(size)] + ([v2.TrivialAugmentWide()] if trivial_augment else [])
        self.augment = v2.Compose(steps) if train else v2.CenterCrop(size)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, i):
        img, label = self.dataset[i]
        x = self.augment(img).float().div(255)
        if self.erase:
            random_erase_(x)
        return x, label


# ---------------------------------------------------------------------------------------------
# The fast path: a uint8 cache, augmented a batch at a time on the training device


def load_cache(dataset, size: int = 64, cache_dir=None, desc: str = "caching"):
    """Decode every image once into (uint8 N×3×size×size, int64 labels), as numpy files.

    Images of another size are resized (shorter side) and centre-cropped to `size`. With
    `cache_dir`, the arrays are saved there (plain .npy, no pickles) and reused next time.
    """
    from tqdm.auto import tqdm

    paths = [str(p) for p, _ in _items(dataset)]
    key = hashlib.sha1(("\n".join(paths) + f"\n{size}").encode()).hexdigest()[:16]
    files = (Path(cache_dir) / f"{key}-images.npy", Path(cache_dir) / f"{key}-labels.npy") if cache_dir else None
    if files and all(f.is_file() for f in files):
        return torch.from_numpy(np.load(files[0])), torch.from_numpy(np.load(files[1]))
    images = np.empty((len(dataset), 3, size, size), dtype=np.uint8)
    labels = np.empty(len(dataset), dtype=np.int64)
    resize = v2.Compose([v2.Resize(size, antialias=True), v2.CenterCrop(size)])
    for i in tqdm(range(len(dataset)), desc=desc, unit="img", mininterval=2):
        img, labels[i] = dataset[i]
        images[i] = (img if img.shape[-2:] == (size, size) else resize(img)).numpy()
    if files:
        _save_arrays(files, (images, labels))
    return torch.from_numpy(images), torch.from_numpy(labels)


def _save_arrays(files, arrays):
    """Plain .npy files (no pickles), each written under a temporary name per process and renamed:
    runs may race to build the same cache."""
    files[0].parent.mkdir(parents=True, exist_ok=True)
    for f, a in zip(files, arrays):
        tmp = f.with_suffix(f".{os.getpid()}.tmp.npy")
        np.save(tmp, a, allow_pickle=False)
        tmp.replace(f)


def load_photos(dataset, cache_dir=None, desc: str = "decoding photos") -> list[torch.Tensor]:
    """Decode every photo once, at its own resolution: a list of uint8 (3, H, W) tensors.

    Unlike `load_cache`, nothing is resized: super-resolution on photos must learn from their own
    pixels, not from thumbnails. With `cache_dir`, the pixels are kept there as two plain .npy
    files (every image flattened end to end, and their shapes) and reused next time.
    """
    from tqdm.auto import tqdm

    paths = [str(p) for p, _ in _items(dataset)]
    key = hashlib.sha1(("\n".join(paths) + "\nphotos").encode()).hexdigest()[:16]
    files = (Path(cache_dir) / f"{key}-pixels.npy", Path(cache_dir) / f"{key}-shapes.npy") if cache_dir else None
    if files and all(f.is_file() for f in files):
        pixels, shapes = np.load(files[0]), np.load(files[1])
    else:
        images = [dataset[i][0].numpy() for i in tqdm(range(len(dataset)), desc=desc, unit="img", mininterval=2)]
        shapes = np.array([im.shape for im in images], dtype=np.int64).reshape(-1, 3)
        pixels = np.concatenate([im.reshape(-1) for im in images]) if images else np.empty(0, np.uint8)
        if files:
            _save_arrays(files, (pixels, shapes))
    flat, out, start = torch.from_numpy(pixels), [], 0
    for shape in shapes.tolist():
        n = shape[0] * shape[1] * shape[2]
        out.append(flat[start:start + n].view(*shape))
        start += n
    return out


def _items(dataset):
    if isinstance(dataset, torch.utils.data.Subset):  # subsets of subsets too
        items = _items(dataset.dataset)
        return [items[i] for i in dataset.indices]
    return dataset.items


class BatchAugment:
    """Augmentation of a whole uint8 batch on its device; the batch versions of
    `SRPairs` and `ClassifierItems`. Random numbers come from `generator` (for resumable runs)."""

    def __init__(self, size: int = 64, generator: torch.Generator | None = None):
        self.size, self.g = size, generator

    def _rand(self, *shape, device):
        return torch.rand(*shape, generator=self.g).to(device)

    def crop_flip(self, x):
        """Reflect-pad, crop a random `size` window per image, flip half of them."""
        b, s = x.shape[0], self.size
        x = F.pad(x.float(), (PAD,) * 4, mode="reflect")
        oy = (self._rand(b, device=x.device) * (x.shape[-2] - s + 1)).long()
        ox = (self._rand(b, device=x.device) * (x.shape[-1] - s + 1)).long()
        ar = torch.arange(s, device=x.device)
        rows, cols = (oy[:, None] + ar)[:, :, None], (ox[:, None] + ar)[:, None, :]
        flip = self._rand(b, device=x.device) < 0.5
        cols = torch.where(flip[:, None, None], ox[:, None, None] + s - 1 - ar[None, None, :], cols)
        x = x[torch.arange(b, device=x.device)[:, None, None], :, rows, cols]  # (b, s, s, c)
        return x.permute(0, 3, 1, 2).contiguous()

    def photo_crops(self, photos: list[torch.Tensor], n: int, device="cpu"):
        """`n` random `size`×`size` crops of full-resolution photos (uint8, on `device`): each crop
        from a photo drawn in proportion to its area (every pixel equally likely to be seen), then
        one of the 8 flips and 90° rotations. Photos smaller than the crop are reflect-padded."""
        s = self.size
        areas = torch.tensor([p.shape[-2] * p.shape[-1] for p in photos], dtype=torch.float)
        picks = torch.multinomial(areas, n, replacement=True, generator=self.g).tolist()
        offsets = torch.rand(n, 2, generator=self.g)
        crops = []
        for k, i in enumerate(picks):
            photo = photos[i]
            h, w = photo.shape[-2:]
            if h < s or w < s:
                photo = F.pad(photo[None].float(), (0, max(0, s - w), 0, max(0, s - h)), mode="reflect")[0].to(torch.uint8)
                h, w = photo.shape[-2:]
            y, x = int(offsets[k, 0] * (h - s + 1)), int(offsets[k, 1] * (w - s + 1))
            crops.append(photo[:, y:y + s, x:x + s])
        x = torch.stack(crops).to(device)
        hflip, vflip, transpose = (self._rand(n, device=x.device).view(n, 1, 1, 1) < 0.5 for _ in range(3))
        x = torch.where(hflip, x.flip(-1), x)
        x = torch.where(vflip, x.flip(-2), x)
        return torch.where(transpose, x.transpose(-1, -2), x).contiguous()  # with the flips: all 8

    def erase_(self, x, max_num: int = 4, pct: float = 0.2):
        """Random erasing per image, vectorised: up to `max_num` noise rectangles each."""
        b, c, h, w = x.shape
        dev = x.device
        mean = torch.tensor(TINY_IMAGENET_MEAN, device=dev).view(1, c, 1, 1)
        std = torch.tensor(TINY_IMAGENET_STD, device=dev).view(1, c, 1, 1)
        count = (self._rand(b, device=dev) * (max_num + 1)).long()
        ys, xs = torch.arange(h, device=dev).view(1, h, 1), torch.arange(w, device=dev).view(1, 1, w)
        noise = (torch.randn(x.shape, generator=self.g).to(dev) * std + mean).clamp(0, 1)
        for k in range(max_num):
            eh = (self._rand(b, device=dev) * pct * h).long().clamp_min(1)
            ew = (self._rand(b, device=dev) * pct * w).long().clamp_min(1)
            y0 = (self._rand(b, device=dev) * (h - eh + 1)).long()
            x0 = (self._rand(b, device=dev) * (w - ew + 1)).long()
            inside = ((ys >= y0.view(b, 1, 1)) & (ys < (y0 + eh).view(b, 1, 1))
                      & (xs >= x0.view(b, 1, 1)) & (xs < (x0 + ew).view(b, 1, 1)) & (k < count).view(b, 1, 1))
            x = torch.where(inside[:, None], noise, x)
        return x

    def sr_pairs(self, images, train: bool = True, erase: bool = True, degradation: str = "lesson",
                 mix_config: MixConfig = MixConfig(), soften: float = 0.0, soften_sigma=(0.3, 1.0),
                 cropped: bool = False):
        """uint8 batch → (input, target) floats in [0, 1], like `SRPairs`; `cropped` batches (from
        `photo_crops`) are already cropped and flipped. With `soften`, that
        share of the originals is first blurred a little (σ in `soften_sigma`): target and input
        alike, so the model also sees soft pictures (as camera photos are at their own size,
        unlike Tiny ImageNet's downscaled ones) and learns not to invent detail in them."""
        hr = (self.crop_flip(images) if train and not cropped else images.float()).div_(255)
        if train and soften > 0:
            n = len(hr)
            lo, hi = soften_sigma
            chosen = (torch.rand(n, generator=self.g) < soften).to(hr.device).view(n, 1, 1, 1)
            sigma = lo + (hi - lo) * torch.rand(n, generator=self.g)
            hr = torch.where(chosen, gaussian_blur(hr, sigma), hr)
        lr = degrade(hr, degradation, self.g, mix_config)
        return (self.erase_(lr) if train and erase else lr), hr

    def classifier_batch(self, images, train: bool = True, trivial_augment: bool = True, erase: bool = True,
                         chunk: int = 8):
        """uint8 batch → float images in [0, 1], like `ClassifierItems`. TrivialAugmentWide
        picks one operation per chunk of `chunk` images, not per image: the price of batching."""
        if not train:
            return images.float().div(255)
        x = self.crop_flip(images)
        if trivial_augment:
            tawide = v2.TrivialAugmentWide()
            x = torch.cat([tawide(part) for part in x.round().to(torch.uint8).split(chunk)]).float()
        x = x.div_(255)
        return self.erase_(x) if erase else x
