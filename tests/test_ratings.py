"""Bradley–Terry fits, bootstrap intervals, ranks and the anchor."""

import math

import numpy as np
import pytest

from restoration.arena.ratings import (
    fit_bradley_terry,
    fit_leaderboard,
    pairwise_outcomes,
    ranks_from_intervals,
)


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


def test_the_anchor_is_pinned_and_the_others_are_measured_against_it():
    rng = np.random.default_rng(5)
    true = {"bicubic": 0.0, "m1": 1.0, "m2": 0.4}
    outcomes = []
    for a, b in [("m1", "bicubic"), ("m2", "bicubic"), ("m1", "m2")]:
        n_a = int(rng.binomial(4000, 1 / (1 + math.exp(true[b] - true[a]))))
        outcomes += [(a, b, "A", n_a), (a, b, "B", 4000 - n_a)]
    names = ["m1", "m2", "bicubic"]
    board = fit_leaderboard(outcomes, names, rounds=100, anchor="bicubic")
    assert board.rating[2] == 1000 and board.lower[2] == board.upper[2] == 1000 and board.anchor == "bicubic"
    theta = (board.rating - 1000) * math.log(10) / 400
    assert np.allclose(theta, [1.0, 0.4, 0.0], atol=0.06)
    # Adding a model (and its votes) leaves the anchored ratings where they were, within noise;
    # centred ratings would all move with the newcomer.
    more = outcomes + [("m3", "bicubic", "B", 3000), ("m3", "bicubic", "A", 1000)]
    again = fit_leaderboard(more, names + ["m3"], rounds=0, anchor="bicubic")
    assert np.allclose(again.rating[:3], board.rating, atol=1)
    before, after = fit_leaderboard(outcomes, names, rounds=0), fit_leaderboard(more, names + ["m3"], rounds=0)
    assert np.all(np.abs(after.rating[:3] - before.rating) > 50)  # centred ratings all move
    # without votes the anchor still sits at 1000 and has no unbounded interval
    empty = fit_leaderboard([], names, rounds=10, anchor="bicubic")
    assert empty.rating[2] == 1000 and np.isfinite(empty.upper[2]) and np.isinf(empty.upper[0])


def test_anchored_fit_has_zero_gradient_for_the_free_models():
    rng = np.random.default_rng(1)
    wins = rng.integers(0, 40, (4, 4)).astype(float)
    np.fill_diagonal(wins, 0)
    theta = fit_bradley_terry(wins, prior=0.1, anchor=2)
    w = wins + (1 - np.eye(4)) * 0.05
    p = 1 / (1 + np.exp(theta[None, :] - theta[:, None]))
    grad = (w - (w + w.T) * p).sum(1)
    assert theta[2] == 0 and np.abs(np.delete(grad, 2)).max() < 1e-8
