"""The app's state and what each of the page's events does, without Gradio (app.py wires it to the
page). Every handler returns (or, streaming, yields) its outputs **by name**, a dict holding only
what changes; a value that is more than a value (a label, visibility, choices) is an `Update`; a
user's mistake is a `Refusal` (one line, shown in the page), a warning the "warning" entry.

Output names: Compare's panels are "panel-<key>" (input, bicubic, each model, original), then
"table", "files" (the PNG downloads, written when asked for), "zoom", "left", "right", "compared"
(the run's files, the zoom's state); the Judge's are JUDGE_OUTPUTS (its pictures as `Update`s whose
`elem_classes` say the integer zoom they are shown at: JUDGE_VIEW and "zoom-<n>"); the Leaderboard's
"summary", "ranking", "matrix". (Compare's streaming steps are the exception to "only what changes":
each sends all of its outputs, as plain values where it can, which Gradio handles far more cheaply.)
"""

import dataclasses
import gc
import html
import logging
import math
import secrets
import shutil
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from restoration.data import degrade
from restoration.arena.pairs import (
    Arena,
    Client,
    Contender,
    Limits,
    client_address,
    client_keys,
    load_secret,
    new_browser_id,
    new_session_id,
)
from restoration.models.checkpoint import CheckpointError
from restoration.inference.compare import (
    Stopwatch,
    compare_stream,
    family_for_image,
    png_downloads,
    save_panels,
    score_table,
    slider_files,
    what_the_classifier_sees,
)
from restoration.data.degrade import MODES
from restoration.data.images import ImageError
from restoration.inference.runner import restorers_for, warm_up_in_background
from restoration.arena.scenes import (
    SceneRenderer,
    JudgeHistory,
    SceneFamily,
    ScenePool,
    crop_text,
    family_shares,
    scene_families,
    scene_images,
)
from restoration.arena.leaderboard import FlagRules, flag_judges, leaderboard_tables
from restoration.hub.provenance import provenance_markdown
from restoration.arena.render_process import RenderProcess
from restoration.arena.ratings import ANCHOR
from restoration.arena.scene_crops import CROPS_PER_PHOTO
from restoration.settings import Settings
from restoration.arena.submissions import submit_from_page
from restoration.data.uploads import list_images, open_upload
from restoration.arena.store import ANSWER_LABELS, VoteStore, VoteStoreError
from restoration.hub.catalogue import FAMILIES, by_family, contenders_of, read_catalog
from restoration.arena.witnesses import EVALUATIONS, read_evaluation

log = logging.getLogger(__name__)
JUDGE_OUTPUTS = ("session", "token", "low", "original", "side_a", "side_b", "reveal", "progress", "shown",
                 "judged_a", "judged_b")
JUDGE_VIEW = "judge-view"  # the class of the Judge's pictures: shown at their own pixels times an integer zoom
JUDGE_LANE_LIMIT = 8  # judge and vote handlers at once: they only write small PNGs and one row
# How long a thread may keep the interpreter when another asks for it (Python's default: 5 ms). The
# server's event loop takes it back dozens of times a request (each event, each chunk of a file
# served) while handler threads run Python; at the default each take could wait 5 ms, and a vote's
# reply p50 was 0.45 s with 20 judges on one replica, 0.21 s at 0.5 ms (docs/benchmarks.md).
SWITCH_INTERVAL = 0.0005
SAID = {"A": "A is better", "B": "B is better", "tie": "a tie", "both_bad": "both bad"}
STORE_DOWN = ("The vote store cannot be reached right now (it may be restarting), so nothing was recorded; please "
              "try again in a minute. Compare works meanwhile.")
# After a vote committed, the next pair may still fail: the judge must not read that the vote was lost.
VOTE_KEPT = "Your vote was recorded. The next pair could not be prepared ({why}); press “Skip this pair” to try again."
COMMUNITY_NOT_LOADED = "community models: not loaded yet"  # the start-up line while the store does not answer
COMMUNITY_RETRY_SECONDS = 15.0
UNSET = object()


