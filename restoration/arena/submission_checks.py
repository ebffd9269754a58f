"""What a submitted checkpoint must be before it runs in the arena, checked on a folder (downloaded,
or the submitter's own before uploading it): `check_checkpoint` gives the model and what was
measured, or raises `Refused`, one line naming the rule and the value that broke it.

A submission is `model.safetensors` and an optional `config.json`:
- with a config naming one of our restorer types (auto.py: the lesson's U-Net, the autoencoder),
  the model is ours: its arguments are bounded, and it is built first on the meta device (no
  memory), where its tensors' shapes are compared with the file's header and its FLOPs counted;
- without a config, or with `{"model_type": "spandrel"}`, it is a foreign architecture, detected
  from the tensors by spandrel's main package (foreign.py), and accepted only as an RGB image-to-
  image ×2 super-resolution model whose architecture's licence we know.

In order, each step before the next can cost anything: the header alone (strict: types, dtypes,
shapes, offsets tiling the file; file size and the values it holds within the limits), the config
(strict JSON, bounded arguments), the build (ours on the meta device; a foreign one under an
allocation cap), the cost (FLOPs per output megapixel, measured on a probe), then the weights
loaded strictly and the probe run: finite outputs, in range, the same twice.
"""

import copy
import dataclasses
import inspect
import math
from pathlib import Path

import torch

from restoration.data.degrade import upscale_nearest
from restoration.inference.windows import low_resolution_model
from restoration.models.auto import MODEL_TYPES
from restoration.models.checkpoint import (  # ours: built, compared, loaded
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    build,
    check_shapes,
    load_weights,
    read_config,
    read_header,
)
from restoration.models.foreign import MODEL_TYPE as FOREIGN
from restoration.models.foreign import BuildTooLarge, ForeignModel, ForeignModelError
from restoration.strict_json import one_line, shorten

RESTORER_TYPES = ("unet", "autoencoder")  # the table's types that restore images (not the classifiers)
ARCHITECTURES = {"unet": "U-Net", "autoencoder": "autoencoder"}  # how ours are named beside spandrel's
ALLOWED_FILES = {CONFIG_NAME, WEIGHTS_NAME, "README.md", ".gitattributes"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".npz", ".joblib")
RUN_FILES = ("metrics.jsonl", "train_config.json", "trainer_state.json")  # what says a folder is a training run
DTYPES = {"F32", "F16", "BF16", "I64"}  # I64: BatchNorm's num_batches_tracked, a transformer's position index
MEGAPIXEL = 1 << 20  # a 1024×1024 image
FLOP_SIDE = 128  # FLOPs are counted for an output of this square and scaled: the cost per pixel is constant
MAX_LINE = 300  # a refusal is one line of at most this many characters, whatever the input held


@dataclasses.dataclass(frozen=True)
class Rules:
    """What a submitted checkpoint may be. The FLOPs limit keeps Compare interactive on the 2 cores
    of a Space: the shipped U-Nets cost 163-214 GFLOPs per output megapixel, and the MSE U-Net
    restores a megapixel in under 2 s in fp32 on 2 cores (docs/speed.md); at the limit a model
    takes about 2.5 times as long, a transformer more (attention runs slower per FLOP)."""
    scale: int = 2
    max_width: int = 256  # ours: channels of any level (nfs)
    max_depth: int = 6  # ours: resolution levels (len(nfs))
    max_blocks: int = 4  # ours: ResBlocks per encoder stage (nbks)
    max_params: int = 8_000_000  # values in model.safetensors (weights and buffers)
    max_gflops: float = 400.0  # per output megapixel
    max_bytes: int = 40 << 20  # model.safetensors
    max_header_bytes: int = 1 << 20  # its header (a model of thousands of tensors needs a few hundred KB)
    max_config_bytes: int = 16 << 10
    output_range: tuple[float, float] = (-0.5, 1.5)  # the unclamped output on the probe (RGB in [0, 1])


RULES = Rules()


class Refused(CheckpointError):
    """A submission that breaks a rule; `str()` is one line of at most MAX_LINE characters: the
    rule, then the value that broke it."""

    def __init__(self, rule: str, detail: str):
        self.rule = rule
        super().__init__(shorten(f"{rule}: {one_line(detail, MAX_LINE)}", MAX_LINE))


def _local(error, folder: Path) -> str:
    """An error's message naming config.json, not this server's cache path."""
    return str(error).replace(f"{folder}/", "")


# -------------------------------------------------------------------------------------------- files


