"""Hostile submissions on the loopback Hub, as an attacker would try them: each refused in one line,
without a traceback, through the command (`python -m restoration.arena.submit`) and through the Submit
tab (ArenaApp.submit), one case per kind; then what a refusal must not leave or cost: the daily cap
with the Hub unreachable, the cache, memory spent on configs before their parameters are counted;
an unexpected error as one line; a replica that loads community models once its store answers."""

import dataclasses
import json
import logging
import re
import time

import pytest
import torch

from restoration.arena.store import VoteStore, VoteStoreError
from restoration.arena.store_schema import submission_attempts
from restoration.arena.submission_checks import MAX_LINE, Rules
from restoration.arena.submission_download import CACHE_FOLDER
from restoration.arena.submissions import (
    APPROVED,
    Refused,
    load_submitted_restorers,
    review,
    submission_name,
    submit,
)
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from tests.submission_support import hub_files, refused, safetensors_file
from tests.support import safetensors_bytes, tiny_spandrel, tiny_unet

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def header_file(header) -> bytes:
    """A model.safetensors whose header is `header` (bytes, or JSON-able), with 4 bytes of data."""
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    return safetensors_file(text, b"\0" * 4)


def deep(n: int) -> bytes:
    return b'{"w": ' + b"[" * n + b"]" * n + b"}"


ENTRY = {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}
HUGE = "9" * 5000  # past Python's 4,300-digit limit on int()

