"""Battles, one-time tokens, vote validation, the SQLite store and the Bradley–Terry leaderboard."""

import csv
import json
import math
import random
import sqlite3
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from restoration.arena import (
    ANSWERS,
    Arena,
    Contender,
    VoteStore,
    fit_bradley_terry,
    fit_leaderboard,
    new_session_id,
    pairwise_outcomes,
    ranks_from_intervals,
    read_evaluation,
)
from restoration.settings import REPO

MODELS = [Contender("m1", "Model one", "local:aaa"), Contender("m2", "Model two", "local:bbb"),
          Contender("m3", "Model three", "0123456789abcdef0123456789abcdef01234567")]


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def store(tmp_path):
    s = VoteStore(tmp_path / "votes.db")
    yield s
    s.close()


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def arena(store, clock):
    return Arena(store, MODELS, ["img/1.png", "img/2.png"], min_vote_seconds=2.0, votes_per_minute=5,
                 clock=clock, rng=random.Random(0))


def test_battles_pair_two_different_models_on_random_sides(arena):
    seen_sides, tokens = set(), set()
    for _ in range(60):
        battle, _ = arena.issue("s1")
        assert battle.a != battle.b and battle.image_id in arena.images
        seen_sides.add((battle.a.name, battle.b.name))
        tokens.add(battle.token)
    assert len(seen_sides) == 6  # every ordered pair turns up
    assert len(tokens) == 60


def test_render_runs_before_the_clock_starts(arena, clock):
    def render(image_id, a, b):
        clock.now += 30  # a slow render must not count as the judge's looking time
        return image_id, a.name, b.name

    battle, shown = arena.issue("s1", render)
    assert shown == (battle.image_id, battle.a.name, battle.b.name) and battle.shown_at == clock.now
    assert not arena.vote(battle.token, "s1", "A").accepted  # still "too fast"


def test_a_vote_counts_once(arena, clock, store):
    battle, _ = arena.issue("s1")
    clock.now += 3
    result = arena.vote(battle.token, "s1", "B")
    assert result.accepted and result.vote_id == 1 and result.battle == battle
    again = arena.vote(battle.token, "s1", "A")
    assert not again.accepted and "already been judged" in again.message and not again.keep_pair
    assert store.count() == 1 and arena.votes_cast("s1") == 1 and arena.votes_cast("s2") == 0


def test_unknown_tokens_and_other_sessions_are_rejected(arena, clock, store):
    battle, _ = arena.issue("s1")
    clock.now += 3
    for token, session in [("made-up", "s1"), (None, "s1"), (battle.token, "s2"), (battle.token, None)]:
        result = arena.vote(token, session, "A")
        assert not result.accepted and "did not issue" in result.message
    assert store.count() == 0
    assert arena.vote(battle.token, "s1", "A").accepted  # the rightful judge still can


def test_too_fast_votes_are_rejected_but_the_pair_stays(arena, clock):
    battle, _ = arena.issue("s1")
    clock.now += 1.5
    result = arena.vote(battle.token, "s1", "A")
    assert not result.accepted and result.keep_pair and "too fast" in result.message
    clock.now += 1
    assert arena.vote(battle.token, "s1", "A").accepted


def test_rate_limit_per_session(arena, clock):
    for i in range(5):
        battle, _ = arena.issue("s1")
        clock.now += 2.5
        assert arena.vote(battle.token, "s1", "tie").accepted
    battle, _ = arena.issue("s1")
    clock.now += 2.5
    result = arena.vote(battle.token, "s1", "A")
    assert not result.accepted and result.keep_pair and "at most 5 a minute" in result.message
    other, _ = arena.issue("s2")  # another session is not affected
    clock.now += 2.5
    assert arena.vote(other.token, "s2", "A").accepted
    clock.now += 60
    assert arena.vote(battle.token, "s1", "A").accepted


def test_bad_answers_and_expired_tokens(store, clock):
    arena = Arena(store, MODELS, ["x"], min_vote_seconds=0, clock=clock, pending_ttl=10, max_pending=3)
    battle, _ = arena.issue("s")
    assert "Unknown answer" in arena.vote(battle.token, "s", "C").message
    clock.now += 11
    arena.issue("s")  # issuing expires old battles
    assert "did not issue" in arena.vote(battle.token, "s", "A").message
    tokens = [arena.issue("s")[0].token for _ in range(5)]  # only the newest max_pending are kept
    assert "did not issue" in arena.vote(tokens[0], "s", "A").message
    assert arena.vote(tokens[-1], "s", "A").accepted


