"""The shipped models, and where each comes from.

`weights/models.json` lists them: name, title, role ("restorer" for the models the app compares,
"classifier" for the perceptual-loss network), the local folder, and the Hugging Face Hub repo
and pinned revision they are published at. Every checkpoint the app or the evaluation loads
comes through `load_model`.
"""

import dataclasses
import json
import re
from pathlib import Path

from restoration.checkpoint import CONFIG_NAME, WEIGHTS_NAME, CheckpointError, load_checkpoint

COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    folder: str
    role: str = "restorer"
    hub_repo: str | None = None
    revision: str | None = None  # a full commit hash: downloads are pinned, never "main"


@dataclasses.dataclass
class LoadedModel:
    entry: ModelEntry
    model: object
    source: str  # "local" or "hub"
    revision: str  # what was loaded: the Hub commit, or "local:<sha256 prefix of the weights>"
    note: str  # a line for people: where it came from, and why if not where asked
    hub_unreachable: bool = False


def read_catalog(weights_dir) -> list[ModelEntry]:
    file = Path(weights_dir) / "models.json"
    try:
        rows = json.loads(file.read_text())["models"]
        return [ModelEntry(**row) for row in rows]
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (it lists the shipped models)") from None
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{file}: not a valid model list ({type(e).__name__}: {e})") from None


def download_checkpoint(repo_id: str, revision: str | None, cache_dir=None) -> Path:
    """Fetch config.json and model.safetensors of a Hub repo at a pinned commit; returns the
    local folder. Honours HF_ENDPOINT (tests point it at a loopback server)."""
    from huggingface_hub import hf_hub_download

    if not revision or not COMMIT.match(revision):
        raise CheckpointError(f"{repo_id}: pin a revision (a 40-character commit hash), got {revision!r}")
    paths = [hf_hub_download(repo_id, name, revision=revision, cache_dir=cache_dir) for name in (CONFIG_NAME, WEIGHTS_NAME)]
    return Path(paths[0]).parent


def _fingerprint(folder: Path) -> str:
    import hashlib

    return "local:" + hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()[:12]


def load_model(entry: ModelEntry, weights_dir, source: str = "local", cache_dir=None,
               skip_hub: str | None = None) -> LoadedModel:
    """Load one catalogue entry. With source="hub", download at the pinned revision and fall
    back to the local copy (saying so in `note`) when that fails; `skip_hub` is a reason not to
    ask the Hub at all (it was unreachable for an earlier model)."""
    local = Path(weights_dir) / entry.folder
    if source == "hub" and skip_hub is None:
        try:
            folder = download_checkpoint(entry.hub_repo or "", entry.revision, cache_dir)
            model = load_checkpoint(folder)
            return LoadedModel(entry, model, "hub", entry.revision,
                               f"{entry.title}: Hugging Face Hub {entry.hub_repo} @ {entry.revision[:10]}")
        except Exception as e:  # noqa: BLE001 (any failure of the Hub path falls back to the shipped copy)
            from huggingface_hub.errors import LocalEntryNotFoundError

            reason = f"{type(e).__name__}: {str(e).splitlines()[0][:160]}"
            loaded = load_model(entry, weights_dir)
            loaded.note = f"{loaded.note} (the Hub was asked for but failed: {reason})"
            # huggingface_hub raises LocalEntryNotFoundError when it cannot reach the Hub at all
            loaded.hub_unreachable = isinstance(e, LocalEntryNotFoundError)
            return loaded
    model = load_checkpoint(local)
    note = f"{entry.title}: local {local}"
    if source == "hub" and skip_hub:
        note += f" (the Hub was not asked: {skip_hub})"
    return LoadedModel(entry, model, "local", _fingerprint(local), note)


def load_available_restorers(weights_dir, source: str = "local") -> tuple[list[LoadedModel], list[str]]:
    """The restorers that load, in catalogue order, and a line for each one that does not (the
    app serves the models it has, and says which are missing and why). Once the Hub proves
    unreachable, the remaining models are not fetched from it (each try costs ~20 s of retries)."""
    loaded, problems, skip_hub = [], [], None
    for entry in read_catalog(weights_dir):
        if entry.role != "restorer":
            continue
        try:
            model = load_model(entry, weights_dir, source, skip_hub=skip_hub)
        except (CheckpointError, OSError) as e:
            problems.append(f"{entry.title}: not loaded ({e})")
            continue
        loaded.append(model)
        if model.hub_unreachable:
            skip_hub = "it was unreachable for an earlier model"
    return loaded, problems
