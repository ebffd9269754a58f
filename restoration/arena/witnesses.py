"""The automatic witnesses beside the human ranking, each family's from its own evaluation file
(`EVALUATIONS`, the JSON that `python -m restoration.inference.evaluate --json` writes): for the lesson's
family PSNR, SSIM and semantic fidelity (how much of what the picture shows an independent fidelity
classifier still recognises) on Tiny ImageNet val; for the photo family luma PSNR and SSIM,
sharpness, and `grid` and `flat` (grain where the original is flat) once the evaluation reports
them, on the val photos. With each column's ranks, and how well the human ranking agrees with two
of them (Spearman's rank correlation).
"""

import dataclasses
import json
import math
from pathlib import Path


@dataclasses.dataclass(frozen=True)
class Witness:
    title: str  # what people read
    format: str
    better: str = "higher"  # which way ranks first: "higher", "lower", or "near 1" (1.0: like the original)


# family → (its evaluation file in the weights folder, the command that writes it)
EVALUATIONS = {
    "photo": ("evaluation-photos.json",
              "python -m restoration.inference.evaluate --data ../shared/data/photos/val --json weights/evaluation-photos.json"),
    "lesson": ("evaluation.json", "python -m restoration.inference.evaluate --json weights/evaluation.json"),
}
# family → {column key in its evaluation JSON → Witness}; the first is the one every evaluated method has.
WITNESSES = {
    "photo": {"psnr_y": Witness("Y-PSNR (dB)", "{:.2f}"), "ssim_y": Witness("Y-SSIM", "{:.4f}"),
              "sharpness": Witness("Sharpness", "{:.2f}", "near 1"), "grid": Witness("Grid", "{:.2f}", "lower"),
              "flat": Witness("Flat", "{:.2f}", "lower")},
    "lesson": {"psnr_pooled": Witness("PSNR (dB)", "{:.2f}"), "ssim": Witness("SSIM", "{:.4f}"),
               "fidelity": Witness("Semantic fidelity", "{:.1%}")},
}
# family → the two witnesses the human ranking is compared with: fidelity to the pixels, and to what people see
AGREEMENT = {"photo": ("psnr_y", "sharpness"), "lesson": ("psnr_pooled", "fidelity")}
# What the figures mean, for the leaderboard's summary: each sentence said when a column it explains is shown.
EXPLAINED = {
    "photo": [(("psnr_y", "ssim_y"), "Y-PSNR and Y-SSIM are measured on the luma (BT.601) with a 2-pixel border "
                                     "shaved."),
              (("sharpness",), "Sharpness is the output's gradient energy relative to the original's (1.0: as much "
                               "fine detail; ranked by how near it is to 1)."),
              (("grid", "flat"), "Grid and flat are the checkerboard and Laplacian energy of the output's luma in the "
                                 "original's flattest 30 %, relative to the original's (lower: less grain; ranked "
                                 "lowest first).")],
    "lesson": [(("fidelity",), "Semantic fidelity is the share of the originals' top-1 accuracy that an independent "
                               "fidelity classifier (trained apart from every U-Net) keeps on each method's output: "
                               "how much of what the picture shows survives.")],
}


def explained(family: str, columns) -> str:
    """What the shown witness `columns` (keys) of a family mean: the sentences of EXPLAINED for them."""
    return " ".join(text for keys, text in EXPLAINED[family] if set(keys) & set(columns))


def read_evaluation(path) -> dict | None:
    """The figures `python -m restoration.inference.evaluate --json` wrote ({"degradations": {degradation:
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


def witness_scores(evaluation: dict | None, degradation: str = "lesson",
                   columns: dict[str, Witness] = WITNESSES["lesson"]) -> dict[str, dict[str, float]]:
    """{method: {column key: value}} of `columns` (a family's WITNESSES) under one degradation
    (empty when not evaluated), for the methods that have the first column; "all" averages each
    column over the degradations evaluated, as votes over all of them are pooled."""
    degradations = (evaluation or {}).get("degradations", {})
    if degradation == "all":
        per = [witness_scores(evaluation, d, columns) for d in degradations]
        names = set.intersection(*(set(p) for p in per)) if per else set()
        return {n: {k: sum(p[n][k] for p in per) / len(per) for k in columns if all(k in p[n] for p in per)}
                for n in names}
    results = (degradations.get(degradation) or {}).get("results", {})
    first = next(iter(columns))
    return {name: {k: r[k] for k in columns if k in r} for name, r in results.items() if first in r}


def ranks(values: dict[str, float], better: str = "higher") -> dict[str, int]:
    """1 for the best value (`Witness.better`: the highest, the lowest, or the nearest 1 on a log
    scale, 0.5 as far as 2); equal values share the better rank (competition ranking)."""
    badness = {"higher": lambda v: -v, "lower": lambda v: v,
               "near 1": lambda v: abs(math.log(v)) if v > 0 else math.inf}[better]
    ordered = sorted(badness(v) for v in values.values())
    return {name: ordered.index(badness(v)) + 1 for name, v in values.items()}


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


def agreement(human: dict[str, float], scores: dict[str, dict[str, float]], enough: bool,
              family: str = "lesson") -> str:
    """A sentence: does the human ranking side with one or the other of the family's two AGREEMENT
    witnesses (the lesson's: PSNR or semantic fidelity)?"""
    first, second = AGREEMENT[family]
    names = {key: _name(WITNESSES[family][key].title) for key in (first, second)}
    if not enough:
        return f"Too few votes yet to say whether people agree with {names[first]} or with {names[second]}."
    rho = {key: spearman(human, {n: s[key] for n, s in scores.items() if key in s}) for key in (first, second)}
    if rho[first] is None or rho[second] is None:
        return (f"Not enough evaluated models to compare the human ranking with {names[first]} and "
                f"{names[second]}.")
    text = (f"Rank correlation of the human ratings with {names[first]}: {rho[first]:+.2f}; "
            f"with {names[second]}: {rho[second]:+.2f}. ")
    if abs(rho[first] - rho[second]) < 0.1:
        return text + "People agree with both about equally."
    return text + f"People side more with {names[first] if rho[first] > rho[second] else names[second]}."


def _name(title: str) -> str:
    """A witness's title as a sentence says it: no unit, lower case unless an acronym."""
    name = title.split(" (")[0]
    return name if any(c.isupper() for c in name[1:]) else name.lower()
