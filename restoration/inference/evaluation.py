"""The evaluation of ×2 super-resolution behind `python -m restoration.inference.evaluate` (its
--help says what is measured): methods run on Tiny ImageNet val or a folder of images under each
degradation, scored by `data/metrics.QualityMeter`, and the fidelity classifier's top-1. The
arena's submission scores use `evaluate` and `format_table` too.
"""

import json
import sys
import time
from pathlib import Path

import torch

from restoration.data.datasets import ImageFolder, TinyImageNet, load_cache, subset
from restoration.data.degrade import check as check_degradation
from restoration.data.degrade import even_crop, low_res, title, upscale_bicubic, upscale_nearest
from restoration.data.metrics import QualityMeter
from restoration.hub.catalogue_file import read_catalog
from restoration.inference.runner import Restorer
from restoration.models.auto import load_checkpoint
from restoration.models.classifier import top1_accuracy
from restoration.settings import Settings


def is_tiny_imagenet(data) -> bool:
    return (Path(data) / "wnids.txt").is_file()


def load_val(data, limit=None, cache_dir=None):
    """Tiny ImageNet val as uint8 arrays (images, labels), decoded once (kept in `cache_dir` if given)."""
    return load_cache(subset(TinyImageNet(data, "val"), limit), 64, cache_dir, desc="loading val")


def batches(data, limit, batch_size, cache_dir, val=None):
    """(number of batches, iterator of (float originals (N, 3, H, W), labels or None)): Tiny
    ImageNet val in batches (all 64×64; `val` if already loaded), other folders one image at a
    time (their sizes differ)."""
    if is_tiny_imagenet(data):
        images, labels = val if val is not None else load_val(data, limit, cache_dir)
        starts = range(0, len(images), batch_size)
        return len(starts), ((images[i:i + batch_size].float().div(255), labels[i:i + batch_size]) for i in starts)
    folder = subset(ImageFolder(data), limit)
    return len(folder), ((even_crop(folder[i][0].float().div(255))[None], None) for i in range(len(folder)))


@torch.inference_mode()
def _correct(fidelity, images, labels) -> int:
    return (fidelity(images).argmax(1) == labels).sum().item()


def evaluate(methods: dict, data, limit=None, batch_size=100, cache_dir=None, val=None,
             degradation: str = "lesson", fidelity=None, device="cpu", bar=None):
    """{method name: summary dict} under one degradation. `methods` maps names to callables
    low-res input → output. With `fidelity` (the fidelity classifier) and labelled data, each summary
    also has `fidelity_top1` (its top-1 on that method's outputs) and `fidelity` (that over its top-1 on the
    originals, which is returned under the name "original")."""
    from tqdm.auto import tqdm

    meters = {name: QualityMeter() for name in methods}
    correct = dict.fromkeys(["original", *methods], 0)
    labelled = 0
    generator = torch.Generator().manual_seed(0)  # only `mix` draws: the same draw every time
    total, originals = batches(data, limit, batch_size, cache_dir, val)
    own_bar = bar is None  # the command line passes one bar for every degradation; it counts images
    if own_bar:
        originals = tqdm(originals, total=total, desc=f"evaluating {degradation}", unit="batch")
    for hr, labels in originals:
        hr, labels = hr.to(device), (labels.to(device) if labels is not None else None)
        low = low_res(hr, degradation, generator)
        scored = fidelity is not None and labels is not None
        if scored:
            correct["original"] += _correct(fidelity, hr, labels)
            labelled += len(labels)
        for name, method in methods.items():
            t0 = time.perf_counter()
            out = method(low)
            if out.is_cuda:
                torch.cuda.synchronize()  # time the work, not its launch
            meters[name].update(out, hr, time.perf_counter() - t0)
            if scored:
                correct[name] += _correct(fidelity, out.clamp(0, 1), labels)
        if not own_bar:
            bar.set_postfix_str(degradation)
            bar.update(len(hr))
    results = {name: m.summary() for name, m in meters.items()}
    if labelled:
        top1_original = correct["original"] / labelled
        results["original"] = {"images": labelled, "fidelity_top1": top1_original, "fidelity": 1.0}
        for name in methods:
            top1 = correct[name] / labelled
            results[name] |= {"fidelity_top1": top1,
                              "fidelity": top1 / top1_original if top1_original else float("nan")}
    return results


