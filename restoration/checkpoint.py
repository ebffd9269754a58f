"""The checkpoint format: a folder with `config.json` (the constructor arguments, plus `model_type`)
and `model.safetensors` (the state dict). No pickles anywhere.

`Pretrained` is the mixin every model class uses (diffusers-style): `@capture_config` on the
constructor records its arguments as the model's config, `save_pretrained` writes the folder and
`from_pretrained` rebuilds the model from it with a strict key check. Fetching a folder from the
Hugging Face Hub lives in `weights.py`.
"""

import functools
import inspect
import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(ValueError):
    """A checkpoint folder that cannot be loaded; the message names the file and the problem."""


def capture_config(init):
    """Record the constructor's arguments (defaults included) as `self.config`."""
    signature = inspect.signature(init)

    @functools.wraps(init)
    def wrapper(self, *args, **kwargs):
        bound = signature.bind(self, *args, **kwargs)
        bound.apply_defaults()
        init(self, *args, **kwargs)
        self.config = json.loads(json.dumps({k: v for k, v in bound.arguments.items() if k != "self"}))

    return wrapper


class Pretrained:
    """Mixin for nn.Modules whose constructor is wrapped by `capture_config`."""

    model_types: dict[str, type] = {}
    model_type: str

    def __init_subclass__(cls, model_type: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if model_type:
            cls.model_type = model_type
            Pretrained.model_types[model_type] = cls

    def save_pretrained(self, folder, dtype: torch.dtype | None = None, metadata: dict | None = None):
        """Write config.json and model.safetensors; `dtype=torch.float16` halves the file."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {}
        for k, v in self.state_dict().items():
            v = v.detach().cpu()
            if dtype is not None and v.is_floating_point():
                v = v.to(dtype)
            state[k] = v.contiguous()
        # Write to temporary names, then rename: a crash mid-save never leaves a half checkpoint.
        tmp_weights, tmp_config = folder / (WEIGHTS_NAME + ".tmp"), folder / (CONFIG_NAME + ".tmp")
        save_file(state, tmp_weights, metadata={"format": "pt", **(metadata or {})})
        tmp_config.write_text(json.dumps({"model_type": self.model_type, **self.config}, indent=2) + "\n")
        tmp_weights.replace(folder / WEIGHTS_NAME)
        tmp_config.replace(folder / CONFIG_NAME)
        return folder

    @classmethod
    def from_pretrained(cls, folder_or_repo, revision: str | None = None, map_location="cpu"):
        """Load from a local folder, or from a Hub repo id at a pinned `revision`."""
        path = Path(folder_or_repo)
        if not path.is_dir():
            from restoration.weights import download_checkpoint  # the Hub is the exception, not the rule

            path = download_checkpoint(str(folder_or_repo), revision)
        model = load_checkpoint(path, map_location)
        if cls is not Pretrained and not isinstance(model, cls):
            raise CheckpointError(f"{path / CONFIG_NAME}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model


def read_config(folder) -> dict:
    file = Path(folder) / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (a checkpoint folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    try:
        config = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: not valid JSON ({e})") from None
    if not isinstance(config, dict) or config.get("model_type") not in Pretrained.model_types:
        kind = config.get("model_type") if isinstance(config, dict) else None
        raise CheckpointError(f"{file}: model_type {kind!r} is not one of {sorted(Pretrained.model_types)}")
    return config


def load_checkpoint(folder, map_location="cpu"):
    """Rebuild the model a checkpoint folder describes and load its weights strictly."""
    # Importing the model modules registers their model types (Pretrained.__init_subclass__).
    import restoration.classifier  # noqa: F401
    import restoration.unet  # noqa: F401

    folder = Path(folder)
    config = read_config(folder)
    cls = Pretrained.model_types[config.pop("model_type")]
    try:
        model = cls(**config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{folder / CONFIG_NAME}: does not describe a {cls.__name__} ({e})") from None
    file = folder / WEIGHTS_NAME
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    try:
        state = load_file(file, device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None
    expected = model.state_dict()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    wrong = [f"{k} {tuple(state[k].shape)} != {tuple(v.shape)}" for k, v in expected.items()
             if k in state and state[k].shape != v.shape]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"wrong shapes: {wrong[:3]}" if wrong else ""]
        raise CheckpointError(f"{file}: weights do not match {CONFIG_NAME}: " + "; ".join(p for p in parts if p))
    model.load_state_dict(state, strict=True)  # casts fp16 files to the model's fp32
    return model.eval()
