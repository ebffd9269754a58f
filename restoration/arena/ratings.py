"""The leaderboard: Bradley–Terry ratings with bootstrap intervals, and an anchor.

`fit_leaderboard` fits Bradley–Terry strengths by maximum likelihood (Newton's method) on the
pairwise win matrix, where a tie or "both bad" counts as half a win for each side. A tiny prior
(`PRIOR_GAMES` virtual drawn games between every pair of models) keeps the fit finite when a
model has won or lost every comparison, and makes it unique. Confidence intervals come from the
bootstrap: votes are resampled with replacement, which for a pairwise model is the same as a
multinomial draw of the (pair, outcome) counts, so 100,000 votes cost no more than 100.

Ratings are on the Elo scale (400 points = 10:1 odds). With an `anchor` (bicubic, in the app)
that model's rating is pinned at 1000 and every other rating is measured against it, as large
arenas do, so ratings stay comparable across time and model additions; without one they are
centred on 1000. The bootstrap cannot see uncertainty it has no votes for (one vote resamples to
itself), so a model with fewer than `MIN_VOTES` votes gets an unbounded interval: it is not
ranked above or below anyone yet.
"""

import dataclasses
import math
from collections.abc import Sequence

import numpy as np

ANCHOR = "bicubic"  # the contender whose rating is pinned: every scene has it, so it links the families
MIN_VOTES = 10  # below this, a model's interval is unbounded
PRIOR_GAMES = 0.1  # virtual drawn games between every pair of models (see the module docstring)
ELO_SCALE = 400 / math.log(10)  # natural-log strength → Elo points
ELO_BASE = 1000.0


def pairwise_outcomes(outcomes, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(beat, tied), k × k: beat[i, j] = votes where i beat j; tied[i, j] = tied[j, i] = ties and
    "both bad" between i and j. `outcomes` as `leaderboard.counted_outcomes`; models not in `names`
    are ignored."""
    index = {n: i for i, n in enumerate(names)}
    k = len(names)
    beat, tied = np.zeros((k, k)), np.zeros((k, k))
    for a, b, answer, n in outcomes:
        if a not in index or b not in index or a == b:
            continue
        i, j = index[a], index[b]
        if answer == "A":
            beat[i, j] += n
        elif answer == "B":
            beat[j, i] += n
        else:  # tie, both bad
            tied[i, j] += n
            tied[j, i] += n
    return beat, tied


def win_matrix(beat, tied):
    """Wins with a tie counting half to each side: what Bradley–Terry is fitted on."""
    return beat + tied / 2


def fit_bradley_terry(wins: np.ndarray, prior: float = PRIOR_GAMES, tol: float = 1e-9,
                      max_iter: int = 200, max_step: float = 3.0, anchor: int | None = None) -> np.ndarray:
    """Maximum-likelihood log-strengths θ for a win matrix (..., k, k), where
    P(i beats j) = σ(θ_i − θ_j): mean zero, or θ[anchor] = 0 exactly when `anchor` is given.
    A batch of matrices (bootstrap rounds) is fitted at once.

    Newton's method on the log-likelihood, with one θ held at 0 (strengths are only defined up to
    a constant) and steps capped at `max_step`: the likelihood is concave, so capped Newton steps
    climb it safely even when one model wins nearly everything, where the classic MM iteration
    needs tens of thousands of steps. `prior` virtual drawn games between every pair keep the
    maximum finite and unique.
    """
    wins = np.asarray(wins, dtype=np.float64)
    k = wins.shape[-1]
    theta = np.zeros(wins.shape[:-1])
    if k < 2:
        return theta
    w = wins + (1 - np.eye(k)) * prior / 2
    n = w + np.swapaxes(w, -1, -2)
    free = [i for i in range(k) if i != (0 if anchor is None else anchor)]
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(theta[..., None, :] - theta[..., :, None]))  # p[i, j] = P(i beats j)
        grad = (w - n * p).sum(-1)
        curv = n * p * (1 - p)  # the Hessian is curv off the diagonal and −Σ_j curv[i, j] on it
        neg_hessian = np.eye(k) * curv.sum(-1)[..., None] - curv
        step = np.linalg.solve(neg_hessian[..., free, :][..., :, free], grad[..., free, None])[..., 0]
        step *= np.minimum(1.0, max_step / np.maximum(np.abs(step).max(-1, keepdims=True), 1e-300))
        theta[..., free] += step
        if np.abs(step).max() < tol:
            break
    return theta if anchor is not None else theta - theta.mean(-1, keepdims=True)


def to_elo(log_strength):
    return ELO_BASE + ELO_SCALE * np.asarray(log_strength)


@dataclasses.dataclass
class Leaderboard:
    names: list[str]
    rating: np.ndarray  # Elo scale
    lower: np.ndarray  # 95% bootstrap interval
    upper: np.ndarray
    rank: np.ndarray  # 1 + the number of models whose interval lies wholly above this one's
    votes: np.ndarray  # votes each model took part in
    wins: np.ndarray  # k × k, ties half
    games: np.ndarray
    total_votes: int
    anchor: str | None = None  # the model whose rating is pinned at ELO_BASE
    left_out: int = 0  # votes not counted (flagged judges)

    def win_rate(self) -> np.ndarray:
        """Row model's share of wins against the column model (ties half); NaN without games."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(self.games > 0, self.wins / np.where(self.games > 0, self.games, 1), np.nan)

    def order(self) -> list[int]:
        """Indices best first: by rank, then rating."""
        return sorted(range(len(self.names)), key=lambda i: (self.rank[i], -self.rating[i]))


