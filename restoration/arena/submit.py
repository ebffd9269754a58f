"""Submit a community model, and review submissions (the rules: restoration/arena/submission_checks.py,
docs/submitting.md).

    python -m restoration.arena.submit owner/name@0123456789abcdef0123456789abcdef01234567   # photos family
    python -m restoration.arena.submit owner/name@<commit> --family lesson   # competes with the lesson's U-Nets
    python -m restoration.arena.submit check shipped/my-unet                 # a local folder, before uploading it
    python -m restoration.arena.submit list                                  # every submission, one line each
    python -m restoration.arena.submit show NAME                             # its checks and evaluation beside ours
    python -m restoration.arena.submit approve NAME --reason "sharp, no artefacts on the photos"
    python -m restoration.arena.submit reject NAME --reason "a copy of unet-mse"

`check` takes a folder holding model.safetensors (and config.json for one of our types): a shipped
one (`python -m train.ship RUN --title TITLE --to FOLDER`), not a training run's folder. The vote
store is RESTORATION_VOTES_DB's (the app's), the Hub HF_ENDPOINT's. A refusal prints one line,
`refused: <rule>: <value>`, and exits with status 1; an unexpected error too, its traceback written
to restoration-submit.log in the temporary folder. Apps started afterwards load pending and
approved submissions; approved ones are Judge contenders.
"""

import logging
import sys
import tempfile
from pathlib import Path

from restoration.choices import DEFAULT_FAMILY, FAMILIES
from restoration.cli import parser
from restoration.settings import Settings
from restoration.strict_json import one_line

COMMANDS = ("check", "list", "show", "approve", "reject")
TRACEBACKS = Path(tempfile.gettempdir()) / "restoration-submit.log"  # where an unexpected error's traceback goes


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    p = arguments()
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    import torch

    from restoration.arena.store import VoteStore, VoteStoreError
    from restoration.arena.submission_checks import check_folder, summary
    from restoration.arena.submissions import APPROVED, REJECTED, Refused, describe, list_submissions, review, submit
    from restoration.hub.catalogue import load_fidelity_classifier
    from restoration.models.checkpoint import CheckpointError

    settings = Settings.from_env()
    torch.set_num_threads(settings.threads)
    try:
        store = VoteStore(settings.votes_db, pool_size=2)
    except VoteStoreError as e:
        raise SystemExit(f"Cannot open the vote store: {e}") from None
    logger = logging.getLogger("restoration")  # its tracebacks go to the log; the terminal gets one line
    tracebacks, propagated = logging.FileHandler(TRACEBACKS, delay=True), logger.propagate
    logger.addHandler(tracebacks)
    logger.propagate = False
    try:
        if args.what in COMMANDS and args.what != "list" and not args.name:
            p.error(f"{args.what} needs the submission's NAME (see: python -m restoration.arena.submit list)")
        if args.what == "check":
            print(f"{args.name}: passes every check: {summary(check_folder(args.name))}. Upload it (python -m "
                  "train.ship RUN --title TITLE --repo-id you/name, or hf upload you/name FOLDER) and submit "
                  "its commit: python -m restoration.arena.submit you/name@<commit>")
        elif args.what == "list":
            for s in list_submissions(store):
                print(describe(s))
        elif args.what == "show":
            show(store, args.name, settings)
        elif args.what in ("approve", "reject"):
            s = review(store, args.name, APPROVED if args.what == "approve" else REJECTED, args.reason, settings)
            print(describe(s))
        else:
            fidelity, _ = load_fidelity_classifier(settings.weights_dir)
            s, _ = submit(store, args.what, settings, family=args.family, client=args.client, fidelity=fidelity)
            print(describe(s))
            print(f"pending review: python -m restoration.arena.submit approve {s.name}")
    except Refused as e:
        raise SystemExit(f"refused: {e}") from None
    except (CheckpointError, VoteStoreError) as e:  # e.g. the Hub unreachable: one line too
        raise SystemExit(f"not submitted: {type(e).__name__}: {one_line(e, 300)}") from None
    except Exception as e:  # noqa: BLE001 (a check's unexpected failure: one line; the traceback to the log)
        logging.getLogger("restoration.arena.submit").exception("unexpected error")
        raise SystemExit(f"refused: unexpected error: {type(e).__name__}: {one_line(e, 160)} (traceback in "
                         f"{TRACEBACKS})") from None
    finally:
        store.close()
        logger.removeHandler(tracebacks)
        logger.propagate = propagated
        tracebacks.close()


def arguments():
    p = parser("python -m restoration.arena.submit", __doc__)
    p.add_argument("what", help="owner/name@commit to submit, or one of: " + ", ".join(COMMANDS))
    p.add_argument("name", nargs="?", default=None, help="the submission (show, approve, reject), or a folder (check)")
    p.add_argument("--family", default=DEFAULT_FAMILY, choices=list(FAMILIES),
                   help="the family it competes in: photo (default) or lesson (Tiny ImageNet thumbnails)")
    p.add_argument("--reason", default="", help="the review's reason, kept with the submission")
    p.add_argument("--client", default="cli", help="whose daily cap a submission counts against")
    return p


def show(store, name: str, settings: Settings):
    """Print the submission `name` from the VoteStore, its checks, and its evaluation beside ours."""
    from restoration.arena.submissions import (
        Refused,
        describe,
        evaluation_markdown,
        list_submissions,
        reference_evaluation,
    )
    from restoration.hub.catalogue import load_available_restorers, load_fidelity_classifier

    found = [s for s in list_submissions(store) if s.name == name]
    if not found:
        raise Refused("no such submission", name)
    s = found[0]
    print(describe(s))
    print(f"checks: {s.facts}")
    ours, _ = load_available_restorers(settings.weights_dir)
    ours = [m for m in ours if m.entry.family == s.family]
    fidelity, _ = load_fidelity_classifier(settings.weights_dir)
    reference = reference_evaluation(store, ours, settings, fidelity)
    print(evaluation_markdown(s.evaluation, s.title, reference, {m.entry.name: m.entry.title for m in ours}))


if __name__ == "__main__":
    main()