def freeze_heap():
    """Put every object alive now out of the cyclic garbage collector's sight (`gc.freeze`), after
    a collection so that no garbage is kept. The libraries, the models and the compiled fast path
    are millions of objects that live as long as the app; each full collection walked them all
    while holding the interpreter, 0.6-0.9 s every 10 s or so under 20 judges, and the replies it
    stalled were the vote reply's p95 (docs/benchmarks.md). Called before serving and again when
    the fast path is compiled."""
    gc.collect()
    gc.freeze()


class Refusal(ValueError):
    """A request the app turns down, with the one line that says why (shown in the page)."""


@dataclasses.dataclass
class Update:
    """A component's new value with some of its properties (those left UNSET keep theirs)."""
    value: object = None
    label: object = UNSET
    visible: object = UNSET
    choices: object = UNSET
    elem_classes: object = UNSET

    def properties(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # not asdict: it copies UNSET
        return {k: v for k, v in values.items() if v is not UNSET}


HIDDEN = Update(None, visible=False)
ZOOM_LABEL = "Zoom: choose two panels above"


@contextmanager
def store_reachable():
    """A vote store that is down is a message for the judge, not a crash; the next request after
    it is back works (restoration/arena/store.py)."""
    try:
        yield
    except VoteStoreError as e:
        raise Refusal(STORE_DOWN) from e


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


def session_id(session) -> str:
    """The judge's session id from the page's state, or a new pseudonymous one (first pair, or
    anything else an API client sent)."""
    return session if isinstance(session, str) and session.startswith("s-") else new_session_id()


def upload_path(upload) -> tuple[str, str]:
    """(path on the server, the name the user gave it) from an image input that was not
    preprocessed: Gradio's file payload, or a plain path (tests, API)."""
    if not upload:
        raise Refusal("Upload an image or pick one of the examples first.")
    if isinstance(upload, dict):
        path = upload.get("path")
        if not path:
            raise Refusal("The upload did not arrive; please try again.")
        return path, upload.get("orig_name") or Path(path).name
    return str(upload), Path(str(upload)).name


def checked(value, allowed, what: str, extra=()) -> str:
    """`value` if it is one of `extra` + `allowed` (the API skips a radio's own check), else a Refusal."""
    if value not in (*extra, *allowed):
        raise Refusal(f"Unknown {what} {str(value)[:40]!r}: choose {'all or ' if extra else ''}one of "
                      f"{', '.join(allowed)}.")
    return value


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


class ArenaApp:
    """The app's state and its event handlers, as plain methods (tests call them directly)."""

    def __init__(self, settings: Settings, models: list, problems: list[str] = (), store: VoteStore | None = None,
                 restorers: dict | None = None, fidelity=None, outputs_in: str | Path | None = None):
        if not models:
            raise ValueError("the app needs at least one restorer")
        self.settings = settings
        self.models = list(models)
        self.fidelity = fidelity  # the fidelity classifier, if shipped: Compare can show what it sees
        self.problems = list(problems)  # catalogue models that did not load, and why
        self.titles = {"input": "Low-resolution input", "bicubic": "Bicubic", "original": "Original"}
        self.titles |= {m.entry.name: m.entry.title for m in self.models}
        self.panel_keys = ["input", "bicubic", *[m.entry.name for m in self.models], "original"]
        self.families = by_family(self.models)  # Compare shows one family at a time
        self.default_family = next(iter(self.families))
        self.examples = list_images(settings.examples_dir)
        self.image_files = scene_images(settings)
        # Pooled connections for every judge lane, the leaderboard's and an export.
        self.store = store or VoteStore(settings.votes_db, pool_size=JUDGE_LANE_LIMIT + 2)
        # One Restorer per model (the fast path when settings.fast), shared by Compare and the judge's
        # scenes; `warm_up` compiles them.
        self.restorers = restorers if restorers is not None else restorers_for(self.models, settings)
        # Where they run (device.py): the GPU where there is one; community models adopted later run there too.
        self.on_gpu = any(getattr(r, "device", None) is not None and r.device.type == "cuda"
                          for r in self.restorers.values())
        self.secret = load_secret(settings.arena_secret, settings.votes_db)
        self.lane = CompareLane(settings.concurrency, settings.compare_per_client)
        self.judging = InFlight()  # judges' requests being answered: the scene pool waits for them too
        self.flag_rules = FlagRules()
        self.arena, self.scenes, self.history = None, None, None
        self._start_judging()
        # Each family's leaderboard (self.boards, photos first) shows the witnesses of its own evaluation file.
        self.evaluations = {f: read_evaluation(Path(settings.weights_dir) / EVALUATIONS[f][0]) for f in FAMILIES}
        self.files = OutputFiles(settings.output_max_age, parent=outputs_in)
        self.last_compare: Stopwatch | None = None  # where the last Compare's time went (bench.speed)
        self._export_lock = threading.Lock()
        self._adopting = threading.Lock()
        self._closed = threading.Event()

    def _start_judging(self):
        """The Judge's arena and scene pool for the judged models (ours and approved community ones);
        called again when approved models join later (`adopt`), replacing the pool."""
        settings, previous = self.settings, self.scenes
        # Bicubic is a contender too: the anchor whose rating is pinned (ratings.py).
        contenders = [Contender(ANCHOR, "Bicubic", "torch-bicubic")]
        contenders += [Contender(m.entry.name, m.entry.title, m.revision) for m in contenders_of(self.models)]
        # Each family's scenes: its contenders, the images it is judged on (photos or thumbnails) and
        # its share of the pairs (RESTORATION_JUDGE_PHOTO_SHARE); families without images are not judged.
        images = scene_families(self.image_files)
        contending = {f: ms for f, ms in by_family(contenders_of(self.models)).items() if images[f]}
        shares = family_shares(settings.judge_photo_share, list(contending)) if contending else {}
        self.scene_families = {f: SceneFamily(tuple(m.entry.name for m in contending[f]), tuple(images[f]),
                                              CROPS_PER_PHOTO if f == "photo" else 1, share)
                               for f, share in shares.items()}
        # Each judge's last pairs' crops (not shown again while there are others) and family turn: kept
        # when models join, unless the families judged change (a judge's credits are per family).
        if self.history is None or self.history.shares != shares:
            self.history = JudgeHistory(shares)
        # Each family's leaderboard, photos first.
        self.boards = list(by_family(contenders_of(self.models)))
        if self.scene_families:
            self.arena = Arena(self.store, contenders, min_vote_seconds=settings.min_vote_seconds,
                               limits=Limits.from_settings(settings))
            # In a child process (render_process.py) unless RESTORATION_SCENE_PROCESS=0: the renders
            # then never hold the interpreter that answers people. On a GPU, in a thread: the card
            # does the work, and the renders share the models (and the card's memory) with Compare.
            in_process = settings.scene_process and not self.on_gpu
            renderer = (RenderProcess.of(self.models, self.restorers, self.image_files, settings) if in_process
                        else SceneRenderer(self.models, self.image_files, settings, restorers=self.restorers))
            self.scenes = ScenePool(renderer, settings.scene_pool, settings.scene_uses, busy=self._people_waiting,
                                    families=self.scene_families, nice=not in_process,
                                    share=settings.scene_share).start()
        if previous is not None:
            previous.stop()

    def adopt(self, models: list):
        """Community models loaded after start-up (a submission on this replica, or the store's
        approved and pending ones once it answers): in Compare at once (its scores, zoom and files;
        its own panel after a restart), and the approved ones in the Judge, whose pool starts over."""
        with self._adopting:
            known = {m.entry.name for m in self.models}
            models = [m for m in models if m.entry.name not in known]
            if not models:
                return
            # In fp32 (the start-up check covered the shipped models only): eager on the CPU (nothing
            # warms a late one up), on the GPU where the others run.
            self.restorers |= restorers_for(models, self.settings, fast=self.on_gpu,
                                            device="cuda" if self.on_gpu else None)
            self.titles |= {m.entry.name: m.entry.title for m in models}
            self.models = [*self.models, *models]
            self.families = by_family(self.models)
            if contenders_of(models):
                self._start_judging()

    def load_community_later(self, interval: float = COMMUNITY_RETRY_SECONDS, load=None):
        """When the vote store did not answer at start-up: try again every `interval` seconds, in a
        background thread, until it answers, then adopt the community models it lists (the replica
        then agrees with the others without a restart)."""
        from restoration.arena.submissions import load_submitted_restorers

        load = load or (lambda: load_submitted_restorers(self.store))

        def run():
            while not self._closed.wait(interval):
                try:
                    models, problems = load()
                except VoteStoreError:
                    continue
                self.problems = [p for p in self.problems if not p.startswith(COMMUNITY_NOT_LOADED)] + problems
                self.adopt(models)
                for line in [m.note for m in models] + problems:
                    print(line, flush=True)
                return

        thread = threading.Thread(target=run, name="community models", daemon=True)
        thread.start()
        return thread

    def _people_waiting(self) -> bool:
        """Whether a Compare or a judge's request is being answered: the scene pool then renders
        nothing, and a render under way waits at its next window (scenes.py). Renders at the
        lowest priority alone were not enough: they share the interpreter (and the caches) with
        the requests, and made a judge's reply p95 twice as long."""
        return self.lane.busy() or bool(self.judging)

    @property
    def outputs(self) -> Path:
        return self.files.root

    def close(self):
        """Stop the background threads, close the vote store and remove every file we wrote."""
        self._closed.set()
        if self.scenes:
            self.scenes.stop()
        self.store.close()
        self.files.close()

    def client(self, request, browser: str | None = None) -> Client:
        """Who is asking, as HMAC keys: the address (the trusted proxy's, on a Space) and the
        browser id (all the clients of an address that keep none are one judge). `request` is the
        web framework's (its .client.host and .headers), or None."""
        peer, headers = None, None
        if request is not None:
            peer = request.client.host if getattr(request, "client", None) else None
            headers = request.headers
        address = client_address(peer or "local", headers, self.settings.client_header)
        return client_keys(self.secret, address, browser)

    def provenance(self) -> str:
        """Markdown: per catalogue model, its card, training data and command, and the commit that
        serves it (restoration/hub/provenance.py); then why a model is served from elsewhere than
        asked, or not at all."""
        try:
            entries = read_catalog(self.settings.weights_dir)
        except CheckpointError:  # the models came from elsewhere (tests, scripts): describe those
            entries = [m.entry for m in self.models]
        text = provenance_markdown(entries, self.settings.weights_dir, {m.entry.name: m for m in self.models})
        notes = [m.note for m in self.models if m.fallback] + self.problems
        return text + "".join(f"\n- {html.escape(n)}" for n in notes)

    def warm_up(self, done=None):
        """Compile the fast path in a background thread (requests meanwhile run eagerly)."""
        return warm_up_in_background(list(self.restorers.values()), done)

    # ---------------------------------------------------------------------------- Compare

    def compare(self, upload, mode: str, degradation: str = "lesson", show_classes: bool = False,
                family: str | None = None, request=None, progress=None):
        """Restore one image with every model of a family (default: the first in `FAMILIES`),
        streaming: yields the panels and the score table each time a panel or a score is ready (the
        other family's panels hidden), then the zoom's choices at the end (the zoom itself and the
        PNG downloads come when asked for: `zoom`, `downloads`). Where the time went is logged in
        one line and kept in `last_compare`."""
        progress = progress or (lambda fraction, desc=None: None)
        checked(mode, MODES, "mode")
        path, name = upload_path(upload)
        checked(degradation, degrade.STANDARD, "degradation")
        family = checked(family or self.default_family, list(self.families), "model family")
        models = self.families[family]
        with self.lane.admit(self.client(request).address_key):
            progress(0, desc="Opening the image")
            clock = Stopwatch()
            try:
                with clock("open"):
                    image = open_upload(path, mode, self.settings)
                stream = compare_stream(image, mode, models, self.settings, self.restorers, degradation, clock)
                del image  # compare_stream holds the only reference now: freed once degraded
                step = next(stream)
            except (ImageError, ValueError) as e:
                raise Refusal(str(e)) from None
            folder, stem = self.files.folder(), Path(name).stem[:60] or "image"
            files: dict[str, str] = {}
            seen: dict[str, str] = {}  # what the fidelity classifier sees in each panel
            # Every step sends every output, each panel as a plain value (its file) unless its
            # caption or visibility changes (or it is the last step): Gradio rebuilds a component's
            # whole configuration for each property update, and for each output a step leaves out
            # (about 5 ms of CPU each: 0.58 s of CPU a Compare when every step sent 13 of them,
            # 0.18 s so), but not for a plain value.
            shown: dict[str, Update] = {}
            try:
                while True:
                    progress(step.fraction, desc=step.text)
                    new = [p for p in step.panels if p.key not in files]  # each panel is encoded once
                    files |= {k: str(f) for k, f in save_panels(new, folder, stem, clock).items()}
                    if show_classes and self.fidelity is not None:
                        seen |= {p.key: what_the_classifier_sees(self.fidelity, p) for p in new}
                    out = self._step_outputs(step, files, seen, shown, mode, family)
                    if not step.done:
                        yield out | {"compared": None, "left": None, "right": None}
                        step = next(stream)
                        continue
                    choices = [(p.title, p.key) for p in step.panels]
                    left, right = "bicubic", models[0].entry.name
                    state = {"files": files, "titles": {p.key: p.title for p in step.panels}}
                    self.last_compare = clock
                    w, h = step.panels[-1].size
                    log.info("compare %d×%d, %s, %s, %s: %s", w, h, mode, degradation, family, clock.line())
                    yield out | {"compared": state, "left": Update(left, choices=choices),
                                 "right": Update(right, choices=choices)}
                    return
            except Exception:  # a run that fails half-way leaves none of its panels beside the error
                yield {k: v for k, v in self.cleared(family).items() if k not in ("files", "zoom")}  # not its outputs
                raise

    def _step_outputs(self, step, files: dict, seen: dict, shown: dict, mode: str, family: str) -> dict:
        """A Compare step's panels (by name; `shown` remembers what each was sent as) and score
        table."""
        by_key = {p.key: p for p in step.panels}
        out = {}
        for k in self.panel_keys:
            panel = self._panel(k, by_key.get(k), files.get(k), mode, family)
            # The last step sends every panel whole: an API client's result has every caption.
            out[f"panel-{k}"] = panel if step.done or _restyled(panel, shown.get(k)) else panel.value
            shown[k] = panel
        out["table"] = score_table(step.panels, mode, seen) + (
            "" if step.done else f"\n\n*{html.escape(step.text)}…*")
        return out

    def cleared(self, family: str | None = None) -> dict:
        """Compare's outputs with nothing in them: each panel of `family` empty under its title, no
        table, no files, no zoom. The page shows this when a run starts (before any check, so that a
        refusal leaves nothing of the previous image on screen) and when a run fails half-way."""
        out = {f"panel-{k}": Update(None, label=self.titles[k], visible=self._shown(k, family))
               for k in self.panel_keys}
        return out | {"table": "", "files": None, "zoom": Update(None, label=ZOOM_LABEL), "compared": None,
                      "left": Update(None, choices=[]), "right": Update(None, choices=[])}

    def _shown(self, key: str, family: str | None) -> bool:
        """Whether Compare shows a panel for `family` (the other families' models are hidden)."""
        family = family if family in self.families else self.default_family
        return key in ("input", "bicubic", "original") or key in {m.entry.name for m in self.families[family]}

    def _panel(self, key, panel, file, mode, family: str | None = None) -> Update:
        """A panel as shown: its picture under its title and one figure (Panel.caption), or an
        empty panel while its model runs."""
        if panel is not None:
            return Update(file, label=panel.caption(), visible=True)
        if (key == "original" and mode != "degrade") or not self._shown(key, family):
            return HIDDEN  # no original to show, or the other family's panel
        return Update(None, label=f"{self.titles[key]} (restoring…)", visible=True)

    def zoom(self, state, left: str, right: str) -> dict:
        """The two chosen panels at full resolution in the before/after slider (when asked for: a
        Compare sends no zoom, which would be two more full-size pictures to download)."""
        if not state or left not in state["files"] or right not in state["files"]:
            return {"zoom": Update(None)}
        try:
            pair = slider_files(state["files"][left], state["files"][right])  # files: nothing is re-encoded
        except OSError:  # removed by the sweep of old outputs
            raise Refusal("These panels are no longer kept on the server; please run the comparison again.") from None
        return {"zoom": Update(tuple(map(str, pair)), label=f"{state['titles'][left]}  ◀ ▶  {state['titles'][right]}")}

    def downloads(self, state) -> dict:
        """Every panel of the last Compare as a lossless PNG, written now (the first time: then kept)."""
        if not state or not state.get("files"):
            raise Refusal("Run a comparison first: its panels are what you can download.")
        try:
            return {"files": [str(f) for f in png_downloads(state["files"].values())]}
        except OSError:  # removed by the sweep of old outputs
            raise Refusal("These panels are no longer kept on the server; please run the comparison again.") from None

    def suggest_family(self, upload) -> dict:
        """The family to compare an image with: the lesson's for Tiny ImageNet-sized thumbnails,
        photos otherwise (only among the families that loaded)."""
        try:
            path, _ = upload_path(upload)
            return {"family": family_for_image(path, list(self.families))}
        except (Refusal, OSError, ValueError):
            return {}  # Compare itself says what is wrong with the upload

    # ---------------------------------------------------------------------------- Judge

    def _serve(self, scene, which: str) -> str:
        """A picture of the scene as a PNG with a fresh random name and a random nonce in its bytes
        (`Scene.png`): the URL Gradio serves it under is new every time, so it cannot name the
        model; the file carries no other metadata."""
        path = self.files.folder("judge") / f"{secrets.token_hex(12)}.png"
        path.write_bytes(scene.png(which))
        return str(path)

    def _battle_outputs(self, session, browser, request, message: str, previous=(HIDDEN, HIDDEN)) -> dict:
        """The Judge's outputs for a new pair, with `message` and the thumbnails of the `previous`
        pair above it. The pair is of the family due for this judge (`JudgeHistory`), of a crop
        they have not seen in their last pairs; its pictures are shown at an integer zoom (1: their
        own pixels), the low-resolution input at twice it, the same scale (`pictures`)."""
        if self.arena is None:
            raise Refusal("Judging needs at least one scene image of a model family that loaded.")
        client = self.client(request, browser)
        judge = client.judge_key
        try:
            scene = self.scenes.take(timeout=60, avoid=self.history.recent(judge),
                                     prefer=self.history.families(judge))
        except TimeoutError:
            raise Refusal("The first pairs are still being prepared; please try again in a few seconds.") from None
        a, b = self.arena.draw_pair(scene.outputs)  # within the scene's family, and bicubic
        with store_reachable():
            battle = self.arena.issue(session, client, (scene.image_id, scene.degradation, a, b),
                                      family=scene.family or "", crop=crop_text(scene.crop))
        self.history.add(judge, scene)
        side_a, side_b = self._serve(scene, a.name), self._serve(scene, b.name)
        pictures = self._pictures(scene, {"side_a": side_a, "side_b": side_b, "low": self._serve(scene, "low"),
                                          "original": self._serve(scene, "original")
                                          if self.settings.show_original else None})
        return pictures | {"session": session, "token": battle.token, "reveal": message,
                           "progress": self._progress_text(session),
                           "shown": {"token": battle.token, "A": side_a, "B": side_b},
                           "judged_a": previous[0], "judged_b": previous[1]}

    @staticmethod
    def _pictures(scene, files: dict) -> dict:
        """The Judge's pictures (files by output name) as `Update`s: the restorations (and the
        original) at the scene's integer zoom, the low-resolution input at twice it, each labelled
        with its scale. The browser then never resamples between a picture's pixels and the
        screen's, beyond repeating each pixel as a square (`image-rendering: pixelated`)."""
        zoom = scene.zoom()
        at = lambda z: "its own pixels, 1:1" if z == 1 else f"{z}× (each pixel a square)"  # noqa: E731
        w, h = scene.low.size
        labels = {"side_a": f"A · {at(zoom)}", "side_b": f"B · {at(zoom)}", "original": f"Original · {at(zoom)}",
                  "low": f"Low-resolution input, {w}×{h} · {at(2 * zoom)}"}
        zooms = {name: 2 * zoom if name == "low" else zoom for name in files}
        return {name: Update(file, label=labels[name], elem_classes=[JUDGE_VIEW, f"zoom-{zooms[name]}"])
                for name, file in files.items()}

    def _progress_text(self, session) -> str:
        with store_reachable():
            n = self.arena.votes_cast(session) if self.arena else 0
        return f"Votes you have cast this session: **{n}**"

    def remember_browser(self, browser) -> dict:
        """On page load: the judge's browser id from localStorage, made on the first visit."""
        if not isinstance(browser, str) or not browser.startswith("b-") or len(browser) > 64:
            browser = new_browser_id()
        return {"browser": browser, "stored_browser": browser}

    def next_pair(self, session, token, browser=None, request=None) -> dict:
        """A new blind pair for this judge (and a pseudonymous session id on the first call); it
        replaces the judge's current pair."""
        with self.judging:
            return self._battle_outputs(session_id(session), browser, request, "")

    def start_judging(self, session, token, browser=None, request=None) -> dict:
        """On opening the Judge tab: a pair, unless one is already waiting for a vote."""
        with store_reachable():
            if token and session and self.arena and self.arena.pending(session):
                return {}
        return self.next_pair(session, token, browser, request)

    def vote(self, answer, session, token, browser=None, shown=None, request=None) -> dict:
        """Record a vote on the current pair and show the next pair, with the pair just judged
        above it: its two pictures (`shown`, the files the page showed) under the models' names,
        and what the judge said. `answer` is a button's label or one of A, B, tie, both_bad."""
        with self.judging:
            return self._vote(answer, session, token, browser, shown, request)

    def _vote(self, answer, session, token, browser, shown, request) -> dict:
        if isinstance(answer, str):
            answer = ANSWER_LABELS.get(answer, answer)
        if self.arena is None:
            raise Refusal("Judging needs at least one scene image.")
        with store_reachable():  # accepted means committed: the reveal comes only after the commit
            result = self.arena.vote(token, session, answer, self.client(request, browser))
        if result.keep_pair:  # the pair on screen stays, to be judged again
            return {"reveal": result.message, "progress": self._progress_text(session), "warning": result.message,
                    "judged_a": HIDDEN, "judged_b": HIDDEN}
        if not result.accepted:
            return self._battle_outputs(session_id(session), browser, request, result.message) | {
                "warning": result.message}
        b = result.battle
        reveal = (f"**Your last pair** (above: image `{b.image_id}`, degraded by {degrade.title(b.degradation)}): "
                  f"you said {SAID[answer]}; A was **{b.a.title}**, B was **{b.b.title}**.")
        thumbnails = judged_thumbnails(b, shown)
        try:
            return self._battle_outputs(session, browser, request, reveal + " The next pair is below.", thumbnails)
        except Refusal as e:  # the vote is committed: whatever failed, the judge reads that it counts
            why = "the vote store cannot be reached right now" if isinstance(e.__cause__, VoteStoreError) else str(e)
            kept = VOTE_KEPT.format(why=why)
            return {"reveal": f"{reveal} {kept}", "warning": kept, "token": None, "shown": None, "side_a": None,
                    "side_b": None, "judged_a": thumbnails[0], "judged_b": thumbnails[1]}

    def submit(self, spec: str, family: str, browser=None, request=None) -> dict:
        """The Submit tab: what happened (Markdown), and the submission's panels on an example."""
        text, gallery, loaded = submit_from_page(self.store, spec, family, self.client(request, browser).address_key,
                                                 self.settings, self.fidelity, self.models, self.examples)
        if loaded is not None:  # in this replica's Compare now: its scores, zoom and files (its panel after a restart)
            self.adopt([loaded])
        return {"outcome": text, "preview": gallery}

    # ---------------------------------------------------------------------------- Leaderboard

    def leaderboard(self, degradation: str = "all", family: str | None = None) -> dict:
        """One model family's summary, ranking table and win-rate matrix (restoration/arena/leaderboard.py;
        default: the first family, photos), over every degradation or one of them: the votes on the
        family's scenes, its models and bicubic, the witnesses of its own evaluation file."""
        checked(degradation, degrade.STANDARD, "degradation", extra=("all",))
        family = checked(family or self.boards[0], self.boards, "model family")
        with store_reachable():
            rows = self.store.judge_outcomes(self.flag_rules.fast_seconds, by_family=True)
        members = [m.entry.name for m in contenders_of(self.models) if m.entry.family == family]  # not pending submissions
        summary, ranking, matrix = leaderboard_tables(
            rows, family, members, degradation, self.flag_rules, self.evaluations[family],
            lambda n: self.titles.get(n, n), self.settings.bootstrap_rounds,
            {m.entry.name: m.entry.family for m in self.models})
        return {"summary": summary, "ranking": Update(ranking), "matrix": Update(matrix)}

    def export_votes(self) -> dict:
        """The public CSV of the votes up to the export's cut (`VoteStore.write_public_csv`: nothing
        that links votes to a judge). The cut, kept in the vote store, moves only after
        `export_every` new votes, so until then every replica serves the same votes, and this
        one the file it already wrote (a click costs nothing)."""
        with self._export_lock, store_reachable():
            cut = self.store.export_cut(self.settings.export_every)
            file = self.files.folder("export") / f"votes-up-to-{cut}.csv"
            if not file.exists():
                flagged = flag_judges(self.store.judge_outcomes(self.flag_rules.fast_seconds, up_to_id=cut),
                                      self.flag_rules)
                partial = file.with_suffix(".partial")
                self.store.write_public_csv(partial, flagged, up_to_id=cut,
                                            families={m.entry.name: m.entry.family for m in self.models},
                                            repos={m.entry.name: m.entry.hub_repo or "" for m in self.models})
                partial.replace(file)
            return {"csv": str(file)}


def _restyled(panel: Update, before: Update | None) -> bool:
    """Whether a panel's caption or visibility differs from what the page shows (`before`)."""
    return before is None or (panel.label, panel.visible) != (before.label, before.visible)


def judged_thumbnails(battle, shown) -> tuple[Update, Update]:
    """The judged pair's two pictures as small labelled images ("A: MSE U-Net"), from the files
    the page showed (`shown`, kept in the session's state); hidden when they are not that pair's
    or have been swept away."""
    if not isinstance(shown, dict) or shown.get("token") != battle.token:
        return HIDDEN, HIDDEN
    return tuple(Update(shown[side], label=f"{side}: {contender.title}", visible=True)
                 if Path(shown[side]).is_file() else HIDDEN
                 for side, contender in (("A", battle.a), ("B", battle.b)))
