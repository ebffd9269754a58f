"""Real, end-to-end smoke runs of the training scripts on a generated miniature Tiny ImageNet."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from restoration.models.auto import AutoModel
from restoration.models.classifier import PRESETS, Classifier
from restoration.models.unet import Autoencoder, UNet
from tests.support import TINY, free_port
from train import classifier as train_classifier
from train import superres as train_superres
from train.config import parse_config
from train.loop import epoch_batches
from train.run_card import loss_description
from train.schedule import one_cycle
from train.superres import SuperResConfig

REPO = Path(__file__).resolve().parent.parent


def common(data, out, cache):
    return ["--data", str(data), "--out", str(out), "--cache-dir", str(cache), "--batch-size", "16",
            "--epochs", "1", "--limit", "32", "--val-limit", "8", "--device", "cpu"]


def epochs_logged(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines() if '"event"' not in line]


@pytest.fixture(scope="module")
def classifier_run(tiny_imagenet, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "classifier"
    train_classifier.main(common(tiny_imagenet, out, out.parent / "cache"))
    return out


def test_classifier_smoke_run(classifier_run):
    files = {p.name for p in classifier_run.iterdir()}
    assert {"config.json", "model.safetensors", "train_config.json", "trainer_state.json", "optimizer.safetensors",
            "rng.safetensors", "metrics.jsonl"} <= files
    assert not any(p.suffix in (".pt", ".pth", ".pkl", ".ckpt") for p in classifier_run.iterdir())
    model = Classifier.from_pretrained(classifier_run)
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, 200)
    [line] = epochs_logged(classifier_run)
    assert line["epoch"] == 1 and 0 <= line["val_accuracy"] <= 1 and line["global_step"] == 2
    state = json.loads((classifier_run / "trainer_state.json").read_text())
    assert state["sessions"][0]["command"].startswith("python -m")
    assert json.loads((classifier_run / "train_config.json").read_text())["limit"] == 32


@pytest.mark.parametrize("variant", ["mse", "perceptual", "crossconv", "autoencoder"])
def test_superres_smoke_runs_load_and_restore(variant, classifier_run, tiny_imagenet, tmp_path):
    out = tmp_path / variant
    args = common(tiny_imagenet, out, tmp_path / "cache") + ["--variant", variant]
    if variant in ("perceptual", "crossconv"):
        args += ["--classifier", str(classifier_run)]
    train_superres.main(args)
    model = AutoModel.from_pretrained(out)
    assert isinstance(model, Autoencoder if variant == "autoencoder" else UNet)
    assert model.config.get("cross_conv", False) == (variant == "crossconv")
    x = torch.rand(1, 3, 48, 40)
    assert model.restore(x).shape == x.shape
    [line] = epochs_logged(out)
    assert {"val_loss", "val_mse", "val_psnr"} <= set(line)
    keys = list(line)  # bicubic's PSNR on the same val pairs beside the model's, then the gain
    assert keys[keys.index("val_psnr"):keys.index("val_psnr") + 3] == ["val_psnr", "val_psnr_bicubic", "val_psnr_gain"]
    assert 5 < line["val_psnr_bicubic"] < 60
    assert line["val_psnr_gain"] == pytest.approx(line["val_psnr"] - line["val_psnr_bicubic"])
    if variant in ("perceptual", "crossconv"):  # the encoder started as the classifier's, frozen for epoch 1
        classifier = Classifier.from_pretrained(classifier_run)
        for k, v in classifier.encoder.state_dict().items():
            assert torch.equal(model.encoder.state_dict()[k], v), k


def test_the_bicubic_baseline_is_measured_on_the_validation_pairs():
    """bicubic_psnr takes the pairs a run validates on (nearest ×2 inputs) and scores bicubic ×2 of
    their low-resolution images: the same figure as computing it from the originals directly."""
    from restoration.data.degrade import degrade, low_res, upscale_bicubic
    from restoration.data.metrics import psnr_from_mse
    from train.superres_parts import bicubic_psnr

    g = torch.Generator().manual_seed(0)
    figures = []
    for blur in (1, 4):  # smoother originals: bicubic does better, so the figure must follow the data
        hr = torch.nn.functional.avg_pool2d(torch.rand(6, 3, 64 * blur, 64 * blur, generator=g), blur)
        direct = psnr_from_mse((upscale_bicubic(low_res(hr, "lesson")) - hr).pow(2).mean().item())
        figures.append(bicubic_psnr(degrade(hr, "lesson"), hr, "cpu", batch_size=4))
        assert figures[-1] == pytest.approx(direct, abs=1e-4)
    assert figures[1] > figures[0] + 1


def test_perceptual_needs_a_classifier():
    with pytest.raises(SystemExit, match="needs --classifier"):
        parse_config(SuperResConfig, ["--variant", "perceptual"])


def test_crossconv_without_a_classifier_refuses_and_says_what_to_pass():
    with pytest.raises(SystemExit) as refused:
        parse_config(SuperResConfig, ["--variant", "crossconv", "--limit", "8", "--epochs", "1"])
    assert "--classifier weights/classifier" in str(refused.value) and "--no-classifier" in str(refused.value)
    config = parse_config(SuperResConfig, ["--variant", "crossconv", "--no-classifier"])
    assert config.no_classifier and config.classifier is None
    with pytest.raises(SystemExit, match="contradict"):
        parse_config(SuperResConfig, ["--variant", "crossconv", "--no-classifier", "--classifier", "runs/classifier"])
    with pytest.raises(SystemExit, match="needs --classifier"):  # no from-scratch perceptual loss exists
        parse_config(SuperResConfig, ["--variant", "perceptual", "--no-classifier"])


def test_from_scratch_crossconv_run_shows_the_estimate_and_a_validation_bar(tiny_imagenet, tmp_path, capsys):
    out = tmp_path / "scratch"
    args = common(tiny_imagenet, out, tmp_path / "cache") + ["--variant", "crossconv", "--no-classifier"]
    train_superres.main([*args[:args.index("--epochs")], "--epochs", "2", *args[args.index("--epochs") + 2:]])
    printed = capsys.readouterr()
    assert "loss MSE; encoder from scratch" in printed.out
    assert "about " in printed.out and " left: 1 epoch(s) × " in printed.out  # after epoch 1 of 2
    assert "run_left=" in printed.err and "validating" in printed.err  # the bars (tqdm writes to stderr)
    assert [line["epoch"] for line in epochs_logged(out)] == [1, 2]


def sigterm_after_first_step(monkeypatch):
    """SIGTERM to this process after the first optimiser step, as `timeout` or a scheduler sends it."""
    step = torch.optim.AdamW.step

    def step_then_stop(self, *args, **kwargs):
        result = step(self, *args, **kwargs)
        monkeypatch.setattr(torch.optim.AdamW, "step", step)
        os.kill(os.getpid(), signal.SIGTERM)
        return result

    monkeypatch.setattr(torch.optim.AdamW, "step", step_then_stop)


def test_a_stopped_run_saves_cleanly_and_resume_finishes_the_same_run(tiny_imagenet, tmp_path, monkeypatch):
    """A run stopped by SIGTERM and resumed ends with exactly the weights of a run that was never
    interrupted: same data order, same augmentation, same optimiser state."""
    straight, split = tmp_path / "straight", tmp_path / "split"
    ctrl_c = signal.getsignal(signal.SIGINT)  # Python's own, or ignored in a suite started with `&`
    base = common(tiny_imagenet, straight, tmp_path / "cache")
    base[base.index("--epochs") + 1] = "2"
    train_superres.main(base)
    args = [a if a != str(straight) else str(split) for a in base]
    sigterm_after_first_step(monkeypatch)
    train_superres.main(args)  # stops after its first step
    state = json.loads((split / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and state["epoch"] == 0
    assert signal.getsignal(signal.SIGINT) is ctrl_c  # Ctrl-C does what it did before the run
    with pytest.raises(SystemExit, match="--resume"):
        train_superres.main(args)  # never overwrites a run by accident
    train_superres.main(args + ["--resume"])
    state = json.loads((split / "trainer_state.json").read_text())
    assert state["epoch"] == 2 and state["global_step"] == 4 and len(state["sessions"]) == 2
    a, b = load_file(straight / "model.safetensors"), load_file(split / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k


def test_two_processes_with_gloo(tiny_imagenet, tmp_path):
    """torchrun with two CPU processes: DistributedDataParallel over the gloo backend."""
    out = tmp_path / "ddp"
    env = os.environ | {"OMP_NUM_THREADS": "1"}
    port = free_port()  # for the rendezvous
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(port),
           "-m", "train.superres", *common(tiny_imagenet, out, tmp_path / "cache"), "--batch-size", "8"]
    result = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "device cpu × 2" in result.stdout
    [line] = epochs_logged(out)
    assert line["global_step"] == 2  # 32 images / 2 processes / batch 8
    assert UNet.from_pretrained(out).restore(torch.rand(1, 3, 16, 16)).shape == (1, 3, 16, 16)


def test_epoch_batches_shard_and_repeat():
    a = epoch_batches(100, 10, epoch=3, seed=1, rank=0, world=2)
    b = epoch_batches(100, 10, epoch=3, seed=1, rank=1, world=2)
    assert len(a) == len(b) == 5
    seen = torch.cat(a + b)
    assert len(set(seen.tolist())) == 100
    assert all(torch.equal(x, y) for x, y in zip(a, epoch_batches(100, 10, epoch=3, seed=1, rank=0, world=2)))
    assert not torch.equal(a[0], epoch_batches(100, 10, epoch=4, seed=1)[0])


def test_one_cycle_schedule():
    lrs = [one_cycle(s, 100, 1.0) for s in range(101)]
    assert lrs[0] == pytest.approx(1 / 25) and max(lrs) == pytest.approx(1.0, abs=1e-3)
    assert lrs.index(max(lrs)) == 25 and lrs[-1] == pytest.approx(1e-4)


def test_parse_config_types_and_flags():
    config = parse_config(SuperResConfig, ["--variant", "crossconv", "--no-classifier", "--limit", "5", "--no-erase",
                                           "--lr", "0.01"])
    assert config.variant == "crossconv" and config.limit == 5 and config.erase is False and config.lr == 0.01
    assert config.out == "runs/unet-crossconv" and config.minutes is None and config.epochs == 5
    with pytest.raises(SystemExit):
        parse_config(SuperResConfig, ["--variant", "gan"])


def test_minutes_anneal_within_their_slot(tiny_imagenet, tmp_path):
    """--minutes: the one-cycle schedule spans those minutes of training; once they are used up the
    run validates, saves and counts as finished (a resume has nothing left to do). The flags of
    earlier versions fail in one line that names what replaced them."""
    out = tmp_path / "slot"
    args = common(tiny_imagenet, out, tmp_path / "cache")
    args[args.index("--epochs") + 1] = "50"
    train_superres.main(args + ["--minutes", "0.00001"])
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["global_step"] == 1 and state["epoch"] == 50
    [line] = epochs_logged(out)
    assert "val_psnr" in line
    assert train_superres.main(args + ["--minutes", "0.00001", "--resume"]) is None
    assert json.loads((out / "trainer_state.json").read_text())["global_step"] == 1
    with pytest.raises(SystemExit, match="--train-minutes"):
        train_superres.main(common(tiny_imagenet, tmp_path / "x", tmp_path / "cache") + ["--train-minutes", "1"])
    for old, new in (("--schedule", "--minutes"), ("--time-budget", "--resume"), ("--loader", "uint8"),
                     ("--workers=2", "uint8"), ("--feature-weight", "--features"), ("--feature-stage", "--features")):
        with pytest.raises(SystemExit, match=new):
            parse_config(SuperResConfig, [old, "x"])
    config = parse_config(SuperResConfig, ["--minutes", "3"])
    assert config.minutes == 3 and config.epochs is None  # no epoch cap unless --epochs is given too


def test_feature_options_are_checked_and_recorded(tiny_imagenet, tmp_path):
    """--features picks the classifier stages of the perceptual loss; --grain and --antialias are
    recorded with the run (the model card describes the loss from them)."""
    out = tmp_path / "perceptual"
    classifier = tmp_path / "classifier"
    Classifier(**PRESETS["compact"]).save_pretrained(classifier)
    train_superres.main(common(tiny_imagenet, out, tmp_path / "cache") + [
        "--variant", "perceptual", "--classifier", str(classifier), "--features", "1:1,3:0.1", "--grain", "0.5",
        "--antialias"])
    recorded = json.loads((out / "train_config.json").read_text())
    assert (recorded["features"], recorded["grain"], recorded["antialias"]) == ("1:1,3:0.1", 0.5, True)
    assert "1 × MSE of the features after stage 1 + 0.1 × MSE of the features after stage 3" in loss_description(recorded)
    assert "flat" in loss_description(recorded) and "binomial" in loss_description(recorded)
    for bad in ("3", "1:x", "1:-0.5"):
        with pytest.raises(SystemExit, match="--features"):
            parse_config(SuperResConfig, ["--features", bad])


def test_degradation_option(tiny_imagenet, tmp_path):
    out = tmp_path / "lesson"
    train_superres.main(common(tiny_imagenet, out, tmp_path / "cache") + ["--degradation", "jpeg80"])
    assert json.loads((out / "train_config.json").read_text())["degradation"] == "jpeg80"
    assert parse_config(SuperResConfig, []).degradation == "mix"  # what the shipped U-Nets train on
    with pytest.raises(SystemExit, match="unknown degradation"):
        parse_config(SuperResConfig, ["--degradation", "jpeg"])
    with pytest.raises(SystemExit, match="--loader is gone"):  # one data path: --soften always has the batch one
        parse_config(SuperResConfig, ["--soften", "0.5", "--loader", "workers"])


def test_an_image_folder_validates_on_held_out_images(tmp_path):
    """A plain folder has no val split: a seeded 5% is held out and never trained on."""
    from PIL import Image

    from restoration.data.datasets import ImageFolder
    from train.config import TrainConfig
    from train.loop import Runtime, load_data

    for i in range(40):
        Image.new("RGB", (64, 64), (i * 6, 100, 200 - i * 4)).save(tmp_path / f"{i:02d}.png")
    config = TrainConfig(data=str(tmp_path), cache_dir=str(tmp_path / "cache"))
    train, val, ((train_images, _), (val_images, _)) = load_data(config, Runtime("cpu"))
    assert len(train) == 38 and len(val) == 2 and len(train_images) == 38 and len(val_images) == 2
    train_colours = {tuple(img[:, 0, 0].tolist()) for img in train_images}
    assert not any(tuple(img[:, 0, 0].tolist()) in train_colours for img in val_images)
    folder = ImageFolder(tmp_path)
    assert {p for p, _ in folder.items} == {folder.items[i][0] for i in train.indices} | {folder.items[i][0] for i in val.indices}


def test_cuda_path_is_selected_when_a_gpu_is_there(monkeypatch):
    """No GPU here: check that auto picks CUDA when torch reports one, with bf16 autocast, and
    that the batch augmentation runs on whatever device the batch is on."""
    from restoration.data.datasets import BatchAugment
    from train.loop import Runtime

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda i: None)
    monkeypatch.setattr(torch, "autocast", lambda device_type, **kw: (device_type, kw))  # records its arguments
    runtime = Runtime("auto")
    assert runtime.device == torch.device("cuda", 0)
    assert runtime.autocast() == ("cuda", {"dtype": torch.bfloat16, "enabled": True})
    assert Runtime("cpu").autocast()[1]["enabled"] is False
    images = torch.randint(0, 255, (4, 3, 16, 16), dtype=torch.uint8)
    lr, hr = BatchAugment(16, torch.Generator().manual_seed(0)).sr_pairs(images, degradation="mix")
    assert lr.shape == hr.shape == (4, 3, 16, 16)


def test_init_fine_tunes_from_a_checkpoint_and_soften_runs(tiny_imagenet, tmp_path):
    start = tmp_path / "start"
    UNet(nfs=(16, 32, 64, 96, 192), nbks=(1, 1, 2, 2)).save_pretrained(start)  # the compact preset's shapes
    out = tmp_path / "tuned"
    train_superres.main(common(tiny_imagenet, out, tmp_path / "cache")
                        + ["--init", str(start), "--lr", "1e-9", "--soften", "0.5"])
    a, b = load_file(start / "model.safetensors"), load_file(out / "model.safetensors")
    assert [k for k in a if "running" not in k and "num_batches" not in k and not torch.allclose(a[k], b[k], atol=1e-4)] == []
    UNet(**TINY).save_pretrained(tmp_path / "other")
    with pytest.raises(SystemExit, match="config differs"):
        train_superres.main(common(tiny_imagenet, tmp_path / "x", tmp_path / "cache") + ["--init", str(tmp_path / "other")])


def test_speed_switches_parse():
    config = parse_config(SuperResConfig, [])
    assert config.channels_last and not config.compile
    config = parse_config(SuperResConfig, ["--no-channels-last", "--compile"])
    assert not config.channels_last and config.compile


def test_a_photo_run_trains_on_full_resolution_crops_and_ends_with_where_it_saved(tmp_path, capsys):
    """--data a folder of photos: crops at the photos' own resolution (not thumbnails), whole val
    photos scored by luma PSNR gain over bicubic, and last lines that say where the model is and how
    to evaluate it."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, sizes in (("train", [(120, 90), (90, 130), (200, 100)]), ("val", [(60, 50), (48, 64)])):
        (tmp_path / split).mkdir()
        for i, (w, h) in enumerate(sizes):
            coarse = Image.fromarray((rng.random((h // 6, w // 6, 3)) * 255).astype(np.uint8))
            coarse.resize((w, h), Image.Resampling.BICUBIC).save(tmp_path / split / f"{i}.png")
    out = tmp_path / "photo-mse"
    train_superres.main(["--data", str(tmp_path / "train"), "--val-data", str(tmp_path / "val"), "--out", str(out),
                         "--cache-dir", str(tmp_path / "cache"), "--batch-size", "4", "--size", "32", "--epochs", "1",
                         "--crops-per-epoch", "8", "--device", "cpu", "--no-erase", "--degradation", "mix",
                         "--mix-weights", "0,1,0,0", "--mix-quality", "70,80"])
    [line] = epochs_logged(out)
    assert line["global_step"] == 2  # 8 crops, 4 a batch
    assert {"val_bicubic_psnr_y", "val_bicubic_gain", "val_jpeg75_psnr_y", "val_jpeg75_gain"} <= set(line)
    for d in ("bicubic", "jpeg75"):  # bicubic's own figure beside the model's, and the gain between them
        assert line[f"val_{d}_gain"] == pytest.approx(line[f"val_{d}_psnr_y"] - line[f"val_{d}_psnr_y_bicubic"])
    last_lines = capsys.readouterr().out.strip().splitlines()[-2:]
    assert last_lines[0] == f"saved the model in {out}/ (config.json + model.safetensors)"
    assert last_lines[1].startswith(f"evaluate it: python -m restoration.inference.evaluate --models {out} --data {tmp_path / 'val'}")
    config = json.loads((out / "train_config.json").read_text())
    assert config["mix_weights"] == "0,1,0,0" and config["val_data"] == str(tmp_path / "val")


def test_a_stopped_run_says_how_to_resume(tiny_imagenet, tmp_path, capsys, monkeypatch):
    out = tmp_path / "stopped"
    sigterm_after_first_step(monkeypatch)
    train_superres.main(common(tiny_imagenet, out, tmp_path / "cache"))
    printed = capsys.readouterr().out.strip().splitlines()
    assert printed[-3].startswith(f"saved the model in {out}")
    assert "python -m restoration.inference.evaluate --models" in printed[-2] and "--resume" in printed[-1]


def test_mix_options_are_checked():
    for bad in (["--mix-quality", "90,50"], ["--mix-quality", "x"], ["--mix-weights", "1,1"],
                ["--mix-weights", "1,1,1,-1"]):
        with pytest.raises(SystemExit, match="--mix-quality takes lowest,highest"):
            parse_config(SuperResConfig, bad)
    config = parse_config(SuperResConfig, ["--mix-weights", "0.15,0.7,0.05,0.1", "--mix-jpeg", "0.5"])
    mix = config.mix_config()
    assert mix.kernel_weights == (0.15, 0.7, 0.05, 0.1) and mix.jpeg_p == 0.5 and mix.jpeg_quality == (60, 95)
