"""The pictures of blind battles, rendered ahead of the judges.

A *scene* is one of the scene images under one degradation (drawn from
`degrade.STANDARD`), restored by one family's U-Nets (weights.FAMILIES, drawn in turn) and the
bicubic anchor: pairs are drawn within a family, and bicubic, in every scene, links the families'
ratings on one scale. Any pair of
contenders on a ready scene is a battle that costs nothing more to show. `ScenePool` keeps a few
scenes ready, rendering replacements in a background thread as scenes are used up, so a judge's
vote is answered with the next pair at once instead of waiting for two model runs (or behind a
large Compare request).

Large images are judged on their central `max_side` square: a judge compares details, and
restoring whole photos for every scene would keep the pool from keeping up on a CPU.

The pool yields to people: its thread renders nothing while a Compare is running or waiting
(`busy()`), and a render already under way stops between windows when one arrives (the renderer
asks `hold()` before every window `inference.Restorer` runs), so a Compare waits at most for the
window in progress, not for the scene's whole render. In the app the renders run in a child
process of their own (`render_process.RenderProcess`), so that they never hold the interpreter
that answers people. Once full, the pool renders replacements at most `share` of the time
(`RESTORATION_SCENE_SHARE`): renders slow replies down even at the lowest priority.

A judge is not shown the same image again within their last `RECENT_PAIRS` pairs while a ready
scene shows another (`RecentImages`, `ScenePool.take(avoid=...)`): seeing one picture three times
in six votes reads as a bug, and teaches the judge that picture rather than the models. When every
ready scene is one they saw lately, the oldest serves and fresh scenes are rendered behind it.
"""

import dataclasses
import io
import logging
import os
import random
import secrets
import struct
import sys
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image

from restoration.degrade import STANDARD, prepare, upscale_bicubic
from restoration.images import to_float, to_pil, to_uint8
from restoration.inference import Restorer, release_memory, restorers_for
from restoration.ratings import ANCHOR
from restoration.settings import Settings
from restoration.uploads import list_images, open_upload

log = logging.getLogger(__name__)
RECENT_PAIRS = 10  # a judge's last pairs whose images are not shown to them again (while there are others)
YIELD_POLL = 0.02  # seconds between looks at `busy()` while a background render waits for a Compare


def scene_images(settings: Settings, seed: int = 0) -> dict[str, Path]:
    """image id → file: every example, every photo under `photo_val_dir` (its subfolders, e.g.
    kodak24/), plus `scene_val_images` Tiny ImageNet val images (a fixed random sample) when
    `val_dir` exists (neither data folder does on a Space)."""
    pool = {f"examples/{p.name}": p for p in list_images(settings.examples_dir)}
    photos = Path(settings.photo_val_dir)
    for folder in [photos, *sorted(d for d in photos.iterdir() if d.is_dir())] if photos.is_dir() else []:
        pool |= {f"photos/{p.relative_to(photos)}": p for p in list_images(folder)}
    val = list_images(Path(settings.val_dir) / "val" / "images")
    if val and settings.scene_val_images > 0:
        chosen = random.Random(seed).sample(val, min(settings.scene_val_images, len(val)))
        pool |= {f"tiny-imagenet/val/{p.name}": p for p in sorted(chosen)}
    return pool


def lower_priority(nice: int = 19, thread_id: int | None = None):
    """Run the calling thread (or the thread `thread_id`), and the threads the models start from it
    (their OpenMP team is the thread's own, and inherits its priority), at the lowest CPU priority,
    on Linux: the scene pool renders with the cores that judges' requests and Compare leave idle,
    so a vote's reply does not queue behind a render. Elsewhere a no-op (there the setting would
    name a process, not a thread)."""
    if sys.platform == "linux":
        try:
            os.setpriority(os.PRIO_PROCESS, thread_id or threading.get_native_id(), nice)
        except OSError as e:  # a container may forbid it, or the thread has just ended: left as it is
            log.info("scene pool: priority unchanged (%s)", e)


