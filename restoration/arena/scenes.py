"""The pictures of blind battles, rendered ahead of the judges.

A *scene* is one cut of a scene image (a crop of a photo, or a whole thumbnail) under one
degradation (drawn from `degrade.STANDARD`), restored by one family's U-Nets (catalogue.FAMILIES) and
the bicubic anchor: pairs are drawn within a family, and bicubic, in every scene, links the
families' ratings on one scale. Each family is judged on the pictures it was made for
(`scene_families`): the photo family on crops of photos (`scene_crops.py`: where a photo has both
detail and smooth areas, several per photo), the lesson family on Tiny ImageNet-sized thumbnails.
Which family a judge's next pair is of follows the families' shares (`family_shares`, the setting
`RESTORATION_JUDGE_PHOTO_SHARE`), in turn per judge (`JudgeHistory`, judge_history.py). Any pair
of contenders on a ready scene is a battle that costs nothing more to show (a scene and its
rendering: scene_renderer.py). `ScenePool` keeps a few scenes ready (of each family in proportion
to its share), rendering replacements in a background thread as scenes are used up, so a judge's vote is answered with the next pair at once instead of waiting for two
model runs (or behind a large Compare request).

The pool yields to people: its thread renders nothing while a Compare is running or waiting
(`busy()`), and a render already under way stops between windows when one arrives (the renderer
asks `hold()` before every window `runner.Restorer` runs), so a Compare waits at most for the
window in progress, not for the scene's whole render. In the app the renders run in a child
process of their own (`render_process.RenderProcess`), so that they never hold the interpreter
that answers people. Once full, the pool renders replacements at most `share` of the time
(`RESTORATION_SCENE_SHARE`): renders slow replies down even at the lowest priority.

A judge is not shown the same crop again within their last `RECENT_PAIRS` pairs while a ready
scene shows another, nor, where the pool allows, the same image (`JudgeHistory`,
`ScenePool.take(avoid=...)`): seeing one picture three times in six votes reads as a bug, and
teaches the judge that picture rather than the models. When every ready scene is one they saw
lately, the oldest serves and fresh scenes are rendered behind it.
"""

import dataclasses
import logging
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from PIL import Image

from restoration.arena.judge_history import RECENT_PAIRS as RECENT_PAIRS  # the benchmarks import it from here
from restoration.arena.ratings import ANCHOR
from restoration.arena.scene_crops import is_photo
from restoration.arena.scene_renderer import Scene, SceneRenderer
from restoration.arena.scene_renderer import center_crop as center_crop  # the benchmarks import it from here
from restoration.data.degrade import STANDARD
from restoration.data.uploads import list_images
from restoration.inference.runner import release_memory
from restoration.settings import Settings

log = logging.getLogger(__name__)


def scene_images(settings: Settings, seed: int = 0) -> dict[str, Path]:
    """image id → file: every example, every photo under `photo_val_dir` (its subfolders, e.g.
    kodak24/), plus `scene_val_images` Tiny ImageNet val images (a fixed random sample) when
    `val_dir` exists (neither data folder does on a Space)."""
    image_files = {f"examples/{p.name}": p for p in list_images(settings.examples_dir)}
    photos = Path(settings.photo_val_dir)
    for folder in [photos, *sorted(d for d in photos.iterdir() if d.is_dir())] if photos.is_dir() else []:
        image_files |= {f"photos/{p.relative_to(photos)}": p for p in list_images(folder)}
    val = list_images(Path(settings.val_dir) / "val" / "images")
    if val and settings.scene_val_images > 0:
        chosen = random.Random(seed).sample(val, min(settings.scene_val_images, len(val)))
        image_files |= {f"tiny-imagenet/val/{p.name}": p for p in sorted(chosen)}
    return image_files


def scene_families(image_files: Mapping[str, Path]) -> dict[str, list[str]]:
    """family → the ids of the scene images its scenes are cut from: "photo" the photos (at least
    `scene_crops.PHOTO_MIN_SIDE` pixels on the long side, wherever they lie: examples or val
    photos), "lesson" the smaller ones, thumbnails like Tiny ImageNet's. Reads each header only; a
    file that cannot be read is left out (one log line)."""
    kinds = {"photo": [], "lesson": []}
    for image_id, path in image_files.items():
        try:
            with Image.open(path) as im:
                size = im.size
        except Exception as e:  # noqa: BLE001 (Pillow raises many kinds for a bad file; the pool goes on)
            log.warning("scene images: %s left out: %s", image_id, type(e).__name__)
            continue
        kinds["photo" if is_photo(size) else "lesson"].append(image_id)
    return kinds


