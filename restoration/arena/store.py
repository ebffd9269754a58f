"""The vote store: votes and the arena's shared state, in SQLite (the default) or PostgreSQL.

`RESTORATION_VOTES_DB` names a SQLite file (no server: one app process) or a
`postgresql://user@host:port/dbname` URL (several app replicas share one arena). Both go through
one schema and one code path in SQLAlchemy Core; the few places where the two differ say so.

What the store holds, so that any replica can decide:
- `votes`: accepted votes, one committed transaction each, on disk before the judge sees the reveal;
  each with its scene's model family and crop box, so the votes can be re-analysed per image.
- `live_pairs`: each session's one live battle (its one-time token, sides, when it was shown, when it
  expires), so a vote is accepted by whichever replica receives it.
- `pair_issues`: when each address was given a new pair (the pairs-per-minute cap).
- `client_locks`: one row per client key. A transaction that counts a client's votes or pairs
  against a cap locks its rows first (`SELECT ... FOR UPDATE` semantics, through an upsert), so
  two replicas cannot both grant the last vote of a minute. SQLite takes its one write lock
  instead (`BEGIN IMMEDIATE`).
- `arena_meta`: the public export's cut (the last vote id it includes), so every replica serves
  the same CSV.
- `submissions`: community models (submissions.py): repo, pinned commit, checks' figures, quick
  evaluation, review state and reason; what every replica loads at start-up beside the shipped models.
- `schema_version`: the migrations applied (`MIGRATIONS`); opening a database applies the missing
  ones, so a SQLite file from before this module opens with every vote. The tables and migrations
  are in store_schema.py; what RESTORATION_VOTES_DB names is checked in store_target.py.

Each vote keeps what is needed to audit it without keeping who cast it: `client` and `judge` are
HMACs (keyed with a server secret) of the client's address and of address + browser id, never
the address itself. The public export (`write_public_csv`) leaves out even those.

SQLite runs in WAL mode with `synchronous=FULL` (a commit is on disk when it returns); the file
stays a plain SQLite database at the configured path (vote_sync.py snapshots it). A PostgreSQL
server that is down or restarting makes each call raise `VoteStoreError` (one line), and the next
call after it is back works: the connection pool checks connections before use, and the schema is applied on
the first call that reaches the server.
"""

import contextlib
import csv
import threading
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from restoration.arena.store_schema import (
    MIGRATIONS,
    SCHEMA_VERSION,
    arena_meta,
    client_locks,
    live_pairs,
    pair_issues,
    schema_version,
    submissions,
    votes,
)
from restoration.arena.store_target import VoteStoreError, is_database_url

ANSWER_LABELS = {"A is better": "A", "B is better": "B", "Tie": "tie", "Both bad": "both_bad"}  # the buttons
ANSWERS = tuple(ANSWER_LABELS.values())  # as stored
def utc_iso(seconds: float | None = None) -> str:
    """A time (seconds since the epoch; now if None) as stored: UTC, ISO 8601, milliseconds. One
    fixed format, so that times compare as text in both databases."""
    moment = datetime.now(UTC) if seconds is None else datetime.fromtimestamp(seconds, UTC)
    return moment.isoformat(timespec="milliseconds")


def utc_now() -> str:
    return utc_iso()


# --------------------------------------------------------------------------------------------
def _upsert(dialect: str):
    """INSERT ... ON CONFLICT, which both databases have under the same SQLAlchemy API."""
    return pg_dialect.insert if dialect == "postgresql" else sqlite_dialect.insert


# --------------------------------------------------------------------------------------------
# The store


