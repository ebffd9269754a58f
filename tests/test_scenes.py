"""The scene images (photos and thumbnails, each family's own), scenes (every contender on one
degraded crop), the pool of scenes rendered ahead in a background thread, and each judge's
history (the crops they saw lately, the family due)."""

import dataclasses
import io
import os
import random
import sys
import threading
import time

import numpy as np
import pytest
from PIL import Image

from restoration.arena.judge_history import JudgeHistory
from restoration.arena.ratings import ANCHOR
from restoration.arena.scene_crops import crop_boxes
from restoration.arena.scene_renderer import Scene, SceneRenderer, crop_text
from restoration.arena.scenes import (
    SceneFamily,
    ScenePool,
    family_shares,
    lower_priority,
    scene_families,
    scene_images,
)
from restoration.data.degrade import STANDARD, low_res, upscale_bicubic
from restoration.data.images import to_float, to_pil, to_tensor, to_uint8
from tests.support import CountingModel


def test_scene_images_are_the_examples_and_a_val_sample(settings, tiny_imagenet):
    assert set(scene_images(settings)) == {f"examples/{p.name}" for p in settings.examples_dir.iterdir()}
    with_val = dataclasses.replace(settings, val_dir=tiny_imagenet, scene_val_images=5)
    files = scene_images(with_val)
    val = [k for k in files if k.startswith("tiny-imagenet/")]
    assert len(val) == 5 and scene_images(with_val) == files and all(files[k].is_file() for k in files)


def test_a_scene_has_every_contender_on_one_degraded_input(settings, tiny_models):
    renderer = SceneRenderer(tiny_models, scene_images(settings), settings)
    image_id = "examples/noise.png"
    scenes = {d: renderer.render(image_id, d) for d in STANDARD}
    for d, scene in scenes.items():
        assert (scene.image_id, scene.degradation) == (image_id, d)
        assert scene.low.size == (48, 40) and scene.original.size == (96, 80) and scene.crop == (0, 0, 96, 80)
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
    cropped = SceneRenderer(tiny_models, scene_images(settings), settings, max_side=64).render(image_id)
    assert cropped.original.size == (64, 64) and cropped.low.size == (32, 32) and cropped.crop == (16, 8, 80, 72)


