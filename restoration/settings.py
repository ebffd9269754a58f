"""Every setting, read from environment variables in this one place, with defaults that run the
app offline on the shipped weights.

Each field of `Settings` is read from `RESTORATION_<FIELD NAME IN CAPITALS>` (e.g. `threads` from
`RESTORATION_THREADS`), parsed by the field's type and checked against the range in its
metadata, so a new setting needs only a new field. A bad value raises `SettingsError`, whose
message is one line naming the variable, what it got and what it accepts.
"""

import dataclasses
import os
import sys
import types
from pathlib import Path

from restoration.cpus import usable_cpus

REPO = Path(__file__).resolve().parent.parent
PERSISTENT = Path("/data")  # a Space's persistent storage, when it has some
PREFIX = "RESTORATION_"
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
# Old variable → its new name. An old name still works (a deployment's configuration should not
# break on a rename), with one line saying so; when both are set, the new one wins.
RENAMED = {"RESTORATION_JUDGE_VAL_POOL": "RESTORATION_SCENE_VAL_IMAGES", "RESTORATION_BATTLE_POOL": "RESTORATION_SCENE_POOL"}


# The window each precision runs best in on the CPU, when RESTORATION_TILE_SIZE is unset (a GPU's is
# as large as its memory allows: device.py). 576 for the fast path, fp32 and bf16 alike: its 32-pixel
# overlaps run fewer pixels than 320's, and on 2 cores it took less CPU time at 1024² and 2048², for
# about 100 MB more activation memory (bench.tiles; figures in docs/speed.md, "Window size"). There
# it is the largest window: our U-Nets' windows are fitted to each image (runner.py).
# "eager", the reference path (RESTORATION_FAST off: the published evaluations, submissions' scores),
# keeps the 320 its figures were measured in: the seams of other windows move a photo's PSNR a little.
WINDOWS = {"eager": 320, "fp32": 576, "openvino-f32": 320, "bf16": 576, "fp16": 320}


class SettingsError(ValueError):
    """A setting's value is unusable; the message is one line for the person starting the app."""


def _default_votes_db() -> Path:
    """/data/votes.db on a Space with persistent storage, else votes.db in the repository."""
    if PERSISTENT.is_dir() and os.access(PERSISTENT, os.W_OK):
        return PERSISTENT / "votes.db"
    return REPO / "votes.db"


def _votes_target(raw: str) -> Path | str:
    """RESTORATION_VOTES_DB: a URL stays text (a Path would fold its `//`), anything else is a file."""
    return raw if "://" in raw else Path(raw)


def _field(default=dataclasses.MISSING, *, factory=dataclasses.MISSING, min=None, max=None,  # noqa: A002
           choices=None, secret=False, parse=None):
    return dataclasses.field(default=default, default_factory=factory,
                             repr=not secret,  # a secret never shows in a printed Settings
                             metadata={"min": min, "max": max, "choices": choices, "secret": secret, "parse": parse})


