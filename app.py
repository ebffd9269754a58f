"""The Gradio app: compare the super-resolution U-Nets side by side, judge them blind in pairs,
and see the human ranking beside PSNR.

    python app.py          # then open the address it prints

The same file is the `app_file` of the Hugging Face Space. Settings come from environment
variables (restoration/settings.py); models are loaded once, in `main`, never at import. All the
work is done by `restoration`: this file only wires it to the page.
"""

import restoration  # noqa: F401  first: one clear line, not a traceback, on Python < 3.11

import functools
import html
import inspect
import logging
import secrets
import shutil
import signal
import tempfile
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

import gradio as gr
import torch
from PIL import Image, PngImagePlugin

from restoration import degrade
from restoration.battles import (
    Arena,
    Client,
    Contender,
    FlagRules,
    Limits,
    Refused,
    client_address,
    client_keys,
    counted_outcomes,
    flag_judges,
    load_secret,
    new_browser_id,
    new_session_id,
)
from restoration.checkpoint import CheckpointError
from restoration.compare import (
    UNSURE_BELOW,
    choose_engine,
    compare_stream,
    family_for_image,
    list_images,
    open_upload,
    restorers_for,
    save_panels,
    score_table,
    slider_files,
    what_the_judge_sees,
)
from restoration.images import ImageError
from restoration.inference import warm_up_in_background
from restoration.judging import ANCHOR, BattleRenderer, RecentImages, ScenePool, judge_pool
from restoration.leaderboard import HEADERS as LEADERBOARD_HEADERS
from restoration.leaderboard import ranking_rows, win_rate_rows
from restoration.provenance import provenance_markdown
from restoration.ratings import MIN_VOTES, fit_leaderboard
from restoration.settings import Settings, SettingsError
from restoration.vote_sync import start_vote_sync
from restoration.votes import VoteStore, VoteStoreError, check_path
from restoration.weights import FAMILIES, by_family, load_available_restorers, load_judge, read_catalog
from restoration.witnesses import agreement, read_evaluation, witness_scores

log = logging.getLogger("app")

TITLE = "Super-resolution arena"
MODES = [("Degrade, then restore", "degrade"), ("Upscale ×2", "upscale")]
MODE_VALUES = [value for _, value in MODES]
ANSWERS = {"A is better": "A", "B is better": "B", "Tie": "tie", "Both bad": "both_bad"}
SAID = {"A": "A is better", "B": "B is better", "tie": "a tie", "both_bad": "both bad"}
# What every Judge handler returns, in order: the last three are the pair on screen (state) and the
# thumbnails of the pair just judged, shown with the reveal above the new pair.
JUDGE_OUTPUTS = ["session", "token", "low", "original", "side_a", "side_b", "reveal", "progress", "shown",
                 "judged_a", "judged_b"]
JUDGE_LANE_LIMIT = 8  # judge and vote handlers at once: they only write small PNGs and one row
COMPARE_WAITING_ROOM = 8  # Compare requests admitted past Gradio's queue (running or waiting for the models)
BROWSER_KEY = "super-resolution-arena-judge"  # localStorage key of the judge's browser id
# Panels are shown enlarged without smoothing: a browser's bilinear zoom would hide the very
# differences between the models that the page is for. A panel's caption sits above its picture,
# not over it (Gradio floats it over the top 20 px: a third of a 64×64 image), on one line, and
# the picture takes the rest of the panel's fixed height, so the panels of a row align.
CSS = """
.panel img { image-rendering: pixelated; }
.panel > label[data-testid="block-label"] { position: static; max-width: 100%; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; }
.panel:has(> label[data-testid="block-label"]) .image-container { height: calc(100% - 26px) !important; }
.panel .image-frame { width: 100%; height: 100%; }
.panel .image-frame img { width: 100%; height: 100%; object-fit: contain; }
"""
PANEL_HEIGHT = 300
JUDGE_HEIGHT = 420
THUMB_HEIGHT = 140  # the pair just judged, above the next one


def _error(message: str) -> gr.Error:
    """An expected user error: shown in the page, logged as one line (not a traceback)."""
    log.info("refused: %s", message)
    return gr.Error(html.escape(message), print_exception=False)  # the modal renders HTML; a file name must not


STORE_DOWN = ("The vote store cannot be reached right now (it may be restarting), so nothing was recorded; please "
              "try again in a minute. Compare works meanwhile.")


@contextmanager
def _store_reachable():
    """A vote store that is down is a message for the judge (and one log line), not a crash; the
    next request after it is back works (restoration/votes.py)."""
    try:
        yield
    except VoteStoreError as e:
        log.error("votes: %s", e)
        raise _error(STORE_DOWN) from None


