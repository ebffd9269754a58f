"""The vote store on both backends (SQLite and a real PostgreSQL): schema, durability, migration of
old SQLite databases, the exports, errors, and a server that goes away and comes back."""

import csv
import dataclasses
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import sqlalchemy as sa

from restoration.arena.leaderboard import counted_outcomes
from restoration.arena.pairs import Battle, Client, Contender
from restoration.arena.ratings import fit_leaderboard
from restoration.arena.store import ANSWERS, SCHEMA_VERSION, VoteStore, VoteStoreError
from restoration.arena.store_target import check_path
from restoration.settings import REPO

A, B = Contender("m1", "Model one", "local:aaa"), Contender("m2", "Model two", "0123456789abcdef")


def battle(token="t1", session="s-1", degradation="bicubic", client=Client("addr", "judge")):
    return Battle(token, session, "img/1.png", degradation, A, B, 0.0, client)


def rows(store, sql):
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_audit_columns_and_one_use_per_token(store):
    vote_id = store.add(battle(), "both_bad", 4.25)
    record = dict(zip(VoteStore.COLUMNS, rows(store, f"SELECT {', '.join(VoteStore.COLUMNS)} FROM votes")[0]))
    assert vote_id == record["id"] == 1 and record["answer"] == "both_bad" and record["seconds"] == 4.25
    assert (record["model_a"], record["revision_a"], record["model_b"]) == ("m1", "local:aaa", "m2")
    assert record["degradation"] == "bicubic" and record["time"].endswith("+00:00")
    assert (record["client"], record["judge"]) == ("addr", "judge")
    with pytest.raises(sa.exc.IntegrityError):
        store.add(battle(), "A", 3)  # a token counts once
    assert store.token_used("t1") and not store.token_used("t2")
    with pytest.raises(sa.exc.IntegrityError):  # the database itself refuses an unknown answer
        store.add(battle("t9"), "C", 3)
    assert store.count() == 1 and store.schema_version() == SCHEMA_VERSION


def test_sqlite_is_wal_with_full_sync(tmp_path):
    store = VoteStore(tmp_path / "votes.db")
    store.add(battle(), "A", 3.0)
    assert rows(store, "PRAGMA journal_mode") == [("wal",)]
    assert rows(store, "PRAGMA synchronous") == [(2,)]  # FULL: on disk before the judge is answered
    store.close()


# The schema the store had before versioned migrations (the last release's), and the one before it.
TODAYS_SCHEMA = """
    CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, session TEXT NOT NULL,
        image TEXT NOT NULL, model_a TEXT NOT NULL, revision_a TEXT NOT NULL, model_b TEXT NOT NULL,
        revision_b TEXT NOT NULL, answer TEXT NOT NULL CHECK (answer IN ('A', 'B', 'tie', 'both_bad')),
        seconds REAL NOT NULL, token TEXT NOT NULL UNIQUE, degradation TEXT NOT NULL DEFAULT 'lesson',
        client TEXT NOT NULL DEFAULT '', judge TEXT NOT NULL DEFAULT '');
    CREATE INDEX votes_session ON votes (session);
    CREATE INDEX votes_client_time ON votes (client, time);
    CREATE INDEX votes_judge_time ON votes (judge, time);
"""


def test_a_sqlite_file_of_todays_schema_opens_with_every_vote(tmp_path):
    path = tmp_path / "votes.db"
    db = sqlite3.connect(path)
    db.executescript(TODAYS_SCHEMA)
    old = [(f"2026-11-{1 + i % 28:02d}T10:00:00.000+00:00", f"s-{i % 7}", f"img{i % 5}", "bicubic", "m1", "r",
            "m2", "r", ANSWERS[i % 4], 3.0 + i % 5, f"tok-{i}", f"c{i % 3}", f"j{i % 11}") for i in range(1000)]
    db.executemany("INSERT INTO votes (time, session, image, degradation, model_a, revision_a, model_b, revision_b, "
                   "answer, seconds, token, client, judge) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", old)
    db.execute("DELETE FROM votes WHERE id = 1000")  # AUTOINCREMENT: id 1000 must never come back
    db.commit()
    before = db.execute("SELECT * FROM votes ORDER BY id").fetchall()
    db.close()
    store = VoteStore(path)
    assert store.schema_version() == SCHEMA_VERSION and store.count() == 999
    after = rows(store, "SELECT * FROM votes ORDER BY id")
    assert [r[:len(before[0])] for r in after] == before  # every vote, every column, as it was
    assert {r[len(before[0]):] for r in after} == {("", "")}  # no scene family or crop kept then
    assert store.add(battle(), "B", 3.0) == 1001
    store.close()
    VoteStore(path).close()  # opening again changes nothing
    assert sqlite3.connect(path).execute("SELECT COUNT(*) FROM votes").fetchone()[0] == 1000


