"""Blind pairwise judging: battles with one-time tokens, a durable vote store, and the leaderboard.

- `Arena.issue` draws an image and two different models at random, puts them on random sides "A"
  and "B", and registers the battle under a one-time token, bound to the judge's session.
- `Arena.vote` accepts one answer per token: it rejects tokens the server never issued (or that
  expired, or were issued to another session), tokens already used, votes faster than
  `min_vote_seconds` after the pair was shown, and votes beyond `votes_per_minute` per session.
  Rejected votes are not stored; a "too fast" or rate-limited vote leaves the token usable.
- `VoteStore` keeps accepted votes in SQLite in WAL mode with `synchronous=FULL`, one committed
  transaction per vote, so a vote is on disk before the judge sees the reveal, and killing the app
  between votes loses nothing.
- `fit_leaderboard` fits Bradley–Terry strengths by maximum likelihood (Newton's method) on the
  pairwise win matrix, where a tie or "both bad" counts as half a win for each side.
  A tiny prior (`PRIOR_GAMES` virtual drawn games between every pair of models) keeps the fit
  finite when a model has won or lost every comparison, and makes it unique. Confidence intervals
  come from the bootstrap: votes are resampled with replacement, which for a pairwise model is the
  same as a multinomial draw of the (pair, outcome) counts, so 100,000 votes cost no more than 100.
  Ratings are on the Elo scale (400 points = 10:1 odds), centred on 1000. The bootstrap cannot
  see uncertainty it has no votes for (one vote resamples to itself), so a model with fewer than
  `MIN_VOTES` votes gets an unbounded interval: it is not ranked above or below anyone yet.
"""

import csv
import dataclasses
import json
import math
import random
import secrets
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ANSWERS = ("A", "B", "tie", "both_bad")
MIN_VOTES = 10  # below this, a model's interval is unbounded
PRIOR_GAMES = 0.1  # virtual drawn games between every pair of models (see the module docstring)
ELO_SCALE = 400 / math.log(10)  # natural-log strength → Elo points
ELO_BASE = 1000.0
RATE_WINDOW_SECONDS = 60.0


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str  # the catalogue name, e.g. "unet-mse"
    title: str
    revision: str  # the checkpoint that answered: a Hub commit or "local:<sha256 prefix>"


@dataclasses.dataclass(frozen=True)
class Battle:
    token: str
    session: str
    image_id: str
    a: Contender
    b: Contender
    shown_at: float  # Arena clock, taken once the pair was ready to show


@dataclasses.dataclass(frozen=True)
class VoteResult:
    accepted: bool
    message: str
    battle: Battle | None = None
    vote_id: int | None = None
    keep_pair: bool = False  # the judge may still vote on this pair (too fast, rate-limited)


def new_session_id() -> str:
    """A pseudonymous id for one judge session: random, tied to nothing about the person."""
    return "s-" + secrets.token_hex(8)


# --------------------------------------------------------------------------------------------
# The vote store


