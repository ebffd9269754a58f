"""Publish what the repository ships to the Hugging Face Hub: the model folders in weights/ (their
cards rebuilt, each uploaded to its model repo, the commits pinned in weights/models.json) and the
app as a Gradio Space. A new run gets into weights/ first with `python -m train.ship`.

    python -m train.publish cards                    # rebuild weights/*/README.md and README.md's front
                                                     # matter (no upload, no network)
    python -m train.publish models --owner you       # upload each model folder, pin the commits in models.json
    python -m train.publish space                    # upload the app as a Gradio Space (after `models`)
    python -m train.publish all --owner you          # cards, models, then the Space

Uploads need a token with write access (`hf auth login`, or HF_TOKEN); HF_ENDPOINT points them
elsewhere (the tests use a loopback Hub). `models` rebuilds each card first, so the card on the Hub
is the one in weights/, then writes the commit each upload returned into weights/models.json:
commit that file, and the app (RESTORATION_MODEL_SOURCE=hub) loads exactly those commits.
`--owner` moves every repo in models.json (and the Space) to that user or organisation.
"""

import json
import re
from pathlib import Path

from restoration.arena.witnesses import read_evaluation
from restoration.cli import parser
from restoration.hub.catalogue_file import pin_revisions, read_catalog, space_of, write_catalog
from restoration.settings import REPO

# The cards and the uploads load torch (a card counts the model's parameters; an upload verifies the
# checkpoint): they are imported in the functions that use them, so that --help answers at once.

# Set on the Space when it is created. Telemetry off: huggingface_hub's user-agent would otherwise
# fetch an "agent harnesses" list from the Hub first, 3 s more when the Hub does not answer.
SPACE_VARIABLES = {"RESTORATION_MODEL_SOURCE": "hub", "HF_HUB_DISABLE_TELEMETRY": "1"}


def _catalog_file(weights: Path) -> dict:
    return json.loads((weights / "models.json").read_text())


def rebuild_cards(weights: Path, evaluation: Path | None = None, names=None) -> list[Path]:
    """Write README.md in each shipped model folder from its config, weights, catalogue entry, the
    evaluation and the training record already in the card."""
    from train.cards import build_card, normalize_evaluation, training_record

    catalog = read_catalog(weights)
    record = normalize_evaluation(read_evaluation(evaluation or weights / "evaluation.json"))
    # The photo family's, on the photo val set.
    photo_record = normalize_evaluation(read_evaluation(weights / "evaluation-photos.json"))
    written = []
    for entry in catalog:
        if names and entry.name not in names:
            continue
        folder = weights / entry.folder
        old = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
        evaluated = photo_record if entry.role == "restorer" and entry.family == "photo" else record
        card = build_card(folder, entry, catalog, evaluated, training_record(old), space_of(weights))
        card.save(folder / "README.md")
        written.append(folder / "README.md")
    return written


def set_owner(weights: Path, owner: str):
    """Move every repo in models.json (models and Space) to `owner`."""
    catalog = _catalog_file(weights)
    repos = {e.name: f"{owner}/{(e.hub_repo or e.name).split('/')[-1]}" for e in read_catalog(weights)}
    if catalog.get("space"):
        catalog["space"] = f"{owner}/{catalog['space'].split('/')[-1]}"
        write_catalog(weights, catalog)
    pin_revisions(weights, {}, repos)


def publish_models(weights: Path, names=None, private: bool = False) -> dict[str, str]:
    """Upload each model folder to its repo; returns {name: commit} and pins them in models.json."""
    from restoration.hub.transfer import upload_model

    rebuild_cards(weights, names=names)
    commits = {}
    for entry in read_catalog(weights):
        if names and entry.name not in names:
            continue
        if not entry.hub_repo:
            raise SystemExit(f"{entry.name}: no hub_repo in {weights / 'models.json'}")
        commits[entry.name] = upload_model(weights / entry.folder, entry.hub_repo, private=private)
        print(f"{entry.name}: {entry.hub_repo} @ {commits[entry.name]}")
    pin_revisions(weights, commits)
    return commits


def gradio_version(root: Path) -> str:
    found = re.search(r"^gradio==([\w.]+)", (root / "requirements.txt").read_text(), re.M)
    if not found:
        raise SystemExit("requirements.txt pins no gradio version (a Space's sdk_version needs one)")
    return found.group(1)


def publish_space(root: Path, space: str, private: bool = False) -> str:
    from restoration.hub.transfer import upload_space
    from train.cards import space_card

    weights = root / "weights"
    catalog = read_catalog(weights)
    unpinned = [e.name for e in catalog if not e.revision]
    if unpinned:
        print(f"warning: {', '.join(unpinned)} not published yet: the Space will serve the copies in weights/")
    readme = space_card(catalog, (root / "README.md").read_text(), gradio_version(root))
    commit = upload_space(root, space, readme, private=private, variables=SPACE_VARIABLES)
    print(f"Space {space} @ {commit}")
    return commit


def main(argv=None):
    p = parser("python -m train.publish", __doc__)
    p.add_argument("what", choices=["cards", "models", "space", "all"])
    p.add_argument("--root", type=Path, default=REPO, help="the repository to publish (default: this one)")
    p.add_argument("--owner", default=None, help="publish under this user or organisation (rewrites models.json)")
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="only these models (catalogue names)")
    p.add_argument("--space", default=None, help="the Space's repo id (default: models.json's \"space\")")
    p.add_argument("--private", action="store_true", help="repos (and the Space) this creates are private")
    args = p.parse_args(argv)
    weights = args.root / "weights"
    if args.owner:
        set_owner(weights, args.owner)
    if args.what == "cards":
        from train.cards import space_card

        for file in rebuild_cards(weights, names=args.only):
            print(f"wrote {file.relative_to(args.root)}")
        readme = args.root / "README.md"
        readme.write_text(space_card(read_catalog(weights), readme.read_text(), gradio_version(args.root)))
        print(f"wrote {readme.relative_to(args.root)} (its front matter is the Space's card)")
    if args.what in ("models", "all"):
        publish_models(weights, args.only, args.private)
    if args.what in ("space", "all"):
        space = args.space or space_of(weights)
        if not space:
            raise SystemExit("no Space: pass --space owner/name (or set \"space\" in weights/models.json)")
        publish_space(args.root, space, args.private)


if __name__ == "__main__":
    main()
