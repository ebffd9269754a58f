"""The Submit tab's handler, a part of `ArenaApp` (restoration/arena/app_state.py), and the
community models joining a running app: a submission on this replica, or the vote store's approved
and pending ones once it answers."""

import threading

from restoration.arena.store import VoteStoreError
from restoration.arena.submissions import submit_from_page
from restoration.hub.catalogue import by_family, contenders_of
from restoration.inference.runner import restorers_for

COMMUNITY_NOT_LOADED = "community models: not loaded yet"  # the start-up line while the store does not answer
COMMUNITY_RETRY_SECONDS = 15.0


class SubmitTab:
    """ArenaApp's Submit handler and community models (its settings, store, models, titles,
    restorers, families and `_start_judging` are made by `ArenaApp`)."""

    def submit(self, spec: str, family: str, browser=None, request=None) -> dict:
        """The Submit tab: what happened (Markdown), and the submission's panels on an example."""
        text, gallery, loaded = submit_from_page(self.store, spec, family, self.client(request, browser).address_key,
                                                 self.settings, self.fidelity, self.models, self.examples)
        if loaded is not None:  # in this replica's Compare now: its scores, zoom and files (its panel after a restart)
            self.adopt([loaded])
        return {"outcome": text, "preview": gallery}

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
