"""Helpers for the app's tests: a tiny weights folder (three small U-Nets and a models.json) laid
out exactly like the shipped `weights/`. The fixtures built on it are in conftest.py."""

import json
import warnings
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
