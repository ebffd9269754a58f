"""What keeps the serving app responsive and tidy: the interpreter handed back sooner
(`SWITCH_INTERVAL`), the heap out of the collector's sight (`freeze_heap`), requests in flight
(`InFlight`), Compare's lane (`CompareLane`) and the files written for the page (`OutputFiles`)."""

import gc
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from restoration.arena.replies import Refusal

# How long a thread may keep the interpreter when another asks for it (Python's default: 5 ms). The
# server's event loop takes it back dozens of times a request (each event, each chunk of a file
# served) while handler threads run Python; at the default each take could wait 5 ms, and a vote's
# reply p50 was 0.45 s with 20 judges on one replica, 0.21 s at 0.5 ms (docs/benchmarks.md).
SWITCH_INTERVAL = 0.0005


def freeze_heap():
    """Put every object alive now out of the cyclic garbage collector's sight (`gc.freeze`), after
    a collection so that no garbage is kept. The libraries, the models and the compiled fast path
    are millions of objects that live as long as the app; each full collection walked them all
    while holding the interpreter, 0.6-0.9 s every 10 s or so under 20 judges, and the replies it
    stalled were the vote reply's p95 (docs/benchmarks.md). Called before serving and again when
    the fast path is compiled."""
    gc.collect()
    gc.freeze()


class InFlight:
    """Whether requests of a kind are being answered, or one ended less than `linger` seconds ago
    (`with in_flight:` around each): requests that come every fraction of a second (many judges)
    keep it true between them too, as the next one is about to come."""

    def __init__(self, linger: float = 0.25):
        self.linger, self._n, self._ended, self._lock = linger, 0, -math.inf, threading.Lock()

    def __enter__(self):
        with self._lock:
            self._n += 1

    def __exit__(self, *exc):
        with self._lock:
            self._n -= 1
            self._ended = time.monotonic()

    def __bool__(self) -> bool:
        return self._n > 0 or time.monotonic() - self._ended < self.linger


class CompareLane:
    """Compare requests run the models at most `concurrency` at a time, and each client may have
    at most `per_client` requests running or waiting: one client cannot book the server. Judges
    never wait here: their pairs are rendered by the scene pool."""

    def __init__(self, concurrency: int, per_client: int):
        self.per_client = per_client
        self._models = threading.Semaphore(concurrency)
        self._held: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()

    def busy(self) -> bool:
        """Whether a Compare request is running or waiting."""
        with self._lock:
            return bool(self._held)

    @contextmanager
    def admit(self, key: str):
        with self._lock:
            if self._held[key] >= self.per_client:
                raise Refusal(f"You already have {self._held[key]} restorations running or waiting; the limit is "
                              f"{self.per_client} per client. Please wait for them to finish.")
            self._held[key] += 1
        try:
            with self._models:
                yield
        finally:
            with self._lock:
                self._held[key] -= 1
                if not self._held[key]:
                    del self._held[key]


class OutputFiles:
    """The files the app writes for the page (Compare's panels, judges' pictures, the CSV export),
    in one temporary folder, plus the copies Gradio makes of them to serve them (`served`, from
    app.py): one thread removes every one older than `max_age` seconds while the app runs, and
    `close` removes them all. In the app the folder is inside Gradio's own cache folder (`parent`):
    Gradio then serves our files as they are, instead of hashing and copying every file of every
    streamed step into its cache (a 1024² Compare re-sent each panel at each of its eight steps)."""

    def __init__(self, max_age: float, served=lambda: (), parent: str | Path | None = None):
        if parent is not None:
            Path(parent).mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix="restoration-app-", dir=parent))
        self.max_age, self.served = max_age, served
        self._closed = threading.Event()
        threading.Thread(target=self._sweep_while_open, name="output-sweeper", daemon=True).start()

    def folder(self, name: str | None = None) -> Path:
        """A folder for one Compare run (a fresh name nobody can guess: the files are served by
        their path), or the named one ("judge", "export")."""
        folder = self.root / (name or f"run-{secrets.token_hex(8)}")
        folder.mkdir(exist_ok=True)
        return folder

    def sweep(self, max_age: float):
        now = time.time()
        for path in [*self.root.rglob("*"), *map(Path, self.served())]:
            try:
                if path.is_file() and now - path.stat().st_mtime >= max_age:
                    path.unlink()
                    if path.parent != self.root and not any(path.parent.iterdir()):
                        path.parent.rmdir()  # a run's folder, or Gradio's per-file one, once empty
            except OSError:
                pass  # gone already, or written to just now

    def _sweep_while_open(self):
        while not self._closed.wait(min(60.0, self.max_age / 4)):
            self.sweep(self.max_age)

    def close(self):
        self._closed.set()
        self.sweep(0)
        shutil.rmtree(self.root, ignore_errors=True)
