"""A training run's model card: the card `train.ship` writes for a run folder, with the Training
section read from the files the training loop left there (train_config.json, trainer_state.json,
metrics.jsonl)."""

import dataclasses
import json
from pathlib import Path

from restoration.hub.catalogue import ModelEntry, read_catalog
from restoration.models.checkpoint import CONFIG_NAME
from restoration.models.losses import parse_features
from restoration.settings import REPO
from train.cards import build_card, normalize_evaluation


def loss_description(train_config: dict) -> str:
    """The perceptual loss a run trained with, in words (runs before --features had one stage)."""
    spec = train_config.get("features") or f"{train_config.get('feature_stage')}:{train_config.get('feature_weight')}"
    terms = " + ".join(f"{w:g} × MSE of the features after stage {s}" for s, w in parse_features(spec).items())
    grain = train_config.get("grain") or 0
    return (f"MSE + {terms} of `{train_config['classifier']}`"
            + (" (both images blurred by a 3×3 binomial filter before it)" if train_config.get("antialias") else "")
            + (f" + {grain:g} × the high-frequency error where the original is flat" if grain else ""))


def _read_jsonl(file: Path):
    return [json.loads(line) for line in file.read_text().splitlines() if line.strip()] if file.is_file() else []


def _count_images(data) -> str:
    """How many training images --data holds (for a card written where the data is)."""
    from restoration.data.datasets import open_dataset

    try:
        return str(len(open_dataset(data, "train")))
    except (FileNotFoundError, OSError):
        return "all"


def training_markdown(run: Path, notes: str | None = None) -> str:
    """The card's "Training" and "Validation during training" sections, from the files the training
    loop wrote in the run folder."""
    train_config = json.loads((run / "train_config.json").read_text())
    state = json.loads((run / "trainer_state.json").read_text())
    epochs = [r for r in _read_jsonl(run / "metrics.jsonl") if "epoch" in r and "event" not in r]
    last = epochs[-1] if epochs else {}
    n_train = train_config.get("limit") or _count_images(train_config["data"])
    lines = ["## Training", "",
             f"- Data: `{train_config['data']}` (train split, {n_train} images; validation on "
             f"{train_config.get('val_limit') or train_config.get('limit') or 'all'} val images), {train_config['size']}×{train_config['size']} crops.",
             f"- Epochs: {state['epoch']} of {train_config['epochs']} ({state['global_step']} steps, batch size "
             f"{train_config['batch_size']} per process), AdamW one-cycle, max lr {train_config['lr']}, "
             f"weight decay {train_config['weight_decay']}.",
             f"- Wall time: {state['elapsed'] / 3600:.2f} h in all."]
    # The minutes ended the run, not --epochs (runs before --minutes recorded --schedule time).
    minutes = train_config.get("minutes") or (train_config.get("train_minutes")
                                              if train_config.get("schedule") == "time" else None)
    if minutes:
        photos = " (an epoch of photos is {} random crops)".format(train_config["crops_per_epoch"]) \
            if train_config.get("val_data") else ""
        flag = "--minutes" if train_config.get("minutes") else "--schedule time"
        lines[-2] = (f"- Steps: {state['global_step']} (batch size {train_config['batch_size']} per process), AdamW "
                     f"one-cycle spanning {minutes} minutes of training (`{flag}`)"
                     f"{photos}, max lr {train_config['lr']}, weight decay {train_config['weight_decay']}.")
    if train_config.get("val_data"):
        lines.insert(-1, f"- Validation: whole images of `{train_config['val_data']}` (never trained on).")
    if train_config.get("init"):
        lines.insert(-1, f"- All weights started from `{train_config['init']}` (fine-tuning).")
    if train_config.get("degradation") == "mix":
        lines.insert(-1, f"- Degradation `mix`: kernels lesson/bicubic/area/lanczos drawn {train_config.get('mix_weights')}, "
                         f"JPEG on {train_config.get('mix_jpeg')} of the inputs at qualities {train_config.get('mix_quality')}, "
                         f"noise on {train_config.get('mix_noise')}, blur before the downscale on {train_config.get('mix_blur')}.")
    if train_config.get("classifier") and train_config.get("init"):  # fine-tuned: the classifier is the loss only
        lines.append(f"- Loss: {loss_description(train_config)}; variant `{train_config.get('variant')}`.")
    elif "classifier" in train_config and train_config.get("classifier"):
        lines.append(f"- Encoder initialised from `{train_config['classifier']}`, frozen for "
                     f"{train_config.get('freeze_epochs')} epoch(s); variant `{train_config.get('variant')}`.")
    sessions = state.get("sessions", [])
    if sessions:
        lines += ["- Sessions (each command as run; `--resume` continues the same run):", ""]
        for s in sessions:
            lines.append(f"  - `{s['command']}` on {s['hardware']}, torch {s['torch']}, steps "
                         f"{s['start_step']}→{s.get('end_step', '?')}, {s.get('seconds', 0) / 60:.1f} min")
    if notes:
        lines += ["", notes]
    lines += ["", "Full training config (train_config.json):", "", "```json", json.dumps(train_config, indent=2),
              "```", ""]
    if last:
        shown = {k: v for k, v in last.items() if k.startswith("val_") or k in ("epoch", "train_loss")}
        lines += ["## Validation during training (last epoch, from metrics.jsonl)", "",
                  "| " + " | ".join(shown) + " |", "|" + "---|" * len(shown),
                  "| " + " | ".join(f"{v:.4f}" if isinstance(v, float) else str(v) for v in shown.values()) + " |", ""]
    return "\n".join(lines)


def model_card(run: Path, title: str, evaluation: dict | None = None, name: str | None = None,
               notes: str | None = None, weights: Path = REPO / "weights", folder: Path | None = None) -> str:
    """The README.md for a run folder: metadata and sections as `train.cards.build_card` writes them
    for the shipped models, with the training record from the run. `name` is the model's catalogue
    name (weights/models.json gives its role, repo and base model); `folder` is the shipped copy, if
    it differs from the run (float16 weights)."""
    config = json.loads((run / CONFIG_NAME).read_text())
    catalog = read_catalog(weights) if (weights / "models.json").is_file() else []
    name = name or run.name
    entry = next((e for e in catalog if e.name == name), None)
    if entry is None:
        role = "classifier" if config["model_type"] == "classifier" else "restorer"
        entry = ModelEntry(name, title, run.name, role)
    entry = dataclasses.replace(entry, title=title)
    space = json.loads((weights / "models.json").read_text()).get("space") if catalog else None
    card = build_card(folder or run, entry, catalog, normalize_evaluation(evaluation), training_markdown(run, notes),
                      space)
    return str(card)
