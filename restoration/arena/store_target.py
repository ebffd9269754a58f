"""What RESTORATION_VOTES_DB names, checked before the app spends minutes loading models: a SQLite
file we can open or create, or a PostgreSQL URL (the server may come up later); and the vote store's
one error, `VoteStoreError` (restoration/arena/store.py raises it too)."""

import os
import sqlite3
import tempfile
from pathlib import Path

import sqlalchemy as sa

SCHEMES = ("postgresql://", "postgresql+psycopg://")


class VoteStoreError(RuntimeError):
    """The vote store cannot be opened or used; the message is one line naming the store."""


def is_database_url(target) -> bool:
    """Whether RESTORATION_VOTES_DB names a PostgreSQL server rather than a SQLite file."""
    return isinstance(target, str) and target.startswith(SCHEMES)


def check_path(path):
    """Raise VoteStoreError (one line) unless `path` is a vote store we can open, or a new file we
    can create. Creates no database (a snapshot recovery may still put one there), only its folder.
    A PostgreSQL URL is only parsed here: the server may come up after the app."""
    if is_database_url(path):
        try:
            sa.make_url(path)
        except (sa.exc.ArgumentError, ValueError) as e:
            raise VoteStoreError(f"RESTORATION_VOTES_DB is not a usable PostgreSQL URL ({e})") from None
        return
    path = Path(path)
    fix = "; set RESTORATION_VOTES_DB to a writable SQLite file"
    if path.is_dir():
        raise VoteStoreError(f"{path} is a folder{fix}")
    if path.exists():
        try:
            db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
            try:
                db.execute("PRAGMA schema_version").fetchone()  # "file is not a database" shows here
            finally:
                db.close()
        except sqlite3.Error as e:
            raise VoteStoreError(f"cannot use {path} as the vote store ({type(e).__name__}: {e}){fix}") from None
        if not os.access(path, os.R_OK | os.W_OK):
            raise VoteStoreError(f"cannot use {path} as the vote store (not writable){fix}")
        return
    try:  # a probe file, not the database itself (root passes os.access even on /proc)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path.parent, prefix=".votes-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise VoteStoreError(f"cannot create {path} ({type(e).__name__}: {e.strerror or e}){fix}") from None
