"""The scene pool's renders in a child process: the same pictures as in a thread, errors and a
killed child survived, the hold obeyed across the process boundary, and nothing left running."""

import dataclasses
import os
import signal
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from restoration.arena.render_process import GO, HOLD, RenderProcess, _hold_requested
from restoration.arena.scene_renderer import SceneRenderer
from restoration.arena.scenes import ScenePool, scene_images
from restoration.inference.runner import restorers_for


@pytest.fixture
def eager(settings):
    return dataclasses.replace(settings, fast=False, scene_process=True)


@pytest.fixture
def renderer(eager, tiny_models):
    r = RenderProcess.of(tiny_models, restorers_for(tiny_models, eager), scene_images(eager), eager)
    yield r
    r.close()


def pixels(scene):
    return {k: np.asarray(v) for k, v in [("low", scene.low), ("original", scene.original), *scene.outputs.items()]}


def test_a_scene_from_the_child_is_the_scene_a_thread_renders(renderer, eager, tiny_models):
    image_id = sorted(renderer.image_files)[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(eager.threads)  # as the child runs (sums in another order differ in the last bit)
    try:
        here = SceneRenderer(tiny_models, scene_images(eager), eager).render(image_id, "bicubic")
    finally:
        torch.set_num_threads(threads)
    there = renderer.render(image_id, "bicubic")
    assert (there.image_id, there.degradation) == (image_id, "bicubic")
    mine, theirs = pixels(here), pixels(there)
    assert mine.keys() == theirs.keys() and all(np.array_equal(mine[k], theirs[k]) for k in mine)
    assert set(there._png) == set(mine)  # encoded in the child, not in a judge's request


def test_a_failed_render_raises_and_the_child_serves_on(renderer):
    with pytest.raises(RuntimeError, match="KeyError"):
        renderer.render("no such image")
    assert renderer.render(sorted(renderer.image_files)[0]).outputs


def test_a_killed_child_is_replaced_at_the_next_render(renderer):
    image_id = sorted(renderer.image_files)[0]
    renderer.render(image_id)
    first = renderer._process
    os.kill(first.pid, signal.SIGKILL)
    first.join(10)
    assert renderer.render(image_id).outputs and renderer._process.pid != first.pid


def test_the_child_waits_while_held_and_goes_on_when_released(renderer):
    image_id = sorted(renderer.image_files)[0]
    renderer.render(image_id)  # the child is up
    held = threading.Event()
    held.set()
    renderer.hold = held.is_set
    done = []
    thread = threading.Thread(target=lambda: done.append(renderer.render(image_id)))
    thread.start()
    thread.join(2.0)
    assert not done  # a tiny model's scene takes milliseconds: it is waiting before a window
    held.clear()
    thread.join(60)
    assert done and done[0].outputs


def test_close_ends_the_child_and_later_renders_refuse(renderer):
    renderer.render(sorted(renderer.image_files)[0])
    child = renderer._process
    renderer.close()
    assert not child.is_alive() and child.exitcode == 0  # it exited, not killed
    with pytest.raises(RuntimeError, match="closed"):
        renderer.render(sorted(renderer.image_files)[0])


def test_a_pool_stopped_mid_render_ends_at_once(renderer):
    """ScenePool.stop closes the renderer: a render held by people ends, and so does the thread."""
    pool = ScenePool(renderer, size=2, uses=6, busy=lambda: True, nice=False)
    pool.start()
    try:
        pool.take(timeout=60)  # the first scene is rendered whatever else runs; the next one is held
    finally:
        t0 = time.monotonic()
        pool.stop()
    assert time.monotonic() - t0 < 10 and not pool._thread.is_alive() and not renderer._process.is_alive()


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread priority is a Linux feature")
def test_the_child_renders_its_first_scene_at_once_then_at_the_lowest_priority(renderer):
    renderer.render(sorted(renderer.image_files)[0])
    deadline = time.monotonic() + 30
    tasks = Path(f"/proc/{renderer._process.pid}/task")
    niceness = lambda: {os.getpriority(os.PRIO_PROCESS, int(t.name)) for t in tasks.iterdir()}  # noqa: E731
    while niceness() != {19} and time.monotonic() < deadline:
        time.sleep(0.05)
    assert niceness() == {19}
    assert os.getpriority(os.PRIO_PROCESS, 0) != 19  # the app's own threads keep theirs


def test_a_child_whose_app_is_gone_ends_instead_of_waiting_forever():
    """The app killed (kill -9) while the child was held: nothing would release the hold."""
    assert _hold_requested(HOLD, os.getppid()) and not _hold_requested(GO, os.getppid())
    with pytest.raises(SystemExit):
        _hold_requested(HOLD, parent=os.getppid() + 1)  # another parent than the one it has: the app is gone


def test_ctrl_c_in_the_terminal_leaves_the_child_to_the_app(renderer):
    """Ctrl-C signals the terminal's whole process group: the child renders on (no traceback of
    its own) until the app closes it."""
    image_id = sorted(renderer.image_files)[0]
    renderer.render(image_id)
    os.kill(renderer._process.pid, signal.SIGINT)
    time.sleep(0.5)
    assert renderer._process.is_alive()
    assert renderer.render(image_id).outputs
    renderer.close()
    assert renderer._process.exitcode == 0
