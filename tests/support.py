"""Helpers the tests share (the fixtures built on them are in conftest.py): the tiny U-Net's
shape, a tiny weights folder (three small U-Nets and a models.json) laid out exactly like the shipped
`weights/`, one with both model families, photos to cut photo scenes from, a free loopback port,
and whether two models hold the same weights."""

import json
import socket
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from restoration.models.unet import UNet

TINY = {"nfs": (8, 16, 32), "nbks": (1, 1)}  # the smallest U-Net (or classifier) shape the tests build


def free_port() -> int:
    """A loopback port nothing listens on (now)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def same_weights(a, b) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


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


TWO_FAMILIES = [("unet-mse", "MSE U-Net · lesson", False), ("unet-crossconv", "Cross-conv U-Net · lesson", True),
                ("photo-mse", "MSE U-Net · photos", False), ("photo-crossconv", "Cross-conv U-Net · photos", True)]
PHOTO_FIGURES = {"photo-mse": (31.0, 0.90, 0.45, 0.8, 0.7), "photo-crossconv": (30.5, 0.89, 0.60, 1.3, 1.1),
                 "bicubic": (29.0, 0.85, 0.25, 0.5, 0.4)}  # Y-PSNR, Y-SSIM, sharpness, grid, flat


def make_two_family_weights(folder: Path) -> Path:
    """A weights folder with a lesson family and a photo family of tiny U-Nets (TWO_FAMILIES), and
    an evaluation of the photo family (PHOTO_FIGURES, with the grid and flat figures)."""
    make_weights_dir(folder, TWO_FAMILIES)
    catalog = json.loads((folder / "models.json").read_text())
    for row in catalog["models"]:
        if row["name"].startswith("photo-"):
            row["family"] = "photo"
    (folder / "models.json").write_text(json.dumps(catalog))
    results = {n: {"psnr_y": p, "ssim_y": s, "sharpness": sh, "grid": g, "flat": f, "psnr_pooled": p - 1, "ssim": s}
               for n, (p, s, sh, g, f) in PHOTO_FIGURES.items()}
    (folder / "evaluation-photos.json").write_text(json.dumps({
        "data": "photos/val", "images": 42, "command": "python -m restoration.inference.evaluate --data photos --json e.json",
        "degradations": {d: {"results": results} for d in ("lesson", "bicubic", "jpeg75")}}))
    return folder


def write_photos(folder: Path, n: int, size=(320, 96)) -> Path:
    """`n` different photos (a smooth field, then detail on its right part) of `size`: 320×96 is as
    small as a photo may be (its long side makes it one), so tiny U-Nets render its scenes fast."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    w, h = size
    for i in range(n):
        coarse = Image.fromarray((rng.random((h // 16 + 1, w // 16 + 1, 3)) * 255).astype(np.uint8))
        picture = np.asarray(coarse.resize((w, h), Image.Resampling.BICUBIC)).astype(np.int16)
        picture[:, w // 2:] += rng.integers(-40, 40, (h, w - w // 2, 3), dtype=np.int16)
        Image.fromarray(np.clip(picture, 0, 255).astype(np.uint8)).save(folder / f"photo-{i}.png")
    return folder


def tiny_spandrel(kind: str, scale: int = 2, seed: int = 0):
    """A small randomly initialised model of one of spandrel's architectures, as its own class
    builds it: "compact" (Real-ESRGAN's SRVGGNetCompact, a plain CNN), "span" (SPAN, attention by
    parameter-free convolutions) or "swinir" (a light SwinIR, a transformer). Its last convolution
    is scaled down (and SPAN's, which adds no mean back, centred on grey), so that its output stays
    in range as a trained model's does; spandrel detects its hyper-parameters back from its tensors."""
    torch.manual_seed(seed)
    with warnings.catch_warnings():  # SwinIR's torch.meshgrid notice
        warnings.simplefilter("ignore")
        model, last, grey = _spandrel_model(kind, scale)
    conv = model.get_submodule(last)
    with torch.no_grad():
        conv.weight.mul_(0.02)
        conv.bias.fill_(0.5 if grey else 0.0)
    return model.eval()


def _spandrel_model(kind: str, scale: int):
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    if kind == "compact":
        model, last, grey = Compact(num_feat=8, num_conv=2, upscale=scale), "body.6", False
    elif kind == "span":
        model, last, grey = SPAN(num_in_ch=3, num_out_ch=3, feature_channels=8, upscale=scale), "upsampler.0", True
    elif kind == "swinir":
        model = SwinIR(upscale=scale, img_size=16, window_size=4, depths=[1], embed_dim=8, num_heads=[2], mlp_ratio=2,
                       upsampler="pixelshuffledirect")
        last, grey = "upsample.0", False
    else:
        raise ValueError(kind)
    return model, last, grey


def safetensors_bytes(model) -> bytes:
    """A model's state dict as the bytes of a model.safetensors file."""
    from safetensors.torch import save

    return save({k: v.contiguous() for k, v in model.state_dict().items()})


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