# kind → (the repo's files, or None for a spec alone; the spec's repo id; the rule it breaks)
REPOS = {
    "header a JSON list": ({WEIGHTS_NAME: header_file([1, 2])}, "header"),
    "header a JSON string": ({WEIGHTS_NAME: header_file("x")}, "header"),
    "dtype a list": ({WEIGHTS_NAME: header_file({"w": ENTRY | {"dtype": ["F32"]}})}, "header"),
    "shape of lists": ({WEIGHTS_NAME: header_file({"w": ENTRY | {"shape": [[1]]}})}, "header"),
    "offsets as text": ({WEIGHTS_NAME: header_file({"w": ENTRY | {"data_offsets": ["0", "4"]}})}, "header"),
    "header nested 5,000 deep": ({WEIGHTS_NAME: header_file(deep(5000))}, "header"),
    "5,000-digit shape in the header": ({WEIGHTS_NAME: header_file(b'{"w": {"dtype": "F32", "shape": [' + HUGE.encode()
                                                                   + b'], "data_offsets": [0, 4]}}')}, "header"),
    "5,000-digit offset in the header": ({WEIGHTS_NAME: header_file(b'{"w": {"dtype": "F32", "shape": [1], '
                                                                    b'"data_offsets": [0, ' + HUGE.encode() + b']}}')},
                                         "header"),
    "NaN in the header": ({WEIGHTS_NAME: header_file(b'{"w": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}')},
                          "header"),
    "a tensor named twice": ({WEIGHTS_NAME: header_file(b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
                                                        b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}')},
                             "header"),
    "metadata not text": ({WEIGHTS_NAME: header_file({"__metadata__": {"a": 1}, "w": ENTRY})}, "header"),
    "offsets past the file": ({WEIGHTS_NAME: header_file({"w": ENTRY | {"shape": [2], "data_offsets": [0, 8]}})},
                              "header"),
    "overlapping tensors": ({WEIGHTS_NAME: header_file({"a": ENTRY, "b": ENTRY})}, "header"),
    "an 8-byte length past the file": ({WEIGHTS_NAME: (1 << 63).to_bytes(8, "little") + b"{}"}, "header"),
    "a dtype we do not read": ({WEIGHTS_NAME: header_file({"w": ENTRY | {"dtype": "F8_E4M3", "data_offsets": [0, 1]}})},
                               "header"),
    "a pickle named model.safetensors": ({WEIGHTS_NAME: b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94."},
                                         "header"),
    "a pickle beside it": ({"pytorch_model.bin": b"\x80\x04K\x01."}, "no pickles"),
    "a path that climbs out": ({"../../etc/model.safetensors": b"x"}, "only our files"),
    "no weights": ({"README.md": b"# nothing\n"}, "checkpoint files"),
}
CONFIGS = {  # config.json beside a good U-Net's weights
    "config nested 5,000 deep": deep(5000),
    "5,000-digit number in the config": b'{"model_type": "unet", "nfs": [' + HUGE.encode() + b", 16, 32]}",
    "config a JSON list": b"[1, 2, 3]",
    "config not UTF-8": b'{"model_type": "unet\xff"}',
    "config with Infinity": b'{"model_type": "unet", "p": Infinity}',
}
SPECS = {  # spec → rule: what huggingface_hub's validator refuses, and worse
    "alice/b..c@" + COMMIT: "repo id",
    "a--b/c@" + COMMIT: "repo id",
    "alice/x-@" + COMMIT: "repo id",
    "alice/x.git@" + COMMIT: "repo id",
    "alice/x\n@" + COMMIT: "repo id",  # `$` matches before a trailing newline; a full match does not
    "alice@" + COMMIT: "repo id",
    "../../etc/passwd@" + COMMIT: "repo id",
    "alicé/x@" + COMMIT: "repo id",
    "alice/x@" + COMMIT + "\n" + COMMIT: "pinned commit",
    "alice/x@" + "A" * 40: "pinned commit",
    "alice/" + "x" * 100_000 + "@" + COMMIT: "repo id",  # a 100 KB spec: the refusal stays one short line
}


@pytest.fixture
def hostile_app(settings, tmp_path):
    """The app with no scene images (no Judge): only its Submit tab is under test."""
    from restoration.arena.app_state import ArenaApp
    from restoration.hub.catalogue import load_available_restorers

    examples = tmp_path / "no-examples"
    examples.mkdir()
    quiet = dataclasses.replace(settings, examples_dir=examples, submissions_per_day=1000)
    models, _ = load_available_restorers(settings.weights_dir)
    app = ArenaApp(quiet, models)
    yield app
    app.close()


def through_both(spec: str, rule: str, app, settings, monkeypatch, capsys):
    """`spec` refused in one line naming `rule`, through the command and through the Submit tab."""
    from restoration.arena.submit import main

    for name, value in {"RESTORATION_VOTES_DB": settings.votes_db, "RESTORATION_WEIGHTS_DIR": settings.weights_dir,
                        "RESTORATION_VAL_DIR": settings.val_dir, "RESTORATION_PHOTO_VAL_DIR": settings.photo_val_dir,
                        "RESTORATION_SUBMISSIONS_PER_DAY": 1000}.items():
        monkeypatch.setenv(name, str(value))
    with pytest.raises(SystemExit) as exit_:
        main([spec])
    line = str(exit_.value)
    assert line.startswith(f"refused: {rule}: ") and "\n" not in line and len(line) <= MAX_LINE + 20, line
    text = app.submit(spec, "photo")["outcome"]
    assert text.startswith(f"**Refused** — {rule}: ") and "\n" not in text and len(text) <= MAX_LINE + 20, text
    assert "Traceback" not in capsys.readouterr().err
    assert app.store.submission_rows() == []


@pytest.mark.parametrize("kind", list(REPOS))
def test_a_hostile_repo_is_refused_in_one_line(kind, hostile_app, settings, fake_hub, monkeypatch, capsys):
    files, rule = REPOS[kind]
    commit = fake_hub.seed("mallory/x", files)
    through_both(f"mallory/x@{commit}", rule, hostile_app, settings, monkeypatch, capsys)


@pytest.mark.parametrize("kind", list(CONFIGS))
def test_a_hostile_config_is_refused_in_one_line(kind, hostile_app, settings, fake_hub, monkeypatch, capsys,
                                                   tmp_path):
    files = hub_files(tiny_unet(seed=1).save_pretrained(tmp_path / "good")) | {CONFIG_NAME: CONFIGS[kind]}
    commit = fake_hub.seed("mallory/x", files)
    through_both(f"mallory/x@{commit}", "config", hostile_app, settings, monkeypatch, capsys)


@pytest.mark.parametrize("spec", list(SPECS), ids=lambda s: repr(s[:40]))
def test_a_hostile_spec_is_refused_in_one_line_before_the_hub_is_asked(spec, hostile_app, settings, fake_hub,
                                                                         monkeypatch, capsys):
    through_both(spec, SPECS[spec], hostile_app, settings, monkeypatch, capsys)
    assert fake_hub.requests == []


@pytest.mark.parametrize("listed, rule, message", [
    (100, "size", "more than 100 bytes were served (cut off there)"),  # listed smaller than served
    (10 << 20, "size", "bytes were served, the listing says 10,485,760"),  # listed larger than served
    (1 << 30, "size", "model.safetensors is 1,073,741,824 bytes (limit"),  # a 1 GiB file: never downloaded
])
def test_a_listing_that_lies_about_a_size(listed, rule, message, hostile_app, settings, fake_hub, monkeypatch,
                                          capsys):
    commit = fake_hub.seed("mallory/x", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("compact"))})
    fake_hub.lie("mallory/x", WEIGHTS_NAME, listed)
    with pytest.raises(Refused, match=f"^{rule}: .*{re.escape(message)}"):
        submit(hostile_app.store, f"mallory/x@{commit}", hostile_app.settings)
    through_both(f"mallory/x@{commit}", rule, hostile_app, settings, monkeypatch, capsys)