def test_older_sqlite_databases_are_migrated(tmp_path):
    """A store written before degradations and client keys: its votes become "lesson" votes whose
    judge is their session, and new votes go in beside them."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE votes (id INTEGER PRIMARY KEY AUTOINCREMENT, time TEXT NOT NULL, session TEXT NOT NULL,
            image TEXT NOT NULL, model_a TEXT NOT NULL, revision_a TEXT NOT NULL, model_b TEXT NOT NULL,
            revision_b TEXT NOT NULL, answer TEXT NOT NULL CHECK (answer IN ('A', 'B', 'tie', 'both_bad')),
            seconds REAL NOT NULL, token TEXT NOT NULL UNIQUE);
        INSERT INTO votes (time, session, image, model_a, revision_a, model_b, revision_b, answer, seconds, token)
            VALUES ('2025-01-01T00:00:00.000+00:00', 's-old', 'x', 'm1', 'r', 'm2', 'r', 'A', 3.0, 'old');
    """)
    db.commit()
    db.close()
    store = VoteStore(path)
    store.add(battle(), "B", 3.0)
    assert rows(store, "SELECT token, degradation, judge, client FROM votes ORDER BY id") == [
        ("old", "lesson", "session:s-old", ""), ("t1", "bicubic", "judge", "addr")]
    store.close()
    VoteStore(path).close()


def test_counts_since_and_per_judge_outcomes(store):
    store.add(battle("t1"), "A", 2.5)
    store.add(battle("t2", client=Client("addr", "other")), "B", 9.0)
    store.add(battle("t3"), "A", 8.0, time="2020-01-01T00:00:00.000+00:00")
    assert store.count_since(3600, client="addr") == 2 and store.count_since(3600, judge="judge") == 1
    assert store.count_since(3600, client="nobody") == 0
    assert sorted(store.judge_outcomes(fast_seconds=3.0)) == [("judge", "bicubic", "m1", "m2", "A", 2, 1),
                                                              ("other", "bicubic", "m1", "m2", "B", 1, 0)]
    assert sorted(store.judge_outcomes(3.0, up_to_id=1)) == [("judge", "bicubic", "m1", "m2", "A", 1, 1)]
    per_degradation = lambda d: counted_outcomes(store.judge_outcomes(3.0), {}, d)[0]  # noqa: E731
    assert per_degradation("lesson") == [] and len(per_degradation("bicubic")) == 2


