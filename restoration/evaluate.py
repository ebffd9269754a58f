"""Evaluate ×2 super-resolution on Tiny ImageNet val or any folder of images.

    python -m restoration.evaluate                                  # shipped models, Tiny ImageNet val
    python -m restoration.evaluate --data ~/photos --models weights/unet-mse runs/unet-mse
    python -m restoration.evaluate --limit 1000 --json results.json

On Tiny ImageNet it also reports the classifier's top-1 accuracy on the same val images.

Whole images are evaluated (a folder's photos at their own size, cropped to even sides), with
the nearest-neighbour and bicubic baselines. PSNR is given two ways: pooled (one MSE over every
pixel of the set) and the mean of per-image values; see restoration/metrics.py for SSIM and
sharpness.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import torch

from restoration.checkpoint import load_checkpoint
from restoration.classifier import top1_accuracy
from restoration.data import ImageFolder, TinyImageNet, load_cache, subset
from restoration.degrade import downscale, even_crop, upscale_bicubic, upscale_nearest
from restoration.inference import restore
from restoration.metrics import QualityMeter
from restoration.settings import Settings
from restoration.weights import read_catalog


def is_tiny_imagenet(data) -> bool:
    return (Path(data) / "wnids.txt").is_file()


def load_val(data, limit=None, cache_dir=None):
    """Tiny ImageNet val as uint8 arrays (images, labels), decoded once (kept in `cache_dir` if given)."""
    return load_cache(subset(TinyImageNet(data, "val"), limit), 64, cache_dir, desc="loading val")


def batches(data, limit, batch_size, cache_dir, val=None):
    """(number of batches, iterator of float batches (N, 3, H, W) of originals): Tiny ImageNet val
    in batches (all 64×64; `val` if already loaded), other folders one image at a time (their
    sizes differ)."""
    if is_tiny_imagenet(data):
        images, _ = val if val is not None else load_val(data, limit, cache_dir)
        starts = range(0, len(images), batch_size)
        return len(starts), (images[i:i + batch_size].float().div(255) for i in starts)
    folder = subset(ImageFolder(data), limit)
    return len(folder), (even_crop(folder[i][0].float().div(255))[None] for i in range(len(folder)))


def evaluate(methods: dict, data, limit=None, batch_size=100, cache_dir=None, val=None):
    """{method name: summary dict}. `methods` maps names to callables low-res input → output."""
    from tqdm.auto import tqdm

    meters = {name: QualityMeter() for name in methods}
    total, originals = batches(data, limit, batch_size, cache_dir, val)
    for hr in tqdm(originals, total=total, desc="evaluating", unit="batch"):
        low = downscale(hr)
        for name, method in methods.items():
            t0 = time.perf_counter()
            out = method(low)
            meters[name].update(out, hr, time.perf_counter() - t0)
    return {name: m.summary() for name, m in meters.items()}


def model_method(model, tile_pixels):
    def run(low):
        x = upscale_nearest(low)
        if len(x) == 1:
            return restore(model, x[0], tile_pixels)[None]
        with torch.inference_mode():
            return model.restore(x)

    return run


def format_table(results: dict) -> str:
    head = "| method | PSNR pooled (dB) | PSNR mean of images (dB) | SSIM | sharpness | ms / image |"
    rows = [head, "|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        rows.append(f"| {name} | {r['psnr_pooled']:.3f} | {r['psnr_mean']:.3f} | {r['ssim']:.4f} | "
                    f"{r['sharpness']:.3f} | {r['ms_per_image']:.2f} |")
    return "\n".join(rows)


def main(argv=None):
    settings = Settings.from_env()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(settings.val_dir), help="Tiny ImageNet folder (its val split) or a folder of images")
    p.add_argument("--models", nargs="*", default=None,
                   help="checkpoint folders (default: the restorers in weights/models.json)")
    p.add_argument("--classifier", default=None,
                   help="classifier checkpoint to score on Tiny ImageNet val (default: the one in weights/models.json, "
                        "unless --models is given)")
    p.add_argument("--limit", type=int, default=None, help="evaluate N images (a fixed random subset)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--cache-dir", default=None, help="keep the decoded val set here for next time")
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if not Path(args.data).is_dir():
        raise SystemExit(f"--data {args.data}: no such folder")

    methods = {"nearest": upscale_nearest, "bicubic": upscale_bicubic}
    classifier = args.classifier
    if args.models is None:
        catalog = read_catalog(settings.weights_dir)
        folders = {e.name: settings.weights_dir / e.folder for e in catalog if e.role == "restorer"}
        if classifier is None:
            classifier = next((settings.weights_dir / e.folder for e in catalog if e.role == "classifier"), None)
    else:
        folders = {Path(f).name: Path(f) for f in args.models}
    for name, folder in folders.items():
        methods[name] = model_method(load_checkpoint(folder), settings.tile_pixels)

    val = load_val(args.data, args.limit, args.cache_dir) if is_tiny_imagenet(args.data) else None
    results = evaluate(methods, args.data, args.limit, args.batch_size, args.cache_dir, val)
    n = next(iter(results.values()))["images"]
    print(f"\n×2 super-resolution on {n} images of {args.data} (whole images; RGB in [0, 1]; "
          f"sharpness = gradient energy relative to the original; {torch.get_num_threads()} CPU threads)\n")
    print(format_table(results))
    scores = None
    if classifier is not None and val is not None:  # the same val images as the restorers
        scores = {"checkpoint": str(classifier), "images": len(val[0]), **top1_accuracy(load_checkpoint(classifier), *val)}
        print(f"\nclassifier {classifier}: top-1 accuracy {scores['val_accuracy']:.2%} on {scores['images']} val images")
    if args.json:
        record = {"data": str(args.data), "images": n, "limit": args.limit, "command": "python -m restoration.evaluate "
                  + " ".join(argv if argv is not None else sys.argv[1:]), "results": results, "classifier": scores}
        Path(args.json).write_text(json.dumps(record, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
