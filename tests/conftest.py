"""Shared fixtures: a miniature Tiny ImageNet in the published layout, generated on the fly.
The app's fixtures (tiny weights folders) live in tests/app_support.py."""

import numpy as np
import pytest
import torch
from PIL import Image

WNIDS = ["n01443537", "n01629819", "n01641577"]
WORDS = {"n01443537": "goldfish, Carassius auratus", "n01629819": "European fire salamander, Salamandra salamandra",
         "n01641577": "bullfrog, Rana catesbeiana"}
TRAIN_PER_CLASS = 16
VAL_IMAGES = 12


def _picture(rng, size=64) -> np.ndarray:
    """A 64×64 RGB image with structure at several scales (smooth colour fields plus detail), so
    crops are distinguishable and restoration has something to do."""
    coarse = rng.random((8, 8, 3))
    smooth = np.asarray(Image.fromarray((coarse * 255).astype(np.uint8)).resize((size, size), Image.BICUBIC))
    detail = rng.normal(0, 25, (size, size, 3))
    return np.clip(smooth + detail, 0, 255).astype(np.uint8)


@pytest.fixture(scope="session")
def tiny_imagenet(tmp_path_factory):
    """3 classes × 16 train images and 12 val images, 64×64 JPEGs. The first train image of the
    second class (train[16] in sorted order) is grayscale, as some real Tiny ImageNet images are."""
    root = tmp_path_factory.mktemp("tiny-imagenet-200")
    rng = np.random.default_rng(0)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\t{name}\n" for w, name in WORDS.items())
                                    + "n00000000\tsomething else\n")
    for wnid in WNIDS:
        folder = root / "train" / wnid / "images"
        folder.mkdir(parents=True)
        for i in range(TRAIN_PER_CLASS):
            img = Image.fromarray(_picture(rng))
            if wnid == WNIDS[1] and i == 0:
                img = img.convert("L")
            img.save(folder / f"{wnid}_{i}.JPEG", quality=90)
    val = root / "val" / "images"
    val.mkdir(parents=True)
    rows = []
    for i in range(VAL_IMAGES):
        Image.fromarray(_picture(rng)).save(val / f"val_{i}.JPEG", quality=90)
        rows.append(f"val_{i}.JPEG\t{WNIDS[i % len(WNIDS)]}\t0\t0\t63\t63\n")
    (root / "val" / "val_annotations.txt").write_text("".join(rows))
    return root


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
