"""The app's state and what each of the page's events does, without Gradio (app.py wires it to the
page). Every handler returns (or, streaming, yields) its outputs **by name**, a dict holding only
what changes; a value that is more than a value (a label, visibility, choices) is an `Update`; a
user's mistake is a `Refusal` (one line, shown in the page), a warning the "warning" entry
(restoration/arena/replies.py).

`ArenaApp` is the one object app.py talks to; its handlers live by tab: compare_tab.py (Compare's
panels, table, zoom and files), judge_tab.py (JUDGE_OUTPUTS: blind pairs and votes),
leaderboard_tab.py (a family's board, the votes' CSV), submit_tab.py (a submission, community
models joining); serving.py holds what keeps the server responsive (the Compare lane, requests in
flight, the files written for the page, the collector's heap).
"""

import html
import threading
from pathlib import Path

from restoration.arena.compare_tab import ZOOM_LABEL, CompareTab
from restoration.arena.judge_tab import JUDGE_LANE_LIMIT, JUDGE_OUTPUTS, JUDGE_VIEW, JudgeTab
from restoration.arena.leaderboard import FlagRules
from restoration.arena.leaderboard_tab import LeaderboardTab
from restoration.arena.pairs import Client, client_address, client_keys, load_secret
from restoration.arena.replies import Refusal, Update
from restoration.arena.scenes import scene_images
from restoration.arena.serving import SWITCH_INTERVAL, CompareLane, InFlight, OutputFiles, freeze_heap
from restoration.arena.store import VoteStore
from restoration.arena.submit_tab import COMMUNITY_NOT_LOADED, SubmitTab
from restoration.arena.witnesses import EVALUATIONS, read_evaluation
from restoration.data.uploads import list_images
from restoration.hub.catalogue import FAMILIES, by_family, read_catalog
from restoration.hub.provenance import provenance_markdown
from restoration.inference.compare import Stopwatch
from restoration.inference.runner import restorers_for, warm_up_in_background
from restoration.inference.torch_thread import TorchThread
from restoration.models.checkpoint import CheckpointError
from restoration.settings import Settings

# What app.py, startup.py, the tests and the benchmarks import from here, whichever part defines it.
__all__ = ["ArenaApp", "COMMUNITY_NOT_LOADED", "JUDGE_LANE_LIMIT", "JUDGE_OUTPUTS", "JUDGE_VIEW", "Refusal",
           "SWITCH_INTERVAL", "Update", "ZOOM_LABEL", "freeze_heap"]


class ArenaApp(CompareTab, JudgeTab, LeaderboardTab, SubmitTab):
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
        self.torch_thread = TorchThread()  # app.py's main thread claims it: Compare and warm-up run there
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
        """Compile the fast path, one model at a time on the torch thread, from a background thread
        (requests meanwhile run eagerly, between the models' compiles)."""
        return warm_up_in_background(list(self.restorers.values()), done, run=self.torch_thread.run)
