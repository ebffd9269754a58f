"""What the app's Compare tab computes, without any UI: panels of one image restored by every
model, scored against the original. (The Judge tab's pictures are in judging.py.)

Uploads are opened with `images.open_image`, which refuses an image from its header when the
output would exceed `Settings.max_pixels` (a decompression bomb is never decoded). Models run
through `inference.Restorer` (fixed windows, the fast path), so memory depends on the window size,
not on the image. `compare_stream` yields the panels as each is ready, for a page that fills in.
"""

import dataclasses
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import torch
from PIL import Image

from restoration.classifier import top_class
from restoration.degrade import prepare, upscale_bicubic
from restoration.images import ImageError, quantize, to_float, to_pil, to_uint8
from restoration.inference import Restorer, release_memory, restorers_for, timed
from restoration.metrics import psnr, ssim
from restoration.settings import Settings

Progress = Callable[[float, str], None]


@dataclasses.dataclass
class Panel:
    key: str  # "input", "bicubic", a model's catalogue name, or "original"
    title: str
    image: torch.Tensor  # (3, H, W) uint8: what the page shows and the PNG holds, and what is scored
    psnr: float | None = None  # dB against the original (degrade mode only)
    ssim: float | None = None
    ms: float | None = None  # time the method took
    note: str = ""

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return self.image.shape[-1], self.image.shape[-2]

    def caption(self) -> str:
        """"MSE U-Net · 27.41 dB": the panel's title and one figure, short enough for one line over
        a small panel (PSNR when scored, else the time it took); the rest is in `score_table`."""
        if self.psnr is not None:
            return f"{self.title} · {self.psnr:.2f} dB"
        if self.ms is not None:
            return f"{self.title} · {self.ms:.0f} ms"
        return self.title


# Under this top-class probability the fidelity classifier is said to be unsure: Tiny ImageNet has 200
# classes of small centred objects, and a picture of none of them still gets a top class.
UNSURE_BELOW = 0.5
CLASS_COLUMN = "Tiny ImageNet class (fidelity classifier)"


def what_the_classifier_sees(fidelity, panel: Panel) -> str:
    """'“school bus” 71%': the fidelity classifier's top class of Tiny ImageNet's 200 for a panel and
    its probability (restoration/classifier.py `top_class`), with a note when that is low: its
    answer means something only for pictures like Tiny ImageNet's, one object filling the frame."""
    name, probability = top_class(fidelity, panel.image)
    note = " (unsure: maybe none of its 200 classes)" if probability < UNSURE_BELOW else ""
    return f"“{name}” {probability:.0%}{note}"


def score_table(panels: Sequence[Panel], mode: str, seen: Mapping[str, str] | None = None) -> str:
    """The Markdown table of every panel's figures (PSNR, SSIM, time, size; in "upscale" mode size
    and time), and with `seen` (panel key → `what_the_classifier_sees`) a column of the fidelity
    classifier's answers."""
    seen = seen or {}
    extra = lambda p: f" {seen.get(p.key, '')} |" if seen else ""
    extra_head = (f" {CLASS_COLUMN} |", "---|") if seen else ("", "")
    if mode == "upscale":
        head = f"| Panel | Size | Time (ms) |{extra_head[0]}\n|---|---|---:|{extra_head[1]}\n"
        return head + "\n".join(f"| {p.title} | {p.size[0]}×{p.size[1]} | "
                                 f"{'' if p.ms is None else f'{p.ms:.0f}'} |{extra(p)}" for p in panels)
    fmt = lambda v, spec: "—" if v is None else format(v, spec)
    head = f"| Panel | PSNR (dB) | SSIM | Time (ms) | Size |{extra_head[0]}\n|---|---:|---:|---:|---|{extra_head[1]}\n"
    return head + "\n".join(f"| {p.title} | {fmt(p.psnr, '.2f')} | {fmt(p.ssim, '.4f')} | {fmt(p.ms, '.0f')} | "
                             f"{p.size[0]}×{p.size[1]} {p.note} |{extra(p)}" for p in panels)


def _score(panel: Panel, reference: torch.Tensor | None, image: torch.Tensor | None = None) -> Panel:
    """The panel with its scores (a new Panel: steps already yielded keep what they showed)."""
    if reference is None:
        return panel
    scored = panel.image if image is None else image
    return dataclasses.replace(panel, psnr=float(psnr(scored, reference)[0]), ssim=float(ssim(scored, reference)[0]))


@dataclasses.dataclass
class Step:
    """One moment of a comparison: the panels so far (in page order), how far along, and what next."""
    panels: list[Panel]
    fraction: float
    text: str
    done: bool = False


