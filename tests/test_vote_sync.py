"""Votes that survive a restart: cast votes in the app → the CommitScheduler pushes a snapshot to a
(loopback) Hub dataset repo → the local database is deleted → the app restarts → every vote is
back, none missing, none doubled. The real huggingface_hub client, against tests/fake_hub.py."""

import sqlite3
import time

import pytest
import sqlalchemy as sa

from restoration.arena.app_state import ArenaApp
from restoration.arena.vote_sync import SNAPSHOT_NAME, VoteSync, snapshot, start_vote_sync
from restoration.settings import Settings
from tests.conftest import closed_port_url

# huggingface_hub's LFS upload hands httpx2 raw bytes as `data=`: the client's to change, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
REPO_ID = "test-org/arena-votes"


def cast(app: ArenaApp, n: int):
    session, token = None, None
    for i in range(n):
        if token is None:
            pair = app.next_pair(session, None)
            session, token = pair["session"], pair["token"]
        out = app.vote(["A", "B", "tie", "both_bad"][i % 4], session, token)
        session, token = out["session"], out["token"]


def rows(app: ArenaApp, tmp_path, name: str) -> list[dict]:
    """Every vote, every column, oldest first."""
    with app.store.engine.connect() as conn:
        return [{k: str(v) for k, v in row.items()} for row in conn.execute(sa.text("SELECT * FROM votes ORDER BY id")).mappings()]


def remote_votes(hub, tmp_path) -> int | None:
    files = hub.repos.get(("dataset", REPO_ID))
    files = files.files() if files else {}
    if SNAPSHOT_NAME not in files:
        return None
    (tmp_path / "remote.db").write_bytes(files[SNAPSHOT_NAME][0])
    db = sqlite3.connect(tmp_path / "remote.db")
    try:
        return db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    finally:
        db.close()


def delete_database(db):
    for path in db.parent.glob(db.name + "*"):
        path.unlink()


def test_votes_survive_a_restart(settings, tiny_models, fake_hub, tmp_path):
    db = settings.votes_db
    sync = VoteSync(db, REPO_ID, every_minutes=1 / 60)  # the scheduler's own timer: every second
    assert "no snapshot" in sync.status
    app = ArenaApp(settings, tiny_models)
    cast(app, 5)
    assert (db.parent / (db.name + "-wal")).stat().st_size > 0  # the newest votes are still in the WAL
    deadline = time.monotonic() + 20
    while remote_votes(fake_hub, tmp_path) != 5 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert remote_votes(fake_hub, tmp_path) == 5  # pushed by the timer, WAL included
    cast(app, 2)
    before = rows(app, tmp_path, "before.csv")
    app.close()
    sync.close()  # the push at shutdown
    assert remote_votes(fake_hub, tmp_path) == 7
    assert fake_hub.repo(REPO_ID, "dataset").files()[SNAPSHOT_NAME][1]  # stored through LFS, as a binary

    delete_database(db)
    restarted = VoteSync(db, REPO_ID, every_minutes=60)
    assert restarted.status == f"votes: recovered 7 votes from the latest snapshot in {REPO_ID}"
    app = ArenaApp(settings, tiny_models)
    after = rows(app, tmp_path, "after.csv")
    assert after == before and len({r["token"] for r in after}) == 7  # none missing, none doubled
    commits = len(fake_hub.repo(REPO_ID, "dataset").history)
    restarted.push()
    assert len(fake_hub.repo(REPO_ID, "dataset").history) == commits  # nothing new: no commit
    cast(app, 1)
    app.close()
    restarted.close()
    assert remote_votes(fake_hub, tmp_path) == 8


def test_a_local_database_is_kept(settings, tiny_models, fake_hub, tmp_path):
    app = ArenaApp(settings, tiny_models)
    cast(app, 2)
    app.close()
    sync = VoteSync(settings.votes_db, REPO_ID, every_minutes=60)
    assert sync.status.startswith("votes: using the local database") and "(2 votes)" in sync.status
    sync.close()
    assert remote_votes(fake_hub, tmp_path) == 2


def test_snapshot_is_consistent_while_votes_are_written(tmp_path, settings, tiny_models):
    app = ArenaApp(settings, tiny_models)
    cast(app, 3)
    count, last_id = snapshot(settings.votes_db, tmp_path / "copy.db")
    assert (count, last_id) == (3, 3)
    copy = sqlite3.connect(tmp_path / "copy.db")
    assert copy.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # one self-contained file
    copy.close()
    app.close()


def test_an_unreachable_hub_means_no_sync_rather_than_an_overwrite(settings, monkeypatch, capsys):
    from huggingface_hub import constants

    url = closed_port_url()
    monkeypatch.setattr(constants, "ENDPOINT", url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    start = time.monotonic()
    assert start_vote_sync(Settings(votes_db=settings.votes_db, votes_repo=REPO_ID)) is None
    assert time.monotonic() - start < 10
    assert "NOT synced" in capsys.readouterr().out
    assert start_vote_sync(Settings(votes_db=settings.votes_db)) is None  # not configured


def test_a_damaged_snapshot_is_not_recovered_nor_overwritten(settings, fake_hub, capsys):
    fake_hub.seed(REPO_ID, {SNAPSHOT_NAME: b"SQLite format 3\x00" + b"\x00" * 100}, kind="dataset")
    assert start_vote_sync(Settings(votes_db=settings.votes_db, votes_repo=REPO_ID)) is None
    assert "NOT synced" in capsys.readouterr().out and not settings.votes_db.exists()
    assert len(fake_hub.repo(REPO_ID, "dataset").history) == 1  # the snapshot there is untouched


def test_snapshots_are_for_sqlite_only(fake_hub, capsys):
    """With PostgreSQL the server's backups take this role: nothing is recovered or pushed."""
    settings = Settings(votes_db="postgresql://arena@127.0.0.1:5432/arena", arena_secret="s" * 32, votes_repo=REPO_ID)
    assert start_vote_sync(settings) is None
    assert "pg_dump" in capsys.readouterr().out and fake_hub.requests == []


def test_settings(monkeypatch, tmp_path):
    monkeypatch.setenv("RESTORATION_VOTES_REPO", "me/votes")
    monkeypatch.setenv("RESTORATION_VOTES_SYNC_MINUTES", "0.5")
    s = Settings.from_env()
    assert s.votes_repo == "me/votes" and s.votes_sync_minutes == 0.5
    monkeypatch.setenv("RESTORATION_VOTES_SYNC_MINUTES", "0")
    with pytest.raises(ValueError, match="RESTORATION_VOTES_SYNC_MINUTES=0.0: out of range"):
        Settings.from_env()


def test_the_store_uses_persistent_storage_when_there_is_some(monkeypatch, tmp_path):
    import restoration.settings as settings_module

    monkeypatch.delenv("RESTORATION_VOTES_DB", raising=False)
    monkeypatch.setattr(settings_module, "PERSISTENT", tmp_path / "data")
    assert Settings().votes_db == settings_module.REPO / "votes.db"  # no /data
    (tmp_path / "data").mkdir()
    assert Settings().votes_db == tmp_path / "data" / "votes.db"
    assert Settings.from_env().votes_db == tmp_path / "data" / "votes.db"
    monkeypatch.setenv("RESTORATION_VOTES_DB", str(tmp_path / "mine.db"))
    assert Settings.from_env().votes_db == tmp_path / "mine.db"
