"""The shipped models, and where each comes from.

`weights/models.json` lists them: name, title, role ("restorer" for the models the app compares,
"classifier" for the perceptual-loss network, "fidelity" for the fidelity classifier that scores
restorations), the local folder, and the Hugging Face Hub repo and pinned revision they are published at. Each
restorer belongs to a family (`FAMILIES`): what it was trained on, so what it is good for. Every
checkpoint the app or the evaluation loads comes through `load_model`. Reading and writing the
file is `catalogue_file` (free of torch, for the commands' `--help`); its names are re-exported here.
"""

import dataclasses
import hashlib
from pathlib import Path

from restoration.choices import FAMILIES
from restoration.hub.catalogue_file import COMMIT, ModelEntry, pin_revisions, read_catalog, space_of, write_catalog
from restoration.hub.transfer import HubUnreachable, NotPublished, download_checkpoint
from restoration.models.auto import load_checkpoint
from restoration.models.checkpoint import WEIGHTS_NAME, CheckpointError

__all__ = ["COMMIT", "FAMILIES", "LoadedModel", "ModelEntry", "by_family", "contenders_of", "load_available_restorers",
           "load_model", "pin_revisions", "read_catalog", "space_of", "write_catalog"]

# Why a model asked for from the Hub is served from the local copy (what the page says).
NOT_PUBLISHED, UNREACHABLE, HUB_FAILED, NOT_ASKED = ("not published yet", "the Hub is unreachable",
                                                     "the Hub failed", "the Hub was not asked")


@dataclasses.dataclass
class LoadedModel:
    entry: ModelEntry
    model: object
    source: str  # "local" or "hub"
    revision: str  # what was loaded: the Hub commit, or "local:<sha256 prefix of the weights>"
    note: str  # a line for people: where it came from, and why if not where asked
    fallback: str | None = None  # asked for the Hub but served locally: NOT_PUBLISHED, UNREACHABLE, ...


def by_family(models) -> dict[str, list]:
    """family → its `LoadedModel`s (catalogue order), families in the order of `FAMILIES`."""
    groups = {f: [m for m in models if m.entry.family == f] for f in FAMILIES}
    return {f: ms for f, ms in groups.items() if ms}


def contenders_of(models) -> list:
    """The `LoadedModel`s that join the Judge's contenders and the leaderboard: ours, and community
    models once approved (a pending one is only in Compare, marked unreviewed)."""
    return [m for m in models if m.entry.community in (None, "approved")]


def _fingerprint(folder: Path) -> str:
    return "local:" + hashlib.sha256((folder / WEIGHTS_NAME).read_bytes()).hexdigest()[:12]


def load_model(entry: ModelEntry, weights_dir, source: str = "local", cache_dir=None,
               skip_hub: str | None = None) -> LoadedModel:
    """Load one catalogue entry. With source="hub", download at the pinned revision and fall
    back to the local copy (saying why in `note` and `fallback`) when that fails; `skip_hub` is a
    reason not to ask the Hub at all (it was unreachable for an earlier model)."""
    if source == "hub" and skip_hub is None:
        try:
            folder = download_checkpoint(entry.hub_repo or "", entry.revision, cache_dir)
            model = load_checkpoint(folder)
            return LoadedModel(entry, model, "hub", entry.revision,
                               f"{entry.title}: Hugging Face Hub {entry.hub_repo} @ {entry.revision[:10]}")
        except Exception as e:  # noqa: BLE001 (any failure of the Hub path falls back to the shipped copy)
            why = (NOT_PUBLISHED if isinstance(e, NotPublished) else UNREACHABLE if isinstance(e, HubUnreachable)
                   else HUB_FAILED)
            loaded = load_model(entry, weights_dir)
            loaded.note += f" ({why}: {type(e).__name__}: {str(e).splitlines()[0][:200]})"
            loaded.fallback = why
            return loaded
    local = Path(weights_dir) / entry.folder
    model = load_checkpoint(local)
    loaded = LoadedModel(entry, model, "local", _fingerprint(local),
                         f"{entry.title}: local {Path(weights_dir).name}/{entry.folder}")
    if source == "hub":
        loaded.note += f" ({NOT_ASKED}: {skip_hub})"
        loaded.fallback = UNREACHABLE
    return loaded


def load_available_restorers(weights_dir, source: str = "local") -> tuple[list[LoadedModel], list[str]]:
    """The restorers that load, in catalogue order, and a line for each one that does not (the
    app serves the models it has, and says which are missing and why). Once the Hub proves
    unreachable, the remaining models are not fetched from it."""
    loaded, problems, skip_hub = [], [], None
    for entry in read_catalog(weights_dir):
        if entry.role != "restorer":
            continue
        try:
            model = load_model(entry, weights_dir, source, skip_hub=skip_hub)
        except (CheckpointError, OSError) as e:
            problems.append(f"{entry.title}: not loaded ({e})")
            continue
        except Exception as e:  # noqa: BLE001 (e.g. torch's RuntimeError on a bad config: skip that model)
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            problems.append(f"{entry.title}: not loaded ({type(e).__name__}: {first})")
            continue
        loaded.append(model)
        if model.fallback == UNREACHABLE and skip_hub is None:
            skip_hub = "it was unreachable for an earlier model"
    return loaded, problems


def load_fidelity_classifier(weights_dir, source: str = "local") -> tuple[object | None, str | None]:
    """(the fidelity classifier or None, a line saying why not when the catalogue has one that does
    not load). The app works without it; Compare then shows no class labels."""
    for entry in read_catalog(weights_dir):
        if entry.role == "fidelity":
            try:
                return load_model(entry, weights_dir, source).model.eval(), None
            except Exception as e:  # noqa: BLE001 (optional: any failure leaves the app without it)
                first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
                return None, f"{entry.title}: not loaded ({type(e).__name__}: {first}); Compare shows no class labels"
    return None, None
