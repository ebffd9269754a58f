"""The leaderboard's tables as rows of cells, from a fitted `ratings.Leaderboard` and the
automatic witnesses (`witnesses.witness_scores`): what the app's Leaderboard tab shows.

A model nobody has voted on has no rating and no rank: the fit gives it the prior's rating (near
the anchor's, and "rank 1" when every interval is unbounded), which would read as a result. Its
rating and rank cells say "—" and it is listed after every model with votes. The anchor keeps
its pinned rating only once it has votes: before the first vote no model has a figure.
"""

from collections.abc import Callable, Mapping

import numpy as np

from restoration.ratings import Leaderboard
from restoration.witnesses import COLUMNS, ranks

HEADERS = ["Rank", "Model", "Rating", "95% interval", "Votes", "PSNR (dB)", "PSNR rank", "SSIM", "SSIM rank",
           "Semantic fidelity", "Fidelity rank"]
NONE = "—"
WITNESS_FORMATS = {"psnr_pooled": "{:.2f}", "ssim": "{:.4f}", "fidelity": "{:.1%}"}


def listed_order(board: Leaderboard) -> list[int]:
    """Indices of the models as listed: those with votes by rank, then rating; then those without
    votes, in the order they were given."""
    voted = [i for i in board.order() if board.votes[i] > 0]
    return voted + [i for i in range(len(board.names)) if board.votes[i] == 0]


def _interval(board: Leaderboard, i: int, min_votes: int) -> str:
    if board.names[i] == board.anchor:
        return "pinned (anchor)"
    if board.votes[i] == 0:
        return f"{NONE} (no votes yet)"
    if np.isfinite(board.upper[i]):
        return f"{board.lower[i]:.0f} – {board.upper[i]:.0f}"
    return f"{NONE} (under {min_votes} votes)"


def ranking_rows(board: Leaderboard, scores: Mapping[str, Mapping[str, float]], title: Callable[[str], str],
                 min_votes: int) -> list[list]:
    """One row per model (HEADERS): rank, title, rating, interval, votes, then each witness with its
    own rank among the models on the board ("—" where it was not evaluated)."""
    names = set(board.names)
    column_ranks = {key: ranks({n: s[key] for n, s in scores.items() if key in s and n in names}) for key in COLUMNS}
    rows = []
    for i in listed_order(board):
        n, s = board.names[i], scores.get(board.names[i], {})
        voted = board.votes[i] > 0
        witnesses = [cell for key, fmt in WITNESS_FORMATS.items()
                     for cell in ((fmt.format(s[key]), column_ranks[key][n]) if key in s else (NONE, NONE))]
        rows.append([int(board.rank[i]) if voted else NONE, title(n),
                     round(float(board.rating[i])) if voted else NONE, _interval(board, i, min_votes),
                     int(board.votes[i]), *witnesses])
    return rows


def win_rate_rows(board: Leaderboard, title: Callable[[str], str]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows) of the win-rate matrix, in the ranking's order: the row model's share of wins
    against the column model (ties half) and the number of games."""
    order = listed_order(board)
    rates = board.win_rate()
    rows = [[title(board.names[i])] + [
        NONE if i == j or board.games[i, j] == 0 else f"{rates[i, j]:.0%} of {int(board.games[i, j])}"
        for j in order] for i in order]
    return ["Model (row) beats (column)"] + [title(board.names[j]) for j in order], rows
