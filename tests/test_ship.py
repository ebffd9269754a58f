
import pytest
import torch

from restoration.models.auto import load_checkpoint
from train import classifier as train_classifier
from train import superres as train_superres
from train.run_card import model_card
from train.ship import main


@pytest.fixture(scope="module")
def run(tiny_imagenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("ship") / "unet-mse"
    train_superres.main(["--data", str(tiny_imagenet), "--out", str(out), "--cache-dir", str(out.parent / "cache"),
                         "--batch-size", "16", "--epochs", "1", "--limit", "32", "--val-limit", "8"])
    return out


def test_model_card_says_how_the_model_was_made(run):
    evaluation = {"command": "python -m restoration.inference.evaluate --json e.json", "images": 12, "data": "val",
                  "results": {"unet-mse": {"psnr_pooled": 22.5, "psnr_mean": 23.0, "ssim": 0.7, "sharpness": 0.3},
                              "bicubic": {"psnr_pooled": 21.1, "psnr_mean": 22.1, "ssim": 0.69, "sharpness": 0.12}}}
    card = model_card(run, "MSE U-Net", evaluation, "unet-mse", notes="Trained in two sessions.")
    assert card.startswith("---\n") and "pipeline_tag: image-to-image" in card.split("---")[1]
    for needed in ("# MSE U-Net", '"model_type": "unet"', "32 images", "Wall time", "python -m train.superres",
                   "val_psnr", "22.500", "| bicubic | 21.100",
                   "Trained in two sessions."):
        assert needed in card, needed


def test_a_classifier_card_gives_its_accuracy(tiny_imagenet, tmp_path):
    out = tmp_path / "classifier"
    train_classifier.main(["--data", str(tiny_imagenet), "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
                           "--batch-size", "16", "--epochs", "1", "--limit", "32", "--val-limit", "8"])
    evaluation = {"command": "python -m restoration.inference.evaluate --json e.json", "images": 12, "data": "val", "results": {},
                  "classifier": {"checkpoint": "weights/classifier", "images": 12, "val_accuracy": 0.4044, "val_loss": 2.5}}
    card = model_card(out, "Tiny ImageNet classifier", evaluation, "classifier")
    assert "pipeline_tag: image-classification" in card and '"model_type": "classifier"' in card
    assert "top-1 accuracy **40.44%**" in card and "on 12 images" in card


def test_ship_writes_a_loadable_fp16_folder(run, tmp_path):
    dest = tmp_path / "weights" / "unet-mse"
    main([str(run), "--title", "MSE U-Net", "--to", str(dest)])
    assert sorted(p.name for p in dest.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    shipped, trained = load_checkpoint(dest), load_checkpoint(run)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (shipped(x) - trained(x)).abs().max() < 1e-2
    assert (dest / "model.safetensors").stat().st_size < (run / "model.safetensors").stat().st_size * 0.6


def test_refuses_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(SystemExit, match="training run folder"):
        main([str(tmp_path), "--title", "x"])
