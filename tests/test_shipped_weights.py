"""The checkpoints shipped in weights/ are real, distinct models that load as the app loads them."""

import json

import pytest
import torch

from restoration.models import AutoModel
from restoration.classifier import Classifier
from restoration.degrade import degrade
from restoration.settings import REPO
from restoration.unet import UNet
from restoration.weights import load_available_restorers, read_catalog

WEIGHTS = REPO / "weights"
ENTRIES = read_catalog(WEIGHTS)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_each_loads_with_from_pretrained_and_is_small_enough(entry):
    folder = WEIGHTS / entry.folder
    model = AutoModel.from_pretrained(folder)
    assert isinstance(model, Classifier if entry.role == "classifier" else UNet)
    assert (folder / "model.safetensors").stat().st_size <= 6_000_000
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "## Training" in card


def test_all_weights_fit_the_budget():
    assert sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file()) <= 25_000_000


def test_each_produces_a_different_output_on_the_same_input():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2)  # some structure
    x = degrade(hr)
    models = [AutoModel.from_pretrained(WEIGHTS / e.folder) for e in ENTRIES]
    with torch.inference_mode():
        outputs = [m.restore(x) if isinstance(m, UNet) else m(x) for m in models]
    restorations = [o for o, m in zip(outputs, models) if isinstance(m, UNet)]
    assert len(restorations) == 3
    for i in range(3):
        assert (restorations[i] - x).abs().mean() > 1e-3  # trained: not the identity they start as
        for j in range(i):
            assert (restorations[i] - restorations[j]).abs().mean() > 1e-3
    assert outputs[[e.role for e in ENTRIES].index("classifier")].shape == (1, 200)


def test_the_app_loads_all_three_restorers():
    models, problems = load_available_restorers(WEIGHTS)
    assert not problems and [m.entry.name for m in models] == ["unet-mse", "unet-perceptual", "unet-crossconv"]


def test_evaluation_figures_cover_every_restorer():
    record = json.loads((WEIGHTS / "evaluation.json").read_text())
    assert record["images"] == 10_000
    assert {"nearest", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv"} <= set(record["results"])