@dataclasses.dataclass(frozen=True)
class Settings:
    weights_dir: Path = REPO / "weights"
    model_source: str = _field("local", choices=("local", "hub"))  # "hub": pull each model at its pinned revision
    examples_dir: Path = REPO / "examples"
    val_dir: Path = REPO.parent / "shared" / "data" / "tiny-imagenet-200"
    photo_val_dir: Path = REPO.parent / "shared" / "data" / "photos" / "val"  # the judge's photos, when present
    max_pixels: int = _field(1 << 22, min=4)  # outputs above this are refused (4.2 megapixels)
    # The models see windows of at most tile_size² output pixels (cut on the low-resolution image,
    # half that a side, rounded up to what the model's sides divide by; fitted to each image on the
    # fast path), tile_batch at a time, with ≥ tile_overlap output pixels of context at every seam.
    # Images under half a window run whole. See restoration/inference/runner.py. Unset: the
    # precision's own (`window`, WINDOWS).
    tile_size: int | None = _field(None, min=16)
    tile_overlap: int = _field(32, min=0, max=1024)
    tile_batch: int = _field(1, min=1, max=64)  # 1: compiled batches of 4 windows ran slower on 2 CPU cores
    fast: bool = True  # channels-last, batch norms folded; compiled or in a lower precision (engine.py)
    # "auto": the fastest path that passes the eligibility bar (eligibility.py) at the start-up check:
    # bf16 where the CPU has bfloat16 instructions, fp16 or bf16 on a GPU, else fp32 (compiled);
    # "fp32" forces fp32; "bf16" / "fp16" force that precision where the hardware has it (fp16: CUDA only).
    # engine.py's start-up check says in one line what runs and why.
    engine: str = _field("auto", choices=("auto", "fp32", "bf16", "fp16"))
    simulate_no_bf16: bool = False  # act as a CPU without bfloat16 instructions (the check then keeps fp32)
    device: str = _field("auto", choices=("auto", "cpu", "cuda"))  # auto: CUDA where torch sees a GPU (device.py)
    threads: int = _field(factory=usable_cpus, min=1, max=1024)  # CPUs this process may use (cpus.py)
    concurrency: int = _field(1, min=1, max=64)  # Compare requests that run models at the same time
    compare_per_client: int = _field(2, min=1, max=64)  # a client's Compare requests running or waiting
    # A SQLite file (the default: no server), or postgresql://user@host:port/dbname for several replicas
    votes_db: Path | str = _field(factory=_default_votes_db, parse=_votes_target)
    votes_repo: str | None = None  # a Hub dataset repo that keeps snapshots of the votes
    votes_sync_minutes: float = _field(5.0, min=0.1, max=1440.0)  # how often a snapshot is pushed (and at shutdown)
    show_original: bool = False  # show the original beside the judge's pair
    min_vote_seconds: float = _field(2.0, min=0.0, max=3600.0)  # faster votes are rejected
    # Caps on accepted votes. A judge is one browser (its id held in localStorage) at one address;
    # the address caps bound what fresh sessions or cleared storage can add (see docs/arena.md).
    votes_per_minute: int = _field(20, min=1)  # per judge
    votes_per_day: int = _field(500, min=1)  # per judge
    address_votes_per_minute: int = _field(30, min=1)  # per client address, all its judges together
    address_votes_per_day: int = _field(1000, min=1)
    pairs_per_minute: int = _field(120, min=1)  # new pairs issued per client address
    # The header a trusted reverse proxy sets to the client's address; its last entry is used.
    # On a Hugging Face Space (SPACE_ID is set) that is x-forwarded-for; elsewhere the socket's peer.
    client_header: str = "x-forwarded-for" if os.environ.get("SPACE_ID") else ""
    # HMAC key for the client keys stored with votes; empty: a random key kept in <votes_db>.secret
    # (with PostgreSQL it must be set, the same on every replica: they must key a client alike)
    arena_secret: str = _field("", secret=True)
    # Pre-rendered judge scenes (image × degradation). More than the last pairs a judge is not shown
    # again (scenes.RECENT_PAIRS, 10): a judge sees new images while the pool renders at its pace.
    scene_pool: int = _field(12, min=1, max=64)
    scene_uses: int = _field(6, min=1)  # pairs served from one scene before it is replaced
    # The most of the time the scene pool spends rendering replacements (scenes.py): renders slow
    # down the replies to votes even at the lowest priority.
    scene_share: float = _field(0.25, min=0.01, max=1.0)
    # Render scenes in a child process (render_process.py), not a thread of the app: a render then
    # never holds the interpreter that answers votes. Off: one process (the tests, small machines).
    scene_process: bool = True
    export_every: int = _field(100, min=1)  # new votes before the public CSV is written again
    output_max_age: int = _field(3600, min=60)  # seconds our downloads and judge files are kept
    scene_val_images: int = _field(200, min=0)  # val images among the scene images, beside the examples
    # The share of the Judge's pairs from the photo family (its U-Nets on crops of photos); the rest
    # are the lesson's (on Tiny ImageNet thumbnails). Per judge, in turn (judge_history.JudgeHistory).
    judge_photo_share: float = _field(0.75, min=0.0, max=1.0)
    bootstrap_rounds: int = _field(200, min=0, max=100_000)
    # Community models (submissions.py): a client's submissions a day, the pending ones at a time, and
    # the approved ones that are Judge contenders (each adds a model run to every scene of its family).
    submissions_per_day: int = _field(5, min=0)  # downloads: refused ones count, refusals before one do not
    max_pending: int = _field(10, min=0)
    max_approved: int = _field(6, min=0)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _check(f, getattr(self, f.name))
        if 2 * self.tile_overlap >= (smallest := self.tile_size or min(WINDOWS.values())):
            raise SettingsError(f"{env_name('tile_overlap')}={self.tile_overlap}: must be under half of "
                                f"{env_name('tile_size')} ({smallest}): a window needs context on both sides")
        self._check_votes_db()

    def _check_votes_db(self):
        if not isinstance(self.votes_db, str) or "://" not in self.votes_db:
            return  # a SQLite file (vote_sync.py and store_target.check_path look at it)
        name = env_name("votes_db")
        if not self.votes_db.startswith(("postgresql://", "postgresql+psycopg://")):
            raise SettingsError(f"{name}={self.votes_db.split('://')[0]}://…: expected a SQLite file path or a "
                                "postgresql://user@host:port/dbname URL")
        if not self.arena_secret:
            raise SettingsError(f"{env_name('arena_secret')} must be set when {name} is a PostgreSQL URL: every "
                                "replica must key clients with the same secret")

    def window(self, precision: str = "fp32") -> int:
        """The side of the models' windows on the CPU: RESTORATION_TILE_SIZE, else the precision's own
        ("eager" for the reference path)."""
        return self.tile_size or WINDOWS.get(precision, WINDOWS["fp32"])

    @classmethod
    def from_env(cls, environ=None, **overrides):
        """Settings from `environ` (default `os.environ`): every field's variable that is set and
        not empty, then `overrides`."""
        environ = os.environ if environ is None else environ
        environ = _renamed(environ)
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(env_name(f.name))
            if raw is not None and raw.strip() != "":
                values[f.name] = _parse(f, raw.strip())
        return cls(**(values | overrides))