def test_a_tag_posing_as_a_commit_is_refused(hostile_app, settings, fake_hub, monkeypatch, capsys):
    commit = fake_hub.seed("mallory/x", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("compact"))})
    fake_hub.tag("mallory/x", "f" * 40, commit)  # a tag whose name looks like a commit: it could be moved
    with pytest.raises(Refused, match=f"^pinned commit: asked for {'f' * 40}, the Hub served {commit}$"):
        submit(hostile_app.store, f"mallory/x@{'f' * 40}", hostile_app.settings)
    through_both(f"mallory/x@{'f' * 40}", "pinned commit", hostile_app, settings, monkeypatch, capsys)


# -------------------------------------------------------------------------------------------- what a refusal costs


def test_with_the_hub_unreachable_no_attempt_uses_up_the_daily_cap(hostile_app, settings, fake_hub, monkeypatch):
    """Six attempts in a row with the Hub down: each one line, none counted; the seventh is tried."""
    from huggingface_hub import constants

    from tests.conftest import closed_port_url

    app = hostile_app
    app.settings = dataclasses.replace(app.settings, submissions_per_day=5)
    commit = fake_hub.seed("alice/x", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("compact"))})
    gone = closed_port_url()
    with monkeypatch.context() as down:
        down.setattr(constants, "ENDPOINT", gone)
        down.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", gone + "/{repo_id}/resolve/{revision}/{filename}")
        for _ in range(6):
            text = app.submit(f"alice/x@{commit}", "photo")["outcome"]
            assert text.startswith("**Not submitted** — HubUnreachable: the Hub at ") and "\n" not in text, text
    with app.store.transaction() as tx:
        assert tx.conn.execute(submission_attempts.select()).fetchall() == []
    assert app.submit(f"alice/x@{commit}", "photo")["outcome"].startswith("**Accepted, pending review**")


def test_a_refused_download_leaves_nothing_in_the_cache(settings, fake_hub, tmp_path):
    from huggingface_hub import constants

    store = VoteStore(settings.votes_db)
    try:
        nan = tiny_unet(seed=2)
        with torch.no_grad():
            nan.to_rgb[0].bias[0] = float("nan")
        bad = fake_hub.seed("eve/x", hub_files(nan.save_pretrained(tmp_path / "nan")))
        refused(store, f"eve/x@{bad}", settings, "finite outputs")
        x4 = fake_hub.seed("eve/y", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("span", scale=4))})
        refused(store, f"eve/y@{x4}", settings, "scale")
        cache = constants.HF_HUB_CACHE
        assert [p for p in (tmp_path / "hf-cache").rglob("*") if p.is_file()] == [], cache
        good = fake_hub.seed("alice/x", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("span"))})
        submit(store, f"alice/x@{good}", settings)
        kept = [p.relative_to(tmp_path / "hf-cache").as_posix() for p in (tmp_path / "hf-cache").rglob("*")
                if p.is_file()]
        assert kept == [f"{CACHE_FOLDER}/alice--x/{good}/{WEIGHTS_NAME}"]  # what was accepted is kept, and only it
    finally:
        store.close()


