"""The leaderboard's rows (a model without votes has no rating and no rank, and comes last), and the
flags for implausible judges."""

import random

from restoration.leaderboard import HEADERS, FlagRules, counted_outcomes, flag_judges, ranking_rows, win_rate_rows
from restoration.ratings import fit_leaderboard

NAMES = ["unet-mse", "unet-perceptual", "unet-crossconv", "bicubic"]
TITLES = {"unet-mse": "MSE U-Net", "unet-perceptual": "Perceptual U-Net", "unet-crossconv": "Cross-conv U-Net",
          "bicubic": "Bicubic"}


def rows_for(outcomes, scores=None):
    board = fit_leaderboard(outcomes, NAMES, rounds=50, anchor="bicubic")
    return board, ranking_rows(board, scores or {}, TITLES.get, min_votes=10)


def test_with_no_votes_no_model_has_a_rating_or_a_rank():
    _, rows = rows_for([])
    assert [r[1] for r in rows] == ["MSE U-Net", "Perceptual U-Net", "Cross-conv U-Net", "Bicubic"]
    assert all(r[0] == "—" and r[2] == "—" and r[4] == 0 for r in rows)
    assert rows[-1][3] == "pinned (anchor)" and rows[0][3] == "— (no votes yet)"
    assert all(len(r) == len(HEADERS) for r in rows)


def test_a_model_without_votes_is_listed_last_without_a_figure():
    # The perceptual U-Net lost often, the cross-conv one has no votes at all: the fit would give it
    # about the anchor's rating and, with every interval open, rank 1.
    outcomes = [("unet-mse", "bicubic", "A", 8), ("unet-perceptual", "bicubic", "B", 6),
                ("unet-mse", "unet-perceptual", "A", 3)]
    board, rows = rows_for(outcomes, {"unet-crossconv": {"psnr_pooled": 30.0}, "unet-mse": {"psnr_pooled": 28.0}})
    assert board.rank[NAMES.index("unet-crossconv")] == 1  # what the fit alone would show
    assert rows[-1][:5] == ["—", "Cross-conv U-Net", "—", "— (no votes yet)", 0]
    assert rows[-1][5:7] == ["30.00", 1]  # its PSNR is still a figure: the evaluation measured it
    voted = rows[:-1]
    assert all(isinstance(r[0], int) and isinstance(r[2], int) for r in voted)
    assert voted[0][1] == "MSE U-Net" and [r[0] for r in voted] == sorted(r[0] for r in voted)
    headers, matrix = win_rate_rows(board, TITLES.get)
    assert headers[1:] == [r[1] for r in rows] and [m[0] for m in matrix] == [r[1] for r in rows]
    assert matrix[-1][1:] == ["—"] * 4  # no games
    assert matrix[0][headers.index("Bicubic")] == "100% of 8"


# ------------------------------------------------------------------------------ flags


def judge_rows(judge, votes, seconds=5.0):
    """judge_outcomes rows from (model_a, model_b, answer) votes."""
    counts = {}
    for a, b, answer in votes:
        key = (judge, "lesson", a, b, answer)
        n, fast = counts.get(key, (0, 0))
        counts[key] = (n + 1, fast + (seconds < 3.0))
    return [(*k, n, fast) for k, (n, fast) in counts.items()]


def honest(rng, n):
    pairs = [("m1", "m2"), ("m2", "m3"), ("m3", "m1"), ("m2", "m1")]
    return [(*rng.choice(pairs), rng.choice(["A", "A", "B", "B", "B", "tie", "both_bad"])) for _ in range(n)]


def test_implausible_judges_are_flagged_and_left_out():
    rng = random.Random(0)
    rows = judge_rows("human", honest(rng, 60))
    rows += judge_rows("always-a", [(a, b, "A") for a, b, _ in honest(rng, 30)])
    rows += judge_rows("fast", honest(rng, 30), seconds=2.1)
    fan = [("m1", "m2", "A")] * 8 + [("m3", "m1", "B")] * 8 + [("m2", "m1", "B")] * 8 + [("m2", "m3", "tie")] * 4
    rows += judge_rows("fan-of-m1", fan)
    rows += judge_rows("few-but-odd", [("m1", "m2", "A")] * 5)  # too few votes to judge
    flags = flag_judges(rows, FlagRules())
    assert set(flags) == {"always-a", "fast", "fan-of-m1"}
    assert "answered A 30 times in 30" in flags["always-a"] and "faster than 3 s" in flags["fast"]
    assert flags["fan-of-m1"].startswith("picked m1")
    outcomes, left_out = counted_outcomes(rows, flags)
    assert sum(n for *_, n in outcomes) == 65 and left_out == sum(r[5] for r in rows) - 65
    lesson_only, _ = counted_outcomes(rows, flags, "bicubic")
    assert lesson_only == []