def zero_gpu(environ=None) -> bool:
    """Whether the platform says this is a ZeroGPU Space (SPACES_ZERO_GPU, set by Hugging Face):
    GPU work must then run inside `spaces.GPU` calls (device.py)."""
    environ = os.environ if environ is None else environ
    return environ.get("SPACES_ZERO_GPU", "").strip().lower() not in ("", *FALSE)


def _renamed(environ) -> dict:
    """`environ` with each set old name of RENAMED copied to its new name (unless that is set too),
    saying so in one line on stderr."""
    environ = dict(environ)
    for old, new in RENAMED.items():
        if environ.get(old, "").strip() != "":
            print(f"{old} is now {new}; the old name still works for now", file=sys.stderr)
            if environ.get(new, "").strip() == "":
                environ[new] = environ[old]
    return environ


def env_name(field_name: str) -> str:
    return PREFIX + field_name.upper()


def _kind(f):
    """The type a field's text is parsed into: its annotation, or the X of `X | None`."""
    kind = f.type
    if isinstance(kind, types.UnionType):
        kind = next(t for t in kind.__args__ if t is not type(None))
    return kind if isinstance(kind, type) else {"Path": Path, "str": str, "int": int, "float": float,
                                                "bool": bool}[kind]


def _parse(f, raw: str):
    name, kind = env_name(f.name), _kind(f)
    if f.metadata.get("parse"):
        return f.metadata["parse"](raw)
    if kind is bool:
        if raw.lower() not in TRUE + FALSE:
            raise SettingsError(f"{name}={raw!r}: expected 1/0, true/false, yes/no or on/off")
        return raw.lower() in TRUE
    try:
        return kind(raw)
    except ValueError:
        article = "an" if kind.__name__[0] in "aeiou" else "a"
        raise SettingsError(f"{name}={raw!r}: expected {article} {kind.__name__}"
                            + _range_text(f)) from None


def _range_text(f) -> str:
    lo, hi = f.metadata.get("min"), f.metadata.get("max")
    if lo is not None and hi is not None:
        return f" from {lo} to {hi}"
    if lo is not None:
        return f" of at least {lo}"
    return f" of at most {hi}" if hi is not None else ""


def _check(f, value):
    name, meta = env_name(f.name), f.metadata
    shown = "(set)" if meta.get("secret") else repr(value)
    kind = _kind(f)
    if value is None and isinstance(f.type, types.UnionType):
        return  # an optional setting left unset
    if kind in (int, float) and (isinstance(value, bool) or not isinstance(value, int | float)
                                 or value != value):  # NaN
        raise SettingsError(f"{name}={shown}: expected a number{_range_text(f)}")
    if ((meta.get("min") is not None and value < meta["min"])
            or (meta.get("max") is not None and value > meta["max"])):
        raise SettingsError(f"{name}={shown}: out of range, expected {kind.__name__}{_range_text(f)}")
    if meta.get("choices") and value not in meta["choices"]:
        raise SettingsError(f"{name}={shown}: expected one of {', '.join(meta['choices'])}")