def test_public_export_cannot_link_votes_to_a_judge(store, tmp_path):
    for i, answer in enumerate(["A", "B", "tie"]):
        store.add(battle(f"t{i}", session=f"s-{i}", client=Client("addr", "j1" if i < 2 else "j2")), answer, 3.456)
    n = store.write_public_csv(tmp_path / "public.csv", excluded_judges={"j2"})
    text = (tmp_path / "public.csv").read_text()
    public = list(csv.DictReader(text.splitlines()))
    assert n == 3 and list(public[0]) == list(VoteStore.PUBLIC_COLUMNS)
    for secret in ["s-0", "t0", "addr", "j1", "j2"]:
        assert secret not in text
    assert all(len(r["time"]) == len("2025-01-01T00:00Z") and r["time"].endswith("Z") for r in public)
    assert {r["seconds"] for r in public} == {"3.5"} and sorted(r["counted"] for r in public) == ["0", "1", "1"]
    assert {r["degradation"] for r in public} == {"bicubic"} and public[0]["revision_b"] == "0123456789abcdef"
    assert store.write_public_csv(tmp_path / "first-two.csv", up_to_id=2) == 2
    assert {(r["family"], r["crop"]) for r in public} == {("", "")}  # votes that kept no scene, no family given
    store.write_public_csv(tmp_path / "families.csv", families={"m1": "photo"})
    with_family = list(csv.DictReader((tmp_path / "families.csv").read_text().splitlines()))
    assert list(with_family[0]) == list(VoteStore.PUBLIC_COLUMNS)
    assert {r["family"] for r in with_family} == {"photo"}  # m1 is in every pair; m2 has no family given
    # A vote keeps its scene's family and crop box: the export has them, to re-analyse per image and crop.
    store.add(dataclasses.replace(battle("t9", session="s-9"), family="lesson", crop="32 0 352 320"), "B", 4.0)
    store.write_public_csv(tmp_path / "scenes.csv", families={"m1": "photo"})
    scenes = list(csv.DictReader((tmp_path / "scenes.csv").read_text().splitlines()))
    assert sorted((r["family"], r["crop"]) for r in scenes) == [("lesson", "32 0 352 320")] + [("photo", "")] * 3


def test_the_export_cut_is_shared_and_moves_every_n_votes(votes_target):
    one, other = VoteStore(votes_target), VoteStore(votes_target)  # two replicas
    assert one.export_cut(every=3) == 0  # no votes yet
    for i in range(4):
        one.add(battle(f"t{i}", session=f"s-{i}"), "A", 3.0)
    assert one.export_cut(every=3) == 4 and other.export_cut(every=3) == 4
    other.add(battle("t5"), "B", 3.0)
    other.add(battle("t6"), "B", 3.0)
    assert one.export_cut(every=3) == 4  # two new votes: the same export
    one.add(battle("t7"), "B", 3.0)
    assert other.export_cut(every=3) == 7 and one.export_cut(every=3) == 7
    one.close()
    other.close()


def test_bad_paths_and_files_give_one_line(tmp_path):
    (tmp_path / "notes.db").write_text("this is not a database, just some text " * 100)
    for path, message in [("/proc/x.db", "cannot use /proc/x.db"), (tmp_path / "notes.db", "not a database"),
                          (tmp_path, "is a folder")]:
        with pytest.raises(VoteStoreError, match=message) as e:
            VoteStore(path)
        assert "\n" not in str(e.value)


def test_the_path_is_checked_without_creating_anything(tmp_path):
    """At start the path is checked before a snapshot recovery may put the database there."""
    VoteStore(tmp_path / "votes.db").close()
    (tmp_path / "notes.db").write_text("this is not a database, just some text " * 100)
    for path, message in [("/proc/x.db", "cannot create /proc/x.db"), (tmp_path / "notes.db", "not a database"),
                          (tmp_path, "is a folder"), ("postgresql://u@127.0.0.1:notaport/db", "PostgreSQL URL")]:
        with pytest.raises(VoteStoreError, match=message) as e:
            check_path(path)
        assert "\n" not in str(e.value) and "RESTORATION_VOTES_DB" in str(e.value)
    check_path(tmp_path / "votes.db")  # an existing store
    check_path(tmp_path / "new" / "deeper" / "votes.db")  # a file we could create
    assert list((tmp_path / "new").rglob("*")) == [tmp_path / "new" / "deeper"]  # its folder, no database
    check_path("postgresql://arena@127.0.0.1:5432/arena")  # a URL: the server need not be up yet


