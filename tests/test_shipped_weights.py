"""The checkpoints shipped in weights/ are real, distinct models that load as the app loads them."""

import json

import pytest
import torch

from restoration.data.degrade import degrade
from restoration.data.uploads import list_images
from restoration.hub.catalogue import by_family, load_available_restorers, read_catalog
from restoration.inference import engine
from restoration.inference.windows import low_resolution_model
from restoration.models.auto import AutoModel
from restoration.models.classifier import Classifier
from restoration.models.unet import UNet
from restoration.settings import REPO

WEIGHTS = REPO / "weights"
ENTRIES = read_catalog(WEIGHTS)


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_each_loads_with_from_pretrained_and_is_small_enough(entry):
    folder = WEIGHTS / entry.folder
    model = AutoModel.from_pretrained(folder)
    assert isinstance(model, Classifier if entry.role in ("classifier", "fidelity") else UNet)
    assert (folder / "model.safetensors").stat().st_size <= 6_000_000
    card = (folder / "README.md").read_text()
    assert card.startswith("---\n") and "## Training" in card


def test_the_fidelity_classifier_is_independent_and_good_enough():
    """The fidelity classifier is another architecture than the perceptual-loss classifier, names its
    classes, its card says no U-Net took part, and it scores at least 40% on all val originals."""
    import json

    fidelity = AutoModel.from_pretrained(WEIGHTS / "fidelity")
    classifier = AutoModel.from_pretrained(WEIGHTS / "classifier")
    assert fidelity.config["nfs"] != classifier.config["nfs"] and fidelity.config["preact"]
    assert len(fidelity.labels) == 200
    assert "No U-Net took part" in (WEIGHTS / "fidelity" / "README.md").read_text()
    record = json.loads((WEIGHTS / "evaluation.json").read_text())
    assert (record["fidelity_classifier"]["images"] == 10_000
            and record["fidelity_classifier"]["top1_original"] >= 0.40)


def test_all_weights_fit_the_budget():
    # two families of three compact U-Nets (4-5 MB each in fp16) and the two classifiers
    assert sum(p.stat().st_size for p in WEIGHTS.rglob("*") if p.is_file()) <= 40_000_000


def test_each_produces_a_different_output_on_the_same_input():
    torch.manual_seed(0)
    hr = torch.rand(1, 3, 8, 8).repeat_interleave(8, -1).repeat_interleave(8, -2)  # some structure
    x = degrade(hr)
    models = [AutoModel.from_pretrained(WEIGHTS / e.folder) for e in ENTRIES]
    with torch.inference_mode():
        outputs = [m.restore(x) if isinstance(m, UNet) else m(x) for m in models]
    restorations = [o for o, m in zip(outputs, models) if isinstance(m, UNet)]
    assert len(restorations) == 6
    for i in range(len(restorations)):
        assert (restorations[i] - x).abs().mean() > 1e-3  # trained: not the identity they start as
        for j in range(i):
            assert (restorations[i] - restorations[j]).abs().mean() > 1e-3
    assert outputs[[e.role for e in ENTRIES].index("classifier")].shape == (1, 200)


def test_the_app_loads_both_families_of_three_restorers():
    models, problems = load_available_restorers(WEIGHTS)
    assert not problems
    families = {f: [m.entry.name for m in ms] for f, ms in by_family(models).items()}
    assert families == {"photo": ["photo-mse", "photo-perceptual", "photo-crossconv"],
                        "lesson": ["unet-mse", "unet-perceptual", "unet-crossconv"]}
    assert all(m.entry.title.endswith(" · photos" if m.entry.family == "photo" else " · lesson") for m in models)
    photo = {m.entry.name: m.model.config for m in models}
    assert photo["photo-mse"] == photo["unet-mse"] and photo["photo-crossconv"] == photo["unet-crossconv"]  # same cost


def test_evaluation_figures_cover_every_restorer():
    record = json.loads((WEIGHTS / "evaluation.json").read_text())
    assert record["images"] == 10_000
    assert {"lesson", "bicubic", "jpeg75"} <= set(record["degradations"])
    for name, degradation in record["degradations"].items():
        results = degradation["results"]
        assert {"nearest", "bicubic", "unet-mse", "unet-perceptual", "unet-crossconv", "original"} <= set(results)
        assert all(0 <= r["fidelity"] <= 1.5 for r in results.values()), name
    photos = json.loads((WEIGHTS / "evaluation-photos.json").read_text())  # the photo val: both families
    assert photos["images"] == 42 and {"lesson", "bicubic", "jpeg75"} <= set(photos["degradations"])
    for degradation in photos["degradations"].values():
        results = degradation["results"]
        assert {"bicubic", *(e.name for e in ENTRIES if e.role == "restorer")} <= set(results)
        assert all("psnr_y" in r and "ssim_y" in r for r in results.values())


@pytest.mark.skipif(not engine.bf16_supported(), reason="this CPU has no bfloat16 instructions")
def test_bf16_keeps_the_picture_of_the_perceptual_lesson_u_net():
    """The start-up check's bar (eligibility.py) on the shipped restorer closest to it (its batch
    norms folded, bf16 lost 0.02–0.04 dB on every photo: engine.fast_copy keeps them in bf16)."""
    models, _ = load_available_restorers(REPO / "weights")
    model = next(m.model for m in models if m.entry.name == "unet-perceptual")
    images = engine.check_images(list_images(REPO / "examples"))
    check = engine.check_precision([low_resolution_model(model)], images, "bf16", side=64)
    assert check.agreement.eligible, check.agreement


@pytest.mark.parametrize("family", ["photo", "lesson"])
def test_each_familys_board_shows_every_shipped_model_with_its_witnesses(family):
    """The leaderboard of a family reads its own evaluation file: no "—" beside a shipped model (or
    bicubic), every witness the file reports shown (the photo family's grid and flat once there)."""
    from restoration.arena.leaderboard import FlagRules, leaderboard_tables
    from restoration.arena.witnesses import EVALUATIONS, WITNESSES, read_evaluation

    members = [e.name for e in ENTRIES if e.role == "restorer" and e.family == family]
    evaluation = read_evaluation(WEIGHTS / EVALUATIONS[family][0])
    for degradation in ("all", "lesson", "bicubic", "jpeg75"):
        _, ranking, _ = leaderboard_tables([], family, members, degradation, FlagRules(), evaluation, str, 0)
        reported = {k for r in evaluation["degradations"][degradation if degradation != "all" else "lesson"][
            "results"].values() for k in r} & set(WITNESSES[family])
        assert len(ranking["headers"]) == 5 + len(reported) and {r[1] for r in ranking["data"]} == {*members, "bicubic"}
        assert all("—" not in cell for r in ranking["data"] for cell in r[5:]), ranking["data"]