def center_crop(image: Image.Image, max_side: int) -> Image.Image:
    """The central max_side × max_side (at most) part of an image."""
    w, h = image.size
    cw, ch = min(w, max_side), min(h, max_side)
    left, top = (w - cw) // 2, (h - ch) // 2
    return image if (cw, ch) == (w, h) else image.crop((left, top, left + cw, top + ch))


@dataclasses.dataclass
class Scene:
    image_id: str
    degradation: str
    low: Image.Image  # the low-resolution input (half size)
    original: Image.Image
    outputs: dict[str, Image.Image]  # contender name → its restoration
    uses: int = 0
    family: str | None = None  # whose U-Nets were rendered (None: every model's)
    _png: dict = dataclasses.field(default_factory=dict, repr=False)

    def png(self, which: str) -> bytes:
        """A picture of the scene ("low", "original" or a contender's name) as PNG bytes with a
        fresh random nonce in them (`with_nonce`). Each picture is encoded once per scene, not once
        per pair: encoding was most of the CPU a vote cost."""
        if which not in self._png:  # two judges may both encode it first: the same bytes, no harm
            image = self.low if which == "low" else self.original if which == "original" else self.outputs[which]
            buffer = io.BytesIO()
            image.save(buffer, format="PNG", compress_level=1)
            self._png[which] = buffer.getvalue()
        return with_nonce(self._png[which])


def with_nonce(png: bytes) -> bytes:
    """`png` with a random tEXt chunk after its header: the same picture in new bytes, so the URL
    Gradio serves it under (a hash of the bytes) is new every time and cannot name the model."""
    data = b"nonce\0" + secrets.token_hex(16).encode()
    chunk = struct.pack(">I", len(data)) + b"tEXt" + data + struct.pack(">I", zlib.crc32(b"tEXt" + data))
    header_end = 8 + 25  # the signature, then IHDR (length, type, 13 bytes, CRC)
    return png[:header_end] + chunk + png[header_end:]


class BattleRenderer:
    """Renders scenes: degrade an image of the pool, then restore it with every contender."""

    def __init__(self, models: Sequence, pool: dict[str, Path], settings: Settings, max_side: int = 512,
                 restorers: Mapping[str, Restorer] | None = None):
        self.models = {m.entry.name: m for m in models}
        self.pool, self.settings, self.max_side = pool, settings, max_side
        # The app passes its own (the fast path, shared with Compare); otherwise eager ones.
        self.restorers = restorers if restorers is not None else restorers_for(models, settings, fast=False)
        self.hold: Callable[[], bool] = lambda: False  # ScenePool sets it: whether people need the cores now

    def render(self, image_id: str, degradation: str = "lesson", names: Sequence[str] | None = None,
               family: str | None = None) -> Scene:
        s = self.settings
        original = center_crop(open_upload(self.pool[image_id], "degrade", s), self.max_side)
        low, _, reference = prepare(to_uint8(original), "degrade", degradation)  # 8-bit, as in Compare
        outputs = {}
        for name in names or [ANCHOR, *self.models]:
            if name == ANCHOR:
                out = upscale_bicubic(to_float(low))
            else:
                out = self.restorers[name](low, before_window=self._wait_while_held)
            outputs[name] = to_pil(out)
        scene = Scene(image_id, degradation, to_pil(low), to_pil(reference), outputs, family=family)
        for which in ["low", "original", *outputs]:
            scene.png(which)  # encoded here, in the background, rather than in a judge's request
        return scene

    def _wait_while_held(self):
        while self.hold():
            time.sleep(YIELD_POLL)


