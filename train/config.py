"""The options every training script has, and the command line built from a script's config
dataclass. No torch here: `python -m train.classifier --help` answers before torch is imported."""

import argparse
import dataclasses
import sys
import typing

from restoration.choices import PRESETS
from restoration.cli import parser as make_parser


@dataclasses.dataclass
class TrainConfig:
    """Options every training script has; each script's config extends it."""

    data: str = dataclasses.field(default="../shared/data/tiny-imagenet-200", metadata={
        "help": "Tiny ImageNet folder (with wnids.txt) or any folder of images"})
    val_data: str | None = dataclasses.field(default=None, metadata={
        "help": "a folder of validation images for a --data image folder (default: hold out 5%% of --data)"})
    out: str = dataclasses.field(default="runs/model", metadata={"help": "the run folder"})
    preset: str = dataclasses.field(default="compact", metadata={
        "choices": list(PRESETS), "help": "model size (restoration/models/classifier.py): compact and wide train on a CPU, lesson is the notebooks' size"})
    epochs: int | None = dataclasses.field(default=None, metadata={
        "help": "epochs to train; with --minutes alone, as many as the minutes allow (default: 5)"})
    minutes: float | None = dataclasses.field(default=None, metadata={
        "help": "train for this many minutes (validation excluded, every --resume counted) instead of "
                "--epochs: the one-cycle schedule spans them, so a run fits a fixed slot on a machine of "
                "unknown speed; with --epochs too, whichever ends first (default: none)"})
    batch_size: int = dataclasses.field(default=64, metadata={"help": "per process"})
    lr: float = dataclasses.field(default=2e-3, metadata={"help": "peak learning rate of the one-cycle schedule"})
    weight_decay: float = dataclasses.field(default=1e-5, metadata={"help": "AdamW's, on weights (not norms or biases)"})
    size: int = dataclasses.field(default=64, metadata={"help": "training crop size (pixels)"})
    image_size: int = dataclasses.field(default=64, metadata={
        "help": "the cache holds images at this size (Tiny ImageNet's own); crops of --size are taken from them"})
    device: str = dataclasses.field(default="auto", metadata={
        "choices": ["auto", "cpu", "cuda"], "help": "auto: CUDA when available"})
    limit: int | None = dataclasses.field(default=None, metadata={
        "help": "use N training images, a fixed random subset (smoke runs; default: all)"})
    val_limit: int | None = dataclasses.field(default=None, metadata={
        "help": "validate on N val images (default: all; with --limit, that many, so a smoke run stays short)"})
    resume: bool = dataclasses.field(default=False, metadata={"help": "continue the run in --out"})
    seed: int = dataclasses.field(default=0, metadata={"help": "fixes the subsets, the batch order and the augmentation"})
    cache_dir: str | None = dataclasses.field(default="cache", metadata={"help": "where the uint8 cache is kept"})
    download: bool = dataclasses.field(default=False, metadata={
        "help": "fetch Tiny ImageNet (HTTPS, 248 MB, checked) if --data is missing"})
    threads: int | None = dataclasses.field(default=None, metadata={
        "help": "CPU threads for torch (default: the CPUs this process may use, shared among torchrun's "
                "processes; OMP_NUM_THREADS when set)"})
    channels_last: bool = dataclasses.field(default=True, metadata={
        "help": "channels-last memory format (faster convolutions on CPU and CUDA)"})
    compile: bool = dataclasses.field(default=False, metadata={
        "help": "torch.compile the model for training (the first steps compile; measure with python -m bench.speed --train-only)"})

    default_epochs: typing.ClassVar[int] = 5
    # Flags of earlier versions: each now fails in one line that says what replaced it.
    retired: typing.ClassVar[dict] = {
        "--train-minutes": "--train-minutes is now --minutes",
        "--schedule": "--schedule is gone: --minutes M lays the schedule over M minutes of training, --epochs "
                      "over epochs",
        "--time-budget": "--time-budget is gone: stop a run with Ctrl-C or SIGTERM (e.g. `timeout 50m python -m "
                         "train.superres ...`), which saves it for --resume; --minutes sets how long the whole "
                         "run trains",
        "--loader": "--loader is gone: every run decodes its images once to uint8 and augments batches on the device",
        "--workers": "--workers is gone: every run decodes its images once to uint8 and augments batches on the device"}

    def __post_init__(self):
        if self.epochs is None and self.minutes is None:
            self.epochs = self.default_epochs


def parse_config(cls, argv=None, description=None, prog=None):
    """argparse over a dataclass: one --flag per field, its type from the annotation; a bool is
    --flag/--no-flag, or a lone --flag with metadata {"flag": True}. `prog` is the command as
    users type it (python -m train.superres); --help keeps `description` as written."""
    for arg in sys.argv[1:] if argv is None else argv:
        if arg.split("=", 1)[0] in cls.retired:
            raise SystemExit(cls.retired[arg.split("=", 1)[0]])
    parser = make_parser(prog, description)
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        kind = next((a for a in typing.get_args(kind) if a is not type(None)), kind)  # X | None → X
        flag = "--" + f.name.replace("_", "-")
        extra = dict(help=f.metadata.get("help"), default=f.default)
        if kind is bool and f.metadata.get("flag"):
            parser.add_argument(flag, action="store_true", **extra)
        elif kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, **extra)
        else:
            parser.add_argument(flag, type=kind, choices=f.metadata.get("choices"), **extra)
    return cls(**vars(parser.parse_args(argv)))
