"""The scene images, scenes (every contender on one degraded image), and the pool of
scenes rendered ahead in a background thread."""

import dataclasses
import io
import os
import sys
import random
import threading
import time

import numpy as np
import pytest
from PIL import Image

from restoration.degrade import STANDARD, low_res, upscale_bicubic
from restoration.images import to_float, to_pil, to_tensor, to_uint8
from restoration.judging import ANCHOR, BattleRenderer, RecentImages, Scene, ScenePool, scene_images, lower_priority
from tests.app_support import CountingModel


def test_scene_images_are_the_examples_and_a_val_sample(settings, tiny_imagenet):
    assert set(scene_images(settings)) == {f"examples/{p.name}" for p in settings.examples_dir.iterdir()}
    with_val = dataclasses.replace(settings, val_dir=tiny_imagenet, scene_val_images=5)
    pool = scene_images(with_val)
    val = [k for k in pool if k.startswith("tiny-imagenet/")]
    assert len(val) == 5 and scene_images(with_val) == pool and all(pool[k].is_file() for k in pool)


def test_a_scene_has_every_contender_on_one_degraded_input(settings, tiny_models):
    renderer = BattleRenderer(tiny_models, scene_images(settings), settings)
    image_id = "examples/noise.png"
    scenes = {d: renderer.render(image_id, d) for d in STANDARD}
    for d, scene in scenes.items():
        assert (scene.image_id, scene.degradation) == (image_id, d)
        assert scene.low.size == (48, 40) and scene.original.size == (96, 80)
        assert set(scene.outputs) == {ANCHOR, *(m.entry.name for m in tiny_models)}
        assert all(im.size == (96, 80) for im in scene.outputs.values())
        low = low_res(to_tensor(scene.original), d)
        assert np.array_equal(np.asarray(scene.low), np.asarray(to_pil(low)))  # the degradation asked for
        # the models and the anchor see the 8-bit low-resolution image, as shown
        low8 = to_float(to_uint8(scene.low))
        assert np.array_equal(np.asarray(scene.outputs[ANCHOR]), np.asarray(to_pil(upscale_bicubic(low8))))
    assert np.asarray(scenes["lesson"].low).tolist() != np.asarray(scenes["jpeg75"].low).tolist()
    out = scenes["lesson"].outputs
    assert np.asarray(out["unet-mse"]).tolist() != np.asarray(out["unet-crossconv"]).tolist()
    cropped = BattleRenderer(tiny_models, scene_images(settings), settings, max_side=64).render(image_id)
    assert cropped.original.size == (64, 64) and cropped.low.size == (32, 32)


def test_the_pool_renders_ahead_and_replaces_used_scenes(settings, tiny_models):
    counting = {m.entry.name: CountingModel(m.model) for m in tiny_models}
    models = [dataclasses.replace(m, model=counting[m.entry.name]) for m in tiny_models]
    pool = ScenePool(BattleRenderer(models, scene_images(settings), settings), size=2, uses=3,
                     rng=random.Random(0)).start()
    try:
        scenes = [pool.take(timeout=30) for _ in range(12)]
        assert all(s.outputs for s in scenes)
        deadline = time.monotonic() + 30
        while pool.ready() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.ready() == 2  # refilled with fresh scenes in the background
        rendered = len(counting["unet-mse"].calls)
        assert 3 <= rendered <= 12 // 3 + 2  # replacements for the used-up scenes, not a render per take
    finally:
        pool.stop()


def test_a_failing_image_is_left_out_and_the_pool_goes_on(settings, tiny_models, tmp_path):
    (tmp_path / "bad.png").write_text("not an image")
    images = scene_images(settings) | {"examples/bad.png": tmp_path / "bad.png"}
    renderer = BattleRenderer(tiny_models, images, settings)
    pool = ScenePool(renderer, size=4, uses=1, rng=random.Random(1)).start()
    try:
        for _ in range(20):
            assert pool.take(timeout=30).image_id != "examples/bad.png"
    finally:
        pool.stop()