class VoteStore:
    """Votes and the arena's shared state in SQLite (a path) or PostgreSQL (a URL). Thread-safe:
    every call takes a pooled connection; `pool_size` should cover the app's concurrent handlers."""

    COLUMNS = ("id", "time", "session", "image", "degradation", "model_a", "revision_a", "model_b", "revision_b",
               "answer", "seconds", "token", "client", "judge", "family", "crop")
    # What a researcher needs to refit the ratings (per image and crop too), and nothing that links votes to a judge.
    PUBLIC_COLUMNS = ("time", "image", "degradation", "model_a", "revision_a", "model_b", "revision_b", "answer",
                      "seconds", "counted", "family", "crop")

    def __init__(self, target, pool_size: int = 10, connect_timeout: float = 5.0):
        self.is_postgres = is_database_url(target)
        self.path = None if self.is_postgres else Path(target)
        self._schema_lock = threading.Lock()
        self._schema_ready = False
        if self.is_postgres:
            self.url = sa.make_url(target).set(drivername="postgresql+psycopg")
            self.name = self.url.render_as_string(hide_password=True)
            self.engine = sa.create_engine(
                self.url, pool_size=pool_size, max_overflow=pool_size // 2,
                pool_pre_ping=True,  # a connection broken by a server restart is replaced, not used
                pool_timeout=10, isolation_level="READ COMMITTED",
                connect_args={"connect_timeout": max(1, round(connect_timeout))})
            try:  # a server that is down now is not fatal: the schema is applied on first contact
                self._ensure_schema()
            except VoteStoreError as e:
                print(f"votes: {e}; judging waits for it, Compare serves meanwhile", flush=True)
            return
        self.name = str(self.path)
        fix = "; set RESTORATION_VOTES_DB to a writable SQLite file"
        if self.path.is_dir():
            raise VoteStoreError(f"{self.path} is a folder; RESTORATION_VOTES_DB must name a file")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise VoteStoreError(f"cannot use {self.path} as the vote store ({type(e).__name__}: {e}){fix}") from None
        self.engine = sa.create_engine(f"sqlite:///{self.path}", pool_size=pool_size, max_overflow=pool_size // 2,
                                       connect_args={"timeout": 30, "check_same_thread": False})
        sa.event.listen(self.engine, "connect", _sqlite_connect)
        sa.event.listen(self.engine, "begin", _sqlite_begin)
        try:
            self._ensure_schema()
        except VoteStoreError as e:
            why = str(e).split(" failed (", 1)[-1].rstrip(")")
            raise VoteStoreError(f"cannot use {self.path} as the vote store ({why}){fix}") from None

    # ------------------------------------------------------------------ connections and errors

    @contextlib.contextmanager
    def _errors(self):
        """Database failures as one-line VoteStoreErrors; IntegrityError (a token used twice)
        passes, as do the callers' own exceptions."""
        try:
            yield
        except sa.exc.IntegrityError:
            raise
        except (sa.exc.DBAPIError, sa.exc.TimeoutError) as e:
            cause = getattr(e, "orig", None) or e
            detail = (str(cause).strip().splitlines() or [""])[0][:200]
            error = VoteStoreError(f"the vote store {self.name} failed ({type(cause).__name__}: {detail})")
            raise error from e

    def _ensure_schema(self):
        if self._schema_ready:
            return
        with self._schema_lock, self._errors():
            if self._schema_ready:
                return
            with self.engine.connect() as conn:
                conn.execution_options(writes=True)
                with conn.begin():
                    if self.is_postgres:  # replicas starting together: one migrates, the others wait
                        conn.execute(sa.select(sa.func.pg_advisory_xact_lock(1_804_180_018)))
                    schema_version.create(conn, checkfirst=True)
                    current = conn.execute(sa.select(sa.func.max(schema_version.c.version))).scalar() or 0
                    for version in sorted(v for v in MIGRATIONS if v > current):
                        MIGRATIONS[version](conn)
                    if current < SCHEMA_VERSION:
                        conn.execute(schema_version.delete())
                        conn.execute(schema_version.insert().values(version=SCHEMA_VERSION))
            self._schema_ready = True

    @contextlib.contextmanager
    def transaction(self) -> Iterator["Transaction"]:
        """One read-write transaction, committed when the block ends (rolled back if it raises):
        what is decided inside is decided once, for every replica."""
        with self._errors():
            self._ensure_schema()
            with self.engine.connect() as conn:
                conn.execution_options(writes=True)
                with conn.begin():
                    yield Transaction(conn, self.engine.dialect.name)

    @contextlib.contextmanager
    def _reading(self) -> Iterator[sa.Connection]:
        with self._errors():
            self._ensure_schema()
            with self.engine.connect() as conn:
                yield conn

    def _scalar(self, query):
        with self._reading() as conn:
            return conn.execute(query).scalar()

    def _rows(self, query) -> list[tuple]:
        with self._reading() as conn:
            return [tuple(row) for row in conn.execute(query)]

    def schema_version(self) -> int:
        return self._scalar(sa.select(sa.func.max(schema_version.c.version)))

    # ------------------------------------------------------------------ votes

    def add(self, battle, answer: str, seconds: float, time: str | None = None) -> int:
        """Store one vote on `battle` (a `pairs.Battle`) and commit it; returns its id. Raises
        sqlalchemy.exc.IntegrityError for a token already used."""
        with self.transaction() as tx:
            return tx.insert_vote(vote_row(battle, answer, seconds, time or utc_now()))

    def add_many(self, rows: Iterable[tuple]):
        """Bulk insert (benchmarks, imports): rows in COLUMNS order without the id, one transaction
        (the last columns may be left out: they take their defaults)."""
        names = self.COLUMNS[1:]
        with self.transaction() as tx:
            tx.conn.execute(votes.insert(), [dict(zip(names, row)) for row in rows])

    def token_used(self, token: str) -> bool:
        return self._scalar(sa.select(sa.literal(1)).where(votes.c.token == token)) is not None

    def count(self, session: str | None = None) -> int:
        query = sa.select(sa.func.count()).select_from(votes)
        if session is not None:
            query = query.where(votes.c.session == session)
        return self._scalar(query)

    def count_since(self, seconds: float, *, client: str | None = None, judge: str | None = None,
                    now: float | None = None) -> int:
        """Votes of one client address key or one judge key in the last `seconds`."""
        column, key = (votes.c.client, client) if judge is None else (votes.c.judge, judge)
        since = utc_iso((now if now is not None else datetime.now(UTC).timestamp()) - seconds)
        return self._scalar(sa.select(sa.func.count()).where(column == key, votes.c.time >= since))

    def judge_outcomes(self, fast_seconds: float, up_to_id: int | None = None, by_family: bool = False) -> list[tuple]:
        """(judge, degradation, model_a, model_b, answer, votes, votes faster than `fast_seconds`),
        with `by_family` the scene's family after them ("" for older votes), over every vote or
        those up to `up_to_id`: what the leaderboard and the judge flags need, aggregated in SQL so
        that 100,000 votes never become 100,000 Python objects."""
        fast = sa.func.sum(sa.case((votes.c.seconds < fast_seconds, 1), else_=0))
        keys = (votes.c.judge, votes.c.degradation, votes.c.model_a, votes.c.model_b, votes.c.answer)
        if by_family:
            query = sa.select(*keys, sa.func.count(), fast, votes.c.family).group_by(*keys, votes.c.family)
        else:
            query = sa.select(*keys, sa.func.count(), fast).group_by(*keys)
        if up_to_id is not None:
            query = query.where(votes.c.id <= up_to_id)
        return self._rows(query)

    def export_cut(self, every: int) -> int:
        """The last vote id in the public export: moved to the newest vote once `every` votes have
        come in past it (or at the first export). Kept in the database, so every replica cuts the
        export at the same vote and serves the same CSV."""
        with self.transaction() as tx:
            tx.lock_keys(["arena:export"])  # (client keys are hex: no clash)
            cut = tx.conn.execute(sa.select(arena_meta.c.value).where(arena_meta.c.name == "export_cut")).scalar()
            newer = tx.conn.execute(sa.select(sa.func.count(), sa.func.max(votes.c.id))
                                    .where(votes.c.id > int(cut or 0))).one()
            if cut is not None and newer[0] < every:
                return int(cut)
            new_cut = newer[1] if newer[1] is not None else int(cut or 0)
            statement = _upsert(tx.dialect)(arena_meta).values(name="export_cut", value=str(new_cut))
            tx.conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": str(new_cut)}))
            return new_cut

    def write_public_csv(self, file, excluded_judges: Iterable[str] = (), up_to_id: int | None = None,
                         families: Mapping[str, str] | None = None, repos: Mapping[str, str] | None = None) -> int:
        """The public export: PUBLIC_COLUMNS, times to the minute, rows sorted by their values
        (not by arrival, so neighbouring rows say nothing about who voted), `counted` = 0 for votes
        the leaderboard leaves out, the scene's `family` and `crop` (its box in the image, "left top
        right bottom"; empty for votes from before it was kept, whose scene was the image's centre);
        every vote, or those up to `up_to_id`. `families` (model name → its family) gives the family
        of older votes, from their U-Net(s) (a pair is one family's models and bicubic). With
        `repos` (model name → its Hub repo id), columns `repo_a` and `repo_b`: who published each
        side (a community model's name and revision alone do not say it; empty for bicubic).
        Returns the number of votes."""
        excluded = set(excluded_judges)
        families = families or {}
        minute = sa.func.substr(votes.c.time, 1, 16)
        c = votes.c
        query = sa.select(minute, c.image, c.degradation, c.model_a, c.revision_a, c.model_b, c.revision_b,
                          c.answer, c.seconds, c.judge, c.family, c.crop).order_by(
            minute, c.image, c.crop, c.degradation, c.model_a, c.model_b, c.answer, c.seconds)
        if up_to_id is not None:
            query = query.where(c.id <= up_to_id)
        with self._reading() as conn, open(file, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(list(self.PUBLIC_COLUMNS) + (["repo_a", "repo_b"] if repos is not None else []))
            n = 0
            for *row, seconds, judge, family, crop in conn.execute(query):
                row[0] += "Z"
                family = family or families.get(row[3]) or families.get(row[5]) or ""
                repo = [] if repos is None else [repos.get(row[3]) or "", repos.get(row[5]) or ""]
                writer.writerow([*row, round(seconds, 1), int(judge not in excluded), family, crop, *repo])
                n += 1
        return n

    # ------------------------------------------------------------------ community models and notes

    def submission_rows(self, *statuses: str) -> list[dict]:
        """The `submissions` rows (every one, or those in `statuses`), oldest first."""
        query = sa.select(submissions).order_by(submissions.c.submitted_at, submissions.c.name)
        if statuses:
            query = query.where(submissions.c.status.in_(statuses))
        with self._reading() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def note(self, name: str) -> str | None:
        """A value kept in `arena_meta` (e.g. a figure computed once for every replica)."""
        return self._scalar(sa.select(arena_meta.c.value).where(arena_meta.c.name == name))

    def set_note(self, name: str, value: str):
        with self.transaction() as tx:
            statement = _upsert(tx.dialect)(arena_meta).values(name=name, value=value)
            tx.conn.execute(statement.on_conflict_do_update(index_elements=["name"], set_={"value": value}))

    def close(self):
        self.engine.dispose()


def vote_row(battle, answer: str, seconds: float, time: str) -> dict:
    """A vote on `battle` (a `pairs.Battle`, its client the one who voted) as a `votes` row."""
    return {"time": time, "session": battle.session, "image": battle.image_id, "degradation": battle.degradation,
            "model_a": battle.a.name, "revision_a": battle.a.revision, "model_b": battle.b.name,
            "revision_b": battle.b.revision, "answer": answer, "seconds": round(seconds, 3), "token": battle.token,
            "client": battle.client.address_key, "judge": battle.client.judge_key,
            "family": battle.family, "crop": battle.crop}


class Transaction:
    """The statements the arena's decisions are made of, inside one `VoteStore.transaction`."""

    def __init__(self, conn: sa.Connection, dialect: str):
        self.conn, self.dialect = conn, dialect

    def lock_keys(self, keys: Iterable[str]):
        """Lock one row per key until the transaction ends (made on first use), in sorted order so
        that two transactions never wait on each other in a cycle, in one statement. An upsert
        that updates the row takes its row lock in PostgreSQL; in SQLite, `BEGIN IMMEDIATE`
        already holds the lock."""
        statement = _upsert(self.dialect)(client_locks).values([{"key": key} for key in sorted(set(keys))])
        self.conn.execute(statement.on_conflict_do_update(index_elements=["key"], set_={"key": statement.excluded.key}))

    def live_pair(self, session: str, lock: bool = False):
        query = sa.select(live_pairs).where(live_pairs.c.session == session)
        return self.conn.execute(query.with_for_update() if lock else query).one_or_none()

    def put_live_pair(self, row: dict):
        """Make `row` its session's live pair, replacing the one it had (a skip)."""
        statement = _upsert(self.dialect)(live_pairs).values(**row)
        changed = {k: v for k, v in row.items() if k != "session"}
        self.conn.execute(statement.on_conflict_do_update(index_elements=["session"], set_=changed))

    def drop_live_pair(self, session: str):
        self.conn.execute(live_pairs.delete().where(live_pairs.c.session == session))

    def drop_expired(self, now: float, window: float):
        """Housekeeping: live pairs past their expiry, and pair records older than the cap's window."""
        self.conn.execute(live_pairs.delete().where(live_pairs.c.expires_at < now))
        self.conn.execute(pair_issues.delete().where(pair_issues.c.at < now - window))

    def pairs_since(self, address: str, since: float) -> int:
        """Pairs issued to `address` since `since` (older records go in `drop_expired`)."""
        query = sa.select(sa.func.count()).where(pair_issues.c.address == address, pair_issues.c.at >= since)
        return self.conn.execute(query).scalar()

    def add_pair_issue(self, address: str, at: float):
        self.conn.execute(pair_issues.insert().values(address=address, at=at))

    def votes_since(self, keys: dict[str, str], minute_since: float, day_since: float) -> dict[str, tuple[int, int]]:
        """column → (votes in the last minute, votes in the last day) of its key, for each column
        ("client", "judge") and key in `keys`: one statement, one index range a count."""
        minute, day = utc_iso(minute_since), utc_iso(day_since)
        count = lambda col, key, since: (  # noqa: E731
            sa.select(sa.func.count()).where(votes.c[col] == key, votes.c.time >= since).scalar_subquery())
        row = self.conn.execute(sa.select(*[count(c, k, t) for c, k in keys.items() for t in (minute, day)])).one()
        return {col: (int(row[2 * i]), int(row[2 * i + 1])) for i, col in enumerate(keys)}

    def token_used(self, token: str) -> bool:
        return self.conn.execute(sa.select(sa.literal(1)).where(votes.c.token == token)).first() is not None

    def insert_vote(self, row: dict) -> int:
        return self.conn.execute(votes.insert().values(**row)).inserted_primary_key[0]


def _sqlite_connect(dbapi_conn, _record):
    """Each SQLite connection: WAL (readers never block the writer), FULL sync (a commit is on disk
    when it returns), and no implicit transactions from the driver: `_sqlite_begin` starts them."""
    dbapi_conn.isolation_level = None
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    dbapi_conn.execute("PRAGMA synchronous=FULL")


def _sqlite_begin(conn):
    """A writing transaction takes SQLite's write lock at BEGIN (IMMEDIATE), so its reads (a cap's
    count, a live pair) cannot be overtaken by another writer before it writes."""
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("writes") else "BEGIN")
