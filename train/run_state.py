"""A run's resumable state: `save_checkpoint` writes the model, AdamW's moments, the random-number
states and the trainer's counters into the run folder (safetensors and JSON, nothing pickled);
`load_checkpoint` puts them back for `--resume` (train/loop.py has the folder's layout)."""

import dataclasses
import json
import random
import time
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from restoration.models.auto import load_checkpoint as load_model


def save_checkpoint(folder: Path, model, opt, state: dict, config, generator: torch.Generator):
    """Write the whole run state; the model files last-but-one and trainer_state.json last, so
    a crash mid-save leaves the previous consistent state readable."""
    folder.mkdir(parents=True, exist_ok=True)
    tensors, groups = {}, []
    index = {p: i for i, p in enumerate(model.parameters())}
    for group in opt.param_groups:
        groups.append({k: v for k, v in group.items() if k != "params"} | {"params": [index[p] for p in group["params"]]})
        for p in group["params"]:
            for k, v in opt.state.get(p, {}).items():
                tensors[f"{index[p]}.{k}"] = v.detach().cpu().contiguous() if torch.is_tensor(v) else torch.tensor(v)
    save_file(tensors, folder / "optimizer.safetensors.tmp")
    (folder / "optimizer.safetensors.tmp").replace(folder / "optimizer.safetensors")
    rng = {"torch": torch.get_rng_state(), "generator": generator.get_state()}
    save_file(rng, folder / "rng.safetensors.tmp")
    (folder / "rng.safetensors.tmp").replace(folder / "rng.safetensors")
    model.save_pretrained(folder)
    (folder / "train_config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    state = state | {"param_groups": groups, "python_random": list(random.getstate()[1]), "saved": time.time()}
    (folder / "trainer_state.json.tmp").write_text(json.dumps(state, indent=2) + "\n")
    (folder / "trainer_state.json.tmp").replace(folder / "trainer_state.json")


def load_checkpoint(folder: Path, model, opt, generator: torch.Generator) -> dict:
    """Restore what `save_checkpoint` wrote into `model`, `opt` and the RNGs; returns the state."""
    state = json.loads((folder / "trainer_state.json").read_text())
    model.load_state_dict(load_model(folder).state_dict(), strict=True)
    params = list(model.parameters())
    tensors = load_file(folder / "optimizer.safetensors")
    for group, saved in zip(opt.param_groups, state["param_groups"]):
        group.update({k: v for k, v in saved.items() if k != "params"})
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        p = params[int(i)]
        opt.state[p][name] = v.to(p.device) if name != "step" else v
    rng = load_file(folder / "rng.safetensors")
    torch.set_rng_state(rng["torch"])
    generator.set_state(rng["generator"])
    random.setstate((3, tuple(state["python_random"]), None))
    return state
