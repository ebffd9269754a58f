"""Helpers for the app's tests: a tiny weights folder (three small U-Nets and a models.json) laid
out exactly like the shipped `weights/`. The fixtures built on it are in conftest.py."""

import json
from pathlib import Path

import torch

from restoration.unet import UNet

TINY = {"nfs": (8, 16, 32), "nbks": (1, 1)}
RESTORERS = [("unet-mse", "MSE U-Net", False), ("unet-perceptual", "Perceptual U-Net", False),
             ("unet-crossconv", "Cross-conv U-Net", True)]
REVISION = "0123456789abcdef0123456789abcdef01234567"


def tiny_unet(seed: int, cross_conv: bool = False) -> UNet:
    """A small U-Net whose output differs from its input (an untrained U-Net is the identity on
    the nearest-neighbour upscale), so the models give different, non-trivial panels."""
    torch.manual_seed(seed)
    model = UNet(**TINY, cross_conv=cross_conv)
    with torch.no_grad():
        model.to_rgb[0].weight.normal_(0, 0.02)
    return model.eval()


def make_weights_dir(folder: Path, restorers=RESTORERS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed, (name, title, cross) in enumerate(restorers):
        tiny_unet(seed, cross).save_pretrained(folder / name)
        rows.append({"name": name, "title": title, "folder": name, "role": "restorer",
                     "hub_repo": f"test-org/{name}", "revision": REVISION})
    rows.append({"name": "classifier", "title": "Tiny ImageNet classifier", "folder": "classifier",
                 "role": "classifier", "hub_repo": "test-org/classifier", "revision": REVISION})
    (folder / "models.json").write_text(json.dumps({"models": rows}, indent=1))
    return folder


class CountingModel:
    """Wraps a model to record the sizes it was run on (its encoder's stride sets the tile grid)."""

    def __init__(self, model):
        self.model, self.calls = model, []
        self.encoder = model.encoder

    def eval(self):
        return self

    def restore(self, x):
        self.calls.append(tuple(x.shape[-2:]))
        return self.model.restore(x)