def test_the_pool_renders_ahead_and_replaces_used_scenes(settings, tiny_models):
    counting = {m.entry.name: CountingModel(m.model) for m in tiny_models}
    models = [dataclasses.replace(m, model=counting[m.entry.name]) for m in tiny_models]
    pool = ScenePool(SceneRenderer(models, scene_images(settings), settings), size=2, uses=3,
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
    renderer = SceneRenderer(tiny_models, images, settings)
    pool = ScenePool(renderer, size=4, uses=1, rng=random.Random(1)).start()
    try:
        for _ in range(20):
            assert pool.take(timeout=30).image_id != "examples/bad.png"
    finally:
        pool.stop()


def test_take_waits_for_the_first_scene_then_times_out_cleanly(settings, tiny_models):
    gate = threading.Event()

    class Slow(SceneRenderer):
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
    pool = ScenePool(SceneRenderer(models, scene_images(settings), settings), size=2, uses=1,
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
    files = scene_images(dataclasses.replace(settings, photo_val_dir=photos))
    assert {"photos/kodak/kodak-1.png", "photos/mcmaster/mcmaster-1.png"} <= set(files)
    assert all(files[k].is_file() for k in files)


def test_the_pool_keeps_each_familys_share_of_its_scenes_each_with_bicubic(settings, tiny_models):
    images = list(scene_images(settings))
    families = {"photo": SceneFamily(("unet-mse",), tuple(images), share=0.75),
                "lesson": SceneFamily(("unet-perceptual", "unet-crossconv"), tuple(images), share=0.25)}
    pool = ScenePool(SceneRenderer(tiny_models, scene_images(settings), settings), size=4, uses=100,
                     rng=random.Random(0), families=families).start()
    try:
        deadline = time.monotonic() + 60
        while pool.ready() < 4 and time.monotonic() < deadline:
            time.sleep(0.05)
        scenes = list(pool._ready)
    finally:
        pool.stop()
    assert sorted(s.family for s in scenes) == ["lesson", "photo", "photo", "photo"]  # 3 of 4, 1 of 4
    for s in scenes:
        assert set(s.outputs) == {ANCHOR, *families[s.family].names}


class NamedScenes:
    """A renderer that only names its scenes (what `take(avoid=...)` decides on), counting renders."""

    def __init__(self, images):
        self.image_files, self.rendered = {i: None for i in images}, []

    def render(self, image_id, degradation="lesson", names=None, family=None, crop=None):
        self.rendered.append(image_id)
        return Scene(image_id, degradation, None, None, {"x": None}, family=family, crop=crop)


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


def key(image_id):
    """A NamedScenes scene's key (no crop)."""
    return image_id, None


def test_take_avoids_a_judges_recent_scenes_while_the_pool_has_others():
    renderer = NamedScenes([f"i{k}" for k in range(10)])
    busy = threading.Event()
    pool = ScenePool(renderer, size=2, uses=6, rng=random.Random(0), busy=busy.is_set).start()
    try:
        history = JudgeHistory(keep=3)
        repeats = 0
        for _ in range(20):
            while pool.ready() < 2:  # the judge looks at the pair while the pool refills
                time.sleep(0.01)
            with pool._cond:  # the thread cannot change the ready scenes while we look and take
                ready = {s.key for s in pool._ready}
                scene = pool.take(timeout=10, avoid=history.recent("j"))
            if ready - set(history.recent("j")):  # a ready scene the judge has not seen lately: that one
                assert scene.key not in history.recent("j")
            else:  # every ready scene seen lately: the one seen longest ago, nothing rendered first
                assert scene.key == next(k for k in history.recent("j") if k in ready)
                repeats += 1
            history.add("j", scene)
        assert repeats < 20
        assert len(history.recent("j")) == 3 and history.recent("other") == []
        # Avoiding the whole pool lets the oldest go: i0 is the image seen longest ago.
        with pool._cond:
            ready = sorted({s.image_id for s in pool._ready})
        everything = [key(i) for i in renderer.image_files if i not in ready] + [key(i) for i in ready]
        assert pool.take(timeout=10, avoid=everything).image_id == ready[0]
        # While a Compare has the cores nothing is rendered: the scene seen longest ago serves.
        busy.set()
        time.sleep(0.3)  # a render under way when the Compare started ends first
        with pool._cond:
            ready = sorted({s.image_id for s in pool._ready})
        unseen = next(i for i in renderer.image_files if i not in ready)  # not ready: it would need a render
        avoid = [key(i) for i in renderer.image_files if i != unseen and i not in ready] + [key(i) for i in ready]
        rendered = len(renderer.rendered)
        assert pool.take(timeout=10, avoid=avoid).image_id == ready[0] and len(renderer.rendered) == rendered
        busy.clear()  # a vote is never answered after a render: still the scene seen longest ago
        assert pool.take(timeout=10, avoid=avoid).image_id == ready[0] and len(renderer.rendered) == rendered
    finally:
        pool.stop()


def test_a_judges_history_keeps_the_last_pairs_of_a_bounded_number_of_judges():
    history = JudgeHistory(keep=2, max_judges=2)
    scene = lambda image_id, crop=None: Scene(image_id, "lesson", None, None, {}, crop=crop)  # noqa: E731
    for judge, image in [("a", "x"), ("a", "y"), ("a", "z"), ("b", "x"), ("c", "x")]:
        history.add(judge, scene(image))
    assert history.recent("a") == [] and history.recent("b") == [key("x")]  # a: the least recently seen
    history.add("b", scene("y", (0, 0, 8, 8)))
    history.add("b", scene("y", (8, 0, 16, 8)))  # another crop of the same image: another scene
    assert history.recent("b") == [("y", (0, 0, 8, 8)), ("y", (8, 0, 16, 8))]


def test_a_judge_who_has_seen_every_ready_scene_gets_one_at_once_and_fresh_ones_rendered_behind():
    renderer = NamedScenes([f"i{k}" for k in range(10)])
    pool = ScenePool(renderer, size=2, uses=6, rng=random.Random(0)).start()
    try:
        deadline = time.monotonic() + 10
        while pool.ready() < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        with pool._cond:
            scenes = list(pool._ready)
        seen = [s.key for s in scenes]
        rendered = len(renderer.rendered)
        with pool._cond:  # holding the lock, the thread cannot render: `take` must not either
            assert pool.take(timeout=10, avoid=seen).key == seen[0]  # the one seen longest ago
            assert len(renderer.rendered) == rendered
        assert all(s.uses >= pool.uses for s in scenes)  # the scenes the judge had seen are retired
        deadline = time.monotonic() + 10
        while len(renderer.rendered) < rendered + 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(renderer.rendered) >= rendered + 2  # fresh ones rendered behind, without a take
        assert pool.take(timeout=10, avoid=seen).key not in seen
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
    `SceneRenderer` does; the first window holds until the test lets it go."""

    def __init__(self, images):
        super().__init__(images)
        self.hold, self.windows = None, []
        self.in_first, self.go_on = threading.Event(), threading.Event()

    def render(self, image_id, degradation="lesson", names=None, family=None, crop=None):
        for i in range(3):
            while self.hold():
                time.sleep(0.01)
            self.windows.append((image_id, i))
            if len(self.windows) == 1:
                self.in_first.set()
                self.go_on.wait(10)
        return super().render(image_id, degradation, names, family, crop)


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


def test_each_family_is_judged_on_its_own_images(settings, tmp_path):
    """Photos (at least 320 pixels on the long side, examples or val photos) for the photo
    family; thumbnails for the lesson's. Which family has which share follows the setting."""
    photos = tmp_path / "photos-val"
    (photos / "kodak").mkdir(parents=True)
    Image.new("RGB", (500, 300), "gray").save(photos / "kodak" / "wide.png")
    Image.new("RGB", (200, 150), "gray").save(photos / "small.png")  # a val "photo" too small to crop: a thumbnail
    (photos / "broken.png").write_text("not an image")
    files = scene_images(dataclasses.replace(settings, photo_val_dir=photos))
    kinds = scene_families(files)
    assert kinds["photo"] == ["photos/kodak/wide.png"]
    assert set(kinds["lesson"]) == {*(f"examples/{p.name}" for p in settings.examples_dir.iterdir()),
                                    "photos/small.png"}
    assert family_shares(0.75, ["photo", "lesson"]) == {"photo": 0.75, "lesson": 0.25}
    assert family_shares(0.75, ["lesson"]) == {"lesson": 1.0} and family_shares(0.3, ["photo"]) == {"photo": 1.0}
    assert family_shares(1.0, ["photo", "lesson"]) == {"photo": 1.0}  # a share of 0: not judged


def test_a_photo_scene_is_one_of_its_crops_and_a_thumbnail_is_whole(settings, tiny_models, tmp_path):
    rng = np.random.default_rng(0)
    photo = np.full((400, 520, 3), 120, np.uint8)
    photo[:, 260:] = rng.integers(0, 255, (400, 260, 3))  # smooth on the left, detail on the right
    Image.fromarray(photo).save(tmp_path / "photo.png")
    images = scene_images(settings) | {"photos/photo.png": tmp_path / "photo.png"}
    renderer = SceneRenderer(tiny_models, images, settings)
    boxes = crop_boxes(Image.fromarray(photo))
    assert len(boxes) >= 2
    for k in range(len(boxes) + 1):  # the k-th crop, counted round past the last (bicubic alone: cheap)
        scene = renderer.render("photos/photo.png", "lesson", [ANCHOR], "photo", crop=k)
        assert scene.crop == boxes[k % len(boxes)] and scene.family == "photo"
        assert np.array_equal(np.asarray(scene.original), photo[boxes[k % len(boxes)][1]:boxes[k % len(boxes)][3],
                                                                boxes[k % len(boxes)][0]:boxes[k % len(boxes)][2]])
        assert scene.original.size == (320, 320) and scene.low.size == (160, 160) and scene.zoom() == 1
        assert scene.outputs[ANCHOR].size == (320, 320)
    thumbnail = renderer.render("examples/noise.png", "lesson", [ANCHOR, "unet-mse"], "lesson")
    assert thumbnail.crop == (0, 0, 96, 80) and thumbnail.zoom() == 4  # 96 px: shown 4× (384)
    assert crop_text(scene.crop) == " ".join(map(str, scene.crop)) and crop_text(None) == ""


def test_a_judges_pairs_follow_the_family_shares_and_never_repeat_a_crop_within_ten_pairs():
    """40 pairs of one judge from a pool of 12 scenes (photos cut 4 ways, thumbnails whole): 30 of
    them photo pairs (3 of 4, within one), and no scene (image and crop) twice in any 10 in a row."""
    renderer = NamedScenes([f"p{k}" for k in range(8)] + [f"t{k}" for k in range(20)])
    families = {"photo": SceneFamily(("m",), tuple(f"p{k}" for k in range(8)), crops=4, share=0.75),
                "lesson": SceneFamily(("n",), tuple(f"t{k}" for k in range(20)), share=0.25)}
    pool = ScenePool(renderer, size=12, uses=6, rng=random.Random(0), families=families).start()
    history = JudgeHistory({"photo": 0.75, "lesson": 0.25}, rng=random.Random(1))
    try:
        shown = []
        for _ in range(40):
            deadline = time.monotonic() + 10
            while pool.ready() < 12 and time.monotonic() < deadline:  # the judge looks; the pool refills
                time.sleep(0.005)
            scene = pool.take(timeout=10, avoid=history.recent("j"), prefer=history.families("j"))
            history.add("j", scene)
            shown.append(scene)
    finally:
        pool.stop()
    assert 29 <= sum(s.family == "photo" for s in shown) <= 31
    for i in range(len(shown)):
        window = [s.key for s in shown[i:i + 10]]
        assert len(set(window)) == len(window), window
    assert len({s.crop for s in shown if s.family == "photo"}) > 1  # crops of the photos were drawn
    assert all(s.crop is None for s in shown if s.family == "lesson")


def test_a_judge_due_a_family_without_a_ready_scene_gets_another_and_stays_due():
    history = JudgeHistory({"photo": 0.75, "lesson": 0.25}, rng=random.Random(0))
    lesson = Scene("t", "lesson", None, None, {}, family="lesson")
    photos = 0
    for _ in range(8):
        due = history.families("j")[0]
        photos += due == "photo"
        history.add("j", lesson)  # only thumbnails ready: the photo family stays due, credit kept
    assert photos == 8
    history.add("j", Scene("p", "lesson", None, None, {}, family="photo"))
    assert history.families("j")[0] == "photo"  # still owed photo pairs


def test_a_judge_who_saw_every_scene_of_their_due_family_gets_another_and_fresh_ones_come_behind():
    renderer = NamedScenes(["p0", "p1", "t0", "t1", "t2"])
    families = {"photo": SceneFamily(("m",), ("p0", "p1"), share=0.75),
                "lesson": SceneFamily(("n",), ("t0", "t1", "t2"), share=0.25)}
    pool = ScenePool(renderer, size=4, uses=6, rng=random.Random(0), families=families).start()
    try:
        deadline = time.monotonic() + 10
        while pool.ready() < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert {s.family for s in pool._ready[:2]} == {"photo", "lesson"}  # filling up: one of each family first
        with pool._cond:
            lesson = next(s for s in pool._ready if s.family == "lesson")
            rendered = len(renderer.rendered)
            scene = pool.take(timeout=10, avoid=[lesson.key], prefer=["lesson", "photo"])
            assert scene.family == "photo" and lesson.uses >= pool.uses  # its lesson scene is counted used up
        deadline = time.monotonic() + 10
        while pool.ready("lesson") < 1 and time.monotonic() < deadline:  # rendered next: the family has none fresh
            time.sleep(0.01)
        assert len(renderer.rendered) == rendered + 1
        assert pool.take(timeout=10, avoid=[lesson.key], prefer=["lesson", "photo"]).family == "lesson"
    finally:
        pool.stop()
