import json

import numpy as np
import pytest
from PIL import Image

from restoration.classifier import Classifier
from restoration.data import TinyImageNet
from restoration.degrade import downscale, upscale_bicubic, upscale_nearest
from restoration.evaluate import evaluate, main
from restoration.unet import UNet


def numpy_psnrs(images, upscale):
    """Pooled and mean-of-images PSNR computed independently, in float64 numpy."""
    errs = []
    for hr in images:
        out = upscale(downscale(hr[None]))[0].clamp(0, 1).double().numpy()
        errs.append(((out - hr.double().numpy()) ** 2).mean())
    errs = np.array(errs)
    return 10 * np.log10(1 / errs.mean()), (10 * np.log10(1 / errs)).mean()


def test_baselines_on_tiny_imagenet_val(tiny_imagenet):
    val = TinyImageNet(tiny_imagenet, "val")
    images = [val[i][0].float() / 255 for i in range(len(val))]
    results = evaluate({"nearest": upscale_nearest, "bicubic": upscale_bicubic}, tiny_imagenet, batch_size=5)
    for name, fn in (("nearest", upscale_nearest), ("bicubic", upscale_bicubic)):
        pooled, mean = numpy_psnrs(images, fn)
        assert results[name]["images"] == 12
        assert results[name]["psnr_pooled"] == pytest.approx(pooled, abs=1e-4)
        assert results[name]["psnr_mean"] == pytest.approx(mean, abs=1e-4)
    assert results["bicubic"]["psnr_pooled"] > results["nearest"]["psnr_pooled"]


def test_an_untrained_unet_scores_exactly_the_nearest_baseline(tiny_imagenet, tmp_path):
    UNet(nfs=(8, 16, 32), nbks=(1, 1)).save_pretrained(tmp_path / "identity")
    out = tmp_path / "results.json"
    main(["--data", str(tiny_imagenet), "--models", str(tmp_path / "identity"), "--json", str(out), "--batch-size", "4"])
    record = json.loads(out.read_text())
    r = record["results"]
    assert set(r) == {"nearest", "bicubic", "identity"} and record["images"] == 12
    assert r["identity"]["psnr_pooled"] == pytest.approx(r["nearest"]["psnr_pooled"], abs=1e-4)
    assert "python -m restoration.evaluate" in record["command"]


def test_a_folder_of_photos_of_any_size(tmp_path, capsys):
    rng = np.random.default_rng(0)
    for i, size in enumerate([(33, 20), (64, 48), (101, 77)]):
        Image.fromarray((rng.random((size[1], size[0], 3)) * 255).astype(np.uint8)).save(tmp_path / f"{i}.png")
    UNet(nfs=(8, 16, 32), nbks=(1, 1)).save_pretrained(tmp_path / "models" / "m")
    main(["--data", str(tmp_path), "--models", str(tmp_path / "models" / "m"), "--limit", "2"])
    table = capsys.readouterr().out
    assert "on 2 images" in table and "| bicubic |" in table and "| m |" in table and "PSNR pooled" in table


def test_missing_data_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no such folder"):
        main(["--data", str(tmp_path / "nope")])


def test_the_classifier_is_scored_on_the_same_val_images(tiny_imagenet, tmp_path):
    Classifier(nfs=(8, 16, 32), nbks=(1, 1)).save_pretrained(tmp_path / "classifier")
    out = tmp_path / "results.json"
    main(["--data", str(tiny_imagenet), "--models", "--classifier", str(tmp_path / "classifier"), "--json", str(out)])
    scores = json.loads(out.read_text())["classifier"]
    assert scores["images"] == 12 and 0 <= scores["val_accuracy"] <= 1
    assert scores["checkpoint"] == str(tmp_path / "classifier")
