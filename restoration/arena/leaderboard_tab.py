"""The Leaderboard tab's handlers, a part of `ArenaApp` (restoration/arena/app_state.py): a
family's summary, ranking and win-rate matrix ("summary", "ranking", "matrix"), and the public
CSV of the votes ("csv")."""

from restoration.arena.leaderboard import flag_judges, leaderboard_tables
from restoration.arena.replies import Update, checked, store_reachable
from restoration.data import degrade
from restoration.hub.catalogue import contenders_of


class LeaderboardTab:
    """ArenaApp's Leaderboard handlers (its settings, models, store, boards, evaluations,
    flag_rules, titles and files are made by `ArenaApp.__init__`)."""

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
