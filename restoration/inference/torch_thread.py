"""One thread for the app's torch work: the thread that loaded the models (the main thread) runs
every Compare and the warm-up, handed over by the server's threads.

Why: torch's OpenMP runtime (libgomp) keeps the workers of a thread's parallel regions spinning
between regions, but only while no more threads than CPUs belong to its teams. A second thread
running torch (each server thread that runs a Compare, beside the main thread that loaded the
models) turns that off for the whole process: every region then wakes its workers from sleep, and
the many small operations of the scores pay for it (docs/speed.md, "One thread for torch").

Where nothing has claimed it (tests, benchmarks in-process), `run` calls inline: nothing changes.
"""

import contextvars
import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future

_END = object()


class Stopping(RuntimeError):
    """What work handed over gets when the serving thread stops before or while running it."""


class TorchThread:
    """`run(fn, ...)` on the claiming thread once it `serve`s; inline where none claimed it."""

    def __init__(self):
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._owner: int | None = None

    def claim(self):
        """Make the calling thread the one that runs torch work (call `serve` on it next); work
        handed over before `serve` waits for it."""
        self._owner = threading.get_ident()

    def run(self, fn: Callable, *args, **kwargs):
        """fn(*args, **kwargs) on the claiming thread (in the caller's context, so that what the
        server keeps per request still reaches it), its result or exception here."""
        if self._owner is None or threading.get_ident() == self._owner:
            return fn(*args, **kwargs)
        done: Future = Future()
        self._queue.put((contextvars.copy_context(), fn, args, kwargs, done))
        return done.result()

    def iterate(self, items: Iterator) -> Iterator:
        """`items`' items, each made on the claiming thread (a generator's steps); closing this
        closes `items` there too."""
        try:
            while (item := self.run(next, items, _END)) is not _END:
                yield item
        finally:
            if hasattr(items, "close"):
                self.run(items.close)

    def serve(self, running: Callable[[], bool], poll: float = 0.1):
        """Run what other threads hand over while `running()` (the server is up), until a
        KeyboardInterrupt (Ctrl-C, or SIGTERM where the app maps it) ends it; work handed over
        afterwards runs inline."""
        try:
            while running():
                try:
                    context, fn, args, kwargs, done = self._queue.get(timeout=poll)
                except queue.Empty:
                    continue
                if not done.set_running_or_notify_cancel():
                    continue
                try:
                    done.set_result(context.run(fn, *args, **kwargs))
                except Exception as e:  # noqa: BLE001 (the caller's to handle: it gets it from run)
                    done.set_exception(e)
                except BaseException:  # Ctrl-C while it ran: the caller gets an error, the app stops
                    done.set_exception(Stopping("the app is stopping"))
                    raise
        finally:
            self._owner = None
            while True:  # anything handed over meanwhile: refused, not left waiting
                try:
                    *_, done = self._queue.get_nowait()
                except queue.Empty:
                    break
                if done.set_running_or_notify_cancel():
                    done.set_exception(Stopping("the app is stopping"))
