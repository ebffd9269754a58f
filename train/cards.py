"""Model cards (README.md with Hub metadata) for the shipped models, and the Space's card.

A card is built with `huggingface_hub.ModelCard`/`ModelCardData` from what the repository holds:
the folder's config.json and weights, its catalogue entry (weights/models.json), the evaluation
(weights/evaluation.json) and the training record: the card's "Training" and "Validation during
training" sections, written from the run folder when the model was shipped (`train.ship`) and kept
from the current card when a card is rebuilt without the run.

    python -m train.publish cards        # rebuild weights/*/README.md here, no upload
"""

import json
import math
import re
from pathlib import Path

from restoration.arena.witnesses import evaluation_record
from restoration.hub.catalogue import ModelEntry
from restoration.models.auto import load_checkpoint
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME, read_header

DATASET = "zh-plus/tiny-imagenet"  # the Hub's copy of Tiny ImageNet (CS231N), the data these were trained on
LICENSE = {"license": "other", "license_name": "tiny-imagenet-non-commercial",
           "license_link": "https://image-net.org/download.php"}
LICENSE_TEXT = ("Tiny ImageNet (Stanford CS231N) is a subset of ImageNet, whose terms of access allow "
                "non-commercial research and educational use only; these weights were trained on it, so the same "
                "terms apply to them (licence `other`: tiny-imagenet-non-commercial).")
KIND = {"classifier": "image classifier (Tiny ImageNet, 200 classes)",
        "unet": "×2 super-resolution U-Net", "autoencoder": "×2 super-resolution autoencoder (baseline)"}
ABSOLUTE_PATH = re.compile(r"(?<![\w.~/:)\]-])/[A-Za-z_][\w.-]*/[\w./-]*")  # /any/absolute/path, not URLs
TRAINING_HEADINGS = ("## Training", "## Validation during training")
# The photo family's data (../shared/data/photos, see its README): no Hub dataset holds these photos as trained on,
# so the card says it in words; its `datasets` names the Tiny ImageNet copy its starting weights learned from.
PHOTO_LICENSE = {"license": "other", "license_name": "bsds500-imagenet-non-commercial",
                 "license_link": "https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html"}
PHOTO_LICENSE_TEXT = ("Trained on photos of the Berkeley Segmentation Data Set 500 (its train and test splits, 399 "
                      "images) and 450 ImageNet photos (one per class, a seeded sample), which are for non-commercial "
                      "research and education (each ImageNet photo keeps its own copyright); chosen and validated on "
                      "Kodak24 and McMaster18, distributed for research use. The encoder's starting weights and the "
                      "perceptual loss (where used) come from the Tiny ImageNet classifier, itself under Tiny "
                      "ImageNet's non-commercial terms. The same terms apply to these weights (licence `other`).")
PHOTO_DATA_TEXT = ("The card's `datasets` lists only `zh-plus/tiny-imagenet`, what this model's starting weights (and "
                   "the loss's classifier) learned from: no Hub dataset holds the photos it was fine-tuned on as they "
                   "were used (BSDS500's train and test splits less one benchmark picture, and a seeded sample of 450 "
                   "ImageNet photos, one per class), nor the val sets as chosen on (Kodak24 from cszn/FFDNet's "
                   "testsets, McMaster18 converted from TIFF to PNG). Their sources: the Berkeley Segmentation Data "
                   "Set 500 (https://www2.eecs.berkeley.edu/Research/Projects/CS/vision/grouping/resources.html), "
                   "github.com/EliSchwartz/imagenet-sample-images, and github.com/cszn/FFDNet.")


def is_photo(entry: ModelEntry) -> bool:
    return entry.role == "restorer" and entry.family == "photo"


# -------------------------------------------------------------------------------------------- evaluation


def normalize_evaluation(record) -> dict | None:
    """An evaluation record (as `restoration.inference.evaluate --json` writes it, either schema) in the shape
    the cards use: {"command", "data", "images", "degradations": {degradation: {method: summary}},
    "classifier", "fidelity_classifier"}, paths of the machine scrubbed. Reading the file is
    `restoration.arena.witnesses.read_evaluation`'s, which also upgrades the older schema and the older
    names ("judge", "judge_top1")."""
    record = evaluation_record(record)
    if record is None:
        return None
    degradations = {}
    for name, block in record["degradations"].items():
        results = block.get("results", block) if isinstance(block, dict) else None
        if isinstance(results, dict):
            degradations[name] = {m: s for m, s in results.items() if isinstance(s, dict)}
    return {"command": scrub_paths(str(record.get("command", "python -m restoration.inference.evaluate"))),
            "data": _data_name(record.get("data")),
            "images": record.get("images"), "degradations": degradations,
            "classifier": record.get("classifier") if isinstance(record.get("classifier"), dict) else None,
            "fidelity_classifier": (record.get("fidelity_classifier")
                                    if isinstance(record.get("fidelity_classifier"), dict) else None)}


