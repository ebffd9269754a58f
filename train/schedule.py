"""How long a run trains and at what learning rate: the one-cycle schedule, and `Schedule`, which
spans --epochs or --minutes and estimates the time left for the progress bar and the epoch lines."""

import math
import time


def one_cycle(step: int, total: int, max_lr: float, warmup: float = 0.25, div: float = 25.0, final_div: float = 1e4):
    """The learning rate of a one-cycle schedule: cosine warm-up from max_lr/div, cosine anneal."""
    t = step / max(total, 1)
    if t < warmup:
        lo, hi, p = max_lr / div, max_lr, t / warmup
    else:
        lo, hi, p = max_lr, max_lr / final_div, (t - warmup) / (1 - warmup)
    return lo + (hi - lo) * (1 - math.cos(math.pi * min(p, 1.0))) / 2


class Schedule:
    """How far the run is through its one-cycle schedule (0 → 1) and how long it has left. The
    schedule spans --epochs (in steps) or --minutes of training (validation excluded), whichever
    ends first; the estimates live here so that `fit` reads as the loop it is."""

    def __init__(self, config, state: dict, steps_per_epoch: int):
        self.config, self.state, self.steps_per_epoch = config, state, steps_per_epoch
        self.epoch_seconds = None  # the last whole epoch (training + validation) of this session

    def progress(self) -> float:
        parts = [0.0]
        if self.config.epochs:
            parts.append(self.state["global_step"] / max(self.steps_per_epoch * self.config.epochs, 1))
        if self.config.minutes:
            parts.append(self.state["train_seconds"] / (self.config.minutes * 60))
        return max(parts)

    def done(self) -> bool:
        epochs = self.config.epochs
        return self.progress() >= 1 or (epochs is not None and self.state["epoch"] >= epochs)

    def count_step(self, since: float) -> float:
        """Count a step that began at `since` (its seconds count towards --minutes); returns now."""
        now = time.time()
        self.state.update(step_in_epoch=self.state["step_in_epoch"] + 1, global_step=self.state["global_step"] + 1,
                          train_seconds=self.state["train_seconds"] + now - since)
        return now

    def lr(self) -> float:
        return one_cycle(self.progress(), 1, self.config.lr)

    def label(self, epoch: int) -> str:
        return f"epoch {epoch + 1}" + (f"/{self.config.epochs}" if self.config.epochs else "")

    def _epochs_after(self, epoch: int) -> float:
        return self.config.epochs - epoch - 1 if self.config.epochs else math.inf

    def _minutes_left(self) -> float:
        return max(0.0, self.config.minutes * 60 - self.state["train_seconds"]) if self.config.minutes else math.inf

    def bar_left(self, epoch: int, steps_left: int, step_seconds: float) -> str:
        """The bar's estimate of the whole run's time left; "~" until a whole epoch has been timed."""
        per_epoch = self.epoch_seconds or self.steps_per_epoch * step_seconds
        left = min(steps_left * step_seconds + self._epochs_after(epoch) * per_epoch, self._minutes_left())
        return ("~" if self.epoch_seconds is None else "") + format_duration(left)

    def after_epoch(self, epoch: int, seconds: float) -> str | None:
        """The line printed after an epoch, e.g. "about 4:05 left: 1 epoch(s) × 4:05 (...)"."""
        if self.done() or not self._epochs_after(epoch):
            return None
        per_epoch = self.epoch_seconds or seconds
        left = self._epochs_after(epoch) * per_epoch
        how = (f"{self._epochs_after(epoch)} epoch(s) × {format_duration(per_epoch)} "
               "(this epoch's training and validation)")
        if self._minutes_left() < left:
            left, how = self._minutes_left(), "the rest of the --minutes, plus validation"
        return f"about {format_duration(left)} left: {how}"


def format_duration(seconds: float) -> str:
    """4:05 (minutes), 1:02:03 (hours)."""
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"
