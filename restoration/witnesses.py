"""The automatic witnesses beside the human ranking: PSNR, SSIM and semantic fidelity (how much of
what the picture shows an independent fidelity classifier still recognises), read from the JSON that
`python -m restoration.evaluate --json` writes, with each column's ranks and how well the human
ranking agrees with each witness (Spearman's rank correlation).
"""

import json
from pathlib import Path

# column key in the evaluation JSON → what people read
COLUMNS = {"psnr_pooled": "PSNR (dB)", "ssim": "SSIM", "fidelity": "Semantic fidelity"}


def read_evaluation(path) -> dict | None:
    """The figures `python -m restoration.evaluate --json` wrote ({"degradations": {degradation:
    {"results": {method: summary}}}, ...}), or None if there are none. The older schema (one
    degradation, "results" at the top) reads as degradation "lesson", and the older names of the
    fidelity classifier's figures ("judge", "judge_top1") as the current ones. The app's witnesses and the
    model cards (train/cards.py) both read the file through this."""
    try:
        record = json.loads(Path(path).read_text())
    except (FileNotFoundError, IsADirectoryError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return evaluation_record(record)


def evaluation_record(record) -> dict | None:
    """An evaluation record in the current schema (see `read_evaluation`), or None if it holds no
    figures: no degradation's results, no classifier's or fidelity classifier's accuracy."""
    if not isinstance(record, dict):
        return None
    if "degradations" not in record and isinstance(record.get("results"), dict):  # the older schema
        results = record["results"]
        record = {k: v for k, v in record.items() if k != "results"}
        record["degradations"] = {"lesson": {"results": results}} if results else {}
    if not isinstance(record.get("degradations"), dict):
        return None
    record = _renamed_keys(record)
    figures = (record["degradations"] or isinstance(record.get("classifier"), dict)
               or isinstance(record.get("fidelity_classifier"), dict))
    return record if figures else None


def _renamed_keys(record: dict) -> dict:
    """`record` with the fidelity classifier's figures under their current names: files written
    before the rename call it "judge" (top level) and its top-1 "judge_top1" (each summary)."""
    record = dict(record)
    if "judge" in record and "fidelity_classifier" not in record:
        record["fidelity_classifier"] = record.pop("judge")
    degradations = {}
    for name, block in record["degradations"].items():
        results = block.get("results", block) if isinstance(block, dict) else None  # (cards take either)
        if isinstance(results, dict):
            results = {m: ({("fidelity_top1" if k == "judge_top1" else k): v for k, v in s.items()}
                           if isinstance(s, dict) else s) for m, s in results.items()}
            block = block | {"results": results} if "results" in block else results
        degradations[name] = block
    record["degradations"] = degradations
    return record


def witness_scores(evaluation: dict | None, degradation: str = "lesson") -> dict[str, dict[str, float]]:
    """{method: {column key: value}} under one degradation (empty when not evaluated); "all"
    averages each column over the degradations evaluated, as votes over all of them are pooled."""
    degradations = (evaluation or {}).get("degradations", {})
    if degradation == "all":
        per = [witness_scores(evaluation, d) for d in degradations]
        names = set.intersection(*(set(p) for p in per)) if per else set()
        return {n: {k: sum(p[n][k] for p in per) / len(per) for k in COLUMNS if all(k in p[n] for p in per)}
                for n in names}
    results = (degradations.get(degradation) or {}).get("results", {})
    return {name: {k: r[k] for k in COLUMNS if k in r} for name, r in results.items() if "psnr_pooled" in r}


def ranks(values: dict[str, float]) -> dict[str, int]:
    """1 for the highest value; equal values share the better rank (competition ranking)."""
    ordered = sorted(values.values(), reverse=True)
    return {name: ordered.index(v) + 1 for name, v in values.items()}


def spearman(a: dict[str, float], b: dict[str, float]) -> float | None:
    """Spearman's rank correlation over the names both have (average ranks for ties); None for
    fewer than three names or a column with no spread."""
    names = sorted(set(a) & set(b))
    if len(names) < 3:
        return None

    def average_ranks(values):
        order = sorted(names, key=lambda n: values[n])
        out, i = {}, 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2 + 1
            i = j + 1
        return [out[n] for n in names]

    x, y = average_ranks(a), average_ranks(b)
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((p - mx) * (q - my) for p, q in zip(x, y))
    sxx, syy = sum((p - mx) ** 2 for p in x), sum((q - my) ** 2 for q in y)
    return sxy / (sxx * syy) ** 0.5 if sxx and syy else None


def agreement(human: dict[str, float], scores: dict[str, dict[str, float]], enough: bool) -> str:
    """A sentence: does the human ranking side with PSNR or with semantic fidelity?"""
    if not enough:
        return "Too few votes yet to say whether people agree with PSNR or with semantic fidelity."
    rho = {key: spearman(human, {n: s[key] for n, s in scores.items() if key in s})
           for key in ("psnr_pooled", "fidelity")}
    if rho["psnr_pooled"] is None or rho["fidelity"] is None:
        return "Not enough evaluated models to compare the human ranking with PSNR and semantic fidelity."
    text = (f"Rank correlation of the human ratings with PSNR: {rho['psnr_pooled']:+.2f}; "
            f"with semantic fidelity: {rho['fidelity']:+.2f}. ")
    if abs(rho["psnr_pooled"] - rho["fidelity"]) < 0.1:
        return text + "People agree with both about equally."
    side = "PSNR" if rho["psnr_pooled"] > rho["fidelity"] else "semantic fidelity"
    return text + f"People side more with {side}."
