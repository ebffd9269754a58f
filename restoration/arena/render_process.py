"""The scene pool's renders, in a child process of their own.

Rendered in a thread of the app, a scene holds the app's interpreter between the models' kernels
(and, at the lowest CPU priority, can be paused by the system while holding it), so every request
of that replica waits on it now and then. A child process has its own interpreter, runs at the
lowest priority (every thread of it, once its first scene is out: at start-up the app compiles,
and a judge may be waiting for that scene), and shares nothing with the replica but a pipe and
one flag (`bench.replicas` with and without it: docs/benchmarks.md):

- the parent sends (image, degradation, contenders, family, crop) and gets back a `scene_renderer.Scene`, its
  PNGs already encoded;
- while it waits, the parent copies `hold()` (people are being answered) into a shared flag, which
  the child reads before every window: a render under way still stops at its next window.

The child rebuilds each model from its config and weights (sent as safetensors bytes: nothing is
unpickled into code) and runs it exactly as the parent's `Restorer` does (the same fast path and
precision); it compiles its fast path after its first scene, so the first pair is not late.
"""

import dataclasses
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from restoration.arena.scene_renderer import YIELD_POLL, Scene, SceneRenderer
from restoration.arena.scenes import lower_priority
from restoration.inference.runner import Restorer, release_memory
from restoration.settings import Settings

log = logging.getLogger(__name__)
GO, HOLD, STOP = 0, 1, 2  # the shared flag the child reads before every window


@dataclasses.dataclass
class ModelSpec:
    """What the child needs to run one model as the parent does."""

    loaded: object  # the `catalogue.LoadedModel`, without its module (`model=None`)
    config: dict  # {"model_type": ..., **constructor arguments}
    weights: bytes  # safetensors
    fast: bool
    precision: str

    @classmethod
    def of(cls, loaded, restorer: Restorer) -> "ModelSpec":
        from safetensors.torch import save

        model = loaded.model
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        return cls(dataclasses.replace(loaded, model=None), {"model_type": model.model_type, **model.config},
                   save(state), restorer.fast, restorer.precision)

    def build(self, settings: Settings):
        """(the LoadedModel with its module, its Restorer)."""
        from safetensors.torch import load

        from restoration.models.auto import MODEL_TYPES
        from restoration.models.foreign import MODEL_TYPE as FOREIGN
        from restoration.models.foreign import ForeignModel

        config = dict(self.config)
        kind = config.pop("model_type")
        if kind == FOREIGN:  # spandrel detects it again from its tensors (foreign.py)
            model = ForeignModel.from_state_dict(load(self.weights))
        else:
            model = MODEL_TYPES[kind](**config)
            model.load_state_dict(load(self.weights))
        loaded = dataclasses.replace(self.loaded, model=model.eval())
        return loaded, Restorer.from_settings(model, settings, fast=self.fast, precision=self.precision,
                                              notice=log.info)


