"""The arena's start-up: the settings checked, the models loaded, the vote store opened and the
`ArenaApp` made, in the order that makes a mistake cost seconds, not the minutes of a model load.
`app.py:main` calls it, then builds the page; a benchmark that wants the app exactly as it serves
should call it rather than repeat these steps. Each step's problem is one line (`StartError`),
never a traceback."""

import sys

import torch

from restoration.arena.app_state import COMMUNITY_NOT_LOADED, JUDGE_LANE_LIMIT, SWITCH_INTERVAL, ArenaApp
from restoration.arena.store import VoteStore, VoteStoreError
from restoration.arena.store_target import check_path
from restoration.arena.submissions import load_submitted_restorers
from restoration.arena.vote_sync import VoteSync, start_vote_sync
from restoration.hub.catalogue import load_available_restorers, load_fidelity_classifier
from restoration.inference.device import DeviceError, resolve
from restoration.inference.runner import choose_engine, restorers_for
from restoration.models.checkpoint import CheckpointError
from restoration.settings import Settings, SettingsError


class StartError(Exception):
    """Why the app cannot start, in one line (after "Cannot start: ")."""


def checked_settings() -> tuple[Settings, torch.device]:
    """The settings, and the device they ask for, checked before any model loads: a bad vote store
    path, or a GPU asked for that is not there, fails in a second."""
    try:
        settings = Settings.from_env()
        check_path(settings.votes_db)
        return settings, resolve(settings.device)
    except (SettingsError, VoteStoreError, DeviceError) as e:
        raise StartError(e) from None


def load_shipped(settings: Settings, say=None) -> tuple[list, list[str], object | None]:
    """(the catalogue's restorers that load, a line for each that does not, the fidelity
    classifier or None); `say` (print by default) gets a line per model. At least one restorer,
    or StartError."""
    say = say or _print
    try:
        models, problems = load_available_restorers(settings.weights_dir, settings.model_source)
    except CheckpointError as e:
        raise StartError(e) from None
    if not models:
        raise StartError(f"no restorer in {settings.weights_dir}/models.json could be loaded.\n"
                         + "\n".join(problems) + "\nTrain and export the models, or set RESTORATION_WEIGHTS_DIR.")
    for line in [m.note for m in models] + problems:
        say(line)
    fidelity, fidelity_problem = load_fidelity_classifier(settings.weights_dir, settings.model_source)
    if fidelity_problem:
        say(fidelity_problem)
    return models, problems, fidelity


def start_arena(settings: Settings, device: torch.device, outputs_in=None,
                say=None) -> tuple[ArenaApp, VoteSync | None]:
    """The app as it serves, and its vote sync (None unless RESTORATION_VOTES_REPO is set): the
    shipped models with the precision the start-up check measures, the community models from the
    vote store (loaded later if the store does not answer yet). The caller closes both."""
    say = say or _print
    torch.set_num_threads(settings.threads)
    sys.setswitchinterval(SWITCH_INTERVAL)  # the event loop gets the interpreter back sooner (serving.py)
    models, problems, fidelity = load_shipped(settings, say)
    sync = start_vote_sync(settings)  # before the store opens the database: it may recover it
    try:
        store = VoteStore(settings.votes_db, pool_size=JUDGE_LANE_LIMIT + 2)
        try:
            community, skipped, later = *load_submitted_restorers(store), False  # pending and approved submissions
        except VoteStoreError as e:  # loaded once the store answers (ArenaApp.load_community_later)
            community, skipped, later = [], [f"{COMMUNITY_NOT_LOADED} ({e}); they will be once it answers"], True
        for line in [m.note for m in community] + skipped:
            say(line)
        choice = choose_engine(models, settings, device)  # the start-up check: the precision, measured here
        say(choice.line)
        app = ArenaApp(settings, models + community, problems + skipped, store=store, fidelity=fidelity,
                       # The check covered the shipped models only: community ones run in fp32 (docs/speed.md).
                       restorers=restorers_for(models, settings, precision=choice.precision, device=choice.device)
                       | restorers_for(community, settings, device=choice.device),
                       outputs_in=outputs_in)
    except (VoteStoreError, OSError) as e:
        if sync:
            sync.close()
        raise StartError(e) from None
    if later:
        app.load_community_later()
    return app, sync


def _print(line: str):
    print(line, flush=True)  # as each step ends: a start-up log is read while the app loads