def check_files(files: dict[str, int], rules: Rules = RULES, where: str = "the repo"):
    """`files` (path → size: the repo at the commit, or a folder) holds our files and nothing we
    would not read."""
    for path in sorted(files):
        shown = shorten(repr(path), 80)
        if path.lower().endswith(PICKLE_SUFFIXES):
            raise Refused("no pickles", f"{where} holds {shown} (only {WEIGHTS_NAME} is loaded; pickles can run code)")
        if path not in ALLOWED_FILES:
            raise Refused("only our files", f"{where} holds {shown} (allowed: {', '.join(sorted(ALLOWED_FILES))})")
    if WEIGHTS_NAME not in files:
        raise Refused("checkpoint files", f"no {WEIGHTS_NAME} in {where}")
    if files[WEIGHTS_NAME] > rules.max_bytes:
        raise Refused("size", f"{WEIGHTS_NAME} is {files[WEIGHTS_NAME]:,} bytes (limit {rules.max_bytes:,})")
    if files.get(CONFIG_NAME, 0) > rules.max_config_bytes:
        raise Refused("size", f"{CONFIG_NAME} is {files[CONFIG_NAME]:,} bytes (limit {rules.max_config_bytes:,})")


def check_header(folder: Path, rules: Rules = RULES) -> dict[str, tuple[str, tuple[int, ...]]]:
    """model.safetensors's header alone (checkpoint.read_header, strict), its dtypes, the file's size
    and the values it holds: {name: (dtype, shape)}."""
    file = folder / WEIGHTS_NAME
    if file.stat().st_size > rules.max_bytes:
        raise Refused("size", f"{WEIGHTS_NAME} is {file.stat().st_size:,} bytes (limit {rules.max_bytes:,})")
    try:
        header = read_header(file, rules.max_header_bytes)
    except CheckpointError as e:
        raise Refused("header", _local(e, folder)) from None
    dtypes = {dtype for dtype, _ in header.values()}
    if dtypes - DTYPES:
        raise Refused("header", f"tensor dtypes {sorted(dtypes - DTYPES)} (allowed {sorted(DTYPES)})")
    values = sum(math.prod(shape) for _, shape in header.values())
    if values > rules.max_params:
        raise Refused("parameters", f"{values:,} values in {WEIGHTS_NAME} (limit {rules.max_params:,})")
    return header


def read_submitted_config(folder: Path, rules: Rules = RULES) -> dict | None:
    """config.json (strict_json through checkpoint.read_config), or None when there is none."""
    if not (folder / CONFIG_NAME).is_file():
        return None
    try:
        return read_config(folder, rules.max_config_bytes)
    except CheckpointError as e:
        raise Refused("config", _local(e, folder)) from None


# -------------------------------------------------------------------------------------------- our types


def _ints(config: dict, key: str) -> list[int]:
    value = config.get(key)
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Refused("config", f"{key} = {shorten(repr(value), 80)} is not a list of integers")
    return list(value)


def check_config(config: dict, rules: Rules = RULES):
    """The model's type and size arguments, before anything is built from them."""
    kind = config.get("model_type")
    if kind not in RESTORER_TYPES:
        known = f"of our table {sorted(MODEL_TYPES)}" if kind not in MODEL_TYPES else "a classifier, not a restorer"
        raise Refused("model type", f"{shorten(repr(kind), 60)} is not one of {', '.join(RESTORER_TYPES)} ({known}; "
                                    f"or {FOREIGN!r}, or no config.json, for a foreign architecture)")
    defaults = inspect.signature(MODEL_TYPES[kind]).parameters  # what an omitted argument is
    nfs = _ints(config, "nfs") if "nfs" in config else list(defaults["nfs"].default)
    nbks = _ints(config, "nbks") if "nbks" in config else list(defaults["nbks"].default)
    if not 2 <= len(nfs) <= rules.max_depth:
        raise Refused("depth", f"{len(nfs)} levels (nfs = {nfs}; allowed 2 to {rules.max_depth})")
    if max(nfs) > rules.max_width or min(nfs) < 1:
        raise Refused("width", f"nfs = {nfs} (each from 1 to {rules.max_width})")
    if len(nbks) != len(nfs) - 1 or max(nbks) > rules.max_blocks or min(nbks) < 1:
        raise Refused("blocks", f"nbks = {nbks} (one per level after the first, each from 1 to {rules.max_blocks})")