def family_shares(photo_share: float, families: Sequence[str]) -> dict[str, float]:
    """Each family's share of the Judge's pairs: the photo family `photo_share`
    (RESTORATION_JUDGE_PHOTO_SHARE), the others the rest, split evenly; a family alone has every
    pair. Families whose share is 0 are left out."""
    others = [f for f in families if f != "photo"]
    if "photo" not in families or not others:
        return {f: 1.0 / len(families) for f in families}
    shares = {"photo": photo_share} | {f: (1 - photo_share) / len(others) for f in others}
    return {f: share for f, share in shares.items() if share > 0}


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


@dataclasses.dataclass(frozen=True)
class SceneFamily:
    """The scenes of one model family: its models (each scene renders them and bicubic; None: every
    model), the scene images they are cut from, how many crops of each (1: the image whole, or its
    centre), and the family's share of the pairs (of the ready scenes too)."""
    names: tuple[str, ...] | None
    images: tuple[str, ...]
    crops: int = 1
    share: float = 1.0


class ScenePool:
    """`size` ready scenes, refilled by one background thread. `take` picks a ready scene; after
    `uses` pairs a scene is used up, which wakes the thread to render a new one (used-up scenes
    serve on until it is ready, so `take` waits only just after start). While `busy()` says the
    models' cores are taken, it waits instead of rendering. It renders images that no ready scene
    shows, so the ready scenes are of different images. With `families` (family → `SceneFamily`),
    each scene renders one family and bicubic, and the ready scenes are of each family in
    proportion to its share: the family furthest below its share of `size` is rendered next."""

    def __init__(self, renderer: SceneRenderer, size: int = 4, uses: int = 6,
                 degradations: Sequence[str] = STANDARD, rng: random.Random | None = None,
                 busy: Callable[[], bool] = lambda: False, families: Mapping[str, SceneFamily] | None = None,
                 nice: bool = True, share: float = 1.0):
        self.renderer, self.size, self.uses, self.busy = renderer, size, uses, busy
        self.share = share  # of the time, at most, spent rendering replacements (the pool full)
        self.nice = nice  # render at the lowest priority (False: the renderer is another process, niced itself)
        families = families or {None: SceneFamily(None, tuple(renderer.image_files))}
        # Each family's images (a list: an image that fails to render leaves it); families without any are left out.
        self.families = {f: family for f, family in families.items() if family.images}
        self.images = {f: list(family.images) for f, family in self.families.items()}
        self.degradations = list(degradations)
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
        began, said_full = time.monotonic(), False
        while True:
            with self._cond:
                # While `busy()` (a Compare request has the cores) the pool renders nothing as long
                # as it has a scene to serve, used up or not: judges see a repeat image sooner, and
                # the Compare is not slowed down.
                while not self._stop and (self._fresh() >= self.size or (self._ready and self.busy())):
                    self._cond.wait(0.5)
                if self._stop or not self.families:
                    return
                family = self._due()
                images = self.images[family]
                shown = {s.image_id for s in self._ready}
                image_id = self.rng.choice([i for i in images if i not in shown] or images)
                names, crops = self.families[family].names, self.families[family].crops
                names = None if names is None else [ANCHOR, *names]
                crop = self.rng.randrange(crops) if crops > 1 else None
                degradation = self.rng.choice(self.degradations)
            started = time.monotonic()
            try:
                scene = self.renderer.render(image_id, degradation, names, family, crop)
                release_memory()  # the models' activations, kept by malloc otherwise (runner.py)
            except Exception as e:  # noqa: BLE001 (a bad scene image must not stop judging)
                if self._stop:
                    return
                log.warning("scene images: %s (%s) left out: %s: %s", image_id, degradation, type(e).__name__,
                            str(e).splitlines()[0][:200] if str(e) else "")
                with self._cond:
                    if image_id in images and len(images) > 1:
                        images.remove(image_id)
                    self._cond.wait(1.0)  # not a busy loop if every image fails
                continue
            with self._cond:
                self._add(scene)
                self._cond.notify_all()
                if not said_full and len(self._ready) >= self.size:  # said once (bench.judge_pairs waits for it)
                    said_full = True
                    families = Counter(s.family for s in self._ready)
                    print(f"scene pool: {len(self._ready)} scenes ready ("
                          + ", ".join(f"{f or 'every model'}: {n}" for f, n in families.items())
                          + f") in {time.monotonic() - began:.0f} s", flush=True)
                if len(self._ready) >= self.size and self.share < 1:
                    # A replacement: wait so that rendering takes at most `share` of the time. Renders
                    # slow down the replies to votes even at the lowest priority (likely through the
                    # shared caches and memory bandwidth), and a full pool serves on meanwhile.
                    took = time.monotonic() - started
                    self._cond.wait_for(lambda: self._stop, timeout=took * (1 / self.share - 1))

    def _due(self):
        """The family to render next: one without a fresh scene first (so that, filling up, the pool
        soon serves every family), then the one furthest below its share of the pool's fresh
        scenes (call holding the lock)."""
        fresh = Counter(s.family for s in self._ready if s.uses < self.uses)
        return max(self.families, key=lambda f: (fresh[f] == 0, self.families[f].share * self.size - fresh[f]))

    def _add(self, scene: Scene):
        """A new scene into the pool; past `size`, the most used of the used-up scenes leaves (of
        the new scene's family if it has one, so the families keep their shares). One at a time: a
        pool that dropped every used-up scene at once could shrink to one scene, which every judge
        would then see again and again."""
        self._ready.append(scene)
        used_up = [s for s in self._ready if s.uses >= self.uses]
        if len(self._ready) > self.size and used_up:
            same = [s for s in used_up if s.family == scene.family] or used_up
            self._ready.remove(max(same, key=lambda s: s.uses))

    def _fresh(self) -> int:
        return sum(s.uses < self.uses for s in self._ready)

    def take(self, timeout: float = 120.0, avoid: Sequence[tuple] = (), prefer: Sequence[str] = ()) -> Scene:
        """A ready scene (counting one use), of the first family in `prefer` that has one the judge
        has not seen lately: `avoid` are the keys (`Scene.key`: image and crop) of their last pairs,
        oldest first, and a scene of an image among them is taken only when no other is ready.
        When every ready scene is among them, the one the judge saw longest ago serves. Once the
        judge has seen every ready scene (or every one of the family due for them), they are
        counted used up so that the background thread renders fresh ones behind: a vote is never
        answered after a render, which would keep every judge behind it waiting on the cores (the
        vote-reply p95 of `bench.replicas`). When `avoid` covers every scene image, its
        oldest entries are let go. Raises TimeoutError if no scene is ready in `timeout`."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._ready or self._stop, timeout=timeout) or not self._ready:
                raise TimeoutError("no judge pair is ready yet")
            avoid = self._avoidable(avoid)
            scene = self._pick(avoid, prefer) or self._least_recent(avoid)
            seen = {*avoid, scene.key}
            if {s.key for s in self._ready} <= seen:
                # This judge has now seen every ready scene: count them used up, so that fresh ones
                # are rendered while they look at this pair (they still serve others until replaced).
                self._used_up(self._ready)
            elif prefer and scene.family != prefer[0]:
                # They have seen every ready scene of the family due for them: the same for its scenes.
                self._used_up([s for s in self._ready if s.family == prefer[0]])
            return self._use(scene)

    def _used_up(self, scenes: Sequence[Scene]):
        """Count `scenes` used up (call holding the lock): fresh ones are rendered to replace them."""
        for scene in scenes:
            scene.uses = max(scene.uses, self.uses)
        self._cond.notify_all()

    def _avoidable(self, avoid: Sequence[tuple]) -> list[tuple]:
        """The newest entries of `avoid` that still leave one of the scene images out of it."""
        avoid = list(avoid)
        everything = {i for images in self.images.values() for i in images}
        while avoid and everything <= {image_id for image_id, _ in avoid}:
            avoid.pop(0)
        return avoid

    def _pick(self, avoid: Sequence[tuple], prefer: Sequence[str]) -> Scene | None:
        """A random ready scene whose key is not in `avoid`: of the family first in `prefer`, then
        of an image not in `avoid`, then a fresh one, each as far as there is one."""
        keys, images = set(avoid), {image_id for image_id, _ in avoid}
        allowed = [s for s in self._ready if s.key not in keys]
        if not allowed:
            return None
        order = {f: i for i, f in enumerate(prefer)}
        rank = lambda s: (order.get(s.family, len(order)), s.image_id in images, s.uses >= self.uses)  # noqa: E731
        best = min(map(rank, allowed))
        return self.rng.choice([s for s in allowed if rank(s) == best])  # used-up scenes serve on until replaced

    def _least_recent(self, avoid: Sequence[tuple]) -> Scene:
        """The ready scene the judge saw longest ago (every one is in `avoid`)."""
        age = {key: i for i, key in enumerate(avoid)}  # 0: seen longest ago
        return min(self._ready, key=lambda s: (age.get(s.key, -1), s.uses >= self.uses))

    def _use(self, scene: Scene) -> Scene:
        scene.uses += 1
        if scene.uses == self.uses:
            self._cond.notify_all()
        return scene

    def ready(self, family: str | None = None) -> int:
        """Scenes ready and not used up (of one family, or of every one)."""
        with self._cond:
            return sum(s.uses < self.uses for s in self._ready if family is None or s.family == family)