def test_parameters_are_counted_from_the_header_before_anything_is_built(settings, fake_hub, tmp_path, monkeypatch):
    """The largest config the rules allow, beside small weights: compared with the header on the
    meta device (nothing allocated) and refused; too many values in the header: refused before any build."""
    import restoration.arena.submission_checks as checks

    built = []
    real_build = checks.build
    monkeypatch.setattr(checks, "build", lambda *a: built.append(torch.empty(0).device.type) or real_build(*a))
    store = VoteStore(settings.votes_db)
    try:
        largest = {"model_type": "unet", "nfs": [256] * 6, "nbks": [4] * 5}
        files = hub_files(tiny_unet(seed=1).save_pretrained(tmp_path / "small")) | {
            CONFIG_NAME: json.dumps(largest).encode()}
        commit = fake_hub.seed("eve/x", files)
        assert "weights do not match config.json" in refused(store, f"eve/x@{commit}", settings, "header")
        assert built == ["meta"]  # built on the meta device only
        built.clear()
        refused(store, f"eve/x@{commit}", settings, "parameters", rules=Rules(max_params=1000))
        assert built == []
    finally:
        store.close()


def test_an_unexpected_error_is_one_line_and_its_traceback_is_logged(settings, fake_hub, monkeypatch, caplog,
                                                                      hostile_app):
    import restoration.arena.submissions as submissions

    def broken(*args, **kwargs):
        raise ZeroDivisionError("deep inside\nwith a second line")

    monkeypatch.setattr(submissions, "quick_evaluation", broken)
    commit = fake_hub.seed("alice/x", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("compact"))})
    with caplog.at_level(logging.ERROR, logger="restoration.arena.submissions"):
        text = hostile_app.submit(f"alice/x@{commit}", "photo")["outcome"]
    assert text == ("**Refused** — unexpected error: ZeroDivisionError: deep inside with a second line (logged for "
                    "the operator)")
    assert any(r.exc_info and r.exc_info[0] is ZeroDivisionError for r in caplog.records)
    assert hostile_app.store.submission_rows() == []


# -------------------------------------------------------------------------------------------- a store down at start


def test_a_replica_started_while_postgresql_is_down_loads_the_approved_models_once_it_is_back(
        postgres, postgres_url, settings, fake_hub, tiny_models):
    from restoration.arena.app_state import COMMUNITY_NOT_LOADED, ArenaApp

    store = VoteStore(postgres_url)
    commit = fake_hub.seed("alice/span", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("span"))})
    name = submit(store, f"alice/span@{commit}", settings, family="lesson")[0].name
    review(store, name, APPROVED, "fine", settings)
    store.close()
    postgres.stop("fast")
    try:
        store = VoteStore(postgres_url, connect_timeout=1)  # a replica starting now (app.py's order)
        with pytest.raises(VoteStoreError):
            load_submitted_restorers(store)
        app = ArenaApp(settings, tiny_models, [f"{COMMUNITY_NOT_LOADED} (down)"], store=store)
        app.load_community_later(interval=0.2)
        time.sleep(1.0)
        assert name not in app.titles  # still down: nothing yet, and nothing broke
    finally:
        postgres.start()
    try:
        deadline = time.monotonic() + 60
        while name not in app.titles and time.monotonic() < deadline:
            time.sleep(0.2)
        assert name in app.arena.contenders and name in {m.entry.name for m in app.families["lesson"]}
        assert not any(p.startswith(COMMUNITY_NOT_LOADED) for p in app.problems)
        assert app.next_pair(None, None)["token"]  # the Judge serves, with the new pool
    finally:
        app.close()


def test_a_replica_adopts_the_models_when_the_sqlite_store_answers_again(settings, fake_hub, tiny_models):
    """The same with SQLite (a store on a network share that did not answer): the loader is retried."""
    from restoration.arena.app_state import ArenaApp

    store = VoteStore(settings.votes_db)
    commit = fake_hub.seed("alice/span", {WEIGHTS_NAME: safetensors_bytes(tiny_spandrel("span"))})
    name = submit(store, f"alice/span@{commit}", settings, family="lesson")[0].name
    review(store, name, APPROVED, "fine", settings)
    tries = []

    def flaky():
        tries.append(1)
        if len(tries) < 3:
            raise VoteStoreError("the vote store did not answer")
        return load_submitted_restorers(store)

    app = ArenaApp(settings, tiny_models, store=store)
    try:
        history = app.history
        app.load_community_later(interval=0.05, load=flaky).join(timeout=60)
        assert len(tries) == 3 and name in app.arena.contenders and name in app.titles
        # In its family's scenes and on its board; the judges' recent scenes and turns are kept.
        assert name in app.scene_families["lesson"].names and "lesson" in app.boards and app.history is history
        assert submission_name("alice/span", commit) == name
    finally:
        app.close()
