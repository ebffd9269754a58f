"""Draw the README's comparison grid from the shipped weights.

    python -m docs.make_figure                       # → docs/comparison.png
    python -m docs.make_figure --images 3 17 42 --zoom 4
    python -m docs.make_figure --degradation jpeg75 --out docs/comparison-jpeg75.png

Columns: the low-resolution input (as the U-Nets see it: nearest ×2), bicubic, each restorer in
weights/models.json, and the original. Rows: Tiny ImageNet val images, whole (64×64), made low
resolution by --degradation (restoration/degrade.py).
"""

from pathlib import Path

import torch
from PIL import Image, ImageDraw

from restoration.cli import parser
from restoration.data import TinyImageNet
from restoration.degrade import upscale_bicubic
from restoration.images import to_pil
from restoration.inference import Restorer, prepare
from restoration.settings import Settings
from restoration.weights import load_available_restorers


def grid(rows, titles, zoom, pad=4, header=18):
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
    p.add_argument("--data", default=str(settings.val_dir), help="the Tiny ImageNet folder")
    p.add_argument("--images", type=int, nargs="*", default=[11, 27, 29, 5, 8, 9], help="val image indices")
    p.add_argument("--zoom", type=int, default=3, help="pixels per image pixel (nearest-neighbour)")
    p.add_argument("--out", default="docs/comparison.png", help="the PNG to write")
    p.add_argument("--degradation", default="lesson", help="how the low-resolution input is made (default: lesson)")
    args = p.parse_args(argv)
    val = TinyImageNet(args.data, "val")
    models, problems = load_available_restorers(settings.weights_dir)
    if problems:
        raise SystemExit("\n".join(problems))
    restorers = [Restorer.from_settings(m.model, settings) for m in models]
    rows = []
    for i in args.images:
        image = val[i][0].float() / 255
        low, model_input, original = prepare(image, "degrade", args.degradation)
        rows.append([model_input, upscale_bicubic(low)] + [r(model_input) for r in restorers] + [original])
    titles = [f"input (32px, {args.degradation})", "bicubic"] + [m.entry.title for m in models] + ["original"]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid(rows, titles, args.zoom).save(args.out)
    print(f"wrote {args.out}: val images {args.images}, degradation {args.degradation}")


if __name__ == "__main__":
    with torch.inference_mode():
        main()