def test_take_waits_for_the_first_scene_then_times_out_cleanly(settings, tiny_models):
    gate = threading.Event()

    class Slow(BattleRenderer):
        def render(self, *args, **kwargs):
            gate.wait(10)
            return super().render(*args, **kwargs)

    pool = ScenePool(Slow(tiny_models, scene_images(settings), settings), size=1).start()
    try:
        with pytest.raises(TimeoutError):
            pool.take(timeout=0.2)
        gate.set()
        assert pool.take(timeout=30).outputs
    finally:
        pool.stop()


def test_the_pool_does_not_render_while_the_cores_are_busy(settings, tiny_models):
    counting = {m.entry.name: CountingModel(m.model) for m in tiny_models}
    models = [dataclasses.replace(m, model=counting[m.entry.name]) for m in tiny_models]
    busy = threading.Event()
    pool = ScenePool(BattleRenderer(models, scene_images(settings), settings), size=2, uses=1,
                     rng=random.Random(0), busy=busy.is_set).start()
    try:
        first = pool.take(timeout=30)
        busy.set()  # a Compare starts
        time.sleep(1.0)
        rendered = len(counting["unet-mse"].calls)
        assert [pool.take(timeout=5) for _ in range(10)]  # used-up scenes serve on, at once
        time.sleep(1.5)
        assert len(counting["unet-mse"].calls) == rendered  # nothing rendered meanwhile
        busy.clear()
        deadline = time.monotonic() + 30
        while pool.ready() < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pool.ready() == 2 and first.outputs
    finally:
        pool.stop()


def test_scene_images_add_the_val_photos(settings, tmp_path):
    photos = tmp_path / "photos-val"
    for sub in ("kodak", "mcmaster"):
        (photos / sub).mkdir(parents=True)
        Image.new("RGB", (40, 30), "gray").save(photos / sub / f"{sub}-1.png")
    pool = scene_images(dataclasses.replace(settings, photo_val_dir=photos))
    assert {"photos/kodak/kodak-1.png", "photos/mcmaster/mcmaster-1.png"} <= set(pool)
    assert all(pool[k].is_file() for k in pool)


def test_scenes_take_the_families_in_turn_each_with_bicubic(settings, tiny_models):
    families = {"photo": ["unet-mse"], "lesson": ["unet-perceptual", "unet-crossconv"]}
    pool = ScenePool(BattleRenderer(tiny_models, scene_images(settings), settings), size=4, uses=100,
                     rng=random.Random(0), families=families).start()
    try:
        deadline = time.monotonic() + 60
        while pool.ready() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        scenes = list(pool._ready)
    finally:
        pool.stop()
    assert {s.family for s in scenes} == {"photo", "lesson"}
    for s in scenes:
        assert set(s.outputs) == {ANCHOR, *families[s.family]}


class NamedScenes:
    """A renderer that only names its scenes (what `take(avoid=...)` decides on), counting renders."""

    def __init__(self, images):
        self.pool, self.rendered = {i: None for i in images}, []

    def render(self, image_id, degradation="lesson", names=None, family=None):
        self.rendered.append(image_id)
        return Scene(image_id, degradation, None, None, {"x": None}, family=family)


class TimedScenes(NamedScenes):
    """NamedScenes whose every render takes `seconds`, noting when each started and ended."""

    def __init__(self, images, seconds):
        super().__init__(images)
        self.seconds, self.times = seconds, []

    def render(self, *args, **kwargs):
        started = time.monotonic()
        time.sleep(self.seconds)
        scene = super().render(*args, **kwargs)
        self.times.append((started, time.monotonic()))
        return scene


def test_a_full_pool_renders_replacements_at_most_its_share_of_the_time():
    renderer = TimedScenes([f"i{k}" for k in range(10)], seconds=0.2)
    pool = ScenePool(renderer, size=2, uses=1, rng=random.Random(0), share=0.25).start()
    try:
        deadline = time.monotonic() + 20
        while len(renderer.times) < 5 and time.monotonic() < deadline:
            pool.take(timeout=10)  # every pair uses a scene up (uses=1): the pool always wants a new one
            time.sleep(0.01)
    finally:
        pool.stop()
    times = renderer.times
    assert len(times) >= 5
    (_, first_end), (second_start, _) = times[:2]
    assert second_start - first_end < 3 * 0.2  # filling the pool: no pause (judges wait for the first pairs)
    for (start, end), (next_start, _) in zip(times[1:], times[2:]):  # full from the second on
        assert next_start - end >= 0.95 * 3 * (end - start)  # rendering 1/4 of the time at most