class VoteStore:
    """Accepted votes in SQLite. One connection, serialised by a lock (Gradio calls handlers
    from several threads)."""

    COLUMNS = ("id", "time", "session", "image", "model_a", "revision_a", "model_b", "revision_b",
               "answer", "seconds", "token")

    def __init__(self, path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # every commit reaches the disk before we reply
        self._db.executescript("""
            CREATE TABLE IF NOT EXISTS votes (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                time TEXT NOT NULL,              -- UTC, ISO 8601
                session TEXT NOT NULL,           -- pseudonymous judge session
                image TEXT NOT NULL,
                model_a TEXT NOT NULL,           -- the model shown on side A
                revision_a TEXT NOT NULL,
                model_b TEXT NOT NULL,           -- the model shown on side B
                revision_b TEXT NOT NULL,
                answer TEXT NOT NULL CHECK (answer IN ('A', 'B', 'tie', 'both_bad')),
                seconds REAL NOT NULL,           -- from the pair being shown to the vote
                token TEXT NOT NULL UNIQUE       -- each battle token is used at most once
            );
            CREATE INDEX IF NOT EXISTS votes_session ON votes (session);
        """)

    def add(self, battle: Battle, answer: str, seconds: float) -> int:
        """Store one vote and commit it; returns its id. Raises sqlite3.IntegrityError for a token
        already used."""
        row = (datetime.now(UTC).isoformat(timespec="milliseconds"), battle.session, battle.image_id,
               battle.a.name, battle.a.revision, battle.b.name, battle.b.revision, answer, round(seconds, 3),
               battle.token)
        with self._lock:  # autocommit: the insert is its own transaction, on disk when execute returns
            cur = self._db.execute(
                "INSERT INTO votes (time, session, image, model_a, revision_a, model_b, revision_b, answer, "
                "seconds, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
            return cur.lastrowid

    def add_many(self, rows: Sequence[tuple]):
        """Bulk insert (benchmarks, imports): rows in COLUMNS order without the id."""
        with self._lock:
            self._db.execute("BEGIN")  # one transaction (one sync to disk) for the lot
            try:
                self._db.executemany(
                    "INSERT INTO votes (time, session, image, model_a, revision_a, model_b, revision_b, answer, "
                    "seconds, token) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def token_used(self, token: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM votes WHERE token = ?", (token,)).fetchone() is not None

    def count(self, session: str | None = None) -> int:
        with self._lock:
            if session is None:
                return self._db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
            return self._db.execute("SELECT COUNT(*) FROM votes WHERE session = ?", (session,)).fetchone()[0]

    def outcome_counts(self) -> list[tuple[str, str, str, int]]:
        """(model_a, model_b, answer, number of votes): all the leaderboard needs, aggregated in
        SQL so that 100,000 votes never become 100,000 Python objects."""
        with self._lock:
            return self._db.execute(
                "SELECT model_a, model_b, answer, COUNT(*) FROM votes GROUP BY model_a, model_b, answer").fetchall()

    def write_csv(self, file) -> int:
        """Every vote, oldest first, as CSV with a header; returns the number of votes."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(self.COLUMNS)} FROM votes ORDER BY id").fetchall()
        with open(file, "w", newline="") as f:
            writer = csv.writer(f)
            writer.writerow(self.COLUMNS)
            writer.writerows(rows)
        return len(rows)

    def close(self):
        with self._lock:
            self._db.close()


# --------------------------------------------------------------------------------------------
# Battles and votes


class Arena:
    """Issues battles and validates votes. Pending battles live in memory (a restart forgets
    them; their tokens are then unknown); accepted votes live in the `VoteStore`."""

    def __init__(self, store: VoteStore, contenders: Sequence[Contender], images: Sequence[str], *,
                 min_vote_seconds: float = 2.0, votes_per_minute: int = 20,
                 clock: Callable[[], float] = time.monotonic, rng: random.Random | None = None,
                 max_pending: int = 10_000, pending_ttl: float = 3600.0):
        if len(contenders) < 2:
            raise ValueError("judging needs at least two models")
        if not images:
            raise ValueError("judging needs at least one image")
        self.store = store
        self.contenders = list(contenders)
        self.images = list(images)
        self.min_vote_seconds = min_vote_seconds
        self.votes_per_minute = votes_per_minute
        self.clock = clock
        self.rng = rng or random.SystemRandom()  # unpredictable sides: a judge cannot guess them
        self.max_pending, self.pending_ttl = max_pending, pending_ttl
        self._pending: OrderedDict[str, Battle] = OrderedDict()
        self._recent: dict[str, deque] = {}  # session → clock times of its accepted votes
        self._lock = threading.Lock()

    def draw(self) -> tuple[str, Contender, Contender]:
        """A random image and two different models in random order (A, B)."""
        a, b = self.rng.sample(self.contenders, 2)
        return self.rng.choice(self.images), a, b

    def issue(self, session: str, render: Callable[[str, Contender, Contender], object] | None = None):
        """Draw a battle for `session`. `render(image_id, a, b)` prepares what the judge will see;
        the clock for "too fast" starts when it returns. Returns (battle, what render returned)."""
        image_id, a, b = self.draw()
        shown = render(image_id, a, b) if render else None
        battle = Battle(secrets.token_urlsafe(16), session, image_id, a, b, self.clock())
        with self._lock:
            self._expire(battle.shown_at)
            self._pending[battle.token] = battle
            while len(self._pending) > self.max_pending:
                self._pending.popitem(last=False)
        return battle, shown

    def _expire(self, now: float):
        while self._pending:
            oldest = next(iter(self._pending.values()))
            if now - oldest.shown_at <= self.pending_ttl:
                break
            self._pending.popitem(last=False)

    def vote(self, token: str | None, session: str | None, answer: str) -> VoteResult:
        if answer not in ANSWERS:
            return VoteResult(False, f"Unknown answer {answer!r}; choose one of {', '.join(ANSWERS)}.", keep_pair=True)
        now = self.clock()
        with self._lock:
            battle = self._pending.get(token or "")
            if battle is None or battle.session != session:
                if token and self.store.token_used(token):
                    return VoteResult(False, "This pair has already been judged; votes count once.")
                return VoteResult(False, "This vote is for a pair this server did not issue to you (or it has "
                                         "expired), so it was not counted. Here is a new pair.")
            elapsed = now - battle.shown_at
            if elapsed < self.min_vote_seconds:
                return VoteResult(False, f"That was too fast ({elapsed:.1f} s): please look at both images for at "
                                         f"least {self.min_vote_seconds:g} s. The vote was not counted.",
                                  battle, keep_pair=True)
            recent = self._recent.setdefault(session, deque())
            while recent and now - recent[0] > RATE_WINDOW_SECONDS:
                recent.popleft()
            if len(recent) >= self.votes_per_minute:
                return VoteResult(False, f"Too many votes: at most {self.votes_per_minute} a minute per session. "
                                         "The vote was not counted; please wait a little.", battle, keep_pair=True)
            try:
                vote_id = self.store.add(battle, answer, elapsed)
            except sqlite3.IntegrityError:
                del self._pending[token]
                return VoteResult(False, "This pair has already been judged; votes count once.")
            del self._pending[token]
            recent.append(now)
            self._forget_idle_sessions(now)
        return VoteResult(True, "Vote recorded.", battle, vote_id)

    def _forget_idle_sessions(self, now: float):
        if len(self._recent) > 1000:  # bound the memory of rate-limit windows
            for s in [s for s, q in self._recent.items() if not q or now - q[-1] > RATE_WINDOW_SECONDS]:
                del self._recent[s]

    def votes_cast(self, session: str | None) -> int:
        return self.store.count(session) if session else 0


# --------------------------------------------------------------------------------------------
# Bradley–Terry


def pairwise_outcomes(outcomes, names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(beat, tied), k × k: beat[i, j] = votes where i beat j; tied[i, j] = tied[j, i] = ties and
    "both bad" between i and j. `outcomes` as `VoteStore.outcome_counts`; models not in `names`
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
                      max_iter: int = 200, max_step: float = 3.0) -> np.ndarray:
    """Maximum-likelihood log-strengths θ (mean zero) for a win matrix (..., k, k), where
    P(i beats j) = σ(θ_i − θ_j). A batch of matrices (bootstrap rounds) is fitted at once.

    Newton's method on the log-likelihood, with θ_0 held at 0 (strengths are only defined up to a
    constant) and steps capped at `max_step`: the likelihood is concave, so capped Newton steps
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
    for _ in range(max_iter):
        p = 1 / (1 + np.exp(theta[..., None, :] - theta[..., :, None]))  # p[i, j] = P(i beats j)
        grad = (w - n * p).sum(-1)
        curv = n * p * (1 - p)  # the Hessian is curv off the diagonal and −Σ_j curv[i, j] on it
        neg_hessian = np.eye(k) * curv.sum(-1)[..., None] - curv
        step = np.linalg.solve(neg_hessian[..., 1:, 1:], grad[..., 1:, None])[..., 0]
        step *= np.minimum(1.0, max_step / np.maximum(np.abs(step).max(-1, keepdims=True), 1e-300))
        theta[..., 1:] += step
        if np.abs(step).max() < tol:
            break
    return theta - theta.mean(-1, keepdims=True)


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
                    prior: float = PRIOR_GAMES, min_votes: int = MIN_VOTES) -> Leaderboard:
    """Bradley–Terry ratings with 95% bootstrap intervals. `outcomes` as
    `VoteStore.outcome_counts`. The seed is fixed so the same votes give the same table. Models
    with fewer than `min_votes` votes get the interval (−inf, inf), so they share every rank."""
    names = list(names)
    k = len(names)
    beat, tied = pairwise_outcomes(outcomes, names)
    wins = win_matrix(beat, tied)
    games = beat + beat.T + tied
    rating = to_elo(fit_bradley_terry(wins, prior))
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
        samples = to_elo(fit_bradley_terry(win_matrix(boot_beat, boot_tied), prior))
        lower, upper = np.percentile(samples, [2.5, 97.5], axis=0)
    votes = games.sum(1).astype(int)
    lower, upper = np.where(votes < min_votes, -np.inf, lower), np.where(votes < min_votes, np.inf, upper)
    return Leaderboard(names, rating, lower, upper, ranks_from_intervals(lower, upper), votes, wins, games, total)


def read_evaluation(path) -> dict | None:
    """The figures `python -m restoration.evaluate --json` wrote, or None if there are none."""
    try:
        record = json.loads(Path(path).read_text())
        return record if isinstance(record.get("results"), dict) else None
    except (FileNotFoundError, json.JSONDecodeError, AttributeError, UnicodeDecodeError):
        return None
