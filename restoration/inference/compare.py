"""What the app's Compare tab computes, without any UI: panels of one image restored by every
model, scored against the original. (The Judge tab's pictures are in scenes.py.)

Uploads are opened with `images.open_image`, which refuses an image from its header when the
output would exceed `Settings.max_pixels` (a decompression bomb is never decoded). Models run
through `runner.Restorer` (fixed windows, the fast path), so memory depends on the window size,
not on the image. `compare_stream` yields the panels as each is ready, for a page that fills in,
and a `Stopwatch` given to it keeps where the time went (the app logs it; bench.speed prints it).

Files (docs/speed.md has the figures behind these choices):
- each panel is written once, as lossless WebP (`save_panels`): the exact 8-bit pixels that were
  scored, since the panels are what people compare and a lossy codec's artefacts would mix with
  the models'; WebP's fastest lossless setting encoded a 1024² photo-like panel in a quarter of the
  CPU time of PNG at zlib level 1, in a file of about the same size (smaller on a real photo);
- the zoom shows those same files (the half-size input enlarged once, `slider_files`);
- the PNG downloads are written only when asked for, once, from the panels' files (`png_downloads`).
"""

import dataclasses
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from PIL import Image

from restoration.data.degrade import prepare, upscale_bicubic
from restoration.data.images import ImageError, image_size, quantize, to_float, to_pil, to_uint8
from restoration.data.metrics import SsimTarget, psnr, ssim
from restoration.inference.runner import Restorer, release_memory, restorers_for, timed
from restoration.models.classifier import top_class
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
    its probability (restoration/models/classifier.py `top_class`), with a note when that is low: its
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


