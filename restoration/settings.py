"""Every setting, read from environment variables in this one place, with defaults that run the
app offline on the shipped weights."""

import dataclasses
import os
from pathlib import Path

from restoration.cpus import usable_cpus

REPO = Path(__file__).resolve().parent.parent
PERSISTENT = Path("/data")  # a Space's persistent storage, when it has some


def _default_votes_db() -> Path:
    """/data/votes.db on a Space with persistent storage, else votes.db in the repository."""
    if PERSISTENT.is_dir() and os.access(PERSISTENT, os.W_OK):
        return PERSISTENT / "votes.db"
    return REPO / "votes.db"


def _env(name, default, kind=str):
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if kind is bool:
        if raw.lower() not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            raise ValueError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")
        return raw.lower() in ("1", "true", "yes", "on")
    try:
        return kind(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a {kind.__name__}") from None


@dataclasses.dataclass(frozen=True)
class Settings:
    weights_dir: Path = REPO / "weights"
    model_source: str = "local"  # "hub": pull each model from the Hub at its pinned revision
    examples_dir: Path = REPO / "examples"
    val_dir: Path = REPO.parent / "shared" / "data" / "tiny-imagenet-200"
    tile_pixels: int = 1 << 20  # outputs above this many pixels are restored in tiles
    max_pixels: int = 1 << 22  # outputs above this are refused (4.2 megapixels)
    tile_size: int = 512
    tile_overlap: int = 32
    threads: int = dataclasses.field(default_factory=usable_cpus)  # CPUs this process may use (cpus.py)
    concurrency: int = 1  # requests that run models at the same time
    votes_db: Path = dataclasses.field(default_factory=_default_votes_db)
    votes_repo: str | None = None  # a Hub dataset repo that keeps snapshots of the votes
    votes_sync_minutes: float = 5.0  # how often a snapshot is pushed there (and once at shutdown)
    show_original: bool = False  # show the original beside the judge's pair
    min_vote_seconds: float = 2.0  # votes faster than this after the pair appeared are rejected
    votes_per_minute: int = 20  # per judge session
    judge_val_pool: int = 200  # val images in the judge's pool, beside the examples
    bootstrap_rounds: int = 200

    @classmethod
    def from_env(cls, **overrides):
        d = cls()
        values = dict(
            weights_dir=Path(_env("RESTORATION_WEIGHTS_DIR", d.weights_dir)),
            model_source=_env("RESTORATION_MODEL_SOURCE", d.model_source),
            examples_dir=Path(_env("RESTORATION_EXAMPLES_DIR", d.examples_dir)),
            val_dir=Path(_env("RESTORATION_VAL_DIR", d.val_dir)),
            tile_pixels=_env("RESTORATION_TILE_PIXELS", d.tile_pixels, int),
            max_pixels=_env("RESTORATION_MAX_PIXELS", d.max_pixels, int),
            tile_size=_env("RESTORATION_TILE_SIZE", d.tile_size, int),
            tile_overlap=_env("RESTORATION_TILE_OVERLAP", d.tile_overlap, int),
            threads=_env("RESTORATION_THREADS", d.threads, int),
            concurrency=_env("RESTORATION_CONCURRENCY", d.concurrency, int),
            votes_db=Path(_env("RESTORATION_VOTES_DB", d.votes_db)),
            votes_repo=_env("RESTORATION_VOTES_REPO", d.votes_repo),
            votes_sync_minutes=_env("RESTORATION_VOTES_SYNC_MINUTES", d.votes_sync_minutes, float),
            show_original=_env("RESTORATION_SHOW_ORIGINAL", d.show_original, bool),
            min_vote_seconds=_env("RESTORATION_MIN_VOTE_SECONDS", d.min_vote_seconds, float),
            votes_per_minute=_env("RESTORATION_VOTES_PER_MINUTE", d.votes_per_minute, int),
            judge_val_pool=_env("RESTORATION_JUDGE_VAL_POOL", d.judge_val_pool, int),
            bootstrap_rounds=_env("RESTORATION_BOOTSTRAP_ROUNDS", d.bootstrap_rounds, int),
        ) | overrides
        if values["model_source"] not in ("local", "hub"):
            raise ValueError(f"RESTORATION_MODEL_SOURCE must be 'local' or 'hub', got {values['model_source']!r}")
        if values["votes_sync_minutes"] <= 0:
            raise ValueError(f"RESTORATION_VOTES_SYNC_MINUTES must be positive, got {values['votes_sync_minutes']}")
        return cls(**values)
