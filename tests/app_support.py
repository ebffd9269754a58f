"""Fixtures for the app's tests: a tiny weights folder (three small U-Nets and a models.json) laid
out exactly like the shipped `weights/`, and Settings that point the app at it. Test modules import
the fixtures they use from here."""

import json
import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image

from restoration.settings import REPO, Settings
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


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory) -> Path:
    return make_weights_dir(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="session")
def small_examples(tmp_path_factory) -> Path:
    """A few of the shipped examples (small ones, so the tests stay fast)."""
    folder = tmp_path_factory.mktemp("examples")
    for p in sorted((REPO / "examples").glob("tinyimagenet-*"))[:3]:
        shutil.copy(p, folder / p.name)
    Image.effect_noise((96, 80), 40).convert("RGB").save(folder / "noise.png")
    return folder


@pytest.fixture
def settings(tiny_weights, small_examples, tmp_path) -> Settings:
    return Settings(weights_dir=tiny_weights, examples_dir=small_examples, val_dir=tmp_path / "no-val",
                    votes_db=tmp_path / "votes.db", threads=1, min_vote_seconds=0.0, votes_per_minute=1000,
                    bootstrap_rounds=50, tile_pixels=1 << 16, max_pixels=1 << 20, tile_size=128, tile_overlap=16)


@pytest.fixture(scope="session")
def tiny_models(tiny_weights):
    from restoration.weights import load_available_restorers

    models, problems = load_available_restorers(tiny_weights)
    assert not problems
    return models