def model_method(restorer: Restorer):
    """Low-resolution batch → restored batch: one image through the restorer's windows (photos
    of any size), a batch of same-size small images (Tiny ImageNet) whole. (The restorer makes the
    nearest ×2 upscale our U-Nets take; a foreign model takes the low-resolution image itself.)"""
    def run(low):
        return restorer(low[0])[None] if len(low) == 1 else restorer.whole(low)

    return run


def format_table(results: dict, titles: dict | None = None) -> str:
    """A markdown table; rows named by `titles` (what people read) where given."""
    titles = titles or {}
    # Summaries kept before the rename (a submission's, in the vote store) name the top-1 "judge_top1".
    results = {n: ({"fidelity_top1": r["judge_top1"]} | r if "judge_top1" in r else r)
               for n, r in results.items()}
    fidelity = any("fidelity_top1" in r for r in results.values())
    grain = any("grid" in r for r in results.values())
    head = "| method | PSNR pooled (dB) | PSNR mean of images (dB) | SSIM | Y-PSNR (dB) | Y-SSIM | sharpness |"
    head += " grid | flat |" if grain else ""
    head += " fidelity top-1 | kept |" if fidelity else ""
    rows = [head + " ms / image |",
            "|---|---:|---:|---:|---:|---:|---:|" + ("---:|---:|" if grain else "") + ("---:|---:|" if fidelity else "")
            + "---:|"]
    for name, r in results.items():
        row = f"| {titles.get(name, name)} |"
        if "psnr_pooled" in r:
            luma = (f" {r['psnr_y']:.3f} | {r['ssim_y']:.4f} |" if "psnr_y" in r else " | |")
            row += f" {r['psnr_pooled']:.3f} | {r['psnr_mean']:.3f} | {r['ssim']:.4f} |{luma} {r['sharpness']:.3f} |"
            row += (f" {r['grid']:.2f} | {r['flat']:.2f} |" if "grid" in r else " | |") if grain else ""
        else:  # the originals: only the fidelity classifier's figures
            row += " | | | | | 1.000 |" + (" 1.00 | 1.00 |" if grain else "")
        if fidelity:
            row += f" {r['fidelity_top1']:.2%} | {r['fidelity']:.1%} |" if "fidelity_top1" in r else " | |"
        rows.append(row + (f" {r['ms_per_image']:.2f} |" if "ms_per_image" in r else " |"))
    return "\n".join(rows)