def test_votes_survive_the_app_being_killed(votes_target):
    """A process that votes and is killed with SIGKILL between votes loses none it acknowledged."""
    script = textwrap.dedent(f"""
        import sys, time
        from restoration.arena.pairs import LOCAL, Arena, Contender, Limits
        from restoration.arena.store import VoteStore
        store = VoteStore({str(votes_target)!r})
        models = [Contender("a", "A", "r1"), Contender("b", "B", "r2")]
        arena = Arena(store, models, min_vote_seconds=0, limits=Limits(10**6, 10**6, 10**6, 10**6, 10**6))
        for i in range(1000):
            battle = arena.issue("s", LOCAL, ("x", "lesson", *models))
            result = arena.vote(battle.token, "s", "A")
            assert result.accepted, result.message
            print("acknowledged", result.vote_id, flush=True)
            time.sleep(0.01)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=REPO)
    acknowledged = []
    for line in proc.stdout:
        acknowledged.append(int(line.split()[1]))
        if len(acknowledged) == 20:
            proc.kill()
            break
    proc.wait()
    assert proc.returncode == -9
    store = VoteStore(votes_target)
    ids = {row[0] for row in rows(store, "SELECT id FROM votes")}
    store.close()
    assert len(acknowledged) == 20 and set(acknowledged) <= ids


def test_many_votes_are_aggregated_in_the_store(store):
    """The leaderboard reads counts, not votes (bench/app_latency.py times 100,000)."""
    rng = np.random.default_rng(3)
    n, names = 20_000, ["m1", "m2", "m3"]
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(1, 3, n)) % 3
    answers = rng.integers(0, 4, n)
    store.add_many([("2025-01-01T00:00:00+00:00", f"s{i % 50}", "img", "lesson", names[a[i]], "r", names[b[i]], "r",
                     ANSWERS[answers[i]], 3.0, f"t{i}", "c", f"j{i % 50}") for i in range(n)])
    assert store.count() == n and store.count("s7") == n // 50
    board = fit_leaderboard(counted_outcomes(store.judge_outcomes(3.0), {})[0], names, rounds=200)
    assert board.total_votes == n and board.votes.sum() == 2 * n
    assert board.games.sum() == 2 * n and np.allclose(board.wins + board.wins.T, board.games)
    assert sum(row[5] for row in store.judge_outcomes(3.0)) == n


# ------------------------------------------------------------------------------ PostgreSQL only


def test_a_server_that_goes_away_gives_one_line_and_is_used_again_when_back(postgres, postgres_url):
    store = VoteStore(postgres_url, connect_timeout=2)
    store.add(battle("before"), "A", 3.0)
    postgres.stop("fast")
    try:
        for call in (lambda: store.add(battle("during"), "A", 3.0), store.count, lambda: store.judge_outcomes(3.0)):
            with pytest.raises(VoteStoreError, match="the vote store postgresql") as e:
                call()
            assert "\n" not in str(e.value) and "127.0.0.1" in str(e.value)
    finally:
        postgres.start()
    store.add(battle("after"), "B", 3.0)  # the same store, no restart: the pool reconnects
    assert store.count() == 2 and not store.token_used("during")
    store.close()


def test_a_store_opened_while_the_server_is_down_starts_and_migrates_later(postgres, postgres_url, capsys):
    postgres.stop("fast")
    try:
        store = VoteStore(postgres_url, connect_timeout=1)
        assert "judging waits for it" in capsys.readouterr().out
        with pytest.raises(VoteStoreError):
            store.count()
    finally:
        postgres.start()
    assert store.count() == 0 and store.schema_version() == SCHEMA_VERSION
    store.close()


def test_the_password_never_shows_in_a_message(postgres):
    url = f"postgresql://postgres:hunter2@127.0.0.1:{postgres.port}/no_such_database"
    store = VoteStore(url, connect_timeout=1)
    with pytest.raises(VoteStoreError) as e:
        store.count()
    assert "hunter2" not in str(e.value) and "no_such_database" in str(e.value)
    store.close()


def test_a_machine_without_postgresql_skips_its_cases_with_the_reason_and_ci_fails_them(monkeypatch):
    from bench import postgres
    from tests.conftest import cluster_or_skip

    monkeypatch.setattr(postgres.Path, "glob", lambda self, pattern: iter(()))  # no Debian server
    monkeypatch.setattr(postgres.shutil, "which", lambda name: None)  # none on the PATH either
    with pytest.raises(pytest.skip.Exception, match="no PostgreSQL here: PostgreSQL is not installed"):
        cluster_or_skip(postgres.Cluster, required=False)
    with pytest.raises(pytest.fail.Exception, match="REQUIRE_POSTGRES=1 but PostgreSQL is not installed"):
        cluster_or_skip(postgres.Cluster, required=True)
