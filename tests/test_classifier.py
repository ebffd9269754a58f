import pytest
import torch

from restoration.models.classifier import PRESETS, Classifier, top1_accuracy


def test_logits_and_features():
    model = Classifier(nfs=(8, 16, 32, 64), nbks=(1, 1, 1), n_classes=200).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model(x).shape == (2, 200)
    assert model.features(x, stage=3).shape == (2, 64, 8, 8)
    assert model.features(x, stage=1).shape == (2, 16, 32, 32)
    with pytest.raises(ValueError, match="stage must be in 1..3"):
        model.features(x, stage=4)


def test_preact_variant_runs_and_trains():
    model = Classifier(nfs=(8, 16, 32), nbks=(2, 1), preact=True, n_classes=10)
    logits = model(torch.rand(4, 3, 32, 32))
    logits.logsumexp(1).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_normalisation_lives_in_the_model():
    model = Classifier(nfs=(8, 16), nbks=(1,), mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    assert model.config["mean"] == [0.5, 0.5, 0.5]
    x = torch.full((1, 3, 4, 4), 0.75)
    assert torch.allclose(model.normalize(x), torch.ones_like(x))


def test_presets_have_the_lesson_shapes():
    assert PRESETS["lesson"]["nfs"] == (32, 64, 128, 256, 512, 1024)
    compact = Classifier(**PRESETS["compact"])
    assert sum(p.numel() for p in compact.parameters()) < 2.5e6


def test_top1_accuracy_counts_argmax_hits_and_keeps_the_mode():
    torch.manual_seed(0)
    model = Classifier(nfs=(8, 16, 32), nbks=(1, 1), n_classes=5)
    images = torch.randint(0, 256, (13, 3, 16, 16), dtype=torch.uint8)
    model.eval()
    with torch.inference_mode():
        predicted = model(images.float() / 255).argmax(1)
    labels = predicted.clone()
    labels[:4] = (labels[:4] + 1) % 5  # four wrong on purpose
    model.train()
    scores = top1_accuracy(model, images, labels, batch_size=5)
    assert scores["val_accuracy"] == pytest.approx(9 / 13) and scores["val_loss"] > 0
    assert model.training


def test_labels_live_in_the_config_and_name_the_top_class(tmp_path):
    from restoration.models.classifier import top_class

    labels = [f"thing {i}" for i in range(200)]
    model = Classifier(nfs=(8, 16, 32), nbks=(1, 1), labels=labels)
    model.save_pretrained(tmp_path / "c")
    loaded = Classifier.from_pretrained(tmp_path / "c")
    assert loaded.labels == labels
    name, prob = top_class(loaded, torch.rand(3, 90, 130))  # any size: resized and centre-cropped
    assert name in labels and 0 < prob <= 1
    assert top_class(Classifier(nfs=(8, 16, 32), nbks=(1, 1)), torch.rand(3, 64, 64))[0].startswith("class ")
    with pytest.raises(ValueError, match="3 labels for 200 classes"):
        Classifier(nfs=(8, 16, 32), nbks=(1, 1), labels=["a", "b", "c"])