def test_a_new_scene_replaces_one_used_up_scene_and_the_pool_keeps_its_size():
    """Not every used-up scene at once: the pool would shrink to the one new scene, shown to every
    judge again and again until the next render."""
    pool = ScenePool(NamedScenes(["a", "b", "c", "d"]), size=3, uses=2)
    a, b, c = (Scene(i, "lesson", None, None, {"x": None}) for i in "abc")
    a.uses, b.uses = 5, 2  # both used up, a the more
    pool._ready = [a, b, c]
    pool._add(Scene("d", "lesson", None, None, {"x": None}))
    assert [s.image_id for s in pool._ready] == ["b", "c", "d"]
    pool._add(Scene("e", "lesson", None, None, {"x": None}))
    assert [s.image_id for s in pool._ready] == ["c", "d", "e"]
    pool._add(Scene("f", "lesson", None, None, {"x": None}))  # none used up: it grows past its size
    assert [s.image_id for s in pool._ready] == ["c", "d", "e", "f"]


def test_take_avoids_a_judges_recent_images_while_the_pool_has_others():
    renderer = NamedScenes([f"i{k}" for k in range(10)])
    busy = threading.Event()
    pool = ScenePool(renderer, size=2, uses=6, rng=random.Random(0), busy=busy.is_set).start()
    try:
        recent = RecentImages(keep=3)
        repeats = 0
        for _ in range(20):
            while pool.ready() < 2:  # the judge looks at the pair while the pool refills
                time.sleep(0.01)
            with pool._cond:  # the thread cannot change the ready scenes while we look and take
                ready = {s.image_id for s in pool._ready}
                scene = pool.take(timeout=10, avoid=recent.of("j"))
            if ready - set(recent.of("j")):  # a ready scene the judge has not seen lately: that one
                assert scene.image_id not in recent.of("j")
            else:  # every ready scene seen lately: the one seen longest ago, nothing rendered first
                assert scene.image_id == next(i for i in recent.of("j") if i in ready)
                repeats += 1
            recent.add("j", scene.image_id)
        assert repeats < 20
        assert recent.of("j") == recent.of("j")[-3:] and recent.of("other") == []
        # Avoiding the whole pool lets the oldest go: i0 is the image seen longest ago.
        with pool._cond:
            ready = sorted({s.image_id for s in pool._ready})
        everything = [i for i in renderer.pool if i not in ready] + ready
        assert pool.take(timeout=10, avoid=everything).image_id == ready[0]
        # While a Compare has the cores nothing is rendered: the scene seen longest ago serves.
        busy.set()
        time.sleep(0.3)  # a render under way when the Compare started ends first
        with pool._cond:
            ready = sorted({s.image_id for s in pool._ready})
        unseen = next(i for i in renderer.pool if i not in ready)  # not ready: it would need a render
        avoid = [i for i in renderer.pool if i != unseen and i not in ready] + ready  # ready[0]: oldest of those
        rendered = len(renderer.rendered)
        assert pool.take(timeout=10, avoid=avoid).image_id == ready[0] and len(renderer.rendered) == rendered
        busy.clear()  # a vote is never answered after a render: still the scene seen longest ago
        assert pool.take(timeout=10, avoid=avoid).image_id == ready[0] and len(renderer.rendered) == rendered
    finally:
        pool.stop()


def test_recent_images_keep_the_last_pairs_of_a_bounded_number_of_judges():
    recent = RecentImages(keep=2, max_judges=2)
    for judge, image in [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("c", "x")]:
        recent.add(judge, image)
    assert recent.of("a") == [] and recent.of("b") == ["x"] and recent.of("c") == ["x"]  # a: least recent
    recent.add("b", "y")
    recent.add("b", "z")
    assert recent.of("b") == ["y", "z"]


