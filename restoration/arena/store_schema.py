"""The vote store's schema (restoration/arena/store.py says what each table is for): its tables in
SQLAlchemy Core, one definition for SQLite and PostgreSQL, and the numbered migrations that bring
an older database up to date (`MIGRATIONS`; the store applies the missing ones when it opens)."""

import sqlalchemy as sa

metadata = sa.MetaData()
# SQLite's rowid alias must be spelled INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
ROW_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

votes = sa.Table(
    "votes", metadata,
    sa.Column("id", ROW_ID, primary_key=True, autoincrement=True),
    sa.Column("time", sa.Text, nullable=False),  # UTC, ISO 8601 (utc_iso)
    sa.Column("session", sa.Text, nullable=False),  # pseudonymous judge session
    sa.Column("image", sa.Text, nullable=False),
    sa.Column("model_a", sa.Text, nullable=False),  # the model shown on side A
    sa.Column("revision_a", sa.Text, nullable=False),
    sa.Column("model_b", sa.Text, nullable=False),  # the model shown on side B
    sa.Column("revision_b", sa.Text, nullable=False),
    sa.Column("answer", sa.Text, sa.CheckConstraint("answer IN ('A', 'B', 'tie', 'both_bad')"), nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),  # from the pair being shown to the vote
    sa.Column("token", sa.Text, nullable=False, unique=True),  # each battle token is used at most once
    sa.Column("degradation", sa.Text, nullable=False, server_default="lesson"),  # how the input was made
    sa.Column("client", sa.Text, nullable=False, server_default=""),  # HMAC of the client's address
    sa.Column("judge", sa.Text, nullable=False, server_default=""),  # HMAC of address + browser id
    # The scene: its model family (catalogue.FAMILIES) and its box in the image, "left top right bottom"
    # (scene_renderer.crop_text); "" in votes from before they were kept.
    sa.Column("family", sa.Text, nullable=False, server_default=""),
    sa.Column("crop", sa.Text, nullable=False, server_default=""),
    sa.Index("votes_session", "session"),
    sa.Index("votes_client_time", "client", "time"),
    sa.Index("votes_judge_time", "judge", "time"),
    sqlite_autoincrement=True,  # as the file has always been: ids are never reused
)

live_pairs = sa.Table(
    "live_pairs", metadata,
    sa.Column("session", sa.Text, primary_key=True),  # one live battle per session
    sa.Column("token", sa.Text, nullable=False, unique=True),
    sa.Column("image", sa.Text, nullable=False),
    sa.Column("degradation", sa.Text, nullable=False),
    sa.Column("model_a", sa.Text, nullable=False),
    sa.Column("revision_a", sa.Text, nullable=False),
    sa.Column("model_b", sa.Text, nullable=False),
    sa.Column("revision_b", sa.Text, nullable=False),
    sa.Column("shown_at", sa.Float, nullable=False),  # seconds since the epoch (the arena's clock)
    sa.Column("expires_at", sa.Float, nullable=False, index=True),
    sa.Column("client", sa.Text, nullable=False),  # the keys of the client it was issued to
    sa.Column("judge", sa.Text, nullable=False),
    sa.Column("family", sa.Text, nullable=False, server_default=""),  # the scene's, as in `votes`
    sa.Column("crop", sa.Text, nullable=False, server_default=""),
)

pair_issues = sa.Table(
    "pair_issues", metadata,
    sa.Column("address", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Index("pair_issues_address_at", "address", "at"),
)

client_locks = sa.Table("client_locks", metadata, sa.Column("key", sa.Text, primary_key=True))

arena_meta = sa.Table(
    "arena_meta", metadata,
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

submissions = sa.Table(
    "submissions", metadata,
    sa.Column("name", sa.Text, primary_key=True),  # the contender's name (submissions.submission_name)
    sa.Column("repo_id", sa.Text, nullable=False),  # the Hub model repo, owner/name
    sa.Column("revision", sa.Text, nullable=False),  # the pinned 40-character commit
    sa.Column("family", sa.Text, nullable=False),  # catalogue.FAMILIES: whose Compare and judge scenes it joins
    sa.Column("status", sa.Text, sa.CheckConstraint("status IN ('pending', 'approved', 'rejected')"), nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),  # the reviewer's words
    sa.Column("client", sa.Text, nullable=False, server_default=""),  # HMAC of the submitter's address (the daily cap)
    sa.Column("submitted_at", sa.Text, nullable=False),  # UTC, ISO 8601 (utc_iso)
    sa.Column("reviewed_at", sa.Text, nullable=True),
    sa.Column("facts", sa.Text, nullable=False, server_default="{}"),  # JSON: what the checks measured
    sa.Column("evaluation", sa.Text, nullable=False, server_default="{}"),  # JSON: the quick evaluation
    sa.Index("submissions_client_time", "client", "submitted_at"),
)

submission_attempts = sa.Table(  # every submission that reached the Hub, refused or not: the daily cap
    "submission_attempts", metadata,
    sa.Column("client", sa.Text, nullable=False),
    sa.Column("at", sa.Float, nullable=False),  # seconds since the epoch
    sa.Index("submission_attempts_client_at", "client", "at"),
)

schema_version = sa.Table("schema_version", metadata, sa.Column("version", sa.Integer, nullable=False))


def _migrate_votes(conn):
    """1: the votes table. A SQLite file from before versioned migrations already has one: its
    missing columns are added (its votes were all cast on the lesson's degradation, and their
    judge is their session) and its indexes made."""
    if not sa.inspect(conn).has_table("votes"):
        votes.create(conn)
        return
    have = {c["name"] for c in sa.inspect(conn).get_columns("votes")}
    added = {"degradation": "TEXT NOT NULL DEFAULT 'lesson'", "client": "TEXT NOT NULL DEFAULT ''",
             "judge": "TEXT NOT NULL DEFAULT ''"}
    for column, declaration in added.items():
        if column not in have:
            conn.exec_driver_sql(f"ALTER TABLE votes ADD COLUMN {column} {declaration}")
    if "judge" not in have:
        conn.execute(votes.update().where(votes.c.judge == "").values(judge="session:" + votes.c.session))
    for index in votes.indexes:
        index.create(conn, checkfirst=True)


def _migrate_shared_state(conn):
    """2: what several replicas must share beside the votes."""
    for table in (live_pairs, pair_issues, client_locks, arena_meta):
        table.create(conn, checkfirst=True)


def _migrate_submissions(conn):
    """3: community models, their review state, and the attempts that count against a client's cap."""
    submissions.create(conn, checkfirst=True)
    submission_attempts.create(conn, checkfirst=True)


def _migrate_scenes(conn):
    """4: the scene's family and crop box, kept with each vote and each live pair. Older votes get ""
    (their family is still known from their models; their crop was the image's centre)."""
    for table in (votes, live_pairs):
        have = {c["name"] for c in sa.inspect(conn).get_columns(table.name)}
        for column in ("family", "crop"):
            if column not in have:
                conn.exec_driver_sql(f"ALTER TABLE {table.name} ADD COLUMN {column} TEXT NOT NULL DEFAULT ''")


MIGRATIONS = {1: _migrate_votes, 2: _migrate_shared_state, 3: _migrate_submissions, 4: _migrate_scenes}
SCHEMA_VERSION = max(MIGRATIONS)
