"""The Judge tab's handlers, a part of `ArenaApp` (restoration/arena/app_state.py): the arena and
scene pool of the judged models, a blind pair for each judge, a vote recorded and the pair just
judged revealed. Output names: JUDGE_OUTPUTS, its pictures as `Update`s whose `elem_classes` say
the integer zoom they are shown at (JUDGE_VIEW and "zoom-<n>")."""

import secrets
from pathlib import Path

from restoration.arena.judge_history import JudgeHistory
from restoration.arena.pairs import Arena, Contender, Limits, new_browser_id, new_session_id
from restoration.arena.ratings import ANCHOR
from restoration.arena.render_process import RenderProcess
from restoration.arena.replies import HIDDEN, Refusal, Update, store_reachable
from restoration.arena.scene_crops import CROPS_PER_PHOTO
from restoration.arena.scene_renderer import SceneRenderer, crop_text
from restoration.arena.scenes import SceneFamily, ScenePool, family_shares, scene_families
from restoration.arena.store import ANSWER_LABELS, VoteStoreError
from restoration.data import degrade
from restoration.hub.catalogue import by_family, contenders_of

JUDGE_OUTPUTS = ("session", "token", "low", "original", "side_a", "side_b", "reveal", "progress", "shown",
                 "judged_a", "judged_b")
JUDGE_VIEW = "judge-view"  # the class of the Judge's pictures: shown at their own pixels times an integer zoom
JUDGE_LANE_LIMIT = 8  # judge and vote handlers at once: they only write small PNGs and one row
SAID = {"A": "A is better", "B": "B is better", "tie": "a tie", "both_bad": "both bad"}
# After a vote committed, the next pair may still fail: the judge must not read that the vote was lost.
VOTE_KEPT = "Your vote was recorded. The next pair could not be prepared ({why}); press “Skip this pair” to try again."


def session_id(session) -> str:
    """The judge's session id from the page's state, or a new pseudonymous one (first pair, or
    anything else an API client sent)."""
    return session if isinstance(session, str) and session.startswith("s-") else new_session_id()


class JudgeTab:
    """ArenaApp's Judge handlers (its settings, models, store, restorers, image files, files and
    `judging` are made by `ArenaApp.__init__`)."""

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


def judged_thumbnails(battle, shown) -> tuple[Update, Update]:
    """The judged pair's two pictures as small labelled images ("A: MSE U-Net"), from the files
    the page showed (`shown`, kept in the session's state); hidden when they are not that pair's
    or have been swept away."""
    if not isinstance(shown, dict) or shown.get("token") != battle.token:
        return HIDDEN, HIDDEN
    return tuple(Update(shown[side], label=f"{side}: {contender.title}", visible=True)
                 if Path(shown[side]).is_file() else HIDDEN
                 for side, contender in (("A", battle.a), ("B", battle.b)))
