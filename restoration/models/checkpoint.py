"""The checkpoint format: a folder with `config.json` (the constructor arguments, plus `model_type`)
and `model.safetensors` (the state dict). No pickles anywhere.

`Pretrained` is the mixin every model class uses (diffusers-style): `@capture_config` on the
constructor records its arguments as the model's config, `save_pretrained` writes the folder and
`from_pretrained` rebuilds the model from it with a strict key check.

This module is the bottom of the import graph: it knows the format, not the model types. Loading
a folder whose type is not known in advance is `restoration.models.auto.load_checkpoint`; fetching a
folder from the Hugging Face Hub is `restoration.hub.transfer`.
"""

import functools
import inspect
import json
import math
import struct
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from restoration import strict_json
from restoration.models.errors import CheckpointError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MAX_HEADER_BYTES = 16 << 20  # a safetensors header this large is not one of ours
MAX_CONFIG_BYTES = 1 << 20  # nor a config.json this large
MAX_RANK = 8  # dimensions of a tensor
# The safetensors dtypes we read (its F8 and unsigned wide types are none of ours): bytes per value.
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}


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
    """Mixin for nn.Modules whose constructor is wrapped by `capture_config`. A subclass names its
    type once, `class UNet(..., model_type="unet")`; `restoration.models.auto` maps names to classes."""

    model_type: str

    def __init_subclass__(cls, model_type: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if model_type:
            cls.model_type = model_type

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
    def from_pretrained(cls, folder, map_location="cpu"):
        """Load a checkpoint folder holding this class (for any class: `restoration.models.auto.AutoModel`;
        from the Hub: `restoration.hub.transfer.download_checkpoint` first)."""
        path = Path(folder)
        if not path.is_dir():
            raise CheckpointError(f"{folder}: not a checkpoint folder (for a Hub repo, fetch it at a pinned "
                                  "revision with restoration.hub.transfer.download_checkpoint)")
        config = read_config(path)
        kind = config.pop("model_type")
        if kind != getattr(cls, "model_type", None):
            raise CheckpointError(f"{path / CONFIG_NAME}: holds a {kind!r} model, not a {cls.__name__}")
        return load_weights(build(cls, config, path), path, map_location)


def read_config(folder, max_bytes: int = MAX_CONFIG_BYTES) -> dict:
    """config.json as a dict with a string `model_type` (which types exist is `restoration.models.auto`),
    read strictly (strict_json: bounded size, depth and numbers)."""
    file = Path(folder) / CONFIG_NAME
    if not file.is_file():
        raise CheckpointError(f"{file}: missing (a checkpoint folder holds {CONFIG_NAME} and {WEIGHTS_NAME})")
    if file.stat().st_size > max_bytes:
        raise CheckpointError(f"{file}: {file.stat().st_size:,} bytes (limit {max_bytes:,})")
    try:
        config = strict_json.loads(file.read_bytes(), "its text", max_bytes, max_depth=4)
    except strict_json.UntrustedJSON as e:
        raise CheckpointError(f"{file}: not a model config ({e})") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_type"), str):
        raise CheckpointError(f"{file}: not a model config (no model_type)")
    return config


def build(cls, config: dict, folder):
    """`cls(**config)`, with an error naming the config file when the arguments do not fit."""
    try:
        return cls(**config)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{Path(folder) / CONFIG_NAME}: does not describe a {cls.__name__} ({e})") from None


def read_header(file, max_bytes: int = MAX_HEADER_BYTES) -> dict[str, tuple[str, tuple[int, ...]]]:
    """{tensor name: (dtype, shape)} from a safetensors file's header, without reading the tensors.
    The header is untrusted bytes, read strictly (strict_json) and checked entry by entry: an object
    of name → {dtype, shape, data_offsets} (and text → text `__metadata__`), known dtypes, each
    tensor's bytes its shape's, the tensors tiling the rest of the file exactly (what a truncated,
    padded or lying file breaks)."""
    file = Path(file)
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    size = file.stat().st_size
    with open(file, "rb") as f:
        prefix = f.read(8)
        n = struct.unpack("<Q", prefix)[0] if len(prefix) == 8 else -1
        if not 0 < n <= min(max_bytes, size - 8):
            raise CheckpointError(f"{file}: not a safetensors file (header length {n:,}, file size {size:,}, "
                                  f"header limit {max_bytes:,})")
        try:
            header = strict_json.loads(f.read(n), "its header", n, max_depth=3)
        except strict_json.UntrustedJSON as e:
            raise CheckpointError(f"{file}: not a safetensors file ({e})") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{file}: not a safetensors file (its header is a {type(header).__name__}, "
                              "not an object)")
    tensors, spans = {}, []
    for name, info in header.items():
        if name == "__metadata__":
            if not isinstance(info, dict) or not all(isinstance(v, str) for v in info.values()):
                raise CheckpointError(f"{file}: not a safetensors file (its __metadata__ is not text → text)")
            continue
        dtype, shape, (start, stop) = _tensor_entry(file, name, info)
        tensors[name] = (dtype, shape)
        spans.append((start, stop, name))
    end = 0
    for start, stop, name in sorted(spans):
        if start != end:
            raise CheckpointError(f"{file}: not a safetensors file (tensor {strict_json.shorten(name, 80)!r} starts at "
                                  f"byte {start:,} of the data, not {end:,}: the tensors must tile it)")
        end = stop
    if 8 + n + end != size:
        raise CheckpointError(f"{file}: {size:,} bytes, but its header describes {8 + n + end:,} (truncated or padded)")
    return tensors


def _tensor_entry(file, name: str, info) -> tuple[str, tuple[int, ...], tuple[int, int]]:
    """(dtype, shape, (start, stop)) of one header entry, or CheckpointError saying what is wrong."""
    def bad(why: str) -> CheckpointError:
        return CheckpointError(f"{file}: not a safetensors file (tensor {strict_json.shorten(name, 80)!r}: {why})")

    if not isinstance(info, dict) or set(info) != {"dtype", "shape", "data_offsets"}:
        raise bad("not an object of dtype, shape and data_offsets")
    dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
    if not isinstance(dtype, str) or dtype not in DTYPE_BYTES:
        raise bad(f"dtype {strict_json.shorten(repr(dtype), 40)} is not one of {', '.join(DTYPE_BYTES)}")
    if not isinstance(shape, list) or len(shape) > MAX_RANK or not all(_count(d) for d in shape):
        raise bad(f"shape is not a list of at most {MAX_RANK} sizes")
    if not isinstance(offsets, list) or len(offsets) != 2 or not all(_count(o) for o in offsets) \
            or offsets[0] > offsets[1]:
        raise bad("data_offsets is not [start, stop]")
    if offsets[1] - offsets[0] != math.prod(shape) * DTYPE_BYTES[dtype]:
        raise bad(f"{offsets[1] - offsets[0]:,} bytes for a {dtype} tensor of shape {shape}")
    return dtype, tuple(shape), (offsets[0], offsets[1])


def _count(value) -> bool:
    """A non-negative JSON integer (not a bool, which Python counts as an int)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_shapes(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], file):
    """Raise unless `found` has exactly the tensors of `expected`, with the same shapes."""
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    wrong = [f"{k} {tuple(found[k])} != {tuple(v)}" for k, v in expected.items()
             if k in found and tuple(found[k]) != tuple(v)]
    if missing or unexpected or wrong:
        parts = [f"{len(missing)} missing (e.g. {missing[:3]})" if missing else "",
                 f"{len(unexpected)} unexpected (e.g. {unexpected[:3]})" if unexpected else "",
                 f"wrong shapes: {wrong[:3]}" if wrong else ""]
        raise CheckpointError(f"{file}: weights do not match {CONFIG_NAME}: " + "; ".join(p for p in parts if p))


def load_weights(model, folder, map_location="cpu"):
    """Load `folder`'s model.safetensors into `model` strictly (every key, every shape)."""
    file = Path(folder) / WEIGHTS_NAME
    if not file.is_file():
        raise CheckpointError(f"{file}: missing")
    try:
        state = load_file(file, device=str(map_location))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: not a readable safetensors file ({e})") from None
    check_shapes({k: tuple(v.shape) for k, v in model.state_dict().items()},
                 {k: tuple(v.shape) for k, v in state.items()}, file)
    model.load_state_dict(state, strict=True)  # casts fp16 files to the model's fp32
    return model.eval()
