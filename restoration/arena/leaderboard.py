"""The leaderboard as the Leaderboard tab shows it, one model family at a time (photos first): the
votes on the family's scenes counted (judges whose answers are implausible for a person flagged
and left out, judged on all their votes), the Bradley–Terry fit (`ratings.py`), its tables as rows
of cells beside the family's automatic witnesses (`witnesses.WITNESSES`, from its own evaluation
file), and the summary, whose counts add up: valid + left out = every vote on the family's scenes,
and the valid votes by degradation sum to the valid votes the fit counts.

A model's rank is a range, "2–4": the best and worst places its 95% interval allows (the models
whose intervals lie wholly above it, and those wholly below it), so a model shows one number only
once its interval separates it from the others, as large arenas print rank ranges; with few votes
every model reads "1–4", not a column of "1" that looks like a result.

A model nobody has voted on has no rating and no rank: the fit gives it the prior's rating (near
the anchor's), which would read as a result. Its rating and rank cells say "—" and it is listed
after every model with votes. The anchor keeps its pinned rating only once it has votes: before
the first vote no model has a figure.
"""

import dataclasses
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from restoration.arena.ratings import ANCHOR, MIN_VOTES, Leaderboard, fit_leaderboard
from restoration.arena.witnesses import EVALUATIONS, WITNESSES, Witness, agreement, explained, ranks, witness_scores
from restoration.data import degrade

HEADERS = ["Rank", "Model", "Rating", "95% interval", "Votes"]  # then the family's witnesses
NONE = "—"


def listed_order(board: Leaderboard) -> list[int]:
    """Indices of the models as listed: those with votes by rank, then rating; then those without
    votes, in the order they were given."""
    voted = [i for i in board.order() if board.votes[i] > 0]
    return voted + [i for i in range(len(board.names)) if board.votes[i] == 0]


def rank_range(board: Leaderboard, i: int) -> str:
    """Model i's place among the models with votes, as the intervals allow it: "3" where they
    separate it from every other, else the range "2–4" (best – worst)."""
    voted = [j for j in range(len(board.names)) if board.votes[j] > 0 and j != i]
    best = 1 + sum(board.lower[j] > board.upper[i] for j in voted)
    worst = 1 + len(voted) - sum(board.upper[j] < board.lower[i] for j in voted)
    return str(best) if best == worst else f"{best}–{worst}"


def _interval(board: Leaderboard, i: int, min_votes: int) -> str:
    if board.names[i] == board.anchor:
        return "pinned (anchor)"
    if board.votes[i] == 0:
        return f"{NONE} (no votes yet)"
    if np.isfinite(board.upper[i]):
        return f"{board.lower[i]:.0f} – {board.upper[i]:.0f}"
    return f"{NONE} (under {min_votes} votes)"


def ranking_rows(board: Leaderboard, scores: Mapping[str, Mapping[str, float]], columns: Mapping[str, Witness],
                 title: Callable[[str], str], min_votes: int) -> list[list]:
    """One row per model (HEADERS, then one cell per witness of `columns`): rank range, title,
    rating, interval, votes, then each witness's figure with its rank among the models on the
    board in brackets ("—" where it was not evaluated)."""
    names = set(board.names)
    column_ranks = {key: ranks({n: s[key] for n, s in scores.items() if key in s and n in names}, w.better)
                    for key, w in columns.items()}
    rows = []
    for i in listed_order(board):
        n, s = board.names[i], scores.get(board.names[i], {})
        voted = board.votes[i] > 0
        witnesses = [f"{w.format.format(s[key])} ({column_ranks[key][n]})" if key in s else NONE
                     for key, w in columns.items()]
        rows.append([rank_range(board, i) if voted else NONE, title(n),
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
    degradation, model_a, model_b, answer, votes, fast votes[, family])."""
    total, fast = defaultdict(int), defaultdict(int)
    answers = defaultdict(lambda: defaultdict(int))
    picked, decisive = defaultdict(lambda: defaultdict(int)), defaultdict(lambda: defaultdict(int))
    for judge, _degradation, a, b, answer, n, n_fast, *_family in rows:
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
    for judge, deg, a, b, answer, n, _fast, *_family in rows:
        if degradation and deg != degradation:
            continue
        if judge in flagged:
            left_out += n
        else:
            counts[a, b, answer] += n
    return [(a, b, answer, n) for (a, b, answer), n in counts.items()], left_out


def family_rows(rows: Iterable[tuple], family: str, model_families: Mapping[str, str]) -> list[tuple]:
    """The `VoteStore.judge_outcomes(by_family=True)` rows of votes on `family`'s scenes: those
    that say so, and older ones (no family kept) whose U-Net `model_families` puts in it."""
    def of(row):
        return row[7] or model_families.get(row[2]) or model_families.get(row[3]) or ""
    return [row for row in rows if of(row) == family]


def leaderboard_tables(rows: list[tuple], family: str, members: list[str], degradation: str, rules: FlagRules,
                       evaluation: dict | None, title: Callable[[str], str], rounds: int,
                       model_families: Mapping[str, str] | None = None) -> tuple[str, dict, dict]:
    """(summary markdown, ranking table, win-rate matrix; tables as {"headers", "data"}) of one
    model family's board, from `VoteStore.judge_outcomes(by_family=True)` rows (every vote: a judge
    is flagged on all of theirs), over every degradation ("all") or one. `members` are the family's
    models served; `evaluation` its evaluation record (`witnesses.EVALUATIONS`);
    `model_families` (model → family) places older votes that did not keep their family."""
    flagged = flag_judges(rows, rules)
    mine = family_rows(rows, family, model_families or {})
    if degradation != "all":
        mine = [row for row in mine if row[1] == degradation]
    outcomes, left_out = counted_outcomes(mine, flagged)
    names = [*members, ANCHOR]
    names += sorted({n for a, b, _, _ in outcomes for n in (a, b)} - set(names))  # models no longer served
    board = fit_leaderboard(outcomes, names, rounds=rounds, anchor=ANCHOR, left_out=left_out)
    per_degradation = defaultdict(int)
    for judge, deg, _a, _b, _answer, n, *_ in mine:
        if judge not in flagged:
            per_degradation[deg] += n
    columns = WITNESSES[family]
    scores = witness_scores(evaluation, degradation, columns)  # each automatic witness with its own rank
    columns = {k: w for k, w in columns.items() if any(k in s for s in scores.values())}  # those it reports
    human = {n: float(r) for n, r in zip(board.names, board.rating) if n in scores}
    enough = all(v >= MIN_VOTES for n, v in zip(board.names, board.votes) if n in human and n != board.anchor)
    said = agreement(human, scores, enough and board.total_votes > 0, family)
    headers, matrix = win_rate_rows(board, title)
    judges_flagged = len({row[0] for row in mine if row[0] in flagged})
    summary = summary_markdown(board, family, degradation, per_degradation, judges_flagged, rules, evaluation,
                               columns, said, rounds)
    return (summary, {"headers": HEADERS + [w.title for w in columns.values()],
                      "data": ranking_rows(board, scores, columns, title, MIN_VOTES)},
            {"headers": headers, "data": matrix})


def degradation_title(name: str) -> str:
    """A degradation's title, or its stored name if this version does not know it (imported votes)."""
    try:
        return degrade.title(name)
    except ValueError:
        return name


