"""The training loop both scripts share: one-cycle AdamW, mixed precision on CUDA,
DistributedDataParallel under torchrun, a progress bar, a JSON-lines metrics log, a length in
epochs or minutes, and checkpoints that `--resume` continues from, mid-epoch included.

A run folder holds:
  config.json, model.safetensors   the model: `AutoModel.from_pretrained(run_folder)` loads it
  train_config.json                the script's dataclass config
  trainer_state.json               epoch, step, elapsed time, optimiser hyper-parameters
  optimizer.safetensors            AdamW's moments; rng.safetensors: random-number states
  metrics.jsonl                    one line per epoch (and one per stop)
Nothing is pickled.
"""

import dataclasses
import functools
import json
import math
import os
import random
import shlex
import signal
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from train.config import TrainConfig
from train.run_state import load_checkpoint, save_checkpoint
from train.schedule import Schedule


def memory_format(config: TrainConfig):
    return torch.channels_last if config.channels_last else torch.contiguous_format


# ---------------------------------------------------------------------------------------------
# Processes and devices


class Runtime:
    """Where this process trains: device, and its rank among torchrun's processes."""

    def __init__(self, device: str = "auto", threads: int | None = None):
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device is available")
        if threads is None and "OMP_NUM_THREADS" not in os.environ:  # torchrun sets it (1) for CPU runs
            from restoration.cpus import usable_cpus

            threads = max(1, usable_cpus() // int(os.environ.get("LOCAL_WORLD_SIZE", 1)))
        if threads:
            torch.set_num_threads(threads)
        self.world = int(os.environ.get("WORLD_SIZE", 1))
        self.rank = int(os.environ.get("RANK", 0))
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        if device == "cuda":
            torch.cuda.set_device(local_rank)
            self.device = torch.device("cuda", local_rank)
        else:
            self.device = torch.device("cpu")
        if self.world > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if device == "cuda" else "gloo")
        self.main = self.rank == 0

    def describe(self) -> str:
        """The hardware, for model cards: e.g. "1 × NVIDIA H100" or "CPU (AMD EPYC ..., 2 threads)"."""
        if self.device.type == "cuda":
            return f"{self.world} × {torch.cuda.get_device_name(self.device)}"
        cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name")), "unknown CPU") if Path("/proc/cpuinfo").exists() else "CPU"
        return f"{self.world} × CPU process ({cpu}, torch threads: {torch.get_num_threads()})"

    def autocast(self):
        """bf16 autocast on CUDA; a no-op context on the CPU."""
        return torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")

    def wrap(self, model):
        """DDP over the parameters that currently require grad (re-wrap after unfreezing)."""
        if self.world == 1:
            return model
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def barrier(self):
        if self.world > 1:
            dist.barrier()

    def close(self):
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def epoch_batches(n: int, batch_size: int, epoch: int, seed: int, rank: int = 0, world: int = 1):
    """This process's batches of indices for an epoch: a permutation fixed by (seed, epoch), so a
    resumed run sees the same order; every process gets the same number of full batches."""
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
    per_rank = (n // world) // batch_size * batch_size
    if per_rank == 0:
        raise SystemExit(f"{n} training images are too few for {world} process(es) × batch size {batch_size}")
    return list(perm[rank::world][:per_rank].split(batch_size))


# ---------------------------------------------------------------------------------------------
# The loop


class _StopRequest:
    """While active, SIGINT/SIGTERM ask for a clean stop at the next step boundary (and a
    checkpoint) instead of killing the run; a second Ctrl-C interrupts at once."""

    def __enter__(self):
        self.reason = None
        self.previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame):
        if self.reason:
            raise KeyboardInterrupt
        self.reason = signal.Signals(signum).name


