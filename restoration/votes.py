"""The vote store: accepted votes in one plain SQLite file.

WAL mode with `synchronous=FULL`, one committed transaction per vote, so a vote is on disk before
the judge sees the reveal, and killing the app between votes loses nothing. The file stays a
plain SQLite database at the configured path (snapshots copy it with SQLite's backup API).

Each vote keeps what is needed to audit it without keeping who cast it: `client` and `judge` are
HMACs (keyed with a server secret) of the client's address and of address + browser id, never
the address itself. The public export (`write_public_csv`) leaves out even those.

Databases from before the `degradation`, `client` and `judge` columns are migrated on opening:
their votes were all cast on the lesson's degradation, and their judge is their session.
"""

import csv
import os
import sqlite3
import tempfile
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

ANSWERS = ("A", "B", "tie", "both_bad")


class VoteStoreError(RuntimeError):
    """The vote store cannot be opened or used; the message is one line naming the file."""


def check_path(path):
    """Raise VoteStoreError (one line) unless `path` is a vote store we can open, or a new file we
    can create. Creates no database (a snapshot restore may still put one there), only its folder."""
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


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class VoteStore:
    """Accepted votes in SQLite. One connection, serialised by a lock (Gradio calls handlers
    from several threads)."""

    COLUMNS = ("id", "time", "session", "image", "degradation", "model_a", "revision_a", "model_b", "revision_b",
               "answer", "seconds", "token", "client", "judge")
    # What a researcher needs to refit the ratings, and nothing that links votes to a judge.
    PUBLIC_COLUMNS = ("time", "image", "degradation", "model_a", "revision_a", "model_b", "revision_b", "answer",
                      "seconds", "counted")
    _INSERT = ("INSERT INTO votes (time, session, image, degradation, model_a, revision_a, model_b, revision_b, "
               "answer, seconds, token, client, judge) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")

    def __init__(self, path):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            if self.path.is_dir():
                raise VoteStoreError(f"{self.path} is a folder; RESTORATION_VOTES_DB must name a file")
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # every commit reaches the disk before we reply
            self._create_and_migrate()
        except VoteStoreError:
            raise
        except (sqlite3.Error, OSError) as e:
            raise VoteStoreError(f"cannot use {self.path} as the vote store ({type(e).__name__}: {e}); "
                                 "set RESTORATION_VOTES_DB to a writable SQLite file") from None

    def _create_and_migrate(self):
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS votes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time TEXT NOT NULL,              -- UTC, ISO 8601
                session TEXT NOT NULL,           -- pseudonymous judge session
                image TEXT NOT NULL,
                model_a TEXT NOT NULL,           -- the model shown on side A
                revision_a TEXT NOT NULL,
                model_b TEXT NOT NULL,           -- the model shown on side B
                revision_b TEXT NOT NULL,
                answer TEXT NOT NULL CHECK (answer IN ('A', 'B', 'tie', 'both_bad')),
                seconds REAL NOT NULL,           -- from the pair being shown to the vote
                token TEXT NOT NULL UNIQUE       -- each battle token is used at most once
            );
        """)
        have = {row[1] for row in self._db.execute("PRAGMA table_info(votes)")}
        added = {"degradation": "TEXT NOT NULL DEFAULT 'lesson'",  # how the low-resolution input was made
                 "client": "TEXT NOT NULL DEFAULT ''",  # HMAC of the client's address
                 "judge": "TEXT NOT NULL DEFAULT ''"}  # HMAC of address + browser id (or session)
        for column, declaration in added.items():
            if column not in have:
                self._db.execute(f"ALTER TABLE votes ADD COLUMN {column} {declaration}")
        if "judge" not in have:
            self._db.execute("UPDATE votes SET judge = 'session:' || session WHERE judge = ''")
        self._db.executescript("""
            CREATE INDEX IF NOT EXISTS votes_session ON votes (session);
            CREATE INDEX IF NOT EXISTS votes_client_time ON votes (client, time);
            CREATE INDEX IF NOT EXISTS votes_judge_time ON votes (judge, time);
        """)

    def _execute(self, sql: str, args: Sequence = ()):
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as e:
                raise VoteStoreError(f"the vote store {self.path} failed ({type(e).__name__}: {e})") from None

    def add(self, battle, answer: str, seconds: float, time: str | None = None) -> int:
        """Store one vote on `battle` (a `battles.Battle`) and commit it; returns its id. Raises
        sqlite3.IntegrityError for a token already used."""
        row = (time or utc_now(), battle.session, battle.image_id, battle.degradation, battle.a.name,
               battle.a.revision, battle.b.name, battle.b.revision, answer, round(seconds, 3), battle.token,
               battle.client.address_key, battle.client.judge_key)
        with self._lock:  # autocommit: the insert is its own transaction, on disk when execute returns
            try:
                return self._db.execute(self._INSERT, row).lastrowid
            except sqlite3.IntegrityError:
                raise
            except sqlite3.Error as e:
                raise VoteStoreError(f"the vote store {self.path} failed ({type(e).__name__}: {e})") from None

    def add_many(self, rows: Iterable[tuple]):
        """Bulk insert (benchmarks, imports): rows in COLUMNS order without the id."""
        with self._lock:
            self._db.execute("BEGIN")  # one transaction (one sync to disk) for the lot
            try:
                self._db.executemany(self._INSERT, rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def token_used(self, token: str) -> bool:
        return bool(self._execute("SELECT 1 FROM votes WHERE token = ?", (token,)))

    def count(self, session: str | None = None) -> int:
        if session is None:
            return self._execute("SELECT COUNT(*) FROM votes")[0][0]
        return self._execute("SELECT COUNT(*) FROM votes WHERE session = ?", (session,))[0][0]

    def count_since(self, seconds: float, *, client: str | None = None, judge: str | None = None) -> int:
        """Votes of one client address key or one judge key in the last `seconds`."""
        since = (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="milliseconds")
        column, key = ("client", client) if judge is None else ("judge", judge)
        return self._execute(f"SELECT COUNT(*) FROM votes WHERE {column} = ? AND time >= ?", (key, since))[0][0]

    def judge_outcomes(self, fast_seconds: float) -> list[tuple]:
        """(judge, degradation, model_a, model_b, answer, votes, votes faster than `fast_seconds`):
        what the leaderboard and the judge flags need, aggregated in SQL so that 100,000 votes
        never become 100,000 Python objects."""
        return self._execute(
            "SELECT judge, degradation, model_a, model_b, answer, COUNT(*), SUM(seconds < ?) FROM votes "
            "GROUP BY judge, degradation, model_a, model_b, answer", (fast_seconds,))

    def outcome_counts(self, degradation: str | None = None) -> list[tuple[str, str, str, int]]:
        """(model_a, model_b, answer, number of votes) over every vote (or one degradation's)."""
        where, args = ("WHERE degradation = ?", (degradation,)) if degradation else ("", ())
        return self._execute(f"SELECT model_a, model_b, answer, COUNT(*) FROM votes {where} "
                             "GROUP BY model_a, model_b, answer", args)

    def write_csv(self, file) -> int:
        """Every vote with every column (the operator's audit copy), oldest first; returns the
        number of votes."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(self.COLUMNS)} FROM votes ORDER BY id")
            with open(file, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.COLUMNS)
                n = 0
                for row in rows:
                    writer.writerow(row)
                    n += 1
        return n

    def write_public_csv(self, file, excluded_judges: Iterable[str] = ()) -> int:
        """The public export: PUBLIC_COLUMNS, times to the minute, rows sorted by their values
        (not by arrival, so neighbouring rows say nothing about who voted), and `counted` = 0
        for votes the leaderboard leaves out. Returns the number of votes."""
        excluded = set(excluded_judges)
        with self._lock:
            rows = self._db.execute(
                "SELECT substr(time, 1, 16) || 'Z', image, degradation, model_a, revision_a, model_b, revision_b, "
                "answer, round(seconds, 1), judge FROM votes ORDER BY 1, 2, 3, 4, 6, 8, 9")
            with open(file, "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(self.PUBLIC_COLUMNS)
                n = 0
                for *row, judge in rows:
                    writer.writerow([*row, int(judge not in excluded)])
                    n += 1
        return n

    def close(self):
        with self._lock:
            self._db.close()
