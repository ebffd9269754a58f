"""Draw the comparison grids of the README and docs/results.md from the shipped weights.

    python -m docs.make_figure                       # → docs/comparison.png
    python -m docs.make_figure --images 3 17 42 --zoom 4
    python -m docs.make_figure --degradation jpeg75 --out docs/comparison-jpeg75.png
    python -m docs.make_figure --family photo --data ../shared/data/photos/val --degradation bicubic \
        --images 2 9 14 30 --out docs/comparison-photos.png

Columns: the low-resolution input (as the U-Nets see it: nearest ×2), bicubic, each restorer of
--family in weights/models.json, and the original. Rows: Tiny ImageNet val images, whole (64×64),
or, for a folder of photos, a --crop square from the middle of each whole restored photo; made low
resolution by --degradation (restoration/data/degrade.py).
"""

from pathlib import Path

from PIL import Image, ImageDraw

from restoration.cli import parser
from restoration.settings import Settings


def grid(rows, titles, zoom, pad=4, header=18):
    from restoration.data.images import to_pil

    w = h = rows[0][0].shape[-1] * zoom
    canvas = Image.new("RGB", (len(titles) * (w + pad) + pad, header + len(rows) * (h + pad) + pad), "white")
    draw = ImageDraw.Draw(canvas)
    for j, title in enumerate(titles):
        draw.text((pad + j * (w + pad), 3), title, fill="black")
    for i, row in enumerate(rows):
        for j, img in enumerate(row):
            canvas.paste(to_pil(img).resize((w, h), Image.NEAREST), (pad + j * (w + pad), header + pad + i * (h + pad)))
    return canvas


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m docs.make_figure", __doc__)
    p.add_argument("--data", default=str(settings.val_dir), help="the Tiny ImageNet folder, or a folder of photos")
    p.add_argument("--family", default="lesson", help="which models: lesson or photo (weights/models.json)")
    p.add_argument("--crop", type=int, default=96, help="photos: the side of the square shown from each")
    p.add_argument("--images", type=int, nargs="*", default=[11, 27, 29, 5, 8, 9], help="val image indices")
    p.add_argument("--zoom", type=int, default=3, help="pixels per image pixel (nearest-neighbour)")
    p.add_argument("--out", default="docs/comparison.png", help="the PNG to write")
    p.add_argument("--degradation", default="lesson", help="how the low-resolution input is made (default: lesson)")
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    import torch

    with torch.inference_mode():
        draw(args, settings)


def draw(args, settings: Settings):
    """Restore the chosen images with each restorer of the family, and save the grid."""
    from restoration.data.datasets import ImageFolder, TinyImageNet
    from restoration.data.degrade import even_crop, prepare, upscale_bicubic
    from restoration.hub.catalogue import load_available_restorers
    from restoration.inference.runner import Restorer

    photos = not (Path(args.data) / "wnids.txt").is_file()
    val = ImageFolder(args.data) if photos else TinyImageNet(args.data, "val")
    models, problems = load_available_restorers(settings.weights_dir)
    if problems:
        raise SystemExit("\n".join(problems))
    models = [m for m in models if m.entry.family == args.family]
    if not models:
        raise SystemExit(f"no restorer of family {args.family!r} in {settings.weights_dir}/models.json")
    restorers = [Restorer.from_settings(m.model, settings) for m in models]
    rows = []
    for i in args.images:
        image = even_crop(val[i][0].float() / 255)
        low, model_input, original = prepare(image, "degrade", args.degradation)
        # A Restorer takes the low-resolution image (it cuts its windows there).
        row = [model_input, upscale_bicubic(low)] + [r(low) for r in restorers] + [original]
        if photos:  # the middle of the whole restored photo: the windows play no part in what is shown
            h, w = original.shape[-2:]
            top, left = (h - args.crop) // 2 // 2 * 2, (w - args.crop) // 2 // 2 * 2
            row = [x[..., top:top + args.crop, left:left + args.crop] for x in row]
        rows.append(row)
    size = "½ size" if photos else "32px"
    titles = [f"input ({size}, {args.degradation})", "bicubic"] + [m.entry.title for m in models] + ["original"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid(rows, titles, args.zoom).save(args.out)
    print(f"wrote {args.out}: val images {args.images}, degradation {args.degradation}")


if __name__ == "__main__":
    main()