def fit(*, model, loss_step, make_loader, n_train, validate, config, runtime: Runtime,
        generator: torch.Generator, command: str, on_epoch_start=None, bar_metrics=()):
    """Train `model` (the unwrapped module) for `config.epochs` or `config.minutes`. loss_step(module,
    batch) -> (loss, {name: tensor}); make_loader(index_batches) -> batches on the device; validate(model)
    -> {name: float}, on the main process after each epoch; on_epoch_start(epoch) may change which
    parameters train; command (the command line) goes on the model card. Returns "done" or why it stopped
    early (Ctrl-C or SIGTERM: saved for --resume)."""
    out = Path(config.out)
    if config.minutes and runtime.world > 1:
        raise SystemExit("--minutes runs in one process (each process would time itself differently)")
    opt = adamw(model, config)
    steps_per_epoch = len(epoch_batches(n_train, config.batch_size, 0, config.seed, runtime.rank, runtime.world))
    schedule = Schedule(config, start_state(out, config, runtime, model, opt, generator, steps_per_epoch),
                        steps_per_epoch)
    state = schedule.state
    if schedule.done():
        if runtime.main:
            print(f"{out} has finished its run; nothing to do (raise --epochs or --minutes to train on)")
        return "done"
    state["sessions"].append(session(command, runtime, state))
    clock = (time.time() - state["elapsed"], time.time())  # when the run and this session started
    save = functools.partial(save_run, out, model, opt, state, config, generator, runtime, clock)
    with _StopRequest() as stop:
        while not schedule.done():
            epoch, skip = state["epoch"], state["step_in_epoch"]
            if on_epoch_start:
                on_epoch_start(epoch)
            module = runtime.wrap(model)
            if config.compile:
                module = torch.compile(module)  # reuses the compiled code on re-wrapping; recompiles on unfreezing
            model.train()
            batches = epoch_batches(n_train, config.batch_size, epoch, config.seed, runtime.rank, runtime.world)
            bar = tqdm(total=len(batches), initial=skip, desc=schedule.label(epoch), disable=not runtime.main,
                       unit="batch", dynamic_ncols=True, mininterval=1)
            tally = EpochTally()
            step_start = tally.start
            for batch in make_loader(batches[skip:]):
                lr = schedule.lr()
                value, shown = train_step(module, batch, loss_step, opt, lr, runtime,
                                          f"{out} at step {state['global_step']}")
                step_start = schedule.count_step(step_start)
                tally.add(value, lr)
                bar.set_postfix(loss=f"{tally.mean_loss():.4f}", lr=f"{lr:.2e}",
                                **{k: f"{v.item():.3f}" for k, v in shown.items() if k in bar_metrics},
                                run_left=schedule.bar_left(epoch, len(batches) - state["step_in_epoch"],
                                                           tally.seconds() / tally.seen))
                bar.update()
                if schedule.done():
                    break  # the minutes are used up: validate and save as at an epoch's end
                if stop.reason:
                    bar.close()
                    return stop_run(save, f"stopped ({stop.reason})", out, runtime)
            bar.close()
            end_epoch(epoch, skip, tally, model, validate, schedule, config, runtime)
            save("checkpoint")
    return "done"


@dataclasses.dataclass
class EpochTally:
    """One epoch's running loss, steps and last learning rate since `start`: the bar's figures and
    the epoch's log line."""
    start: float = dataclasses.field(default_factory=time.time)
    loss_sum: float = 0.0
    seen: int = 0
    lr: float | None = None  # None until a step has run

    def add(self, loss: float, lr: float):
        self.loss_sum, self.seen, self.lr = self.loss_sum + loss, self.seen + 1, lr

    def mean_loss(self) -> float:
        return self.loss_sum / max(self.seen, 1)

    def seconds(self) -> float:
        return time.time() - self.start


def end_epoch(epoch: int, skip: int, tally: EpochTally, model, validate, schedule: "Schedule", config,
              runtime: Runtime):
    """After an epoch's steps (or the last of --minutes): validate, advance the state to the next
    epoch, time the epoch for the schedule's estimate, print and log the epoch's line."""
    train_seconds = tally.seconds()
    metrics = validate(model) if runtime.main else {}
    state = schedule.state
    state.update(epoch=config.epochs if schedule.done() and config.epochs else epoch + 1, step_in_epoch=0)
    if not skip:  # a whole epoch, so its time predicts the next ones
        schedule.epoch_seconds = tally.seconds()
    line = {"epoch": epoch + 1, "global_step": state["global_step"], "train_loss": tally.mean_loss(),
            "lr": tally.lr,
            "images_per_second": tally.seen * config.batch_size * runtime.world / max(train_seconds, 1e-9), **metrics}
    if runtime.main:
        left = schedule.after_epoch(epoch, tally.seconds())
        print("  ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in line.items())
              + (f"\n{left}" if left else ""))
    log(Path(config.out), runtime, line)


def stop_run(save, reason: str, out: Path, runtime: Runtime) -> str:
    """Ctrl-C or SIGTERM mid-epoch: save for --resume, say how to continue, and return why."""
    save(reason)
    if runtime.main:
        print(f"{reason}: saved {out}; continue with the same command and --resume")
    return reason


def save_run(out: Path, model, opt, state: dict, config, generator, runtime: Runtime, clock, reason: str):
    """Checkpoint the run (the main process writes; all wait), and log a stop that is not an epoch's end.
    `clock` is when the run (less earlier sessions' time) and this session started."""
    state["elapsed"] = time.time() - clock[0]
    state["sessions"][-1].update(seconds=round(time.time() - clock[1], 1), end_step=state["global_step"])
    if runtime.main:
        save_checkpoint(out, model, opt, state, config, generator)
    runtime.barrier()
    if reason != "checkpoint":
        log(out, runtime, {"event": reason, **{k: state[k] for k in ("epoch", "step_in_epoch", "global_step")},
                           "elapsed_s": round(state["elapsed"], 1)})


def adamw(model, config):
    """AdamW, with no weight decay on norms and biases."""
    decay = [p for p in model.parameters() if p.dim() > 1]
    no_decay = [p for p in model.parameters() if p.dim() <= 1]
    return torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                              {"params": no_decay, "weight_decay": 0.0}], lr=config.lr)