def summary_markdown(board: Leaderboard, family: str, degradation: str, per_degradation: dict, judges_flagged: int,
                     rules: FlagRules, evaluation: dict | None, columns: Mapping[str, Witness], agreement_line: str,
                     rounds: int) -> str:
    which = "" if degradation == "all" else f" on inputs degraded by {degrade.title(degradation)}"
    valid = sum(per_degradation.values())  # = board.total_votes: the same votes
    known = list(degrade.STANDARD)  # in this order; votes on degradations this version does not know last
    by_degradation = " · ".join(f"{degradation_title(d)}: {per_degradation[d]}" for d in sorted(
        per_degradation, key=lambda d: (known.index(d) if d in known else len(known), d)))
    lines = [(f"**{board.total_votes}** valid votes{which}. Bradley–Terry ratings (Elo scale, maximum "
              f"likelihood; a tie or “both bad” counts as half a win each), with 95% bootstrap intervals over "
              f"{rounds} resamples of the votes. Bicubic is the anchor: its rating is "
              f"pinned at 1000, so ratings keep their meaning as votes and models are added. A rank is the range "
              f"of places the intervals allow (“1–3”: no better than first, no worse than third); it is one "
              f"number once the intervals set the model apart. A model with fewer than {MIN_VOTES} votes has "
              f"no interval yet."),
             (f"**{board.left_out}** votes left out: {judges_flagged} judge(s) answered implausibly for a person "
              f"(the same answer ≥{rules.same_answer_share:.0%} of the time, "
              f"≥{rules.fast_share:.0%} of votes under {rules.fast_seconds:g} s, or one "
              f"model picked ≥{rules.model_share:.0%} of the time, over at least "
              f"{rules.min_votes} votes, of every family)."),
             (f"**{valid + board.left_out}** votes on this family's pairs{which}: {valid} valid + {board.left_out} "
              f"left out. Valid votes by degradation: {by_degradation or 'none yet'} (together {valid}). Each vote "
              "counts for both its models in the Votes column.")]
    if evaluation and columns:
        over = ("averaged over the degradations it ran" if degradation == "all"
                else f"under {degradation_title(degradation)}")
        lines.append(f"{_listed(columns)} (each with its rank in brackets), {over}: "
                     f"`{evaluation.get('command', EVALUATIONS[family][1])}` "
                     f"on {evaluation.get('images', '?')} images. {explained(family, columns)}")
        lines.append(agreement_line)
    else:
        lines.append(f"No evaluation figures yet: run `{EVALUATIONS[family][1]}` to show "
                     f"{_listed(WITNESSES[family])} beside the human ranking.")
    return "\n\n".join(lines)


def _listed(columns: Mapping[str, Witness]) -> str:
    """The witnesses' titles without units, as a sentence lists them: "Y-PSNR, Y-SSIM and Sharpness"."""
    names = [w.title.split(" (")[0] for w in columns.values()]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