def ranks_from_intervals(lower, upper) -> np.ndarray:
    """A model's rank is 1 + the number of models that are better with non-overlapping 95%
    intervals, so models whose intervals overlap share a rank."""
    lower, upper = np.asarray(lower), np.asarray(upper)
    return 1 + (lower[None, :] > upper[:, None]).sum(1)


def fit_leaderboard(outcomes, names: Sequence[str], rounds: int = 200, seed: int = 0,
                    prior: float = PRIOR_GAMES, min_votes: int = MIN_VOTES, anchor: str | None = None,
                    left_out: int = 0) -> Leaderboard:
    """Bradley–Terry ratings with 95% bootstrap intervals. `outcomes` as
    `leaderboard.counted_outcomes`. The seed is fixed so the same votes give the same table. Models
    with fewer than `min_votes` votes get the interval (−inf, inf), so they share every rank. The
    `anchor` model (if among `names`) is pinned at 1000 with no interval of its own: the others'
    intervals are their uncertainty relative to it. `left_out` is only reported."""
    names = list(names)
    k = len(names)
    pin = names.index(anchor) if anchor in names else None
    beat, tied = pairwise_outcomes(outcomes, names)
    wins = win_matrix(beat, tied)
    games = beat + beat.T + tied
    rating = to_elo(fit_bradley_terry(wins, prior, anchor=pin))
    total = int(np.triu(games, 1).sum())
    lower, upper = rating.copy(), rating.copy()
    if total and rounds > 0 and k > 1:
        # Each vote is one draw from the cells (pair i<j; outcome i beat j, j beat i, or tie):
        # resampling votes with replacement is a multinomial draw over those cells.
        iu, ju = np.triu_indices(k, 1)
        cells = np.stack([beat[iu, ju], beat[ju, iu], tied[iu, ju]], 1).ravel()
        rng = np.random.default_rng(seed)
        draws = rng.multinomial(total, cells / total, size=rounds).reshape(rounds, -1, 3)
        boot_beat, boot_tied = np.zeros((rounds, k, k)), np.zeros((rounds, k, k))
        boot_beat[:, iu, ju], boot_beat[:, ju, iu] = draws[..., 0], draws[..., 1]
        boot_tied[:, iu, ju] = boot_tied[:, ju, iu] = draws[..., 2]
        samples = to_elo(fit_bradley_terry(win_matrix(boot_beat, boot_tied), prior, anchor=pin))
        lower, upper = np.percentile(samples, [2.5, 97.5], axis=0)
    votes = games.sum(1).astype(int)
    few = (votes < min_votes) & (np.arange(k) != (-1 if pin is None else pin))
    lower, upper = np.where(few, -np.inf, lower), np.where(few, np.inf, upper)
    return Leaderboard(names, rating, lower, upper, ranks_from_intervals(lower, upper), votes, wins, games, total,
                       names[pin] if pin is not None else None, left_out)

