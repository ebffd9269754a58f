"""What `python -m bench.delivery` measures and prints (its --help lists the parts): what a Compare
costs besides the models, and one window of a model in each precision."""

import io
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image

from bench.photos import test_image
from restoration.arena.scenes import center_crop
from restoration.data import metrics
from restoration.data.images import open_image
from restoration.hub.catalogue import load_available_restorers
from restoration.inference import engine
from restoration.inference.compare import PANEL_OPTIONS, PNG_COMPRESS_LEVEL
from restoration.inference.runner import Restorer, compiler_available
from restoration.settings import Settings


def cpu_ms(fn, repeats: int) -> float:
    """The least CPU time of `repeats` calls (after one untimed call), in milliseconds."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.process_time()
        fn()
        best = min(best, time.process_time() - t0)
    return best * 1000


def encoded(image: Image.Image, **options) -> int:
    buffer = io.BytesIO()
    image.save(buffer, **options)
    return buffer.tell()


def report_encoding(images: dict[str, Image.Image], repeats: int):
    print("\n| image | PNG level 1: ms · KB | WebP lossless, method 0: ms · KB | PNG level 6: ms · KB |")
    print("|---|---:|---:|---:|")
    formats = [{"format": "PNG", "compress_level": PNG_COMPRESS_LEVEL}, PANEL_OPTIONS,
               {"format": "PNG", "compress_level": 6}]
    for name, image in images.items():
        cells = [f"{cpu_ms(lambda o=o: encoded(image, **o), repeats):.0f} · {encoded(image, **o) / 1024:.0f}"
                 for o in formats]
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def report_blur(repeats: int):
    rows, maps, width, size = 64 + 10, 5 * 3, 1024, 11  # a band of 64 output rows of ssim()'s five maps
    taps = tuple(metrics._gaussian(size).tolist())
    z = torch.rand(rows, maps, width)
    kernel = torch.tensor(taps)
    kv, kh = kernel.view(1, 1, size, 1).repeat(maps, 1, 1, 1), kernel.view(1, 1, 1, size).repeat(maps, 1, 1, 1)
    nchw = z.permute(1, 0, 2)[None].contiguous()  # the depthwise convolution's layout

    def depthwise():
        return F.conv2d(F.conv2d(nchw, kv, groups=maps), kh, groups=maps)

    assert (depthwise()[0].permute(1, 0, 2) - metrics._blur(z, taps)).abs().max() < 1e-5  # the same blur
    bands = -(-(1024 - size + 1) // 64)
    banded, conv = cpu_ms(lambda: metrics._blur(z, taps), repeats), cpu_ms(depthwise, repeats)
    print(f"\nSSIM's blur, a 1024² image's five maps ({bands} bands of 64 rows): banded matrix products "
          f"{banded * bands:.0f} ms, depthwise convolution {conv * bands:.0f} ms (÷ {banded / conv:.2f})")
    a, b = torch.randint(0, 256, (2, 3, 1024, 1024), dtype=torch.uint8)
    print(f"one whole ssim() of two 1024² uint8 images: {cpu_ms(lambda: metrics.ssim(a, b), repeats):.0f} ms")


def report_window(settings: Settings, repeats: int, compile_too: bool):
    models, _ = load_available_restorers(settings.weights_dir)
    model = models[0]
    side = engine.SELF_CHECK_SIDE  # the start-up check's window
    x = engine.check_image(side // 2).contiguous(memory_format=torch.channels_last)  # the low-resolution window
    paths = {"fp32 eager": Restorer(model.model, window=side, overlap=0)}
    if compile_too and compiler_available():
        paths["fp32 compiled"] = Restorer(model.model, window=side, overlap=0)
        paths["fp32 compiled"].warm_up()
    if engine.bf16_supported():
        paths["bf16 autocast"] = Restorer(model.model, window=side, overlap=0, precision="bf16")
    with torch.inference_mode():
        ms = {name: cpu_ms(lambda r=r: r._run(x), repeats) for name, r in paths.items()}
    print(f"\nOne {side}² window of {model.entry.title} (output pixels; {side // 2}² in): "
          + "; ".join(f"{name} {t:.0f} ms ({ms['fp32 eager'] / t:.2f}× fp32 eager)" for name, t in ms.items())
          + f"; bf16 must clear {engine.GAIN_OVER_FP32_EAGER}× fp32 eager to ship")


def measure(args, settings):
    """The three parts of `python -m bench.delivery`, printed as they are measured."""
    torch.set_num_threads(1)
    print(f"bench.delivery: CPU {engine.cpu_summary()}; 1 torch thread; load average {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as tmp:
        images = {"bench.speed's test photo, 1024²": open_image(test_image(1024, Path(tmp))).convert("RGB")}
    photos = sorted(p for p in Path(settings.photo_val_dir).rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    if photos:
        crop = center_crop(open_image(photos[0]).convert("RGB"), 1024)
        images[f"photos/val {photos[0].name}, {crop.width}×{crop.height} centre"] = crop
    report_encoding(images, args.repeats)
    report_blur(args.repeats)
    report_window(settings, args.repeats, not args.skip_compile)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