class Stopwatch:
    """Milliseconds per named step of one Compare, in the order first taken ("degrade", a model's
    title, "scores: <title>", "encode: <key>", ...): where a request's time goes. `line` joins them
    with "; " (titles hold " · "), and `parse` reads a line back."""

    def __init__(self):
        self.ms: dict[str, float] = {}

    @contextmanager
    def __call__(self, step: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.ms[step] = self.ms.get(step, 0.0) + (time.perf_counter() - t0) * 1000

    def line(self) -> str:
        """'degrade 41; bicubic 12; MSE U-Net · photos 812; … (ms)'."""
        return "; ".join(f"{step} {ms:.0f}" for step, ms in self.ms.items()) + " (ms)"

    @staticmethod
    def parse(line: str) -> dict[str, float]:
        """step → ms from a `line` (the app's log)."""
        steps = line.strip().removesuffix("(ms)").strip().split("; ")
        return {step: float(ms) for step, ms in (s.rsplit(" ", 1) for s in steps if s)}


def _score(panel: Panel, target: SsimTarget | None, image: torch.Tensor | None = None,
           clock: Stopwatch | None = None) -> Panel:
    """The panel with its scores against the original (`target.image`; a new Panel: steps already
    yielded keep what they showed)."""
    if target is None:
        return panel
    scored = panel.image if image is None else image
    with (clock or Stopwatch())(f"scores: {panel.title}"):
        return dataclasses.replace(panel, psnr=float(psnr(scored, target.image)[0]), ssim=float(ssim(scored, target)[0]))


@dataclasses.dataclass
class Step:
    """One moment of a comparison: the panels so far (in page order), how far along, and what next."""
    panels: list[Panel]
    fraction: float
    text: str
    done: bool = False


def compare_stream(image: Image.Image, mode: str, models: Sequence, settings: Settings,
                   restorers: Mapping[str, Restorer] | None = None, degradation: str = "lesson",
                   clock: Stopwatch | None = None) -> Iterator[Step]:
    """Every panel for one image, yielded as it is ready: first the low-resolution input, bicubic
    (and in "degrade" mode the original), then each model's output, then its scores. `models` are
    `catalogue.LoadedModel`s; `restorers` (name → Restorer) run them, eager ones if not given.
    `degradation` names how "degrade" mode makes the low-resolution image (see degrade.py);
    `clock` keeps the time of each step."""
    clock = clock or Stopwatch()
    # Every full-size image here is 8-bit (12 MB at 4 megapixels, not 48): the panels are what the
    # files hold, and only the model's windows and the metrics' bands are ever float.
    with clock("degrade"):
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
    with clock("bicubic"):
        bicubic, ms = timed(lambda: quantize(upscale_bicubic(to_float(low))))
    panels["bicubic"] = Panel("bicubic", "Bicubic", bicubic, ms=ms)
    if reference is not None:
        panels["original"] = Panel("original", "Original", reference, note="the reference")
    order = ["input", "bicubic", *[m.entry.name for m in models], "original"]
    ordered = lambda: [panels[k] for k in order if k in panels]
    first = models[0].entry.title if models else "scores"
    yield Step(ordered(), 1 / steps, f"Scoring; next: {first}" if reference is not None else f"Next: {first}")
    target = None  # the original, with its half of every panel's SSIM computed once
    if reference is not None:
        with clock("scores: the original"):
            target = SsimTarget(reference)
    panels["input"] = _score(panels["input"], target, model_input, clock)
    panels["bicubic"] = _score(panels["bicubic"], target, clock=clock)
    release_memory()
    for i, m in enumerate(models):
        yield Step(ordered(), (2 * i + 2) / steps, f"{m.entry.title} ({i + 1} of {len(models)})")
        with clock(m.entry.title):
            out, ms = timed(restorers[m.entry.name], low)  # the runner cuts its windows on the low-resolution image
            release_memory()  # the model's activations: a 4-megapixel compare stays well under 1.5 GB
        panels[m.entry.name] = Panel(m.entry.name, m.entry.title, out, ms=ms)
        if reference is not None:
            yield Step(ordered(), (2 * i + 3) / steps, f"Scoring {m.entry.title}")
            panels[m.entry.name] = _score(panels[m.entry.name], target, clock=clock)
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
# WebP's lossless mode at its least effort (method 0): a 1024² panel in a quarter of PNG level 1's
# CPU time, a file of about the same size (bench.delivery, docs/speed.md). Every browser the page
# supports shows WebP.
PANEL_SUFFIX = ".webp"
PANEL_OPTIONS = {"format": "WEBP", "lossless": True, "quality": 0, "method": 0}


def save_image(image: Image.Image, path: Path):
    """Write `image` losslessly in the format its suffix names (.webp: the panels' fast setting;
    .png: zlib level 1), under a temporary name first, so that a concurrent reader never sees half a file."""
    partial = path.with_name(f"{path.stem}-{os.getpid()}-{threading.get_ident()}.part")
    options = PANEL_OPTIONS if path.suffix == PANEL_SUFFIX else {"format": "PNG", "compress_level": PNG_COMPRESS_LEVEL}
    image.save(partial, **options)
    os.replace(partial, path)


def save_panels(panels: Sequence[Panel], folder, stem: str, clock: Stopwatch | None = None) -> dict[str, Path]:
    """Write each panel as a lossless WebP `<stem>-<key>.webp`; returns key → file."""
    clock = clock or Stopwatch()
    files = {}
    for p in panels:
        with clock(f"encode: {p.key}"):
            files[p.key] = Path(folder) / f"{stem}-{p.key}{PANEL_SUFFIX}"
            save_image(to_pil(p.image), files[p.key])
    return files


def png_downloads(files: Sequence) -> list[Path]:
    """A lossless PNG beside each panel's file (`<name>.png`), written the first time it is asked
    for and then kept: the downloads cost nothing until someone wants them. Decoded from the
    lossless panel files, so they hold the very pixels that were scored."""
    out = []
    for f in map(Path, files):
        png = f.with_suffix(".png")
        if not png.exists():
            with Image.open(f) as im:
                save_image(im.convert("RGB"), png)
        out.append(png)
    return out


def slider_files(left, right) -> tuple[Path, Path]:
    """Two files of one size for a before/after slider, from two panels' files: the panels
    themselves when their sizes agree (nothing is decoded), else the smaller one (the half-size
    low-resolution input) enlarged with nearest neighbour, so its pixels show as they are, and
    saved once beside it as `<name>-enlarged` (the same format)."""
    files = [Path(left), Path(right)]
    sizes = []
    for f in files:
        with Image.open(f) as im:  # reads the header only
            sizes.append(im.size)
    size = max(sizes, key=lambda s: s[0] * s[1])
    for i, (f, s) in enumerate(zip(files, sizes)):
        if s != size:
            enlarged = f.with_name(f"{f.stem}-enlarged{f.suffix}")
            if not enlarged.exists():
                with Image.open(f) as im:
                    save_image(im.convert("RGB").resize(size, Image.Resampling.NEAREST), enlarged)
            files[i] = enlarged
    return files[0], files[1]


# Images no larger than this on their longer side are thumbnails, like Tiny ImageNet's 64×64 ones.
THUMBNAIL_SIDE = 128


def family_for_image(path, families: Sequence[str]) -> str:
    """The model family (catalogue.FAMILIES) suited to an image, among `families`: the lesson's
    (trained on 64×64 thumbnails) for a thumbnail, photos otherwise. Reads the header only (an
    ImageError for a file that is no image)."""
    thumbnail = max(image_size(path)) <= THUMBNAIL_SIDE
    wanted = "lesson" if thumbnail else "photo"
    return wanted if wanted in families else families[0]


