"""The one table of model types: which class a checkpoint's `model_type` names.

    from restoration.models.auto import AutoModel
    model = AutoModel.from_pretrained("weights/unet-mse")   # a UNet, weights loaded strictly

The model modules do not import this file (they name their type with `model_type=`); this file
imports them. That keeps the import graph a layering: checkpoint ← layers/classifier/unet ←
models ← hub ← weights.
"""

from pathlib import Path

from restoration.models.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    build,
    check_shapes,
    load_weights,
    read_config,
    read_header,
)
from restoration.models.classifier import Classifier
from restoration.models.unet import Autoencoder, UNet

MODEL_TYPES: dict[str, type] = {cls.model_type: cls for cls in (Classifier, UNet, Autoencoder)}


def model_class(config: dict, folder) -> type:
    kind = config.get("model_type")
    if kind not in MODEL_TYPES:
        raise CheckpointError(f"{Path(folder) / CONFIG_NAME}: model_type {kind!r} is not one of {sorted(MODEL_TYPES)}")
    return MODEL_TYPES[kind]


def build_from_config(folder):
    """The (untrained) model a checkpoint folder's config.json describes."""
    config = read_config(folder)
    return build(model_class(config, folder), {k: v for k, v in config.items() if k != "model_type"}, folder)


def load_checkpoint(folder, map_location="cpu"):
    """Rebuild the model a checkpoint folder describes and load its weights strictly."""
    folder = Path(folder)
    return load_weights(build_from_config(folder), folder, map_location)


def verify_checkpoint(folder) -> dict:
    """Check a folder before anything uses it: config.json names a known type with arguments it
    accepts, and model.safetensors's header parses, covers the file exactly and lists the tensors
    that model has, with their shapes. Reads no tensor data; returns the config."""
    folder = Path(folder)
    model = build_from_config(folder)
    header = read_header(folder / WEIGHTS_NAME)
    check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                 {k: shape for k, (_, shape) in header.items()}, folder / WEIGHTS_NAME)
    return read_config(folder)


class AutoModel:
    """`AutoModel.from_pretrained(folder)`: whatever model the folder holds."""

    @staticmethod
    def from_pretrained(folder, map_location="cpu"):
        if not Path(folder).is_dir():
            raise CheckpointError(f"{folder}: not a checkpoint folder (for a Hub repo, fetch it at a pinned "
                                  "revision with restoration.hub.transfer.download_checkpoint)")
        return load_checkpoint(folder, map_location)
