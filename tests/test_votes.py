"""The SQLite vote store: schema, durability, migration of old databases, the exports, errors."""

import csv
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from restoration.battles import Battle, Client, Contender
from restoration.ratings import fit_leaderboard
from restoration.settings import REPO
from restoration.votes import ANSWERS, VoteStore, VoteStoreError, check_path

A, B = Contender("m1", "Model one", "local:aaa"), Contender("m2", "Model two", "0123456789abcdef")


def battle(token="t1", session="s-1", degradation="bicubic", client=Client("addr", "judge")):
    return Battle(token, session, "img/1.png", degradation, A, B, 0.0, client)


@pytest.fixture
def store(tmp_path):
    s = VoteStore(tmp_path / "votes.db")
    yield s
    s.close()


def test_schema_wal_and_audit_columns(store):
    vote_id = store.add(battle(), "both_bad", 4.25)
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    record = dict(zip(VoteStore.COLUMNS, db.execute(f"SELECT {', '.join(VoteStore.COLUMNS)} FROM votes").fetchone()))
    db.close()
    assert vote_id == record["id"] == 1 and record["answer"] == "both_bad" and record["seconds"] == 4.25
    assert (record["model_a"], record["revision_a"], record["model_b"]) == ("m1", "local:aaa", "m2")
    assert record["degradation"] == "bicubic" and record["time"].endswith("+00:00")
    assert (record["client"], record["judge"]) == ("addr", "judge")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with pytest.raises(sqlite3.IntegrityError):
        store.add(battle(), "A", 3)  # a token counts once
    assert store.token_used("t1") and not store.token_used("t2")


def test_old_databases_are_migrated(tmp_path):
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
    rows = store._db.execute("SELECT token, degradation, judge, client FROM votes ORDER BY id").fetchall()
    store.close()
    assert rows == [("old", "lesson", "session:s-old", ""), ("t1", "bicubic", "judge", "addr")]
    VoteStore(path).close()  # opening again changes nothing


def test_counts_since_and_per_judge_outcomes(store):
    store.add(battle("t1"), "A", 2.5)
    store.add(battle("t2", client=Client("addr", "other")), "B", 9.0)
    store.add(battle("t3"), "A", 8.0, time="2020-01-01T00:00:00.000+00:00")
    assert store.count_since(3600, client="addr") == 2 and store.count_since(3600, judge="judge") == 1
    assert store.count_since(3600, client="nobody") == 0
    rows = sorted(store.judge_outcomes(fast_seconds=3.0))
    assert rows == [("judge", "bicubic", "m1", "m2", "A", 2, 1), ("other", "bicubic", "m1", "m2", "B", 1, 0)]
    assert store.outcome_counts("lesson") == [] and len(store.outcome_counts("bicubic")) == 2


def test_public_export_cannot_link_votes_to_a_judge(store, tmp_path):
    for i, answer in enumerate(["A", "B", "tie"]):
        store.add(battle(f"t{i}", session=f"s-{i}", client=Client("addr", "j1" if i < 2 else "j2")), answer, 3.456)
    n = store.write_public_csv(tmp_path / "public.csv", excluded_judges={"j2"})
    text = (tmp_path / "public.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    assert n == 3 and list(rows[0]) == list(VoteStore.PUBLIC_COLUMNS)
    for secret in ["s-0", "t0", "addr", "j1", "j2"]:
        assert secret not in text
    assert all(len(r["time"]) == len("2025-01-01T00:00Z") and r["time"].endswith("Z") for r in rows)
    assert {r["seconds"] for r in rows} == {"3.5"} and sorted(r["counted"] for r in rows) == ["0", "1", "1"]
    assert {r["degradation"] for r in rows} == {"bicubic"} and rows[0]["revision_b"] == "0123456789abcdef"
    assert store.write_csv(tmp_path / "audit.csv") == 3  # the operator's copy has every column
    assert list(csv.DictReader((tmp_path / "audit.csv").read_text().splitlines()))[0]["judge"] == "j1"


def test_bad_paths_and_files_give_one_line(tmp_path):
    (tmp_path / "notes.db").write_text("this is not a database, just some text " * 100)
    for path, message in [("/proc/x.db", "cannot use /proc/x.db"), (tmp_path / "notes.db", "not a database"),
                          (tmp_path, "is a folder")]:
        with pytest.raises(VoteStoreError, match=message) as e:
            VoteStore(path)
        assert "\n" not in str(e.value)


def test_the_path_is_checked_without_creating_anything(tmp_path, store):
    """At start the path is checked before a snapshot restore may put the database there."""
    (tmp_path / "notes.db").write_text("this is not a database, just some text " * 100)
    for path, message in [("/proc/x.db", "cannot create /proc/x.db"), (tmp_path / "notes.db", "not a database"),
                          (tmp_path, "is a folder")]:
        with pytest.raises(VoteStoreError, match=message) as e:
            check_path(path)
        assert "\n" not in str(e.value) and "RESTORATION_VOTES_DB" in str(e.value)
    check_path(store.path)  # an existing store
    check_path(tmp_path / "new" / "deeper" / "votes.db")  # a file we could create
    assert list((tmp_path / "new").rglob("*")) == [tmp_path / "new" / "deeper"]  # its folder, no database


def test_votes_survive_the_app_being_killed(tmp_path):
    """A process that votes and is killed with SIGKILL between votes loses none it acknowledged."""
    script = textwrap.dedent(f"""
        import sys, time
        from restoration.battles import Arena, Contender, Limits
        from restoration.votes import VoteStore
        store = VoteStore({str(tmp_path / "votes.db")!r})
        models = [Contender("a", "A", "r1"), Contender("b", "B", "r2")]
        arena = Arena(store, models, ["x"], min_vote_seconds=0, limits=Limits(10**6, 10**6, 10**6, 10**6, 10**6))
        for i in range(1000):
            battle = arena.issue("s")
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
    store = VoteStore(tmp_path / "votes.db")
    ids = {row[0] for row in store._db.execute("SELECT id FROM votes")}
    store.close()
    assert set(acknowledged) <= ids


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
    board = fit_leaderboard(store.outcome_counts(), names, rounds=200)
    assert board.total_votes == n and board.votes.sum() == 2 * n
    assert board.games.sum() == 2 * n and np.allclose(board.wins + board.wins.T, board.games)
    assert sum(row[5] for row in store.judge_outcomes(3.0)) == n