def compare_stream(image: Image.Image, mode: str, models: Sequence, settings: Settings,
                   restorers: Mapping[str, Restorer] | None = None, degradation: str = "lesson") -> Iterator[Step]:
    """Every panel for one image, yielded as it is ready: first the low-resolution input, bicubic
    (and in "degrade" mode the original), then each model's output, then its scores. `models` are
    `weights.LoadedModel`s; `restorers` (name → Restorer) run them, eager ones if not given.
    `degradation` names how "degrade" mode makes the low-resolution image (see degrade.py)."""
    # Every full-size image here is 8-bit (12 MB at 4 megapixels, not 48): the panels are what the
    # PNGs hold, and only the model's windows and the metrics' bands are ever float.
    low, model_input, reference = prepare(to_uint8(image), mode, degradation)
    del image  # the decoded upload, freed here when the caller keeps no reference to it (the app doesn't)
    h, w = model_input.shape[-2:]
    if h * w > settings.max_pixels:
        raise ImageError(f"the output would be {w}×{h} = {w * h / 1e6:.1f} megapixels; the limit is "
                         f"{settings.max_pixels / 1e6:.1f} megapixels. Please use a smaller image.")
    restorers = restorers if restorers is not None else restorers_for(models, settings, fast=False)
    steps = 2 * len(models) + 2
    low_title = "Low-resolution input" if mode == "degrade" else "Input"
    panels = {"input": Panel("input", low_title, low, note="(half size; scored as its nearest-neighbour ×2)")}
    bicubic, ms = timed(lambda: quantize(upscale_bicubic(to_float(low))))
    panels["bicubic"] = Panel("bicubic", "Bicubic", bicubic, ms=ms)
    if reference is not None:
        panels["original"] = Panel("original", "Original", reference, note="the reference")
    order = ["input", "bicubic", *[m.entry.name for m in models], "original"]
    ordered = lambda: [panels[k] for k in order if k in panels]
    first = models[0].entry.title if models else "scores"
    yield Step(ordered(), 1 / steps, f"Scoring; next: {first}" if reference is not None else f"Next: {first}")
    panels["input"] = _score(panels["input"], reference, model_input)
    panels["bicubic"] = _score(panels["bicubic"], reference)
    release_memory()
    for i, m in enumerate(models):
        yield Step(ordered(), (2 * i + 2) / steps, f"{m.entry.title} ({i + 1} of {len(models)})")
        out, ms = timed(restorers[m.entry.name], low)  # the runner cuts its windows on the low-resolution image
        release_memory()  # the model's activations: a 4-megapixel compare stays well under 1.5 GB
        panels[m.entry.name] = Panel(m.entry.name, m.entry.title, out, ms=ms)
        if reference is not None:
            yield Step(ordered(), (2 * i + 3) / steps, f"Scoring {m.entry.title}")
            panels[m.entry.name] = _score(panels[m.entry.name], reference)
    release_memory()  # the last scores' temporaries
    yield Step(ordered(), 1.0, "Done", done=True)


def compare(image: Image.Image, mode: str, models: Sequence, settings: Settings,
            progress: Progress | None = None, restorers: Mapping[str, Restorer] | None = None,
            degradation: str = "lesson") -> list[Panel]:
    """Every panel for one image: the low-resolution input, bicubic, each model, and (in
    "degrade" mode) the original; `compare_stream` run to its end. `progress(fraction, text)` is
    called at each step."""
    for step in compare_stream(image, mode, models, settings, restorers, degradation):
        if progress:
            progress(step.fraction, step.text)
    return step.panels


# zlib level 1: still lossless, a fraction of the default level's time, files somewhat larger.
PNG_COMPRESS_LEVEL = 1


def save_panels(panels: Sequence[Panel], folder, stem: str) -> dict[str, Path]:
    """Write each panel as a lossless PNG `<stem>-<key>.png`; returns key → file."""
    files = {}
    for p in panels:
        files[p.key] = Path(folder) / f"{stem}-{p.key}.png"
        to_pil(p.image).save(files[p.key], compress_level=PNG_COMPRESS_LEVEL)
    return files


def slider_files(left, right) -> tuple[Path, Path]:
    """Two PNG files of one size for a before/after slider, from two panels' files: the panels
    themselves when their sizes agree (nothing is decoded), else the smaller one (the half-size
    low-resolution input) enlarged with nearest neighbour, so its pixels show as they are, and
    saved once beside it as `<name>-enlarged.png`."""
    files = [Path(left), Path(right)]
    sizes = []
    for f in files:
        with Image.open(f) as im:  # reads the header only
            sizes.append(im.size)
    size = max(sizes, key=lambda s: s[0] * s[1])
    for i, (f, s) in enumerate(zip(files, sizes)):
        if s != size:
            enlarged = f.with_name(f"{f.stem}-enlarged.png")
            if not enlarged.exists():
                partial = f.with_name(f"{f.stem}-enlarged-{os.getpid()}-{threading.get_ident()}.part")
                with Image.open(f) as im:
                    im.convert("RGB").resize(size, Image.Resampling.NEAREST).save(
                        partial, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
                os.replace(partial, enlarged)  # a concurrent zoom never sees half a file
            files[i] = enlarged
    return files[0], files[1]


# Images no larger than this on their longer side are thumbnails, like Tiny ImageNet's 64×64 ones.
THUMBNAIL_SIDE = 128


def family_for_image(path, families: Sequence[str]) -> str:
    """The model family (weights.FAMILIES) suited to an image, among `families`: the lesson's
    (trained on 64×64 thumbnails) for a thumbnail, photos otherwise. Reads the header only."""
    with Image.open(path) as im:
        thumbnail = max(im.size) <= THUMBNAIL_SIDE
    wanted = "lesson" if thumbnail else "photo"
    return wanted if wanted in families else families[0]


