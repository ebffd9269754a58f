"""Votes that survive a Space's restarts: snapshots of the vote database in a Hub dataset repo.

With `RESTORATION_VOTES_REPO` set (a dataset repo id, ideally private), the app
- at start, when it has no local database, recovers the latest snapshot (`votes.db` on the repo's
  main branch); when the repo has none yet it starts empty;
- every `RESTORATION_VOTES_SYNC_MINUTES` and once at shutdown, pushes a snapshot with
  `huggingface_hub.CommitScheduler`, but only when there are new votes.

A snapshot is taken with SQLite's online backup API from its own connection: it sees every
committed vote, including those still in the write-ahead log, which a copy of the file would miss.
The snapshot is written to a side file and renamed into place inside the scheduler's push, so an
upload never reads a half-written file.

Only for a SQLite store: with PostgreSQL (several replicas), the server's own backups (`pg_dump`)
and the public CSV take this role, and RESTORATION_VOTES_REPO is ignored with a note.

If the Hub cannot be reached at start, the app does not sync at all (it says so): pushing the
database of a fresh start would replace the snapshot that holds every earlier vote. On a Space with
persistent storage (`/data`), the database itself survives restarts and the snapshots are a backup.
"""

import logging
import os
import sqlite3
from pathlib import Path

from restoration.arena.store import is_database_url
from restoration.hub.transfer import HubUnreachable, probe, transport_errors

SNAPSHOT_NAME = "votes.db"
log = logging.getLogger(__name__)


def snapshot(db_path, dest) -> tuple[int, int]:
    """Write a consistent copy of the vote database at `db_path` to `dest` (atomically); returns
    (number of votes, highest vote id), which says whether anything changed."""
    dest = Path(dest)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True, timeout=30)
    try:
        out = sqlite3.connect(tmp)
        try:
            src.backup(out)
            out.execute("PRAGMA journal_mode=DELETE")  # a self-contained file, no -wal beside it
            signature = out.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM votes").fetchone()
        finally:
            out.close()
    finally:
        src.close()
    os.replace(tmp, dest)
    return tuple(signature)


def _signature(db_path) -> tuple[int, int] | None:
    try:
        db = sqlite3.connect(f"file:{Path(db_path)}?mode=ro", uri=True, timeout=30)
        try:
            return tuple(db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM votes").fetchone())
        finally:
            db.close()
    except sqlite3.Error:  # no database or no votes table yet
        return None


def check_database(file) -> int:
    """Raise sqlite3.DatabaseError unless `file` is an intact vote database; returns its vote count."""
    db = sqlite3.connect(f"file:{Path(file)}?mode=ro", uri=True)
    try:
        if db.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError(f"{file}: integrity check failed")
        return db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    finally:
        db.close()


def recover(db_path, repo_id: str) -> str:
    """If there is no database at `db_path`, put the repo's latest snapshot there. Returns a line
    for the log; raises HubUnreachable when the Hub does not answer (then nothing is known about
    the snapshots, and nothing must be pushed)."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    db_path = Path(db_path)
    if db_path.exists():
        return f"votes: using the local database {db_path} ({(_signature(db_path) or (0, 0))[0]} votes)"
    try:
        probe(repo_id, SNAPSHOT_NAME, "main", repo_type="dataset")
        file = hf_hub_download(repo_id, SNAPSHOT_NAME, repo_type="dataset", revision="main")
    except (EntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError) as e:
        return f"votes: no snapshot in {repo_id} yet ({type(e).__name__}); starting with no votes"
    n = check_database(file)
    db_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = db_path.with_name(db_path.name + ".recovering")
    src, out = sqlite3.connect(f"file:{file}?mode=ro", uri=True), sqlite3.connect(tmp)
    try:
        src.backup(out)
    finally:
        src.close()
        out.close()
    os.replace(tmp, db_path)
    return f"votes: recovered {n} votes from the latest snapshot in {repo_id}"


def _scheduler_class():
    from huggingface_hub import CommitScheduler

    class VoteSnapshotScheduler(CommitScheduler):
        """A CommitScheduler whose every push first refreshes the snapshot (only if votes changed:
        an unchanged file is not uploaded, so an idle arena makes no commits)."""

        def __init__(self, *, db_path, synced: tuple[int, int] | None, **kwargs):
            self.db_path = Path(db_path)
            self.snapshot_file = Path(kwargs["folder_path"]) / SNAPSHOT_NAME
            self.last_signature = synced  # what the repo already holds (after a recovery), if known
            super().__init__(**kwargs)

        def push_to_hub(self):
            signature = _signature(self.db_path)
            if signature is not None and signature != self.last_signature:
                with self.lock:
                    self.last_signature = snapshot(self.db_path, self.snapshot_file)
            return super().push_to_hub()

    return VoteSnapshotScheduler


class VoteSync:
    """Recover at start, snapshots on a timer, one last push at `close`."""

    def __init__(self, db_path, repo_id: str, every_minutes: float = 5.0, folder=None):
        self.db_path, self.repo_id = Path(db_path), repo_id
        self.folder = Path(folder) if folder else self.db_path.with_name(self.db_path.stem + "-snapshot")
        self.status = recover(self.db_path, repo_id)
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / SNAPSHOT_NAME).unlink(missing_ok=True)  # only snapshots taken from now on are pushed
        synced = _signature(self.db_path) if "recovered" in self.status else None
        try:  # (creates the repo if need be)
            self.scheduler = _scheduler_class()(
                db_path=self.db_path, synced=synced, repo_id=repo_id, repo_type="dataset", folder_path=self.folder,
                every=every_minutes, private=True, allow_patterns=[SNAPSHOT_NAME])
        except transport_errors() as e:
            raise HubUnreachable(f"the Hub did not answer ({type(e).__name__}: {e})") from None

    def push(self, timeout: float | None = 60):
        """Push a snapshot now (if there are new votes); returns the commit info or None."""
        return self.scheduler.trigger().result(timeout)

    def close(self, timeout: float | None = 60):
        """The last push (at shutdown): a failure is reported, not raised (the votes stay on disk)."""
        try:
            self.push(timeout)
        except Exception as e:  # noqa: BLE001
            print(f"votes: the push at shutdown to {self.repo_id} failed ({type(e).__name__}: {e})")
        finally:
            self.scheduler.stop()


def start_vote_sync(settings) -> VoteSync | None:
    """The app's vote sync, or None when RESTORATION_VOTES_REPO is not set, or the Hub cannot be
    reached or gives a snapshot that is not an intact vote database (logged: the votes then live
    only in the local database, and no snapshot is overwritten)."""
    if not settings.votes_repo:
        return None
    if is_database_url(settings.votes_db):  # a server has its own backups; this copies a SQLite file
        print("votes: RESTORATION_VOTES_REPO is ignored with a PostgreSQL vote store: back it up with pg_dump "
              "(the public CSV is on the leaderboard)")
        return None
    try:
        sync = VoteSync(settings.votes_db, settings.votes_repo, settings.votes_sync_minutes)
    except Exception as e:  # noqa: BLE001 (unreachable, refused, a damaged snapshot: the app serves on)
        why = str(e) if isinstance(e, HubUnreachable) else f"{type(e).__name__}: {e}"
        log.error("votes: NOT synced to %s this run: %s", settings.votes_repo, why)
        print(f"votes: NOT synced to {settings.votes_repo} this run ({why}); they are kept in {settings.votes_db}")
        return None
    print(sync.status)
    return sync