def train_step(module, batch, loss_step, opt, lr: float, runtime: Runtime, where: str):
    """One optimiser step at learning rate `lr`; returns the loss and the figures for the bar."""
    for group in opt.param_groups:
        group["lr"] = lr
    with runtime.autocast():
        loss, shown = loss_step(module, batch)
    value = loss.item()
    if not math.isfinite(value):
        raise SystemExit(f"the loss became {value} in {where}: lower --lr or check the data; "
                         "the last checkpoint is intact")
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return value, shown


def session(command: str, runtime: Runtime, state: dict) -> dict:
    """The record of one session (the first run or a --resume), for the model card."""
    return {"command": command, "hardware": runtime.describe(), "torch": torch.__version__,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"), "start_step": state["global_step"]}


def start_state(out: Path, config, runtime: Runtime, model, opt, generator, steps_per_epoch: int) -> dict:
    """The run's state: from --out's checkpoint with --resume (weights, optimiser, RNGs restored),
    fresh otherwise; refuses to start over a run by accident."""
    state = {"epoch": 0, "step_in_epoch": 0, "global_step": 0, "elapsed": 0.0, "train_seconds": 0.0, "sessions": []}
    if config.resume and (out / "trainer_state.json").is_file():
        state = state | load_checkpoint(out, model, opt, generator)
        if runtime.main:
            print(f"resuming {out} at epoch {state['epoch']}, step {state['step_in_epoch']}/{steps_per_epoch}")
    elif runtime.main and (out / "trainer_state.json").is_file():
        raise SystemExit(f"{out} already holds a run: pass --resume to continue it, or choose another --out")
    return state


def next_steps(out, reason: str, evaluate: str) -> str:
    """The last lines of a run: where the model is, how to evaluate it, and how to go on."""
    lines = [f"saved the model in {out}/ (config.json + model.safetensors)",
             f"evaluate it: {evaluate}"]
    if reason != "done":
        lines.append("continue training: the same command with --resume")
    return "\n".join(lines)


def command_line(module: str, argv=None) -> str:
    """How this run was started, as a shell command (for the model card)."""
    launcher = "python -m"
    if "LOCAL_WORLD_SIZE" in os.environ:
        launcher = f"torchrun --nproc_per_node {os.environ['LOCAL_WORLD_SIZE']} -m"
    return f"{launcher} {module} " + shlex.join(sys.argv[1:] if argv is None else argv)


def log(out: Path, runtime: Runtime, record: dict):
    if runtime.main:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "metrics.jsonl", "a") as f:
            f.write(json.dumps({"time": time.strftime("%Y-%m-%dT%H:%M:%S"), **record}) + "\n")


def seed_everything(seed: int, rank: int = 0) -> torch.Generator:
    """Seed Python and torch (different streams per rank for augmentation); returns the
    generator the batch augmentation draws from."""
    random.seed(seed + rank)
    torch.manual_seed(seed + rank)
    return torch.Generator().manual_seed(seed * 7919 + rank)


# ---------------------------------------------------------------------------------------------
# Data


def load_data(config: TrainConfig, runtime: Runtime, photos: bool = False):
    """The training and validation datasets, subset by --limit / --val-limit, and their uint8
    arrays (decoded once, kept in memory; batches are augmented on the device): `photos` keeps a folder's images at their own resolution
    (lists of tensors), otherwise they become thumbnails of --image-size. The main process builds
    the cache; the others wait."""
    from restoration.data.datasets import (
        ImageFolder,
        TinyImageNet,
        hold_out,
        load_cache,
        load_photos,
        open_dataset,
        subset,
    )

    if config.download and not Path(config.data).exists():
        from restoration.data.download import DownloadError

        if runtime.main:
            try:
                TinyImageNet.download(config.data)
            except DownloadError as e:
                raise SystemExit(str(e)) from None
        runtime.barrier()
    if not Path(config.data).exists():
        raise SystemExit(f"--data {config.data} does not exist: pass --download to fetch Tiny ImageNet (248 MB) "
                         "into it, or --data with your copy of Tiny ImageNet or any folder of images")
    dataset = open_dataset(config.data, "train")
    if isinstance(dataset, TinyImageNet):
        train = subset(dataset, config.limit, config.seed)
        val = subset(TinyImageNet(config.data, "val"), config.val_limit or config.limit, config.seed)
    elif config.val_data:
        if not Path(config.val_data).is_dir():
            raise SystemExit(f"--val-data {config.val_data}: no such folder")
        train, val = subset(dataset, config.limit, config.seed), subset(ImageFolder(config.val_data), config.val_limit, config.seed)
    else:  # a plain image folder has no val split: hold out 5%, never trained on
        train, val = hold_out(dataset, 0.05, config.seed)
        train, val = subset(train, config.limit, config.seed), subset(val, config.val_limit, config.seed)
    def cache(ds, desc=None):
        if photos:
            return load_photos(ds, config.cache_dir, desc=desc or "decoding photos")
        return load_cache(ds, config.image_size, config.cache_dir, desc=desc or "caching")

    if runtime.main:  # build once, on the main process
        caches = [cache(ds, f"caching {name}") for name, ds in (("train", train), ("val", val))]
    runtime.barrier()
    if not runtime.main:
        caches = [cache(ds) for ds in (train, val)]
    return train, val, caches