class RenderProcess:
    """A `SceneRenderer` in a child process, with its interface (`image_files`, `hold`, `render`). If the
    child dies (killed for memory by an image, say), the render raises and the next one starts a
    new child."""

    def __init__(self, specs: Sequence[ModelSpec], image_files: Mapping[str, Path], settings: Settings,
                 max_side: int = 512):
        self.image_files, self.settings, self.max_side = dict(image_files), settings, max_side
        self.specs = list(specs)
        self.hold: Callable[[], bool] = lambda: False  # ScenePool sets it
        self._context = multiprocessing.get_context("spawn")  # fork would copy the app's threads' locks
        self._held = self._context.RawValue("b", 0)
        self._process, self._conn = None, None
        self._lock = threading.Lock()  # one render at a time (the pool has one thread)
        self._closed = threading.Event()

    @classmethod
    def of(cls, models: Sequence, restorers: Mapping[str, Restorer], image_files, settings, max_side: int = 512):
        return cls([ModelSpec.of(m, restorers[m.entry.name]) for m in models], image_files, settings, max_side)

    def _start(self):
        if self._conn is not None:
            self._conn.close()  # the end of a child that has died
        parent, child = self._context.Pipe()
        self._process = self._context.Process(
            target=serve, args=(child, self.specs, self.image_files, self.settings, self.max_side, self._held),
            name="scene-renderer", daemon=True)
        # Ctrl-C in a terminal signals the whole process group: the child would die of it at once
        # (a traceback on the terminal, mid-render). The app ends it through `close`, so it starts
        # with SIGINT blocked (a child inherits its starting thread's signal mask).
        blocked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            self._process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        child.close()
        self._conn = parent

    def render(self, image_id: str, degradation: str = "lesson", names: Sequence[str] | None = None,
               family: str | None = None, crop: int | None = None) -> Scene:
        with self._lock:
            if self._closed.is_set():
                raise RuntimeError("the scene renderer is closed")
            if self._process is None or not self._process.is_alive():
                if self._process is not None:
                    log.warning("scene renderer: the child process ended (exit code %s); starting a new one",
                                self._process.exitcode)
                self._start()
            self._held.value = HOLD if self.hold() else GO
            self._conn.send((image_id, degradation, names, family, crop))
            while not self._conn.poll(YIELD_POLL):
                self._held.value = HOLD if self.hold() else GO
                if self._closed.is_set() or not self._process.is_alive():
                    raise RuntimeError(f"the scene renderer ended (exit code {self._process.exitcode})")
            self._held.value = GO
            kind, value = self._conn.recv()
            if kind == "error":
                raise RuntimeError(value)
            return value

    def close(self):
        """End the child (a render under way stops at its next window); later renders raise."""
        self._closed.set()
        self._held.value = STOP
        process = self._process
        if process is not None and process.is_alive():
            try:
                self._conn.send(None)  # if it waits for a job
            except OSError:
                pass
            process.join(timeout=5)
            if process.is_alive():  # it holds nothing worth keeping: scenes are rendered again at start-up
                process.kill()
                process.join(timeout=5)


def lowest_priority():
    """This process, every thread of it (the models' threads too), at the lowest CPU priority."""
    if sys.platform == "linux":  # a priority is a thread's there
        for tid in os.listdir("/proc/self/task"):
            lower_priority(thread_id=int(tid))
    elif hasattr(os, "setpriority"):
        os.setpriority(os.PRIO_PROCESS, 0, 19)


def _hold_requested(value: int, parent: int) -> bool:
    """Whether to wait before the next window; ends this process when the app asks it to, or has
    ended without asking (killed: nothing would ever release a hold)."""
    if value == STOP or os.getppid() != parent:
        raise SystemExit(0)  # not an Exception: out of the render and out of `serve`, exiting cleanly
    return value == HOLD


def serve(conn, specs: Sequence[ModelSpec], image_files, settings: Settings, max_side: int, held):
    """The child: render each job that comes, until None (or the parent's end) comes."""
    import torch

    # Ctrl-C is the app's to handle (see RenderProcess._start); the mask it started with may have
    # been lifted by what the child imported.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(settings.threads)
    built = [spec.build(settings) for spec in specs]
    renderer = SceneRenderer([loaded for loaded, _ in built], image_files, settings, max_side,
                              restorers={loaded.entry.name: r for loaded, r in built})
    parent = os.getppid()
    renderer.hold = lambda: _hold_requested(held.value, parent)
    warmed = False
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        try:
            reply = ("scene", renderer.render(*job))
        except Exception as e:  # noqa: BLE001 (the parent logs it and leaves the image out)
            reply = ("error", f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}")
        release_memory()
        try:
            conn.send(reply)
        except OSError:  # the app has closed its end (it is stopping): nothing to say, no traceback
            return
        if not warmed:  # after the first scene, not before: a judge may be waiting for it
            warmed = True
            lowest_priority()  # the first scene at the normal priority: at start-up the app compiles
            t0 = time.perf_counter()
            for _, restorer in built:
                if os.getppid() != parent:  # the app is gone (killed): nothing to warm up for
                    return
                restorer.warm_up()
            # On the app's output, beside its own warm-up line (the child has no logging set up).
            print(f"scene renderer: fast path warmed up in {time.perf_counter() - t0:.1f} s", flush=True)
