"""A submission's scores: its family's quick set (a fixed subset of Tiny ImageNet val or of
photos/val) through evaluate.py's own functions under each standard degradation, ours scored the
same way once and kept in the vote store, and the tables that put them side by side
(restoration/arena/submissions.py shows them)."""

import json
from pathlib import Path

from restoration.arena.store import VoteStore
from restoration.data.degrade import STANDARD, upscale_bicubic
from restoration.inference.evaluation import evaluate, format_table, is_tiny_imagenet, load_val, model_method
from restoration.inference.runner import Restorer
from restoration.settings import Settings

QUICK_VAL_IMAGES = 200  # Tiny ImageNet val: a fixed subset (datasets.subset, seed 0)
QUICK_PHOTOS = 4  # photos/val: a fixed subset, whole photos
# Each family's quick set: the data its models are for (catalogue.FAMILIES).
QUICK_SETS = {"lesson": "tiny-imagenet", "photo": "photos"}


def quick_evaluation(model, settings: Settings, family: str | None = None, fidelity=None,
                     val_images: int = QUICK_VAL_IMAGES, photos: int = QUICK_PHOTOS) -> dict:
    """{dataset: {"images": n, "degradations": {degradation: {"bicubic": summary, "model": summary}}}}:
    evaluate.py's `evaluate` (PSNR, SSIM, luma figures, sharpness; with `fidelity`, the fidelity
    classifier, semantic fidelity on Tiny ImageNet) under each standard degradation, on `family`'s
    quick set (QUICK_SETS; both without a family), where this server has it: a fixed subset of Tiny
    ImageNet val, or of photos/val. The same call scores our models (`reference_evaluation`), so the
    figures are comparable; the model runs through `runner.Restorer`, whatever input it takes."""
    from tqdm.auto import tqdm

    restorer = Restorer.from_settings(model, settings, fast=False)
    methods = {"bicubic": upscale_bicubic, "model": model_method(restorer)}
    quiet = tqdm(disable=True)
    wanted = set(QUICK_SETS.values()) if family is None else {QUICK_SETS[family]}
    record = {}
    if "tiny-imagenet" in wanted and is_tiny_imagenet(settings.val_dir):
        val = load_val(settings.val_dir, val_images)
        record["tiny-imagenet"] = {"images": len(val[0]), "degradations": {
            d: evaluate(methods, settings.val_dir, val_images, val=val, degradation=d, fidelity=fidelity, bar=quiet)
            for d in STANDARD}}
    if "photos" in wanted and Path(settings.photo_val_dir).is_dir() and photos > 0:
        scores = {d: evaluate(methods, settings.photo_val_dir, photos, degradation=d, bar=quiet) for d in STANDARD}
        record["photos"] = {"images": scores[STANDARD[0]]["model"]["images"], "degradations": scores}
    return record


def reference_evaluation(store: VoteStore, models, settings: Settings, fidelity=None, compute: bool = True) -> dict[str, dict]:
    """name → `quick_evaluation` of each of `models` (ours, to show beside a submission of their
    family) on its family's quick set, computed once per model and revision and kept in the vote
    store for every replica (`compute=False`: only those already kept; a page does not wait minutes
    for them, `restoration.arena.submit show` computes them)."""
    out = {}
    for m in models:
        data = settings.val_dir if m.entry.family == "lesson" else settings.photo_val_dir
        key = f"quick-evaluation:{m.entry.name}@{m.revision}:{m.entry.family}:{Path(data).name}"
        kept = store.note(key)
        if kept is None and not compute:
            continue
        if kept is None:
            kept = json.dumps(quick_evaluation(m.model, settings, m.entry.family, fidelity))
            store.set_note(key, kept)
        out[m.entry.name] = json.loads(kept)
    return out


def evaluation_markdown(evaluation: dict, title: str, ours: dict[str, dict] | None = None,
                        titles: dict[str, str] | None = None) -> str:
    """One table per dataset and degradation (evaluate.format_table): bicubic, our models (`ours`:
    name → quick_evaluation), then the submission."""
    titles = titles or {}
    parts = []
    for dataset, scored in evaluation.items():
        for degradation, results in scored["degradations"].items():
            rows = {"bicubic": results["bicubic"]}
            for name, theirs in (ours or {}).items():
                mine = theirs.get(dataset, {}).get("degradations", {}).get(degradation, {}).get("model")
                if mine:
                    rows[name] = mine
            rows["submission"] = results["model"]
            names = {"submission": title, **titles}
            parts.append(f"**{dataset}, {degradation}** ({scored['images']} images)\n\n" + format_table(rows, names))
    return "\n\n".join(parts) or "(no evaluation data on this server)"