class RecentImages:
    """The images of each judge's last `keep` pairs, oldest first; at most `max_judges` judges are
    remembered (the least recently seen are forgotten first)."""

    def __init__(self, keep: int = RECENT_PAIRS, max_judges: int = 100_000):
        self.keep, self.max_judges = keep, max_judges
        self._seen: OrderedDict[str, deque] = OrderedDict()
        self._lock = threading.Lock()

    def of(self, judge: str) -> list[str]:
        with self._lock:
            return list(self._seen.get(judge, ()))

    def add(self, judge: str, image_id: str):
        with self._lock:
            seen = self._seen.pop(judge, None) or deque(maxlen=self.keep)
            seen.append(image_id)
            self._seen[judge] = seen
            while len(self._seen) > self.max_judges:
                self._seen.popitem(last=False)


class ScenePool:
    """`size` ready scenes, refilled by one background thread. `take` picks a ready scene at
    random; after `uses` pairs a scene is used up, which wakes the thread to render a new one
    (used-up scenes serve on until it is ready, so `take` waits only just after start). While
    `busy()` says the models' cores are taken, it waits instead of rendering. It renders images
    that no ready scene shows, so the ready scenes are of different images. With `families`
    (family → its model names), each scene renders one family and bicubic, the families in turn."""

    def __init__(self, renderer: BattleRenderer, size: int = 4, uses: int = 6,
                 degradations: Sequence[str] = STANDARD, rng: random.Random | None = None,
                 busy: Callable[[], bool] = lambda: False, families: Mapping[str, Sequence[str]] | None = None,
                 nice: bool = True, share: float = 1.0):
        self.renderer, self.size, self.uses, self.busy = renderer, size, uses, busy
        self.share = share  # of the time, at most, spent rendering replacements (the pool full)
        self.nice = nice  # render at the lowest priority (False: the renderer is another process, niced itself)
        # (family, the contenders its scenes render): bicubic and the family's models; one entry
        # (None, None: every model) without families.
        self.families = [(f, [ANCHOR, *names]) for f, names in families.items()] if families else [(None, None)]
        self._turn = 0
        self.degradations = list(degradations)
        self.images = list(renderer.pool)
        self.rng = rng or random.SystemRandom()
        self._ready: list[Scene] = []
        self._cond = threading.Condition()
        self._stop = False
        self._thread: threading.Thread | None = None
        renderer.hold = self._holding

    def start(self):
        if self._thread is None:
            self._thread = threading.Thread(target=self._fill, name="scene-pool", daemon=True)
            self._thread.start()
        return self

    def stop(self):
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        close = getattr(self.renderer, "close", None)
        if close:  # a renderer in a process of its own (render_process.py): a render under way ends now
            close()
        if self._thread is not None:
            self._thread.join(timeout=30)

    def _holding(self) -> bool:
        """Asked before every window a render runs: whether to wait, because people are being
        answered (`busy()`: a Compare, or a judge's request) and there is a scene to serve them.
        The first scene is rendered whatever else runs, or a judge would wait for it forever."""
        return not self._stop and bool(self._ready) and self.busy()

    def _fill(self):
        if self.nice:
            lower_priority()
        while True:
            with self._cond:
                # While `busy()` (a Compare request has the cores) the pool renders nothing as long
                # as it has a scene to serve, used up or not: judges see a repeat image sooner, and
                # the Compare is not slowed down.
                while not self._stop and (self._fresh() >= self.size or (self._ready and self.busy())):
                    self._cond.wait(0.5)
                if self._stop or not self.images:
                    return
                shown = {s.image_id for s in self._ready}
                image_id = self.rng.choice([i for i in self.images if i not in shown] or self.images)
                degradation = self.rng.choice(self.degradations)
                family, names = self._next_family()
            started = time.monotonic()
            try:
                scene = self.renderer.render(image_id, degradation, names, family)
                release_memory()  # the models' activations, kept by malloc otherwise (inference.py)
            except Exception as e:  # noqa: BLE001 (a bad image in the pool must not stop judging)
                if self._stop:
                    return
                log.warning("scene images: %s (%s) left out: %s: %s", image_id, degradation, type(e).__name__,
                            str(e).splitlines()[0][:200] if str(e) else "")
                with self._cond:
                    if image_id in self.images and len(self.images) > 1:
                        self.images.remove(image_id)
                    self._cond.wait(1.0)  # not a busy loop if every image fails
                continue
            with self._cond:
                self._add(scene)
                self._cond.notify_all()
                if len(self._ready) >= self.size and self.share < 1:
                    # A replacement: wait so that rendering takes at most `share` of the time. Renders
                    # slow down the replies to votes even at the lowest priority (likely through the
                    # shared caches and memory bandwidth), and a full pool serves on meanwhile.
                    took = time.monotonic() - started
                    self._cond.wait_for(lambda: self._stop, timeout=took * (1 / self.share - 1))

    def _add(self, scene: Scene):
        """A new scene into the pool; past `size`, the most used of the used-up scenes leaves. One
        at a time: a pool that dropped every used-up scene at once could shrink to one scene,
        which every judge would then see again and again."""
        self._ready.append(scene)
        used_up = [s for s in self._ready if s.uses >= self.uses]
        if len(self._ready) > self.size and used_up:
            self._ready.remove(max(used_up, key=lambda s: s.uses))

    def _next_family(self):
        """(family, the contenders to render) of the next scene, the families in turn (call holding
        the lock)."""
        family = self.families[self._turn % len(self.families)]
        self._turn += 1
        return family

    def _fresh(self) -> int:
        return sum(s.uses < self.uses for s in self._ready)

    def take(self, timeout: float = 120.0, avoid: Sequence[str] = ()) -> Scene:
        """A ready scene (counting one use), preferably not of an image in `avoid` (a judge's recent
        images, oldest first). When every ready scene shows one of them, the one the judge saw
        longest ago serves. Once the judge has seen every ready scene, they are counted used up so
        that the background thread renders fresh ones behind: a vote is never answered after a
        render, which would keep
        every judge behind it waiting on the cores (the vote-reply p95 of `bench.replicas`). When
        `avoid` covers the whole pool, its oldest entries are let go. Raises TimeoutError if no
        scene is ready in `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready or self._stop, timeout=timeout) or not self._ready:
                raise TimeoutError("no judge pair is ready yet")
            avoid = self._avoidable(avoid)
            scene = self._pick(avoid) or self._least_recent(avoid)
            if {s.image_id for s in self._ready} <= {*avoid, scene.image_id}:
                # This judge has now seen every ready scene: count them used up, so that fresh ones
                # are rendered while they look at this pair (they still serve others until replaced).
                for ready in self._ready:
                    ready.uses = max(ready.uses, self.uses)
                self._cond.notify_all()
            return self._use(scene)

    def _avoidable(self, avoid: Sequence[str]) -> list[str]:
        """The newest entries of `avoid` that still leave an image of the pool out of it."""
        avoid = list(avoid)
        while avoid and set(self.images) <= set(avoid):
            avoid.pop(0)
        return avoid

    def _pick(self, avoid: Sequence[str]) -> Scene | None:
        """A random ready scene not of an image in `avoid`: a fresh one if there is one."""
        allowed = [s for s in self._ready if s.image_id not in set(avoid)]
        fresh = [s for s in allowed if s.uses < self.uses]
        return self.rng.choice(fresh or allowed) if allowed else None  # used-up scenes serve on until replaced

    def _least_recent(self, avoid: Sequence[str]) -> Scene:
        """The ready scene whose image the judge saw longest ago (every one is in `avoid`)."""
        age = {image_id: i for i, image_id in enumerate(avoid)}  # 0: seen longest ago
        return min(self._ready, key=lambda s: (age.get(s.image_id, -1), s.uses >= self.uses))

    def _use(self, scene: Scene) -> Scene:
        scene.uses += 1
        if scene.uses == self.uses:
            self._cond.notify_all()
        return scene

    def ready(self) -> int:
        """Scenes ready and not used up."""
        with self._cond:
            return self._fresh()
