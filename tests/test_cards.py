"""Model cards: the shipped ones carry the Hub's metadata (ModelCard.load reads it back), no path of
the machine that made them, and are exactly what `python -m train.publish cards` writes; the
evaluation reader takes both schemas of weights/evaluation.json."""

import re
import shutil
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from restoration.arena.witnesses import read_evaluation
from restoration.hub.catalogue import ModelEntry, read_catalog
from restoration.settings import REPO
from tests.support import TINY
from train.cards import ABSOLUTE_PATH, build_card, normalize_evaluation, scrub_paths, space_card
from train.publish import gradio_version, rebuild_cards

WEIGHTS = REPO / "weights"
CATALOG = read_catalog(WEIGHTS)
FIXTURE = Path(__file__).parent / "fixtures" / "evaluation_v2.json"
MACHINE_PATH = re.compile(r"(?<![\w.~/:-])/(work|home|root|tmp|Users)/[\w./-]+")


@pytest.mark.parametrize("entry", CATALOG, ids=[e.name for e in CATALOG])
def test_each_shipped_card_has_the_metadata(entry):
    card = ModelCard.load(WEIGHTS / entry.folder / "README.md")
    data = card.data
    if entry.role == "restorer" and entry.family == "photo":  # photos: no Hub dataset; their terms in words
        assert data.license == "other" and data.license_name == "bsds500-imagenet-non-commercial"
        assert data.datasets == ["zh-plus/tiny-imagenet"] and "## Data\n" in card.text
        assert "Berkeley Segmentation" in card.text and "Kodak24" in card.text and "no Hub dataset" in card.text
    else:
        assert data.license == "other" and data.license_name == "tiny-imagenet-non-commercial" and data.license_link
        assert data.datasets == ["zh-plus/tiny-imagenet"]
    assert data.library_name == "pytorch"
    assert data.pipeline_tag == ("image-to-image" if entry.role == "restorer" else "image-classification")
    assert data.model_name == entry.title and data.eval_results
    if entry.role == "restorer":
        assert {r.metric_type for r in data.eval_results} >= {"psnr", "ssim"}
    if entry.role == "restorer" and entry.family == "photo":  # the val figures, grain included (issue 28)
        assert {r.metric_type for r in data.eval_results} >= {"sharpness", "grid", "flat"}
        assert {r.dataset_config for r in data.eval_results} >= {"bicubic", "jpeg75"}
    base = {e.name: e.hub_repo for e in CATALOG}.get(entry.base_model)
    assert data.to_dict().get("base_model") == base
    assert (entry.base_model is not None) == (entry.name in ("unet-perceptual", "unet-crossconv")
                                              or entry.family == "photo" and entry.role == "restorer")
    assert "from restoration.models.auto import AutoModel" in card.text and "snapshot_download" in card.text
    assert not ABSOLUTE_PATH.search(card.content)


def test_shipped_cards_are_what_the_generator_writes(tmp_path):
    shutil.copytree(WEIGHTS, tmp_path / "weights")
    rebuild_cards(tmp_path / "weights")
    readme = (REPO / "README.md").read_text()
    assert space_card(CATALOG, readme, gradio_version(REPO)) == readme, "run `python -m train.publish cards`"
    for e in CATALOG:
        assert (tmp_path / "weights" / e.folder / "README.md").read_text() == \
            (WEIGHTS / e.folder / "README.md").read_text(), f"run `python -m train.publish cards` ({e.name})"


def test_no_committed_file_has_a_path_of_this_machine():
    """Paths under a machine's own roots (/work, /home, /tmp, ...) in any committed text file, tests
    aside (they build such paths on purpose). weights/evaluation.json is written by the evaluation,
    which the lead is changing to record relative paths: until then it is reported, not failed."""
    import subprocess

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    found = {}
    for name in files:
        if name.startswith("tests/") or not (REPO / name).is_file():
            continue
        try:
            text = (REPO / name).read_text()
        except UnicodeDecodeError:
            continue  # binary
        if MACHINE_PATH.search(text):
            found[name] = MACHINE_PATH.search(text).group(0)
    if set(found) == {"weights/evaluation.json"}:
        pytest.xfail(f"weights/evaluation.json still records {found['weights/evaluation.json']} (the evaluation's)")
    assert not found


