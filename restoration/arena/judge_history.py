"""What the arena remembers of each judge: the scenes of their last pairs (not shown again while
there are others) and which family's pair is due next (restoration/arena/scenes.py)."""

import random
import threading
from collections import OrderedDict, deque
from collections.abc import Mapping

from restoration.arena.scene_renderer import Scene

RECENT_PAIRS = 10  # a judge's last pairs whose crops are not shown to them again (while there are others)
MAX_OWED = 1.0  # pairs a family due for a judge, but not ready, is owed at most (JudgeHistory)


class JudgeHistory:
    """Per judge: the scenes (image, crop) of their last `keep` pairs, oldest first, and which
    family's pair is due next; at most `max_judges` judges are remembered (the least recently seen
    are forgotten first).

    Families take turns by their `shares` (a smooth weighted round robin): every pair adds each
    family's share to its credit and takes 1 from the family served, and the family with the most
    credit is due. Of any n consecutive pairs of one judge, a family with share s then has s·n
    within one either way (two families; while it has a ready scene when due: a pair of another
    family leaves it due, owed at most one pair, so that it does not come in a burst later).
    Credits start at random, so that judges who only look at one pair see every family too."""

    def __init__(self, shares: Mapping[str, float] | None = None, keep: int = RECENT_PAIRS,
                 max_judges: int = 100_000, rng: random.Random | None = None):
        self.shares = dict(shares or {})
        self.keep, self.max_judges = keep, max_judges
        self.rng = rng or random.Random()
        self._judges: OrderedDict[str, tuple[deque, dict]] = OrderedDict()  # judge → (recent keys, credits)
        self._lock = threading.Lock()

    def recent(self, judge: str) -> list[tuple]:
        """The keys (`Scene.key`) of the judge's last pairs, oldest first."""
        with self._lock:
            seen, _ = self._judges.get(judge, ((), None))
            return list(seen)

    def families(self, judge: str) -> list[str]:
        """The families, the one due for this judge's next pair first."""
        with self._lock:
            credit = self._of(judge)[1]
        return sorted(self.shares, key=lambda f: -(credit[f] + self.shares[f]))

    def add(self, judge: str, scene: Scene):
        """The judge was shown `scene`."""
        with self._lock:
            seen, credit = self._of(judge)
            seen.append(scene.key)
            for f, share in self.shares.items():
                credit[f] += share
            if scene.family in credit:
                credit[scene.family] -= 1
            for f in credit:
                credit[f] = max(-MAX_OWED, min(MAX_OWED, credit[f]))
            self._judges[judge] = seen, credit
            while len(self._judges) > self.max_judges:
                self._judges.popitem(last=False)

    def _of(self, judge: str) -> tuple[deque, dict]:
        """The judge's record, now the most recently seen (call holding the lock)."""
        record = self._judges.pop(judge, None) or (deque(maxlen=self.keep),
                                                   {f: self.rng.random() for f in self.shares})
        self._judges[judge] = record
        return record
