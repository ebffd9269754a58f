"""Ship one training run: turn a run folder into a model folder (fp16 weights, config, model card)
in weights/, and optionally upload that folder to a Hub model repo.

    python -m train.ship runs/unet-mse --to weights/unet-mse --title "MSE U-Net"
    python -m train.ship runs/unet-mse --title "MSE U-Net" --repo-id you/unet-mse-compact   # needs `hf auth login`

This is the step from a run to the repository; `python -m train.publish` is the step from the
repository to the Hub: it rebuilds the cards of every shipped model, uploads them, pins their
commits in weights/models.json and uploads the app as a Space.

The card (README.md, with Hugging Face metadata: train/run_card.py, train/cards.py) says what the model is, its
config, the data, how it was trained (every command, the hardware, the wall time) and its metrics:
the last validation figures from the run's metrics.jsonl and, when given, the evaluation JSON
written by `python -m restoration.inference.evaluate --json`. An upload prints the commit to pin in
weights/models.json (or let `python -m train.publish models` upload and pin every shipped model).
"""

import json
import shutil
import tempfile
from pathlib import Path

from restoration.cli import parser


def ship(run: Path, dest: Path, card: str, fp16: bool = True):
    """Write config.json, model.safetensors (fp16 by default) and README.md into `dest`."""
    import torch

    from restoration.models.auto import load_checkpoint
    from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME

    model = load_checkpoint(run)
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, dtype=torch.float16 if fp16 else None)
        dest.mkdir(parents=True, exist_ok=True)
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            shutil.copyfile(Path(tmp) / name, dest / name)
    (dest / "README.md").write_text(card)
    load_checkpoint(dest)  # what ships must load
    return dest


def upload(folder: Path, repo_id: str, private: bool = False) -> str:
    """Upload a shipped folder to the Hub; returns the commit hash to pin (`python -m train.publish
    models` does this for every shipped model and pins the commits itself)."""
    from restoration.hub.transfer import upload_model

    return upload_model(folder, repo_id, private)


def main(argv=None):
    p = parser("python -m train.ship", __doc__)
    p.add_argument("run", type=Path, help="a run folder written by train.classifier or train.superres")
    p.add_argument("--title", required=True, help="the model's name for people, e.g. \"MSE U-Net\" (required)")
    p.add_argument("--to", type=Path, default=None, help="ship here (e.g. weights/unet-mse)")
    p.add_argument("--repo-id", default=None, help="also upload to this Hub repo")
    p.add_argument("--private", action="store_true", help="create the Hub repo private")
    p.add_argument("--fp32", action="store_true", help="keep float32 weights (default: float16)")
    p.add_argument("--evaluation", type=Path, default=None, help="JSON from restoration.inference.evaluate --json")
    p.add_argument("--name", default=None, help="this model's name in the evaluation JSON")
    p.add_argument("--notes", default=None, help="a paragraph for the card's Training section")
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
    from train.run_card import model_card

    for f in (CONFIG_NAME, WEIGHTS_NAME, "train_config.json", "trainer_state.json"):
        if not (args.run / f).is_file():
            raise SystemExit(f"{args.run / f}: missing; is {args.run} a training run folder?")
    evaluation = json.loads(args.evaluation.read_text()) if args.evaluation else None
    with tempfile.TemporaryDirectory() as tmp:
        dest = ship(args.run, args.to or Path(tmp) / args.run.name, "", fp16=not args.fp32)
        card = model_card(args.run, args.title, evaluation, args.name, args.notes, folder=dest)
        (dest / "README.md").write_text(card)
        size = (dest / WEIGHTS_NAME).stat().st_size
        print(f"wrote {dest} ({size / 1e6:.2f} MB of weights)")
        if args.repo_id:
            commit = upload(dest, args.repo_id, args.private)
            print(f"uploaded to {args.repo_id} at commit {commit}: pin it as the revision in weights/models.json")


if __name__ == "__main__":
    main()