def check_ours(folder: Path, config: dict, header: dict, rules: Rules = RULES) -> tuple[torch.nn.Module, dict]:
    """One of our types: bounded, built on the meta device (its shapes against the header, its
    FLOPs), then for real and loaded strictly."""
    check_config(config, rules)
    kind = config["model_type"]
    arguments = {k: v for k, v in config.items() if k != "model_type"}
    try:
        with torch.device("meta"):
            dry = build(MODEL_TYPES[kind], arguments, folder)
        gflops = gflops_per_megapixel(dry)
    except CheckpointError as e:
        raise Refused("config", _local(e, folder)) from None
    except Exception as e:  # noqa: BLE001 (e.g. a mean of two channels: built, but it cannot run on RGB)
        raise Refused("config", f"the model it describes does not run ({type(e).__name__}: {one_line(e, 200)})") \
            from None
    try:
        check_shapes({k: tuple(v.shape) for k, v in dry.state_dict().items()},
                     {k: shape for k, (_, shape) in header.items()}, WEIGHTS_NAME)
    except CheckpointError as e:
        raise Refused("header", str(e)) from None
    facts = {"model_type": kind, "architecture": ARCHITECTURES[kind], "licence": None, "scale": 2,
             "input": "the ×2 nearest upscale", "params": sum(math.prod(s) for _, s in header.values()),
             "gflops_per_megapixel": round(gflops, 3), "bytes": (folder / WEIGHTS_NAME).stat().st_size}
    check_cost(facts, rules)
    model = build(MODEL_TYPES[kind], arguments, folder)
    try:
        load_weights(model, folder)
    except (CheckpointError, RuntimeError) as e:
        raise Refused("strict load", _local(e, folder)) from None
    return model, facts


# -------------------------------------------------------------------------------------------- foreign ones


