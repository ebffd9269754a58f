import json

import pytest
import torch

from restoration.models.auto import MODEL_TYPES, AutoModel, load_checkpoint, verify_checkpoint
from restoration.models.checkpoint import CheckpointError, read_header
from restoration.models.classifier import Classifier
from restoration.models.unet import Autoencoder, UNet
from tests.support import TINY


def trained_a_little(model):
    """Give BatchNorm statistics and weights values that init would not produce."""
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.rand(4, 3, 32, 32)
    out = model(x)
    out.float().pow(2).mean().backward()
    opt.step()
    return model.eval()


@pytest.mark.parametrize("make", [lambda: Classifier(**TINY, n_classes=7), lambda: UNet(**TINY),
                                  lambda: UNet(**TINY, cross_conv=True), lambda: Autoencoder(**TINY)])
def test_round_trip_rebuilds_the_model_from_its_config(tmp_path, make):
    model = trained_a_little(make())
    model.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == model.model_type and config["nfs"] == [8, 16, 32]
    loaded = type(model).from_pretrained(tmp_path)
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert not loaded.training


def test_fp16_files_load_into_fp32_models(tmp_path):
    model = trained_a_little(UNet(**TINY))
    model.save_pretrained(tmp_path, dtype=torch.float16)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert next(loaded.parameters()).dtype == torch.float32
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        assert (model(x) - loaded(x)).abs().max() < 1e-2


def test_wrong_class_is_named(tmp_path):
    Classifier(**TINY).save_pretrained(tmp_path)
    with pytest.raises(CheckpointError, match="holds a 'classifier' model, not a UNet"):
        UNet.from_pretrained(tmp_path)


def test_truncated_weights_name_the_file(tmp_path):
    UNet(**TINY).save_pretrained(tmp_path)
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"model\.safetensors: not a readable safetensors file"):
        load_checkpoint(tmp_path)


def test_weights_that_do_not_match_the_config(tmp_path):
    UNet(**TINY).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"nfs": [8, 16, 48]}))
    with pytest.raises(CheckpointError, match="weights do not match config.json: .*wrong shapes"):
        load_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config | {"cross_conv": True}))
    with pytest.raises(CheckpointError, match="missing"):
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("text,message", [("{not json", "not valid JSON"), ('{"model_type": "gan"}', "model_type 'gan'"),
                                          ('{"model_type": "unet", "depth": 3}', "does not describe a UNet")])
def test_bad_configs(tmp_path, text, message):
    UNet(**TINY).save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load_checkpoint(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(CheckpointError, match="config.json: missing"):
        load_checkpoint(tmp_path)
    UNet(**TINY).save_pretrained(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="model.safetensors: missing"):
        load_checkpoint(tmp_path)


def test_a_hub_id_is_not_a_folder():
    with pytest.raises(CheckpointError, match="not a checkpoint folder.*restoration.hub.transfer.download_checkpoint"):
        UNet.from_pretrained("someone/some-unet")
    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        AutoModel.from_pretrained("someone/some-unet")


def test_the_table_names_every_model_class():
    assert {name: cls.__name__ for name, cls in MODEL_TYPES.items()} == {
        "classifier": "Classifier", "unet": "UNet", "autoencoder": "Autoencoder"}


def test_verify_reads_the_header_only_and_catches_what_load_would(tmp_path):
    model = UNet(**TINY)
    model.save_pretrained(tmp_path, dtype=torch.float16)
    assert verify_checkpoint(tmp_path)["model_type"] == "unet"
    header = read_header(tmp_path / "model.safetensors")
    assert header.keys() == model.state_dict().keys()
    assert all(dtype in ("F16", "I64") for dtype, _ in header.values())
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-1])  # one byte short: a cut-off download
    with pytest.raises(CheckpointError, match="truncated or padded"):
        verify_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"<html>Not found</html>")  # an error page saved as the file
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        verify_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(data)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps(config | {"nfs": [8, 16, 48]}))
    with pytest.raises(CheckpointError, match="weights do not match config.json: .*wrong shapes"):
        verify_checkpoint(tmp_path)