def _warn(message: str):
    log.info("refused: %s", message)
    gr.Warning(html.escape(message))


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
                raise _error(f"You already have {self._held[key]} restorations running or waiting; the limit is "
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


def compare_lane(method):
    """Run a Compare handler (a function or a generator) inside the app's `CompareLane`, after
    checking the mode server-side (the API skips the radio's own check). The handler declares
    `request: gr.Request = None` so that Gradio passes the request."""
    signature = inspect.signature(method)

    def admitted(self, args, kwargs):
        bound = signature.bind(self, *args, **kwargs)
        mode = bound.arguments.get("mode")
        if mode not in MODE_VALUES:
            raise _error(f"Unknown mode {str(mode)[:40]!r}: choose one of {', '.join(MODE_VALUES)}.")
        return self.lane.admit(self.client(bound.arguments.get("request")).address_key)

    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def streaming(self, *args, **kwargs):
            with admitted(self, args, kwargs):
                yield from method(self, *args, **kwargs)
        return streaming

    @functools.wraps(method)
    def plain(self, *args, **kwargs):
        with admitted(self, args, kwargs):
            return method(self, *args, **kwargs)
    return plain


def _session_id(session) -> str:
    """The judge's session id from the page's state, or a new pseudonymous one (first pair, or
    anything else an API client sent)."""
    return session if isinstance(session, str) and session.startswith("s-") else new_session_id()


def _upload_path(upload) -> tuple[str, str]:
    """(path on the server, the name the user gave it) from an image input that was not
    preprocessed: Gradio's file payload, or a plain path (tests, API)."""
    if not upload:
        raise _error("Upload an image or pick one of the examples first.")
    if isinstance(upload, dict):
        path = upload.get("path")
        if not path:
            raise _error("The upload did not arrive; please try again.")
        return path, upload.get("orig_name") or Path(path).name
    return str(upload), Path(str(upload)).name


class ArenaApp:
    """The app's state and its event handlers, as plain methods (tests call them directly).
    A `progress=gr.Progress()` default is how a Gradio handler asks for a progress bar."""

    def __init__(self, settings: Settings, models: list, problems: list[str] = (), store: VoteStore | None = None,
                 restorers: dict | None = None, judge=None):
        if not models:
            raise ValueError("the app needs at least one restorer")
        self.settings = settings
        self.models = list(models)
        self.judge = judge  # the independent judge classifier, if shipped: Compare can show what it sees
        self.notes = [m.note for m in self.models] + list(problems)
        self.problems = list(problems)  # catalogue models that did not load, and why
        self.titles = {"input": "Low-resolution input", "bicubic": "Bicubic", "original": "Original"}
        self.titles |= {m.entry.name: m.entry.title for m in self.models}
        self.panel_keys = ["input", "bicubic", *[m.entry.name for m in self.models], "original"]
        self.families = by_family(self.models)  # Compare shows one family at a time
        self.default_family = next(iter(self.families))
        self.examples = list_images(settings.examples_dir)
        self.pool = judge_pool(settings)
        # Pooled connections for every judge lane, the leaderboard's and an export.
        self.store = store or VoteStore(settings.votes_db, pool_size=JUDGE_LANE_LIMIT + 2)
        # One Restorer per model (the fast path when settings.fast), shared by Compare and the judge's
        # scenes; `warm_up` compiles them.
        self.restorers = restorers if restorers is not None else restorers_for(self.models, settings)
        self.secret = load_secret(settings.arena_secret, settings.votes_db)
        self.lane = CompareLane(settings.concurrency, settings.compare_per_client)
        self.flag_rules = FlagRules()
        # Bicubic is a contender too: the anchor whose rating is pinned (ratings.py).
        contenders = [Contender(ANCHOR, "Bicubic", "torch-bicubic")]
        contenders += [Contender(m.entry.name, m.entry.title, m.revision) for m in self.models]
        self.arena, self.scenes = None, None
        self.recent = RecentImages()  # each judge's last pairs' images, not shown again while there are others
        if self.pool:
            self.arena = Arena(self.store, contenders, sorted(self.pool), degrade.STANDARD,
                               min_vote_seconds=settings.min_vote_seconds, limits=Limits.from_settings(settings))
            self.scenes = ScenePool(BattleRenderer(self.models, self.pool, settings, restorers=self.restorers),
                                    settings.battle_pool,
                                    settings.scene_uses, busy=self.lane.busy,
                                    families={f: [m.entry.name for m in ms] for f, ms in self.families.items()}).start()
        self.evaluation = read_evaluation(Path(settings.weights_dir) / "evaluation.json")
        self.outputs = Path(tempfile.mkdtemp(prefix="restoration-app-"))
        self._export_lock = threading.Lock()
        self._closed = threading.Event()
        threading.Thread(target=self._sweep_outputs, name="output-sweeper", daemon=True).start()

    def close(self):
        """Stop the background threads, close the vote store and remove every file we wrote."""
        self._closed.set()
        if self.scenes:
            self.scenes.stop()
        self.store.close()
        shutil.rmtree(self.outputs, ignore_errors=True)

    def client(self, request: gr.Request | None, browser: str | None = None) -> Client:
        """Who is asking, as HMAC keys: the address (the trusted proxy's, on a Space) and the
        browser id (all the clients of an address that keep none are one judge)."""
        peer, headers = None, None
        if request is not None:
            peer = request.client.host if getattr(request, "client", None) else None
            headers = request.headers
        address = client_address(peer or "local", headers, self.settings.client_header)
        return client_keys(self.secret, address, browser)

    def _remove_old_outputs(self):
        now = time.time()
        for old in self.outputs.rglob("*"):
            try:
                if old.is_file() and now - old.stat().st_mtime > self.settings.output_max_age:
                    old.unlink()
            except OSError:
                pass

    def _sweep_outputs(self):
        """Delete outputs older than their age limit while the app runs, not only on the next request."""
        while not self._closed.wait(min(60.0, self.settings.output_max_age / 4)):
            self._remove_old_outputs()

    def provenance(self) -> str:
        """Markdown: per catalogue model, its card, training data and command, and the commit that
        serves it (restoration/provenance.py); then why a model is served from elsewhere than
        asked, or not at all."""
        try:
            entries = read_catalog(self.settings.weights_dir)
        except CheckpointError:  # the models came from elsewhere (tests, scripts): describe those
            entries = [m.entry for m in self.models]
        text = provenance_markdown(entries, self.settings.weights_dir, {m.entry.name: m for m in self.models})
        notes = [m.note for m in self.models if m.fallback] + self.problems
        return text + "".join(f"\n- {html.escape(n)}" for n in notes)

    # ---------------------------------------------------------------------------- Compare

    def _new_output_folder(self) -> Path:
        now = time.time()
        for old in self.outputs.iterdir():
            if old.name not in ("judge", "export") and now - old.stat().st_mtime > self.settings.output_max_age:
                shutil.rmtree(old, ignore_errors=True)
        folder = self.outputs / secrets.token_hex(8)
        folder.mkdir()
        return folder

    def warm_up(self, done=None):
        """Compile the fast path in a background thread (requests meanwhile run eagerly)."""
        return warm_up_in_background(list(self.restorers.values()), done)

    @compare_lane
    def compare(self, upload, mode: str, degradation: str = "lesson", show_judge: bool = False,
                family: str | None = None, request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
        """Restore one image with every model of a family (default: the first in `FAMILIES`),
        streaming: yields the page's outputs each time a panel or a score is ready (one image per
        panel, the other family's hidden; the score table, the PNG files, the zoom slider, both zoom
        choices, and the panels' files for the zoom; the last four at the end)."""
        path, name = _upload_path(upload)
        if degradation not in degrade.STANDARD:  # the API skips the dropdown's own check
            raise _error(f"Unknown degradation {str(degradation)[:40]!r}: choose one of {', '.join(degrade.STANDARD)}.")
        family = family or self.default_family
        if family not in self.families:
            raise _error(f"Unknown model family {str(family)[:40]!r}: choose one of {', '.join(self.families)}.")
        models = self.families[family]
        progress(0, desc="Opening the image")
        try:
            stream = compare_stream(open_upload(path, mode, self.settings), mode, models, self.settings,
                                    self.restorers, degradation)
            step = next(stream)
        except (ImageError, ValueError) as e:
            raise _error(str(e)) from None
        folder, stem = self._new_output_folder(), Path(name).stem[:60] or "image"
        files: dict[str, str] = {}
        seen: dict[str, str] = {}  # what the judge classifier sees in each panel
        try:
            while True:
                progress(step.fraction, desc=step.text)
                new = [p for p in step.panels if p.key not in files]  # each panel is encoded once
                files |= {k: str(f) for k, f in save_panels(new, folder, stem).items()}
                if show_judge and self.judge is not None:
                    seen |= {p.key: what_the_judge_sees(self.judge, p) for p in new}
                by_key = {p.key: p for p in step.panels}
                images = [self._panel_image(k, by_key.get(k), files.get(k), mode, family) for k in self.panel_keys]
                table = score_table(step.panels, mode, seen) + (
                    "" if step.done else f"\n\n*{html.escape(step.text)}…*")
                if not step.done:
                    yield (*images, table, list(files.values()), gr.skip(), gr.skip(), gr.skip(), gr.skip())
                    step = next(stream)
                    continue
                choices = [(p.title, p.key) for p in step.panels]
                left, right = "bicubic", models[0].entry.name
                state = {"files": files, "titles": {p.key: p.title for p in step.panels}}
                yield (*images, table, list(files.values()), self.zoom(state, left, right),
                       gr.Dropdown(choices=choices, value=left), gr.Dropdown(choices=choices, value=right), state)
                return
        except Exception:
            yield self.cleared(family)  # a run that fails half-way leaves none of its panels beside the error
            raise

    def cleared(self, family: str | None = None) -> tuple:
        """Compare's outputs with nothing in them: each panel of `family` empty under its title, no
        table, no files, no zoom. The page shows this when a run starts (before any check, so that a
        refusal leaves nothing of the previous image on screen) and when a run fails half-way."""
        panels = [gr.Image(value=None, label=self.titles[k], visible=self._shown(k, family)) for k in self.panel_keys]
        return (*panels, "", None, gr.ImageSlider(value=None, label="Zoom"), gr.Dropdown(choices=[], value=None),
                gr.Dropdown(choices=[], value=None), None)

    def _shown(self, key: str, family: str | None) -> bool:
        """Whether Compare shows a panel for `family` (the other families' models are hidden)."""
        family = family if family in self.families else self.default_family
        return key in ("input", "bicubic", "original") or key in {m.entry.name for m in self.families[family]}

    def _panel_image(self, key, panel, file, mode, family: str | None = None):
        """A panel as shown: its picture under its title and one figure (Panel.caption), or an
        empty panel while its model runs."""
        if panel is not None:
            return gr.Image(value=file, label=panel.caption(), visible=True)
        if key == "original" and mode != "degrade":
            return gr.Image(value=None, visible=False)
        if not self._shown(key, family):
            return gr.Image(value=None, visible=False)  # the other family's panel
        return gr.Image(value=None, label=f"{self.titles[key]} (restoring…)", visible=True)

    def zoom(self, state, left: str, right: str):
        """The two chosen panels at full resolution in the before/after slider."""
        if not state or left not in state["files"] or right not in state["files"]:
            return gr.ImageSlider(value=None)
        try:
            pair = slider_files(state["files"][left], state["files"][right])  # files: nothing is re-encoded
        except OSError:  # removed by the sweep of old outputs
            raise _error("These panels are no longer kept on the server; please run the comparison again.") from None
        return gr.ImageSlider(value=tuple(map(str, pair)), label=f"{state['titles'][left]}  ◀ ▶  {state['titles'][right]}")

    def suggest_family(self, upload):
        """The family to compare an image with: the lesson's for Tiny ImageNet-sized thumbnails,
        photos otherwise (only among the families that loaded)."""
        if not upload:
            return gr.skip()
        try:
            path, _ = _upload_path(upload)
            return gr.Radio(value=family_for_image(path, list(self.families)))
        except (gr.Error, OSError, ValueError):
            return gr.skip()  # Compare itself says what is wrong with the upload

    # ---------------------------------------------------------------------------- Judge

    def _serve(self, image: Image.Image) -> str:
        """A judge's picture as a PNG with a fresh random name and a random nonce in its bytes:
        the URL Gradio serves it under (a hash of the bytes, and the name) is new every time, so it
        cannot name the model; the file carries no other metadata."""
        folder = self.outputs / "judge"
        folder.mkdir(exist_ok=True)
        path = folder / f"{secrets.token_hex(12)}.png"
        info = PngImagePlugin.PngInfo()
        info.add_text("nonce", secrets.token_hex(16))
        image.save(path, pnginfo=info, compress_level=1)
        return str(path)

    def _battle_outputs(self, session, browser, request, message: str, previous=(None, None)):
        """The page's Judge outputs (JUDGE_OUTPUTS) for a new pair, with `message` and the thumbnails
        of the `previous` pair (`gr.Image` updates, or None for none) above it."""
        if self.arena is None:
            raise _error("Judging needs at least one image in the judge's pool.")
        client = self.client(request, browser)
        try:
            scene = self.scenes.take(timeout=60, avoid=self.recent.of(client.judge_key))
        except TimeoutError:
            raise _error("The first pairs are still being prepared; please try again in a few seconds.") from None
        a, b = self.arena.draw_pair(scene.outputs)  # within the scene's family, and bicubic
        try:
            with _store_reachable():
                battle = self.arena.issue(session, client, (scene.image_id, scene.degradation, a, b))
        except Refused as e:
            raise _error(str(e)) from None
        self.recent.add(client.judge_key, scene.image_id)
        original = self._serve(scene.original) if self.settings.show_original else None
        side_a, side_b = self._serve(scene.outputs[a.name]), self._serve(scene.outputs[b.name])
        shown = {"token": battle.token, "A": side_a, "B": side_b}
        return (session, battle.token, self._serve(scene.low), original, side_a, side_b, message,
                self._progress_text(session), shown, *[p or gr.Image(value=None, visible=False) for p in previous])

    def _progress_text(self, session) -> str:
        with _store_reachable():
            n = self.arena.votes_cast(session) if self.arena else 0
        return f"Votes you have cast this session: **{n}**"

    def remember_browser(self, browser):
        """On page load: the judge's browser id from localStorage, made on the first visit."""
        if not isinstance(browser, str) or not browser.startswith("b-") or len(browser) > 64:
            browser = new_browser_id()
        return browser, browser

    def next_pair(self, session, token, browser=None, request: gr.Request = None):
        """A new blind pair for this judge (and a pseudonymous session id on the first call); it
        replaces the judge's current pair."""
        return self._battle_outputs(_session_id(session), browser, request, "")

    def start_judging(self, session, token, browser=None, request: gr.Request = None):
        """On opening the Judge tab: a pair, unless one is already waiting for a vote."""
        with _store_reachable():
            if token and session and self.arena and self.arena.pending(session):
                return (gr.skip(),) * len(JUDGE_OUTPUTS)
        return self.next_pair(session, token, browser, request)

    def vote(self, answer, session, token, browser=None, shown=None, request: gr.Request = None):
        """Record a vote on the current pair and show the next pair, with the pair just judged
        above it: its two pictures (`shown`, the files the page showed) under the models' names,
        and what the judge said. `answer` is a button's label or one of A, B, tie, both_bad."""
        if isinstance(answer, str):
            answer = ANSWERS.get(answer, answer)
        if self.arena is None:
            raise _error("Judging needs at least one image in the judge's pool.")
        with _store_reachable():  # accepted means committed: the reveal comes only after the commit
            result = self.arena.vote(token, session, answer, self.client(request, browser))
        if result.keep_pair:
            _warn(result.message)
            return (session, token, *[gr.skip()] * 4, result.message, self._progress_text(session), gr.skip(),
                    *[gr.Image(value=None, visible=False)] * 2)
        if not result.accepted:
            _warn(result.message)
            return self._battle_outputs(_session_id(session), browser, request, result.message)
        b = result.battle
        reveal = (f"**Your last pair** (above: image `{b.image_id}`, degraded by {degrade.title(b.degradation)}): "
                  f"you said {SAID[answer]}; A was **{b.a.title}**, B was **{b.b.title}**. The next pair is below.")
        return self._battle_outputs(session, browser, request, reveal, judged_thumbnails(b, shown))

    # ---------------------------------------------------------------------------- Leaderboard

    def _flagged(self, rows) -> dict[str, str]:
        return flag_judges(rows, self.flag_rules)

    def leaderboard(self, degradation: str = "all", family: str = "all"):
        """(summary, ranking table, win-rate matrix), over every degradation or one of them, every
        model family or one of them (its models and bicubic). Votes of judges flagged as
        implausible are left out, and counted in the summary."""
        if degradation not in ("all", *degrade.STANDARD):
            raise _error(f"Unknown degradation {str(degradation)[:40]!r}: choose all or one of "
                         f"{', '.join(degrade.STANDARD)}.")
        if family not in ("all", *self.families):
            raise _error(f"Unknown model family {str(family)[:40]!r}: choose all or one of {', '.join(self.families)}.")
        with _store_reachable():
            rows = self.store.judge_outcomes(self.flag_rules.fast_seconds)
        flagged = self._flagged(rows)
        outcomes, left_out = counted_outcomes(rows, flagged, None if degradation == "all" else degradation)
        members = self.models if family == "all" else self.families[family]
        names = [m.entry.name for m in members] + [ANCHOR]
        if family != "all":  # a family's battles: its models against each other and bicubic
            outcomes = [o for o in outcomes if o[0] in names and o[1] in names]
        names += sorted({n for a, b, _, _ in outcomes for n in (a, b)} - set(names))  # models no longer served
        board = fit_leaderboard(outcomes, names, rounds=self.settings.bootstrap_rounds, anchor=ANCHOR,
                                left_out=left_out)
        per_degradation = defaultdict(int)
        for judge, deg, _a, _b, _answer, n, _fast in rows:
            if judge not in flagged:
                per_degradation[deg] += n
        title = lambda n: self.titles.get(n, n)
        # The automatic witnesses beside the votes, each with its own rank (restoration/witnesses.py).
        scores = witness_scores(self.evaluation, degradation)
        rows = ranking_rows(board, scores, title, MIN_VOTES)
        headers, matrix = win_rate_rows(board, title)
        human = {n: float(r) for n, r in zip(board.names, board.rating) if n in scores}
        enough = all(v >= MIN_VOTES for n, v in zip(board.names, board.votes) if n in human and n != board.anchor)
        said = agreement(human, scores, enough and board.total_votes > 0)
        return (self._leaderboard_summary(board, degradation, per_degradation, len(set(flagged)), said),
                gr.Dataframe(value=rows, headers=LEADERBOARD_HEADERS),
                gr.Dataframe(value=matrix, headers=headers))

    def _leaderboard_summary(self, board, degradation: str, per_degradation: dict, judges_flagged: int,
                             agreement_line: str = "") -> str:
        which = "" if degradation == "all" else f" on inputs degraded by {degrade.title(degradation)}"
        lines = [(f"**{board.total_votes}** valid votes{which}. Bradley–Terry ratings (Elo scale, maximum "
                  f"likelihood; a tie or “both bad” counts as half a win each), with 95% bootstrap intervals over "
                  f"{self.settings.bootstrap_rounds} resamples of the votes. Bicubic is the anchor: its rating is "
                  f"pinned at 1000, so ratings keep their meaning as votes and models are added. Models share a "
                  f"rank while their intervals overlap; a model with fewer than {MIN_VOTES} votes has no interval "
                  f"yet."),
                 (f"**{board.left_out}** votes left out: {judges_flagged} judge(s) answered implausibly for a person "
                  f"(the same answer ≥{self.flag_rules.same_answer_share:.0%} of the time, "
                  f"≥{self.flag_rules.fast_share:.0%} of votes under {self.flag_rules.fast_seconds:g} s, or one "
                  f"model picked ≥{self.flag_rules.model_share:.0%} of the time, over at least "
                  f"{self.flag_rules.min_votes} votes).")]
        if per_degradation:
            lines.append("Votes by degradation: " + " · ".join(
                f"{_degradation_title(d)}: {per_degradation.get(d, 0)}" for d in sorted(per_degradation)))
        if self.evaluation:
            ev = self.evaluation
            over = ("averaged over the degradations it ran" if degradation == "all"
                    else f"under {_degradation_title(degradation)}")
            lines.append(f"PSNR (pooled), SSIM and semantic fidelity, {over}: `{ev.get('command', 'python -m restoration.evaluate')}` "
                         f"on {ev.get('images', '?')} images. Semantic fidelity is the share of the originals' top-1 "
                         "accuracy that an independent judge classifier (trained apart from every U-Net) keeps on "
                         "each method's output: how much of what the picture shows survives.")
            lines.append(agreement_line)
        else:
            lines.append("No evaluation figures yet: run `python -m restoration.evaluate --json "
                         "weights/evaluation.json` to show PSNR, SSIM and semantic fidelity beside the human ranking.")
        return "\n\n".join(lines)

    def export_votes(self) -> str:
        """The public CSV of the votes up to the export's cut (`VoteStore.write_public_csv`: nothing
        that links votes to a judge). The cut, kept in the vote store, moves only after
        `export_every` new votes, so until then every replica serves the same votes, and this
        one the file it already wrote (a click costs nothing)."""
        with self._export_lock, _store_reachable():
            cut = self.store.export_cut(self.settings.export_every)
            folder = self.outputs / "export"
            folder.mkdir(exist_ok=True)
            file = folder / f"votes-up-to-{cut}.csv"
            if not file.exists():
                flagged = self._flagged(self.store.judge_outcomes(self.flag_rules.fast_seconds, up_to_id=cut))
                partial = file.with_suffix(".partial")
                self.store.write_public_csv(partial, flagged, up_to_id=cut,
                                            families={m.entry.name: m.entry.family for m in self.models})
                partial.replace(file)
            return str(file)


def _degradation_title(name: str) -> str:
    """A degradation's title, or its stored name if this version does not know it (imported votes)."""
    try:
        return degrade.title(name)
    except ValueError:
        return name


def judged_thumbnails(battle, shown) -> tuple:
    """The judged pair's two pictures as small labelled images ("A: MSE U-Net"), from the files
    the page showed (`shown`, kept in the session's state); hidden when they are not that pair's
    or have been swept away."""
    if not isinstance(shown, dict) or shown.get("token") != battle.token:
        return gr.Image(value=None, visible=False), gr.Image(value=None, visible=False)
    return tuple(gr.Image(value=shown[side], label=f"{side}: {contender.title}", visible=True)
                 if Path(shown[side]).is_file() else gr.Image(value=None, visible=False)
                 for side, contender in (("A", battle.a), ("B", battle.b)))


def source_label(model) -> str:
    """"Hub org/repo @ 0123456789" or "local weights (sha256 0123abcd…)": which copy is serving."""
    if model.source == "hub":
        return f"Hub {model.entry.hub_repo} @ {model.revision[:10]}"
    fallback = f" ({model.fallback})" if model.fallback else ""  # e.g. "(not published yet)"
    return f"local `{model.entry.folder}` ({model.revision}){fallback}"


# -------------------------------------------------------------------------------------------- UI


def header_markdown(titles: list[str]) -> str:
    """The page's header, naming the models that were loaded (from weights/models.json), so that
    adding a model to the catalogue changes it."""
    names = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    return (f"# {TITLE}\n×2 super-resolution models from fast.ai lesson 23: {names}. Compare them on your own "
            "images, judge them blind, and see whether people agree with PSNR.")


def build_app(app: ArenaApp) -> gr.Blocks:
    s = app.settings
    # No analytics: the app calls no third party, and judges are not tracked.
    with gr.Blocks(title=TITLE, delete_cache=(min(s.output_max_age, 3600), s.output_max_age),
                   analytics_enabled=False) as demo:
        gr.Markdown(header_markdown([m.entry.title for m in app.models]), elem_id="header")
        gr.Markdown("Checkpoints: " + " · ".join(f"{m.entry.title}: {source_label(m)}" for m in app.models),
                    elem_id="sources")
        with gr.Accordion("Where each model came from", open=False):
            gr.Markdown(app.provenance(), elem_id="provenance")

        # The judge's browser id, kept in localStorage so that a new session (a reload) is the same
        # judge; copied into a State on load so the API's endpoints do not ask for it. Outside the
        # tabs: a component in a tab not yet shown is not mounted, and would not read its storage.
        stored_browser, browser = gr.BrowserState(None, storage_key=BROWSER_KEY), gr.State(None)
        demo.load(app.remember_browser, stored_browser, [browser, stored_browser], api_visibility="private",
                  queue=False)

        with gr.Tab("Compare"):
            with gr.Row():
                with gr.Column(scale=1, min_width=280):
                    upload = gr.Image(label="Image", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                                      format="png", elem_id="upload")
                    mode = gr.Radio(MODES, value="degrade", label="Mode",
                                    info="Degrade: the image is the original; it is downscaled ×2 and restored. "
                                         "Upscale: the image is the low-resolution input.")
                    degradation = gr.Dropdown([(degrade.title(d), d) for d in degrade.STANDARD], value="lesson",
                                              label="How the low-resolution image is made (Degrade mode)",
                                              info="The lesson's bilinear, an editor's bicubic, or bilinear then a "
                                                   "JPEG thumbnail: see how each model copes.")
                    family = gr.Radio([(FAMILIES[f], f) for f in app.families], value=app.default_family,
                                      label="Models trained on", visible=len(app.families) > 1, elem_id="family",
                                      info="Photos: U-Nets trained on full-resolution photo patches. Tiny ImageNet: "
                                           "the lesson's U-Nets, trained on 64×64 thumbnails.")
                    # Off by default: a Tiny ImageNet classifier names *some* class for any picture
                    # ("Chihuahua" for an astronaut), which alarms more than it informs on first contact.
                    show_judge = gr.Checkbox(value=False, visible=app.judge is not None, elem_id="show-judge",
                                             label="Add the judge classifier's Tiny ImageNet class to the table",
                                             info="The independent judge classifier's top class of Tiny ImageNet's "
                                                  "200 (small pictures of one object) for each panel, with its "
                                                  "probability; marked unsure under "
                                                  f"{UNSURE_BELOW:.0%}. Meaningless for photos unlike those.")
                    run = gr.Button("Restore", variant="primary", elem_id="run")
                    gr.Markdown(f"Large images are restored in overlapping {s.tile_size}-pixel tiles; the limit "
                                f"is {s.max_pixels / 1e6:.1f} megapixels of output. Panels appear as each is ready.")
                    if app.examples:
                        gr.Examples([[str(p)] for p in app.examples], inputs=[upload], examples_per_page=12,
                                    label="Examples")
                with gr.Column(scale=3):
                    # The input, bicubic and the original on top; each family's models on a row of their own
                    # (Compare shows one family, so the other's row is hidden).
                    rows = [["input", "bicubic", "original"]] + [[m.entry.name for m in ms] for ms in app.families.values()]
                    shown = set(rows[0]) | {m.entry.name for m in app.families[app.default_family]}
                    by_key = {}
                    for row in rows:
                        with gr.Row():
                            for key in row:
                                by_key[key] = gr.Image(label=app.titles[key], type="filepath", format="png",
                                                       interactive=False, elem_classes=["panel"], height=PANEL_HEIGHT,
                                                       elem_id=f"panel-{key}", buttons=["download", "fullscreen"],
                                                       visible=key in shown)
                    panels = [by_key[k] for k in app.panel_keys]
                    table = gr.Markdown(elem_id="scores")
            with gr.Row():
                left = gr.Dropdown(label="Zoom: left", choices=[], scale=1)
                right = gr.Dropdown(label="Zoom: right", choices=[], scale=1)
            slider = gr.ImageSlider(label="Zoom", format="png", type="pil", interactive=False, max_height=900,
                                    elem_classes=["panel"])
            files = gr.File(label="Download every output (PNG)", file_count="multiple", interactive=False)
            compared = gr.State(None)
            compare_outputs = [*panels, table, files, slider, left, right, compared]
            # The page is cleared first, outside the queue, so that nothing of the last image stays
            # on screen while the new one streams in or beside a refusal.
            upload.change(app.suggest_family, upload, family, api_visibility="private", queue=False)
            run.click(app.cleared, family, compare_outputs, queue=False, show_progress="hidden",
                      api_visibility="private").then(
                app.compare, [upload, mode, degradation, show_judge, family], compare_outputs, api_name="compare",
                preprocess=False, concurrency_id="compare", concurrency_limit=s.concurrency + COMPARE_WAITING_ROOM,
                show_progress_on=table)
            for dropdown in (left, right):
                dropdown.input(app.zoom, [compared, left, right], slider, api_visibility="private")

        with gr.Tab("Judge") as judge_tab:
            gr.Markdown("Which restoration of the low-resolution input looks better? The models are hidden until "
                        "you vote. Look closely (use the fullscreen button), then answer.")
            progress_text = gr.Markdown(elem_id="judge-progress")
            # The pair just judged, with its models' names, sits here, above the next pair: the
            # reveal belongs to the pictures it describes.
            with gr.Row(elem_id="judged"):
                thumb = {"interactive": False, "format": "png", "elem_classes": ["panel"], "height": THUMB_HEIGHT,
                         "visible": False, "buttons": [], "min_width": 120}
                judged_a = gr.Image(label="A", elem_id="judged-a", scale=1, **thumb)
                judged_b = gr.Image(label="B", elem_id="judged-b", scale=1, **thumb)
                reveal = gr.Markdown(elem_id="reveal")
            with gr.Row():
                shown = {"interactive": False, "format": "png", "elem_classes": ["panel"], "height": JUDGE_HEIGHT,
                         "buttons": ["fullscreen"]}
                low = gr.Image(label="Low-resolution input", **shown)
                original = gr.Image(label="Original", visible=s.show_original, **shown)
                side_a = gr.Image(label="A", elem_id="side-a", **shown)
                side_b = gr.Image(label="B", elem_id="side-b", **shown)
            with gr.Row():
                buttons = [gr.Button(label, variant="primary" if label.endswith("better") else "secondary",
                                     elem_id=f"vote-{answer}") for label, answer in ANSWERS.items()]
            skip = gr.Button("Skip this pair", size="sm")
            session, token, pair_files = gr.State(None), gr.State(None), gr.State(None)
            battle_outputs = [session, token, low, original, side_a, side_b, reveal, progress_text, pair_files,
                              judged_a, judged_b]  # as JUDGE_OUTPUTS
            # The judge's lane: no model runs here (the scene pool renders ahead), so a judge never
            # waits behind a Compare request.
            lane = {"concurrency_id": "judge", "concurrency_limit": JUDGE_LANE_LIMIT}
            judge_tab.select(app.start_judging, [session, token, browser], battle_outputs, api_name="judge_on_open",
                             api_visibility="private", **lane)
            skip.click(app.next_pair, [session, token, browser], battle_outputs, api_name="judge", **lane)
            for answer, button in zip(ANSWERS.values(), buttons):
                button.click(app.vote, [button, session, token, browser, pair_files], battle_outputs,
                             api_name=f"vote_{answer}", api_visibility="private", trigger_mode="once", **lane)
            # The API's way to vote (a client cannot press a button): /vote with the answer as text.
            answer_text = gr.Textbox(visible=False, label="answer")
            answer_text.submit(app.vote, [answer_text, session, token, browser, pair_files], battle_outputs,
                               api_name="vote", **lane)

        with gr.Tab("Leaderboard") as board_tab:
            which = gr.Radio([("All degradations", "all")] + [(degrade.title(d), d) for d in degrade.STANDARD],
                             value="all", label="Votes on inputs degraded by", elem_id="board-degradation")
            board_family = gr.Radio([("All models", "all")] + [(FAMILIES[f], f) for f in app.families],
                                    value="all", label="Models trained on", elem_id="board-family",
                                    visible=len(app.families) > 1)
            summary = gr.Markdown(elem_id="board-summary")
            ranking = gr.Dataframe(headers=LEADERBOARD_HEADERS, interactive=False, elem_id="ranking")
            gr.Markdown("Win rates from the votes (ties count half):")
            matrix = gr.Dataframe(interactive=False, elem_id="win-rates")
            with gr.Row():
                refresh = gr.Button("Refresh", size="sm")
                export = gr.Button("Export all votes (CSV)", size="sm")
            csv_file = gr.File(label="Votes (CSV)", interactive=False)
            board = {"concurrency_id": "leaderboard", "concurrency_limit": 2}
            board_tab.select(app.leaderboard, [which, board_family], [summary, ranking, matrix],
                             api_name="leaderboard_on_open", api_visibility="private", **board)
            refresh.click(app.leaderboard, [which, board_family], [summary, ranking, matrix], api_name="leaderboard",
                          **board)
            for choice in (which, board_family):
                choice.input(app.leaderboard, [which, board_family], [summary, ranking, matrix], api_visibility="private",
                             **board)
            export.click(app.export_votes, None, csv_file, api_name="export_votes", **board)
    return demo


def launch(demo: gr.Blocks, settings: Settings, **kwargs):
    """Start serving through the queue. Each event names its lane (concurrency_id): Compare runs the
    models (`CompareLane` bounds them at `settings.concurrency`, each using `settings.threads`
    cores), Judge only serves pre-rendered pairs, the leaderboard fits ratings."""
    demo.queue(default_concurrency_limit=settings.concurrency, max_size=256)
    # The largest upload worth receiving: an uncompressed 16-bit RGBA image at the pixel limit.
    max_file_size = settings.max_pixels * 8 + (1 << 20)
    return demo.launch(css=CSS, max_file_size=max_file_size, run_history=False, **kwargs)


def main():
    started = time.perf_counter()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    log.setLevel(logging.INFO)  # our one-line refusals; not every HTTP request of the libraries
    try:
        settings = Settings.from_env()
        check_path(settings.votes_db)  # before the models load: a bad path fails in a second
    except (SettingsError, VoteStoreError) as e:
        raise SystemExit(f"Cannot start: {e}") from None
    torch.set_num_threads(settings.threads)
    try:
        models, problems = load_available_restorers(settings.weights_dir, settings.model_source)
    except CheckpointError as e:
        raise SystemExit(f"Cannot start: {e}") from None
    if not models:
        raise SystemExit(f"Cannot start: no restorer in {settings.weights_dir}/models.json could be loaded.\n"
                         + "\n".join(problems) + "\nTrain and export the models, or set RESTORATION_WEIGHTS_DIR.")
    for line in [m.note for m in models] + problems:
        print(line)
    judge, judge_problem = load_judge(settings.weights_dir, settings.model_source)
    if judge_problem:
        print(judge_problem)
    sync = start_vote_sync(settings)  # before the store opens the database: it may restore it
    try:
        choice = choose_engine(models, settings)  # the start-up self-check: fp32 or bf16, measured here
        print(choice.line, flush=True)
        app = ArenaApp(settings, models, problems, judge=judge,
                       restorers=restorers_for(models, settings, precision=choice.precision))
    except (VoteStoreError, OSError) as e:
        if sync:
            sync.close()
        raise SystemExit(f"Cannot start: {e}") from None
    if settings.fast:
        # The page serves at once; until this finishes, requests run the models eagerly.
        print("fast path: warming up in the background", flush=True)
        app.warm_up(lambda seconds: print(f"fast path: warmed up in {seconds:.1f} s ({time.perf_counter() - started:.1f} s "
                                          f"after start-up); " + "; ".join(
                                              f"{n}: {r.status}" for n, r in app.restorers.items()), flush=True))
    demo = build_app(app)
    # A Space (or a service manager) stops the app with SIGTERM: end it like Ctrl-C, so that the
    # temporary files are removed and the votes pushed on the way out.
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        launch(demo, settings)
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        app.close()
        remove_served_copies(demo)
        if sync:
            sync.close()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def remove_served_copies(demo: gr.Blocks):
    """Delete the copies Gradio made in its cache of the files this app served (it keeps them
    after Ctrl-C), and the folders it made for them."""
    for files in demo.temp_file_sets:
        for file in list(files):
            path = Path(file)
            path.unlink(missing_ok=True)
            try:
                path.parent.rmdir()  # Gradio's per-file folder, once empty
            except OSError:
                pass


if __name__ == "__main__":
    main()