def test_reads_the_new_evaluation_schema(tmp_path):
    record = normalize_evaluation(read_evaluation(FIXTURE))
    assert set(record["degradations"]) == {"lesson", "bicubic", "jpeg75"}
    # The fixture predates the rename ("judge", "judge_top1"): it reads under the current names.
    assert record["degradations"]["bicubic"]["unet-mse"]["fidelity_top1"] == 0.36
    assert record["fidelity_classifier"]["top1_original"] == 0.45 and record["classifier"]["val_accuracy"] == 0.397
    folder = WEIGHTS / "unet-mse"
    entry = next(e for e in CATALOG if e.name == "unet-mse")
    card = build_card(folder, entry, CATALOG, record)
    results = card.data.eval_results
    assert {r.dataset_config for r in results} == {"lesson", "bicubic", "jpeg75"}
    by = {(r.dataset_config, r.metric_name): r.metric_value for r in results}
    assert by[("bicubic", "PSNR (dB, pooled)")] == 23.5 and by[("lesson", "SSIM")] == 0.795
    assert by[("lesson", "fidelity classifier top-1 / top-1 on the originals")] == 0.73
    assert ("jpeg75", "fidelity classifier top-1 on the restorations") not in by  # not evaluated there: not invented
    assert "Degradation `jpeg75`" in card.text and "| this model | 23.500 |" in card.text
    fidelity = ModelEntry("fidelity", "Fidelity classifier", "classifier", role="fidelity")
    card = build_card(WEIGHTS / "classifier", fidelity, CATALOG, record)
    assert card.data.eval_results[0].metric_value == 0.45 and "45.00%" in card.text


def test_reads_the_old_schema_and_tolerates_junk(tmp_path):
    old = {"data": "/somewhere/tiny-imagenet-200", "images": 12, "command": "c", "results": {"unet-mse": {
        "psnr_pooled": 22.0, "psnr_mean": 23.0, "ssim": 0.7, "sharpness": 0.3}}}
    record = normalize_evaluation(old)
    assert record["degradations"] == {"lesson": old["results"]} and "/somewhere" not in record["data"]
    (tmp_path / "bad.json").write_text("{not json")
    assert read_evaluation(tmp_path / "bad.json") is None and read_evaluation(tmp_path / "none.json") is None
    assert normalize_evaluation([1, 2]) is None
    assert normalize_evaluation({"degradations": {"lesson": "?"}})["degradations"] == {}
    nan = {"degradations": {"lesson": {"results": {"unet-mse": {
        "psnr_pooled": 22.0, "psnr_mean": 23.0, "ssim": 0.7, "sharpness": 0.3, "fidelity_top1": 0.3,
        "fidelity": float("nan")}}}}}
    entry = next(e for e in CATALOG if e.name == "unet-mse")
    card = build_card(WEIGHTS / "unet-mse", entry, CATALOG, normalize_evaluation(nan))
    assert "fidelity" not in {r.metric_type for r in card.data.eval_results} and "| — | — |" in card.text


def test_paths_in_a_training_record_are_scrubbed():
    assert scrub_paths("`python -m train.superres --data /work/shared/data/tiny-imagenet-200 --out runs/x`") == \
        "`python -m train.superres --data …/tiny-imagenet-200 --out runs/x`"
    assert scrub_paths("https://huggingface.co/spaces/a/b and ../shared/data") == \
        "https://huggingface.co/spaces/a/b and ../shared/data"


def test_reads_what_the_evaluation_writes(tiny_imagenet, tmp_path):
    """The contract with `python -m restoration.inference.evaluate --json`: its record, as written, becomes the
    card's model-index (PSNR, SSIM and the fidelity classifier's figures per degradation)."""
    from restoration.inference.evaluate import main as evaluate_main
    from restoration.models.classifier import Classifier
    from restoration.models.unet import UNet

    UNet(**TINY).save_pretrained(tmp_path / "unet-mse")
    Classifier(nfs=(8, 16, 32), nbks=(1, 1)).save_pretrained(tmp_path / "fidelity")
    out = tmp_path / "evaluation.json"
    evaluate_main(["--data", str(tiny_imagenet), "--models", str(tmp_path / "unet-mse"), "--fidelity-classifier",
                   str(tmp_path / "fidelity"), "--degradation", "lesson,bicubic", "--json", str(out)])
    record = normalize_evaluation(read_evaluation(out))
    assert (set(record["degradations"]) == {"lesson", "bicubic"}
            and record["fidelity_classifier"]["top1_original"] is not None)
    entry = next(e for e in CATALOG if e.name == "unet-mse")
    card = build_card(WEIGHTS / "unet-mse", entry, CATALOG, record)
    metrics = {(r.dataset_config, r.metric_type) for r in card.data.eval_results}
    assert {("lesson", "psnr"), ("lesson", "ssim"), ("bicubic", "psnr"), ("bicubic", "accuracy")} <= metrics
    assert not ABSOLUTE_PATH.search(card.content)