def test_a_judge_who_has_seen_every_ready_scene_gets_one_at_once_and_fresh_ones_rendered_behind():
    renderer = NamedScenes([f"i{k}" for k in range(10)])
    pool = ScenePool(renderer, size=2, uses=6, rng=random.Random(0)).start()
    try:
        deadline = time.monotonic() + 10
        while pool.ready() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pool._cond:
            scenes = list(pool._ready)
        seen = [s.image_id for s in scenes]
        rendered = len(renderer.rendered)
        with pool._cond:  # holding the lock, the thread cannot render: `take` must not either
            assert pool.take(timeout=10, avoid=seen).image_id == seen[0]  # the one seen longest ago
            assert len(renderer.rendered) == rendered
        assert all(s.uses >= pool.uses for s in scenes)  # the scenes the judge had seen are retired
        deadline = time.monotonic() + 10
        while len(renderer.rendered) < rendered + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(renderer.rendered) >= rendered + 2  # fresh ones rendered behind, without a take
        assert pool.take(timeout=10, avoid=seen).image_id not in seen
    finally:
        pool.stop()


def test_a_scene_encodes_each_picture_once_and_serves_it_with_a_new_nonce_each_time():
    picture = Image.fromarray(np.arange(48 * 32 * 3, dtype=np.uint8).reshape(32, 48, 3))
    scene = Scene("i0", "lesson", picture, picture, {"x": picture})
    first, second = scene.png("x"), scene.png("x")
    assert first != second and len(first) == len(second)  # new bytes (a new URL) every time
    for png in (first, second):
        with Image.open(io.BytesIO(png)) as im:
            im.load()  # every chunk's CRC checked
            assert np.array_equal(np.asarray(im), np.asarray(picture)) and set(im.info) == {"nonce"}
    assert len(scene._png) == 1  # encoded once


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is a Linux feature")
def test_the_pool_renders_at_the_lowest_priority_and_the_caller_keeps_its_own():
    seen = {}

    def render():
        lower_priority()
        seen["pool"] = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    thread = threading.Thread(target=render)
    thread.start()
    thread.join()
    assert seen["pool"] == 19 and os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) != 19


class WindowedScenes(NamedScenes):
    """A renderer of three windows per scene that waits while `hold()` before each, as
    `BattleRenderer` does; the first window holds until the test lets it go."""

    def __init__(self, images):
        super().__init__(images)
        self.hold, self.windows = None, []
        self.in_first, self.go_on = threading.Event(), threading.Event()

    def render(self, image_id, degradation="lesson", names=None, family=None):
        for i in range(3):
            while self.hold():
                time.sleep(0.01)
            self.windows.append((image_id, i))
            if len(self.windows) == 1:
                self.in_first.set()
                self.go_on.wait(10)
        return super().render(image_id, degradation, names, family)


def test_a_render_under_way_stops_at_the_next_window_while_a_compare_runs_or_waits():
    """Deterministic (no timing): the pool's thread is seen waiting between windows, asking
    `busy()` again and again, with no window run after the one in progress when a Compare came."""
    renderer = WindowedScenes(["a", "b"])
    busy = threading.Event()
    asked_while_busy = threading.Semaphore(0)

    def busy_now():
        if busy.is_set():
            asked_while_busy.release()
            return True
        return False

    pool = ScenePool(renderer, size=2, uses=6, rng=random.Random(0), busy=busy_now)
    pool._ready.append(Scene("a", "lesson", None, None, {"x": None}))  # a scene to serve people meanwhile
    pool.start()
    try:
        assert renderer.in_first.wait(10)  # the render of the second scene is in its first window
        busy.set()  # a Compare arrives
        renderer.go_on.set()  # the window in progress ends
        for _ in range(3):  # the thread keeps asking: it waits before the second window
            assert asked_while_busy.acquire(timeout=10)
        assert len(renderer.windows) == 1 and pool.ready() == 1
        busy.clear()  # the Compare is done: the render goes on
        deadline = time.monotonic() + 10
        while len(renderer.windows) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(renderer.windows) >= 3
    finally:
        busy.clear()
        pool.stop()


def test_the_first_scene_is_rendered_while_people_are_busy():
    """With no scene to serve, the pool does not yield: a judge waiting for the first pair counts
    as busy, and would otherwise wait for it forever."""
    renderer = WindowedScenes(["a", "b"])
    renderer.go_on.set()
    pool = ScenePool(renderer, size=1, uses=6, rng=random.Random(0), busy=lambda: True).start()
    try:
        assert pool.take(timeout=10).image_id in ("a", "b") and len(renderer.windows) >= 3
    finally:
        pool.stop()
