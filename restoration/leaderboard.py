"""The leaderboard as the Leaderboard tab shows it: the votes counted (judges whose answers are
implausible for a person flagged and left out), the Bradley–Terry fit (`ratings.py`), its tables
as rows of cells beside the automatic witnesses (`witnesses.witness_scores`), and the summary.

A model nobody has voted on has no rating and no rank: the fit gives it the prior's rating (near
the anchor's, and "rank 1" when every interval is unbounded), which would read as a result. Its
rating and rank cells say "—" and it is listed after every model with votes. The anchor keeps
its pinned rating only once it has votes: before the first vote no model has a figure.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from restoration import degrade
from restoration.ratings import ANCHOR, MIN_VOTES, Leaderboard, fit_leaderboard
from restoration.witnesses import COLUMNS, agreement, ranks, witness_scores

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


@dataclasses.dataclass(frozen=True)
class FlagRules:
    min_votes: int = 20  # a judge is judged on at least this many votes (or model-decisive votes)
    same_answer_share: float = 0.9  # one answer (A, B, tie or both bad) this often
    fast_seconds: float = 3.0  # faster than this ...
    fast_share: float = 0.9  # ... this often
    model_share: float = 0.95  # picks one model this often when it is on either side


def flag_judges(rows: Iterable[tuple], rules: FlagRules = FlagRules()) -> dict[str, str]:
    """judge key → why its votes are implausible, from `VoteStore.judge_outcomes` rows (judge,
    degradation, model_a, model_b, answer, votes, fast votes)."""
    total, fast = defaultdict(int), defaultdict(int)
    answers = defaultdict(lambda: defaultdict(int))
    picked, decisive = defaultdict(lambda: defaultdict(int)), defaultdict(lambda: defaultdict(int))
    for judge, _degradation, a, b, answer, n, n_fast in rows:
        total[judge] += n
        fast[judge] += n_fast or 0
        answers[judge][answer] += n
        if answer in ("A", "B"):
            decisive[judge][a] += n
            decisive[judge][b] += n
            picked[judge][a if answer == "A" else b] += n
    flags = {}
    for judge, n in total.items():
        if n >= rules.min_votes:
            answer, most = max(answers[judge].items(), key=lambda kv: kv[1])
            if most >= rules.same_answer_share * n:
                flags[judge] = f"answered {answer} {most} times in {n}"
                continue
            if fast[judge] >= rules.fast_share * n:
                flags[judge] = f"{fast[judge]} of {n} votes faster than {rules.fast_seconds:g} s"
                continue
        for model, m in decisive[judge].items():
            if m >= rules.min_votes and picked[judge][model] >= rules.model_share * m:
                flags[judge] = f"picked {model} {picked[judge][model]} times in {m}"
                break
    return flags


def counted_outcomes(rows: Iterable[tuple], flagged, degradation: str | None = None):
    """((model_a, model_b, answer, votes) of the judges not flagged, votes left out), optionally for
    one degradation: what `ratings.fit_leaderboard` takes."""
    counts, left_out = defaultdict(int), 0
    for judge, deg, a, b, answer, n, _fast in rows:
        if degradation and deg != degradation:
            continue
        if judge in flagged:
            left_out += n
        else:
            counts[a, b, answer] += n
    return [(a, b, answer, n) for (a, b, answer), n in counts.items()], left_out


def leaderboard_tables(rows: list[tuple], members: list[str], degradation: str, rules: FlagRules,
                       evaluation: dict | None, title: Callable[[str], str], rounds: int,
                       restrict: bool = False) -> tuple[str, dict, dict]:
    """(summary markdown, ranking table, win-rate matrix; tables as {"headers", "data"}) from
    `VoteStore.judge_outcomes` rows, over every degradation ("all") or one. `members` are the
    models served; with `restrict`, only battles among them and bicubic count (one family)."""
    flagged = flag_judges(rows, rules)
    outcomes, left_out = counted_outcomes(rows, flagged, None if degradation == "all" else degradation)
    names = [*members, ANCHOR]
    if restrict:
        outcomes = [o for o in outcomes if o[0] in names and o[1] in names]
    names += sorted({n for a, b, _, _ in outcomes for n in (a, b)} - set(names))  # models no longer served
    board = fit_leaderboard(outcomes, names, rounds=rounds, anchor=ANCHOR, left_out=left_out)
    per_degradation = defaultdict(int)
    for judge, deg, _a, _b, _answer, n, _fast in rows:
        if judge not in flagged:
            per_degradation[deg] += n
    scores = witness_scores(evaluation, degradation)  # each automatic witness with its own rank
    human = {n: float(r) for n, r in zip(board.names, board.rating) if n in scores}
    enough = all(v >= MIN_VOTES for n, v in zip(board.names, board.votes) if n in human and n != board.anchor)
    said = agreement(human, scores, enough and board.total_votes > 0)
    headers, matrix = win_rate_rows(board, title)
    summary = summary_markdown(board, degradation, per_degradation, len(set(flagged)), rules, evaluation, said,
                               rounds)
    return (summary, {"headers": HEADERS, "data": ranking_rows(board, scores, title, MIN_VOTES)},
            {"headers": headers, "data": matrix})


def degradation_title(name: str) -> str:
    """A degradation's title, or its stored name if this version does not know it (imported votes)."""
    try:
        return degrade.title(name)
    except ValueError:
        return name


def summary_markdown(board: Leaderboard, degradation: str, per_degradation: dict, judges_flagged: int,
                     rules: FlagRules, evaluation: dict | None, agreement_line: str, rounds: int) -> str:
    which = "" if degradation == "all" else f" on inputs degraded by {degrade.title(degradation)}"
    lines = [(f"**{board.total_votes}** valid votes{which}. Bradley–Terry ratings (Elo scale, maximum "
              f"likelihood; a tie or “both bad” counts as half a win each), with 95% bootstrap intervals over "
              f"{rounds} resamples of the votes. Bicubic is the anchor: its rating is "
              f"pinned at 1000, so ratings keep their meaning as votes and models are added. Models share a "
              f"rank while their intervals overlap; a model with fewer than {MIN_VOTES} votes has no interval "
              f"yet."),
             (f"**{board.left_out}** votes left out: {judges_flagged} judge(s) answered implausibly for a person "
              f"(the same answer ≥{rules.same_answer_share:.0%} of the time, "
              f"≥{rules.fast_share:.0%} of votes under {rules.fast_seconds:g} s, or one "
              f"model picked ≥{rules.model_share:.0%} of the time, over at least "
              f"{rules.min_votes} votes).")]
    if per_degradation:
        lines.append("Votes by degradation: " + " · ".join(
            f"{degradation_title(d)}: {per_degradation.get(d, 0)}" for d in sorted(per_degradation)))
    if evaluation:
        over = ("averaged over the degradations it ran" if degradation == "all"
                else f"under {degradation_title(degradation)}")
        lines.append(f"PSNR (pooled), SSIM and semantic fidelity, {over}: "
                     f"`{evaluation.get('command', 'python -m restoration.evaluate')}` "
                     f"on {evaluation.get('images', '?')} images. Semantic fidelity is the share of the originals' "
                     "top-1 accuracy that an independent fidelity classifier (trained apart from every U-Net) keeps "
                     "on each method's output: how much of what the picture shows survives.")
        lines.append(agreement_line)
    else:
        lines.append("No evaluation figures yet: run `python -m restoration.evaluate --json "
                     "weights/evaluation.json` to show PSNR, SSIM and semantic fidelity beside the human ranking.")
    return "\n\n".join(lines)
