"""weights/models.json, the catalogue of shipped models, read and written without torch: what a
command needs to list, pin or move the models (`train.publish`, `restoration.inference.evaluate`)
without loading any. Loading them is `restoration.hub.catalogue`, which re-exports these names."""

import dataclasses
import json
import re
from pathlib import Path

from restoration.choices import FAMILIES
from restoration.models.errors import CheckpointError

# A full commit hash: what a revision must be (downloads are pinned, never "main").
COMMIT = re.compile(r"^[0-9a-f]{40}$")


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    name: str
    title: str
    folder: str
    role: str = "restorer"
    hub_repo: str | None = None
    revision: str | None = None  # a full commit hash: downloads are pinned, never "main"
    base_model: str | None = None  # the catalogue name of the model its weights started from
    family: str = "lesson"  # restorers: a key of FAMILIES
    community: str | None = None  # a submitted model's review state ("pending", "approved"); None: ours
    architecture: str | None = None  # a community model's: "U-Net", or a foreign one's as spandrel names it ("SPAN")
    licence: str | None = None  # a foreign architecture's code licence (foreign.LICENCES); the weights' is their card's

    def __post_init__(self):
        if self.role == "restorer" and self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} is not one of {', '.join(FAMILIES)}")


def read_catalog(weights_dir) -> list[ModelEntry]:
    file = Path(weights_dir) / "models.json"
    try:
        rows = json.loads(file.read_text())["models"]
        return [ModelEntry(**row) for row in rows]
    except FileNotFoundError:
        raise CheckpointError(f"{file}: missing (it lists the shipped models)") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{file}: not a valid model list ({type(e).__name__}: {e})") from None


def space_of(weights_dir) -> str | None:
    """The Space the catalogue names (models.json's "space": where the app is published), or None."""
    try:
        space = json.loads((Path(weights_dir) / "models.json").read_text()).get("space")
    except (OSError, ValueError, AttributeError):
        return None
    return space if isinstance(space, str) else None


def pin_revisions(weights_dir, revisions: dict[str, str], repos: dict[str, str] | None = None):
    """Write published commits (and, if given, repo ids) into models.json, by model name, keeping
    everything else in the file as it is."""
    file = Path(weights_dir) / "models.json"
    catalog = json.loads(file.read_text())
    for row in catalog["models"]:
        if row["name"] in revisions:
            if not COMMIT.match(revisions[row["name"]]):
                raise ValueError(f"{row['name']}: {revisions[row['name']]!r} is not a commit hash")
            row["revision"] = revisions[row["name"]]
        if repos and row["name"] in repos:
            row["hub_repo"] = repos[row["name"]]
    write_catalog(weights_dir, catalog)


def write_catalog(weights_dir, catalog: dict):
    """models.json with one model a line (diffs stay readable)."""
    rows = ",\n".join("    " + json.dumps(row) for row in catalog["models"])
    head = "".join(f"  {json.dumps(k)}: {json.dumps(v)},\n" for k, v in catalog.items() if k != "models")
    (Path(weights_dir) / "models.json").write_text("{\n" + head + '  "models": [\n' + rows + "\n  ]\n}\n")