def _data_name(data) -> str:
    """The data's name for a card: never the path of the machine that evaluated."""
    if not data:
        return "Tiny ImageNet val"
    if str(data).startswith("/"):
        return f"Tiny ImageNet val (`{Path(str(data)).name}`)"
    return str(data)


def eval_results(entry: ModelEntry, evaluation: dict | None) -> list:
    """The card's model-index: PSNR and SSIM per degradation for a restorer (and the fidelity
    classifier's top-1 on its outputs where evaluated); top-1 accuracy for a classifier."""
    from huggingface_hub import EvalResult

    if not evaluation:
        return []
    photo = is_photo(entry)  # evaluated on the photo val sets, not Tiny ImageNet
    common = {"dataset_type": "kodak24-mcmaster18" if photo else DATASET, "dataset_split": "valid"}
    data = f"Kodak24 + McMaster18 ({evaluation['data']})" if photo else "Tiny ImageNet val"
    out = []
    if entry.role == "restorer":
        for degradation, results in evaluation["degradations"].items():
            r = results.get(entry.name)
            if not r:
                continue
            where = {"task_type": "image-to-image", "task_name": "×2 super-resolution",
                     "dataset_name": f"{data}, {degradation} ×2 degradation", "dataset_config": degradation}
            metrics = [("psnr", "PSNR (dB, pooled)", r.get("psnr_pooled")), ("psnr", "PSNR (dB, mean of images)",
                       r.get("psnr_mean")), ("ssim", "SSIM", r.get("ssim")),
                       ("psnr", "Y-PSNR (dB, BT.601 luma, 2-pixel border shaved, mean of images)", r.get("psnr_y")),
                       ("ssim", "Y-SSIM (BT.601 luma, 2-pixel border shaved)", r.get("ssim_y")),
                       ("sharpness", "sharpness (luma gradient energy / the original's)", r.get("sharpness")),
                       ("grid", "grid (checker energy in the original's flattest 30 % / the original's)", r.get("grid")),
                       ("flat", "flat (Laplacian energy in the original's flattest 30 % / the original's)", r.get("flat")),
                       ("accuracy", "fidelity classifier top-1 on the restorations", r.get("fidelity_top1")),
                       ("fidelity", "fidelity classifier top-1 / top-1 on the originals", r.get("fidelity"))]
            out += [EvalResult(**common, **where, metric_type=t, metric_name=n, metric_value=round(float(v), 4))
                    for t, n, v in metrics if _finite(v)]
    else:
        scores = evaluation.get("fidelity_classifier" if entry.role == "fidelity" else "classifier") or {}
        value = scores.get("top1_original" if entry.role == "fidelity" else "val_accuracy", scores.get("val_accuracy"))
        if _finite(value):
            out.append(EvalResult(**common, task_type="image-classification", dataset_name="Tiny ImageNet val",
                                  metric_type="accuracy", metric_name="top-1 accuracy", metric_value=round(value, 4)))
    return out


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def evaluation_section(entry: ModelEntry, evaluation: dict | None) -> list[str]:
    if not evaluation:
        return []
    source = f"`{evaluation['command']}` on {evaluation['images'] or '?'} images of {evaluation['data']}"
    if entry.role == "restorer":
        lines = []
        for degradation, results in evaluation["degradations"].items():
            r = results.get(entry.name)
            if not r:
                continue
            scored, grain = "fidelity_top1" in r, "grid" in r
            lines += ["", f"Degradation `{degradation}` (whole images, ×2; Y- = BT.601 luma, 2-pixel border shaved"
                      + ("; grid, flat = checker and Laplacian energy in the original's flattest 30 %, relative to the "
                         "original's: grain where the photo is smooth" if grain else "") + "):", "",
                      "| | PSNR pooled (dB) | PSNR mean of images (dB) | SSIM | Y-PSNR (dB) | Y-SSIM | sharpness |"
                      + (" grid | flat |" if grain else "") + (" fidelity top-1 | fidelity |" if scored else ""),
                      "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if grain else "") + ("---:|---:|" if scored else "")]
            for label, key in (("this model", entry.name), ("bicubic", "bicubic"), ("nearest", "nearest")):
                s = results.get(key)
                if s:
                    luma = (f"{s['psnr_y']:.3f} | {s['ssim_y']:.4f}" if _finite(s.get("psnr_y")) else "— | —")
                    row = (f"| {label} | {s['psnr_pooled']:.3f} | {s['psnr_mean']:.3f} | {s['ssim']:.4f} | {luma} | "
                           f"{s['sharpness']:.3f} |")
                    if grain:
                        row += (f" {s['grid']:.2f} | {s['flat']:.2f} |" if _finite(s.get("grid")) and _finite(s.get("flat"))
                                else " — | — |")
                    if scored:
                        row += (f" {s['fidelity_top1']:.2%} | {s['fidelity']:.3f} |"
                                if _finite(s.get("fidelity_top1")) and _finite(s.get("fidelity")) else " — | — |")
                    lines.append(row)
        return ["## Evaluation", "", source + ":"] + lines + [""] if lines else []
    scores = evaluation.get("fidelity_classifier" if entry.role == "fidelity" else "classifier")
    value = (scores or {}).get("top1_original" if entry.role == "fidelity" else "val_accuracy")
    if value is None:
        return []
    loss = f" (cross-entropy {scores['val_loss']:.3f})" if isinstance(scores.get("val_loss"), (int, float)) else ""
    return ["## Evaluation", "", f"{source}: top-1 accuracy **{value:.2%}**{loss} on the val split (no augmentation).",
            ""]


# -------------------------------------------------------------------------------------------- cards


def scrub_paths(text: str) -> str:
    """Absolute paths of the machine that trained (e.g. in a recorded command) as `…/last-part`."""
    return ABSOLUTE_PATH.sub(lambda m: "…/" + m.group(0).rstrip("/").rsplit("/", 1)[-1], text)


def training_record(card_text: str) -> str:
    """The "Training" and "Validation during training" sections of an existing card, verbatim."""
    keep, out = False, []
    for line in card_text.splitlines():
        if line.startswith("## "):
            keep = line.startswith(TRAINING_HEADINGS)
        if keep:
            out.append(line)
    return "\n".join(out).strip() + "\n" if out else ""


def use_snippet(entry: ModelEntry, space: str | None) -> list[str]:
    repo = entry.hub_repo or "<owner>/<repo>"
    where = (f", which ships with the app's Space: `git clone https://huggingface.co/spaces/{space}` and run "
             "from that folder" if space else ": run from a copy of it")
    lines = ["## Use", "",
             f"The architecture is code, the `restoration` package of this project{where}, with `torch`, "
             "`safetensors` and `huggingface_hub` installed:", "", "```python",
             "from huggingface_hub import snapshot_download",
             "from restoration.models.auto import AutoModel", "",
             "# pin the version you tested: revision=<a commit of this repo>",
             f'folder = snapshot_download("{repo}", allow_patterns=["config.json", "model.safetensors"])',
             "model = AutoModel.from_pretrained(folder)  # rebuilt from config.json, weights checked"]
    if entry.role == "restorer":
        lines += ["", "import torch",
                  "low = torch.rand(1, 3, 32, 32)  # RGB in [0, 1]: the low-resolution image",
                  "x = low.repeat_interleave(2, -1).repeat_interleave(2, -2)  # upscaled ×2, nearest neighbour",
                  "with torch.inference_mode():",
                  "    restored = model.restore(x)  # (1, 3, 64, 64), RGB in [0, 1]"]
    else:
        lines += ["", "import torch",
                  "with torch.inference_mode():",
                  "    logits = model(torch.rand(1, 3, 64, 64))  # RGB in [0, 1] → 200 Tiny ImageNet classes"]
    return lines + ["```", ""]


def build_card(folder, entry: ModelEntry, catalog: list[ModelEntry], evaluation: dict | None,
               training: str = "", space: str | None = None):
    """The model card (a huggingface_hub.ModelCard) of a shipped folder."""
    from huggingface_hub import ModelCard, ModelCardData

    folder = Path(folder)
    config = json.loads((folder / CONFIG_NAME).read_text())
    model = load_checkpoint(folder)
    params = sum(p.numel() for p in model.parameters())
    kind = config["model_type"]
    task = "image-classification" if kind == "classifier" else "image-to-image"
    photo = is_photo(entry)
    tags = ["pytorch", "safetensors", "fastai-course-lesson-23", "photos" if photo else "tiny-imagenet"]
    tags += ["super-resolution", "unet"] if kind != "classifier" else ["resnet"]
    base = next((e for e in catalog if e.name == entry.base_model), None) if entry.base_model else None
    extra = {"base_model": base.hub_repo, "base_model_relation": "finetune"} if base and base.hub_repo else {}
    data = ModelCardData(**(PHOTO_LICENSE if photo else LICENSE), library_name="pytorch", pipeline_tag=task, tags=tags,
                         datasets=[DATASET],
                         model_name=entry.title, eval_results=eval_results(entry, evaluation) or None, **extra)
    dtypes = sorted({dtype for dtype, _ in read_header(folder / WEIGHTS_NAME).values()} - {"I64"})
    size = (folder / WEIGHTS_NAME).stat().st_size
    intro = (f"{'An' if KIND.get(kind, kind)[0] in 'aeiou' else 'A'} {KIND.get(kind, kind)} of the *Deep Learning Foundations to Stable Diffusion* lesson 23 pipeline, "
             f"rebuilt as a library: {params / 1e6:.2f} M parameters, {size / 1e6:.1f} MB of weights "
             f"({', '.join(dtypes)}). It takes RGB in [0, 1] and normalises inside (the constants are in config.json).")
    if kind != "classifier":
        intro += " Input: the low-resolution image upscaled ×2 with nearest neighbour; output: the restored image."
    if photo:
        intro += (" One of the photo family: fine-tuned on random crops of full-resolution photos (not Tiny ImageNet "
                  "thumbnails), for people's own pictures.")
    if base:
        intro += (f" Its {'weights' if photo else 'encoder'} started from the {base.title}"
                  + (f" ([{base.hub_repo}](https://huggingface.co/{base.hub_repo}))." if base.hub_repo else "."))
    if entry.role == "fidelity":
        intro += (" It is the fidelity classifier of the evaluation: trained apart from the restorers, it scores how "
                  "much of an image's content a restoration keeps (its top-1 on restored images).")
    lines = ["", f"# {entry.title}", "", intro, ""] + use_snippet(entry, space)
    lines += ["## Config", "", "```json", json.dumps(config, indent=2), "```", ""]
    if training:
        lines += [scrub_paths(training).strip(), ""]
    lines += evaluation_section(entry, evaluation)
    lines += ["## Data", "", PHOTO_DATA_TEXT, ""] if photo else []
    lines += ["## Data licence", "", PHOTO_LICENSE_TEXT if photo else LICENSE_TEXT, ""]
    text = "\n".join(lines)
    found = ABSOLUTE_PATH.search(text)
    if found:
        raise ValueError(f"{entry.name}: the card would contain a path of this machine ({found.group(0)})")
    return ModelCard("---\n" + data.to_yaml() + "\n---\n" + text)


def space_card(catalog: list[ModelEntry], readme: str, sdk_version: str) -> str:
    """The Space's README.md: `readme` (the project's) with its front matter brought up to date: the
    gradio version, the licence, and the models and data the Space uses."""
    import yaml

    found = re.match(r"\A---\n(.*?\n)---\n", readme, flags=re.S)
    meta = yaml.safe_load(found.group(1)) if found else {}
    meta = meta or {}
    for key, value in {"title": "Super-resolution arena", "emoji": "🔍", "colorFrom": "indigo", "colorTo": "gray",
                       "sdk": "gradio", "python_version": "3.11", "app_file": "app.py", "pinned": False}.items():
        meta.setdefault(key, value)
    meta["sdk_version"] = sdk_version
    latest = {**LICENSE, "models": [e.hub_repo for e in catalog if e.hub_repo], "datasets": [DATASET]}
    meta = {k: v for k, v in meta.items() if k not in latest} | latest  # (the same order every time)
    body = readme[found.end():] if found else "\n" + readme
    return "---\n" + yaml.safe_dump(meta, sort_keys=False, allow_unicode=True) + "---\n" + body