def test_arena_needs_two_models_and_an_image(store):
    with pytest.raises(ValueError, match="two models"):
        Arena(store, MODELS[:1], ["x"])
    with pytest.raises(ValueError, match="image"):
        Arena(store, MODELS, [])


def test_store_schema_wal_and_csv(arena, clock, store, tmp_path):
    session = new_session_id()
    assert session.startswith("s-") and session != new_session_id()
    battle, _ = arena.issue(session)
    clock.now += 4.25
    arena.vote(battle.token, session, "both_bad")
    db = sqlite3.connect(store.path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    row = db.execute("SELECT * FROM votes").fetchone()
    db.close()
    record = dict(zip(VoteStore.COLUMNS, row))
    assert record["session"] == session and record["image"] == battle.image_id and record["answer"] == "both_bad"
    assert (record["model_a"], record["revision_a"]) == (battle.a.name, battle.a.revision)
    assert (record["model_b"], record["revision_b"]) == (battle.b.name, battle.b.revision)
    assert record["seconds"] == 4.25 and record["time"].endswith("+00:00")
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    n = store.write_csv(tmp_path / "votes.csv")
    rows = list(csv.DictReader((tmp_path / "votes.csv").read_text().splitlines()))
    assert n == 1 and rows[0]["answer"] == "both_bad" and list(rows[0]) == list(VoteStore.COLUMNS)


def test_votes_survive_the_app_being_killed(tmp_path):
    """A process that votes and is killed with SIGKILL between votes loses none it acknowledged."""
    script = textwrap.dedent(f"""
        import sys, time
        from restoration.arena import Arena, Contender, VoteStore
        store = VoteStore({str(tmp_path / "votes.db")!r})
        models = [Contender("a", "A", "r1"), Contender("b", "B", "r2")]
        arena = Arena(store, models, ["x"], min_vote_seconds=0)
        for i in range(1000):
            battle, _ = arena.issue("s")
            result = arena.vote(battle.token, "s", "A")
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


# ------------------------------------------------------------------------------ Bradley–Terry


def test_two_models_match_the_closed_form():
    wins = np.array([[0, 30], [10, 0]], float)
    theta = fit_bradley_terry(wins, prior=0.0)
    assert math.exp(theta[0] - theta[1]) == pytest.approx(3.0, rel=1e-9)
    theta = fit_bradley_terry(wins, prior=0.2)
    assert math.exp(theta[0] - theta[1]) == pytest.approx(30.1 / 10.1, rel=1e-9)


def test_fit_is_the_maximum_of_the_likelihood():
    rng = np.random.default_rng(1)
    wins = rng.integers(0, 40, (4, 4)).astype(float)
    np.fill_diagonal(wins, 0)
    theta = fit_bradley_terry(wins, prior=0.1)
    w = wins + (1 - np.eye(4)) * 0.05
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
    assert np.abs((w - (w + w.T) * p).sum(1)).max() < 1e-8  # zero gradient
    assert abs(theta.mean()) < 1e-12


def test_recovers_true_strengths_from_simulated_votes():
    rng = np.random.default_rng(2)
    true = np.array([0.8, 0.0, -0.8])
    outcomes = []
    for a, b in [(0, 1), (1, 2), (0, 2), (1, 0), (2, 1), (2, 0)]:
        p = 1 / (1 + math.exp(true[b] - true[a]))
        n_a = int(rng.binomial(3000, p))
        outcomes += [(f"m{a}", f"m{b}", "A", n_a), (f"m{a}", f"m{b}", "B", 3000 - n_a)]
    board = fit_leaderboard(outcomes, ["m0", "m1", "m2"], rounds=100)
    theta = (board.rating - 1000) * math.log(10) / 400
    assert np.allclose(theta, true, atol=0.05)
    assert list(board.rank) == [1, 2, 3] and board.total_votes == 18000
    assert np.all(board.lower < board.rating) and np.all(board.rating < board.upper)
    assert np.all(board.upper - board.lower < 60)


def test_ties_and_both_bad_count_half():
    outcomes = [("m1", "m2", "tie", 10), ("m2", "m1", "both_bad", 10)]
    beat, tied = pairwise_outcomes(outcomes, ["m1", "m2"])
    assert beat.sum() == 0 and tied[0, 1] == tied[1, 0] == 20
    board = fit_leaderboard(outcomes, ["m1", "m2"], rounds=20)
    assert board.rating == pytest.approx([1000, 1000]) and list(board.rank) == [1, 1]
    assert board.win_rate()[0, 1] == 0.5 and np.isnan(board.win_rate()[0, 0])


def test_a_model_that_always_wins_stays_finite():
    outcomes = [("m1", "m2", "A", 500), ("m3", "m1", "B", 500), ("m2", "m3", "A", 30), ("m2", "m3", "B", 20)]
    board = fit_leaderboard(outcomes, ["m1", "m2", "m3"], rounds=50)
    assert np.all(np.isfinite(board.rating)) and np.all(np.isfinite(board.lower))
    assert board.order()[0] == 0 and board.rank[0] == 1
    assert list(board.votes) == [1000, 550, 550]


def test_no_votes_and_unknown_models():
    board = fit_leaderboard([("gone", "m1", "A", 5)], ["m1", "m2"])
    assert board.total_votes == 0 and board.rating == pytest.approx([1000, 1000])


def test_too_few_votes_give_no_interval_and_no_rank_order():
    """One vote resamples to itself: the bootstrap alone would give a zero-width interval and rank
    the two models apart. Under MIN_VOTES a model is not placed above or below anyone."""
    board = fit_leaderboard([("m1", "m2", "A", 1)], ["m1", "m2", "m3"], rounds=50)
    assert board.rating[0] > board.rating[1]  # the point estimate still moves
    assert np.all(np.isinf(board.lower)) and np.all(np.isinf(board.upper)) and list(board.rank) == [1, 1, 1]
    board = fit_leaderboard([("m1", "m2", "A", 30), ("m1", "m3", "A", 30), ("m2", "m3", "A", 4)], ["m1", "m2", "m3"])
    assert list(board.votes) == [60, 34, 34] and np.all(np.isfinite(board.upper))
    board = fit_leaderboard([("m1", "m2", "A", 30), ("m1", "m2", "B", 5)], ["m1", "m2", "m3"])
    assert np.isinf(board.upper[2]) and board.rank[2] == 1 and np.all(np.isfinite(board.upper[:2]))
    assert list(board.rank[:2]) == [1, 2]


def test_ranks_share_places_while_intervals_overlap():
    ranks = ranks_from_intervals(lower=[1100, 1050, 900], upper=[1200, 1150, 1000])
    assert list(ranks) == [1, 1, 3]


def test_bootstrap_is_reproducible_and_narrows_with_more_votes():
    few = [("m1", "m2", "A", 6), ("m1", "m2", "B", 4)]
    many = [("m1", "m2", "A", 600), ("m1", "m2", "B", 400)]
    a, b = fit_leaderboard(few, ["m1", "m2"], rounds=200), fit_leaderboard(few, ["m1", "m2"], rounds=200)
    assert np.array_equal(a.lower, b.lower)
    c = fit_leaderboard(many, ["m1", "m2"], rounds=200)
    assert (c.upper - c.lower)[0] < (a.upper - a.lower)[0] / 5


def test_many_votes_are_aggregated_in_the_store(store):
    """The leaderboard reads counts, not votes (bench/app_latency.py times 100,000)."""
    rng = np.random.default_rng(3)
    n, names = 20_000, [m.name for m in MODELS]
    a = rng.integers(0, 3, n)
    b = (a + rng.integers(1, 3, n)) % 3
    answers = rng.integers(0, 4, n)
    store.add_many([("2025-01-01T00:00:00+00:00", f"s{i % 50}", "img", names[a[i]], "r", names[b[i]], "r",
                     ANSWERS[answers[i]], 3.0, f"t{i}") for i in range(n)])
    assert store.count() == n and store.count("s7") == n // 50
    board = fit_leaderboard(store.outcome_counts(), names, rounds=200)
    assert board.total_votes == n and board.votes.sum() == 2 * n
    assert board.games.sum() == 2 * n and np.allclose(board.wins + board.wins.T, board.games)


def test_read_evaluation(tmp_path):
    assert read_evaluation(tmp_path / "missing.json") is None
    (tmp_path / "bad.json").write_text("{")
    assert read_evaluation(tmp_path / "bad.json") is None
    record = {"data": "val", "images": 3, "command": "python -m restoration.evaluate",
              "results": {"bicubic": {"psnr_pooled": 25.0, "ssim": 0.8}}}
    (tmp_path / "e.json").write_text(json.dumps(record))
    assert read_evaluation(tmp_path / "e.json") == record