def shown_path(path) -> str:
    """A path as it should appear in a shared file: relative to the working directory when
    inside it, else from its last two parts (never this machine's absolute layout)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(Path(*path.parts[-2:]))


def run(args, settings: Settings, argv=None):
    """What `python -m restoration.inference.evaluate` does with its parsed arguments (see its --help):
    the tables printed, the record written to --json."""
    if args.old_judge is not None:
        print("--judge is now --fidelity-classifier; the old name still works for now", file=sys.stderr)
        args.fidelity_classifier = args.fidelity_classifier or args.old_judge
    torch.set_num_threads(args.threads)
    if not Path(args.data).is_dir():
        raise SystemExit(f"--data {args.data}: no such folder")
    try:
        degradations = [check_degradation(d.strip()) for d in args.degradation.split(",") if d.strip()]
    except ValueError as e:
        raise SystemExit(f"--degradation: {e}") from None
    folders, titles, classifier, fidelity = checkpoints(args, settings)
    device = torch.device(args.device)
    methods = {"nearest": upscale_nearest, "bicubic": upscale_bicubic}
    for name, folder in folders.items():
        restorer = Restorer.from_settings(load_checkpoint(folder).to(device), settings)
        if not is_tiny_imagenet(args.data):
            restorer.warm_up()  # photos go through the fixed windows: compile them once
        methods[name] = model_method(restorer)

    val = load_val(args.data, args.limit, args.cache_dir) if is_tiny_imagenet(args.data) else None
    n_images = len(val[0]) if val is not None else len(subset(ImageFolder(args.data), args.limit))
    print(f"evaluating {n_images} images × {len(degradations)} degradation(s) × {len(methods)} methods "
          f"({', '.join(titles.get(m, m) for m in methods)}) on {torch.get_num_threads()} CPU thread(s)"
          + ("" if args.limit else "; pass --limit N for a quicker look at a fixed random subset"), flush=True)
    from tqdm.auto import tqdm

    bar = tqdm(total=n_images * len(degradations), desc="evaluating", unit="img", dynamic_ncols=True)
    fidelity_model = load_checkpoint(fidelity).eval().to(device) if fidelity is not None and val is not None else None
    record = {"data": shown_path(args.data), "limit": args.limit,
              "command": "python -m restoration.inference.evaluate " + " ".join(argv if argv is not None else sys.argv[1:]),
              "threads": torch.get_num_threads(), "device": str(device), "titles": titles, "degradations": {}}
    for degradation in degradations:
        results = evaluate(methods, args.data, args.limit, args.batch_size, args.cache_dir, val, degradation,
                           fidelity_model, device, bar=bar)
        record["images"] = next(iter(results.values()))["images"]
        record["degradations"][degradation] = {"title": title(degradation), "results": results}
        bar.clear()
        print(table_heading(record["images"], record["data"], degradation, fidelity_model is not None))
        print(format_table(results, titles))
    bar.close()
    classifiers_on_originals(record, classifier, fidelity if fidelity_model is not None else None, val, device)
    if args.json:
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nwrote {args.json}")


def checkpoints(args, settings: Settings) -> tuple[dict[str, Path], dict[str, str], Path | None, Path | None]:
    """(name → restorer folder, name → title, the perceptual-loss classifier's folder, the fidelity
    classifier's): those --models names, else the catalogue's."""
    titles = {"nearest": "nearest", "bicubic": "bicubic", "original": "original (no degradation)"}
    classifier, fidelity = args.classifier, args.fidelity_classifier
    if args.models is None:
        catalog = read_catalog(settings.weights_dir)
        folders = {e.name: settings.weights_dir / e.folder for e in catalog if e.role == "restorer"}
        titles |= {e.name: e.title for e in catalog}
        if classifier is None:
            classifier = next((settings.weights_dir / e.folder for e in catalog if e.role == "classifier"), None)
        if fidelity is None:
            fidelity = next((settings.weights_dir / e.folder for e in catalog if e.role == "fidelity"), None)
    else:
        names = [Path(f).name for f in args.models]  # two runs may share a folder name: then their paths
        folders = {(Path(f).name if names.count(Path(f).name) == 1 else shown_path(f)): Path(f) for f in args.models}
        if (settings.weights_dir / "models.json").is_file():  # a shipped checkpoint still reads as its title
            shipped = {(settings.weights_dir / e.folder).resolve(): e.title for e in read_catalog(settings.weights_dir)}
            titles |= {name: shipped[f.resolve()] for name, f in folders.items() if f.resolve() in shipped}
    fidelity = None if str(fidelity).lower() == "none" else fidelity
    return folders, titles, classifier, fidelity


def table_heading(n: int, data: str, degradation: str, with_fidelity: bool) -> str:
    """What one degradation's table shows, above it."""
    return (f"\n×2 super-resolution on {n} images of {data}, low-resolution images made by "
            f"{title(degradation)} (`{degradation}`); whole images, RGB in [0, 1]; Y- = BT.601 luma, 2-pixel border "
            f"shaved (the literature's protocol); sharpness = gradient energy "
            f"relative to the original; grid, flat = checker and Laplacian energy in the original's flattest "
            f"30 % relative to the original's there (grain; median over images)"
            + ("; fidelity top-1 = the fidelity classifier's accuracy on each output, "
               "kept = that over its accuracy on the originals" if with_fidelity else "")
            + f"; {torch.get_num_threads()} CPU threads\n")


def classifiers_on_originals(record: dict, classifier, fidelity, val, device):
    """Add to `record`, and print, the perceptual-loss classifier's top-1 on the val originals (the
    same images as the restorers) and the fidelity classifier's (from the tables' originals row)."""
    if classifier is not None and val is not None:
        scores = {"checkpoint": shown_path(classifier), "images": len(val[0]),
                  **top1_accuracy(load_checkpoint(classifier).to(device), *val, device=device)}
        record["classifier"] = scores
        print(f"\nclassifier {scores['checkpoint']}: top-1 accuracy {scores['val_accuracy']:.2%} on {scores['images']} val images")
    if fidelity is not None:
        first = next(iter(record["degradations"].values()))["results"]["original"]
        record["fidelity_classifier"] = {"checkpoint": shown_path(fidelity), "images": first["images"],
                                         "top1_original": first["fidelity_top1"]}
        print(f"fidelity classifier {record['fidelity_classifier']['checkpoint']}: top-1 accuracy "
              f"{first['fidelity_top1']:.2%} on the originals")