def check_foreign(folder: Path, config: dict | None, header: dict, rules: Rules = RULES) -> tuple[ForeignModel, dict]:
    """A foreign architecture: detected and built by spandrel's main package (foreign.py, under its
    allocation cap), then accepted only as an RGB ×2 super-resolution model of a known licence."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    extra = sorted(set(config or {}) - {"model_type", "architecture"})
    if extra:
        raise Refused("config", f"a foreign model's {CONFIG_NAME} holds model_type and architecture only "
                                f"(it has {shorten(', '.join(extra), 80)})")
    try:
        state = load_file(folder / WEIGHTS_NAME)  # tensors only: its header passed check_header
    except (SafetensorError, OSError, ValueError) as e:
        raise Refused("header", f"{WEIGHTS_NAME} does not load ({one_line(e, 120)})") from None
    try:
        model = ForeignModel.from_state_dict(state)
    except BuildTooLarge as e:
        raise Refused("build size", str(e)) from None
    except ForeignModelError as e:
        raise Refused("architecture", str(e)) from None
    del state
    named = (config or {}).get("architecture")
    if named is not None and named != model.architecture_id:
        raise Refused("architecture", f"{CONFIG_NAME} says {shorten(repr(named), 40)}, the tensors are "
                                      f"{model.architecture_id}'s")
    what = f"{model.architecture} ({', '.join(model.tags) or 'no tags'})"
    if model.purpose != "SR":
        raise Refused("task", f"{what} is a {model.purpose} model (×{model.scale}), not super-resolution")
    if model.scale != rules.scale:
        raise Refused("scale", f"{what} upscales ×{model.scale}; the arena compares ×{rules.scale} models")
    if (model.in_channels, model.out_channels) != (3, 3):
        raise Refused("channels", f"{what} takes {model.in_channels} and gives {model.out_channels} channels "
                                  "(RGB: 3 and 3)")
    if model.licence == "unknown":
        raise Refused("licence", f"no licence known for {model.architecture_id}'s code (foreign.LICENCES)")
    facts = {"model_type": FOREIGN, "architecture": model.architecture, "architecture_id": model.architecture_id,
             "licence": model.licence, "tags": model.tags, "scale": model.scale, "input": "the low-resolution image",
             "params": sum(math.prod(s) for _, s in header.values()),
             "gflops_per_megapixel": round(gflops_per_megapixel(model), 3),
             "bytes": (folder / WEIGHTS_NAME).stat().st_size}
    check_cost(facts, rules)
    return model, facts


# -------------------------------------------------------------------------------------------- cost and probe


def gflops_per_megapixel(model) -> float:
    """GFLOPs per output megapixel (torch's FLOP counter: convolutions and matrix products), counted
    for a FLOP_SIDE² output and scaled. On the meta device when the model runs there (nothing is
    computed); otherwise on a zero image of that size."""
    runner = low_resolution_model(model)
    try:
        meta = runner if next(runner.parameters()).is_meta else copy.deepcopy(runner).to("meta")
        return _counted(meta, "meta")
    except Exception:  # noqa: BLE001 (a model that reads values back, or keeps tensors outside its buffers)
        return _counted(runner, "cpu")


def _counted(runner, device: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    low = torch.zeros(1, 3, FLOP_SIDE // runner.scale, FLOP_SIDE // runner.scale, device=device)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        runner.eval().restore(low)
    return counter.get_total_flops() * MEGAPIXEL / FLOP_SIDE ** 2 / 1e9


def check_cost(facts: dict, rules: Rules = RULES):
    if facts["gflops_per_megapixel"] > rules.max_gflops:
        raise Refused("FLOPs", f"{facts['gflops_per_megapixel']:.0f} GFLOPs per output megapixel (limit "
                               f"{rules.max_gflops:.0f}: Compare must stay interactive on 2 cores)")


def probe_image() -> torch.Tensor:
    """A fixed low-resolution input (1, 3, 20, 28): smooth colour plus detail, sides that are no
    multiple of any stride (the padding path runs too)."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 3, 4, generator=g), size=(20, 28), mode="bilinear")
    return (smooth + 0.05 * torch.randn(1, 3, 20, 28, generator=g)).clamp(0, 1)


def probe_model(model, rules: Rules = RULES):
    """The model's unclamped output on the probe: twice its size, finite, in range, the same twice."""
    low = probe_image()
    run = (lambda x: model(x)) if getattr(model, "takes_low_resolution", False) else \
        (lambda x: model(upscale_nearest(x)))
    try:
        with torch.inference_mode():
            first, second = run(low), run(low)
    except Exception as e:  # noqa: BLE001 (any failure of the model's code on an image: one line)
        raise Refused("probe", f"the model fails on the probe image ({type(e).__name__}: {one_line(e, 200)})") \
            from None
    expected = (1, 3, low.shape[-2] * rules.scale, low.shape[-1] * rules.scale)
    if not isinstance(first, torch.Tensor) or tuple(first.shape) != expected:
        raise Refused("output shape", f"{tuple(getattr(first, 'shape', ()))} for input {tuple(low.shape)} "
                                      f"(expected {expected})")
    bad = (~torch.isfinite(first)).sum().item()
    if bad:
        raise Refused("finite outputs", f"{bad} of {first.numel()} output values on the probe image are NaN or "
                                        "infinite")
    lo, hi = first.min().item(), first.max().item()
    if lo < rules.output_range[0] or hi > rules.output_range[1]:
        raise Refused("output range", f"[{lo:.3g}, {hi:.3g}] on the probe image (allowed {list(rules.output_range)})")
    if not torch.equal(first, second):
        raise Refused("deterministic", f"two runs on the probe image differ by up to "
                                       f"{(first - second).abs().max():.3g}")


def summary(facts: dict) -> str:
    """What was measured, for people: "SPAN ×2 (code: Apache-2.0; takes the low-resolution image),
    0.41 M values, 93 GFLOPs per output megapixel, 1.6 MB"."""
    licence = f"code: {facts['licence']}; " if facts.get("licence") else ""
    values = f"{facts['params'] / 1e6:.2f} M" if facts["params"] >= 100_000 else f"{facts['params']:,}"
    return (f"{facts.get('architecture', 'U-Net')} ×{facts.get('scale', 2)} ({licence}takes "
            f"{facts.get('input', 'the ×2 nearest upscale')}), {values} values, "
            f"{facts['gflops_per_megapixel']:.0f} GFLOPs per output megapixel, {facts['bytes'] / 1e6:.1f} MB")


# -------------------------------------------------------------------------------------------- a folder


def check_checkpoint(folder, rules: Rules = RULES) -> tuple[torch.nn.Module, dict]:
    """(the model, what was measured) of a folder holding model.safetensors and maybe config.json,
    every check passed in order: header, config, build, cost, strict load, probe."""
    folder = Path(folder)
    header = check_header(folder, rules)
    config = read_submitted_config(folder, rules)
    if config is None or config.get("model_type") == FOREIGN:
        model, facts = check_foreign(folder, config, header, rules)
    else:
        model, facts = check_ours(folder, config, header, rules)
    probe_model(model.eval(), rules)
    return model.eval(), facts


def check_folder(folder, rules: Rules = RULES) -> dict:
    """A local folder checked as a submission of it would be (its files, then `check_checkpoint`),
    before it is uploaded: what was measured, or `Refused`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Refused("checkpoint files", f"{folder} is not a folder")
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    run = sorted(set(files) & set(RUN_FILES))
    if run:
        raise Refused("only our files", f"{folder} is a training run's folder (it holds {run[0]}): ship it first, "
                                        f"python -m train.ship {folder} --title TITLE --to FOLDER, then check FOLDER")
    check_files(files, rules, where="the folder")
    return check_checkpoint(folder, rules)[1]
