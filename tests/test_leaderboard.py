"""The leaderboard's rows (a model without votes has no rating and no rank, and comes last; a rank
is the range its interval allows), one family's board with its own counts and witnesses, and the
flags for implausible judges."""

import json
import random

from restoration.arena.leaderboard import (
    HEADERS,
    FlagRules,
    counted_outcomes,
    flag_judges,
    leaderboard_tables,
    ranking_rows,
    win_rate_rows,
)
from restoration.arena.ratings import fit_leaderboard
from restoration.arena.witnesses import WITNESSES, read_evaluation

NAMES = ["unet-mse", "unet-perceptual", "unet-crossconv", "bicubic"]
TITLES = {"unet-mse": "MSE U-Net", "unet-perceptual": "Perceptual U-Net", "unet-crossconv": "Cross-conv U-Net",
          "bicubic": "Bicubic"}


def rows_for(outcomes, scores=None):
    board = fit_leaderboard(outcomes, NAMES, rounds=50, anchor="bicubic")
    return board, ranking_rows(board, scores or {}, WITNESSES["lesson"], TITLES.get, min_votes=10)


def test_with_no_votes_no_model_has_a_rating_or_a_rank():
    _, rows = rows_for([])
    assert [r[1] for r in rows] == ["MSE U-Net", "Perceptual U-Net", "Cross-conv U-Net", "Bicubic"]
    assert all(r[0] == "—" and r[2] == "—" and r[4] == 0 for r in rows)
    assert rows[-1][3] == "pinned (anchor)" and rows[0][3] == "— (no votes yet)"
    assert all(len(r) == len(HEADERS) + len(WITNESSES["lesson"]) for r in rows)


def test_a_model_without_votes_is_listed_last_without_a_figure():
    # The perceptual U-Net lost often, the cross-conv one has no votes at all: the fit would give it
    # about the anchor's rating and, with every interval open, rank 1.
    outcomes = [("unet-mse", "bicubic", "A", 8), ("unet-perceptual", "bicubic", "B", 6),
                ("unet-mse", "unet-perceptual", "A", 3)]
    board, rows = rows_for(outcomes, {"unet-crossconv": {"psnr_pooled": 30.0}, "unet-mse": {"psnr_pooled": 28.0}})
    assert board.rank[NAMES.index("unet-crossconv")] == 1  # what the fit alone would show
    assert rows[-1][:5] == ["—", "Cross-conv U-Net", "—", "— (no votes yet)", 0]
    assert rows[-1][5:] == ["30.00 (1)", "—", "—"]  # its PSNR is still a figure: the evaluation measured it
    voted = rows[:-1]
    assert all(isinstance(r[0], str) and r[0] != "—" and isinstance(r[2], int) for r in voted)
    assert voted[0][1] == "MSE U-Net" and voted[0][5] == "28.00 (2)"
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


def test_a_rank_is_the_range_of_places_the_intervals_allow():
    few = [("unet-mse", "bicubic", "A", 3), ("unet-perceptual", "bicubic", "B", 2)]  # under 10 votes each
    _, rows = rows_for(few)
    assert [r[0] for r in rows[:3]] == ["1–3", "1–3", "1–3"]  # not a column of "1"
    many = ([("unet-mse", "bicubic", "A", 40), ("unet-perceptual", "bicubic", "A", 25), ("unet-perceptual", "bicubic", "B", 15),
             ("unet-mse", "unet-perceptual", "A", 30), ("unet-crossconv", "bicubic", "A", 22),
             ("unet-crossconv", "bicubic", "B", 18), ("unet-perceptual", "unet-crossconv", "tie", 20)])
    board, rows = rows_for(many)
    ranks = {r[1]: r[0] for r in rows}
    assert ranks["MSE U-Net"] == "1"  # its interval lies wholly above every other
    assert ranks["Perceptual U-Net"] == ranks["Cross-conv U-Net"] == ranks["Bicubic"] == "2–4"  # theirs overlap


def test_a_family_board_counts_its_own_votes_and_shows_its_own_witnesses(tmp_path):
    """The photo board: the votes on photo scenes (and older votes of its models), counts that add
    up, and the photo evaluation's witnesses, grid and flat included once the file reports them."""
    rows = [("j1", "lesson", "photo-mse", "bicubic", "A", 6, 0, "photo"),
            ("j1", "jpeg75", "photo-mse", "photo-crossconv", "B", 3, 0, "photo"),
            ("j2", "bicubic", "photo-crossconv", "bicubic", "tie", 2, 0, ""),  # an older vote: its model says photo
            ("j1", "lesson", "unet-mse", "bicubic", "A", 9, 0, "lesson")]  # the other family's
    rows += [("bot", "lesson", "photo-mse", "bicubic", "A", 25, 25, "photo")]  # answers A, fast: flagged
    figures = {"photo-mse": {"psnr_y": 31.0, "ssim_y": 0.9, "sharpness": 0.45},
               "photo-crossconv": {"psnr_y": 30.5, "ssim_y": 0.89, "sharpness": 0.6},
               "bicubic": {"psnr_y": 29.0, "ssim_y": 0.85, "sharpness": 0.25}}
    families = {"photo-mse": "photo", "photo-crossconv": "photo", "unet-mse": "lesson"}

    def board(with_grain: bool):
        results = {n: f | ({"grid": 1.0 + i / 10, "flat": 0.9 - i / 10} if with_grain else {})
                   for i, (n, f) in enumerate(figures.items())}
        (tmp_path / "evaluation-photos.json").write_text(json.dumps(
            {"images": 42, "degradations": {d: {"results": results} for d in ("lesson", "bicubic", "jpeg75")}}))
        return leaderboard_tables(rows, "photo", ["photo-mse", "photo-crossconv"], "all", FlagRules(),
                                  read_evaluation(tmp_path / "evaluation-photos.json"), str, 20, families)

    summary, ranking, matrix = board(with_grain=False)
    assert "**11** valid votes" in summary and "**25** votes left out: 1 judge(s)" in summary
    assert "**36** votes on this family's pairs: 11 valid + 25 left out" in summary
    assert "bilinear ×½ (the lesson's): 6 · bicubic ×½ (Pillow's, as editors do): 2 · bilinear ×½ + JPEG q75: 3" \
        in summary and "(together 11)" in summary
    assert ranking["headers"][5:] == ["Y-PSNR (dB)", "Y-SSIM", "Sharpness"]  # no grid or flat reported yet
    assert sum(r[4] for r in ranking["data"]) == 2 * 11 and len(matrix["data"]) == 3
    assert all("—" not in cell for r in ranking["data"] for cell in r[5:])
    assert "Sharpness is" in summary and "Grid and flat" not in summary  # only the columns shown are explained
    summary, ranking, _ = board(with_grain=True)
    assert "Grid and flat are" in summary
    assert ranking["headers"][5:] == ["Y-PSNR (dB)", "Y-SSIM", "Sharpness", "Grid", "Flat"]
    by_model = {r[1]: r for r in ranking["data"]}
    assert by_model["photo-mse"][8:] == ["1.00 (1)", "0.90 (3)"]  # lower grain ranks first
    assert by_model["bicubic"][8:] == ["1.20 (3)", "0.70 (1)"]
