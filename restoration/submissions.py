"""Community models: anyone's checkpoint on the Hugging Face Hub, at a pinned commit, checked before
it runs, scored, shown in Compare at once and ranked by the Judge once a reviewer approves it.

    python -m restoration.submit owner/name@<40-character commit>      # or the app's Submit tab
    python -m restoration.submit approve NAME --reason "looks fine"
    python -m restoration.submit reject NAME --reason "a copy of unet-mse"

A submission is downloaded at its commit only (config.json and model.safetensors, through
huggingface_hub, so HF_ENDPOINT is honoured), and refused, with one line naming the rule and the
value that broke it (`Refused`), unless:
- the repo holds no file but those two, a README and .gitattributes (no pickles, nothing else read);
- config.json names a restorer type of our table (models.py) with arguments within `Rules`: channel
  widths, depth, blocks, parameters, and FLOPs for a 1-megapixel image (what keeps Compare
  responsive on 2 cores); model.safetensors is under the size limit and its header matches the config;
- it loads strictly, and on a probe image gives finite outputs in range, the same twice.
Then it is scored (`quick_evaluation`: evaluate.py's own functions on fixed subsets) and stored in the
vote store (`votes.submissions`), which every replica reads at start-up (`load_submitted_restorers`).

Lifecycle: pending (in Compare, "community, unreviewed") → approved (a Judge contender and on the
leaderboard) or rejected (with its reason kept). Caps: submissions per client a day, pending ones at a
time, approved contenders (Settings.submissions_per_day, max_pending, max_approved).
"""

import dataclasses
import inspect
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
import torch

from restoration.checkpoint import (
    CONFIG_NAME,
    WEIGHTS_NAME,
    CheckpointError,
    build,
    load_weights,
    read_config,
    read_header,
)
from restoration.degrade import STANDARD, upscale_bicubic
from restoration.evaluate import evaluate, format_table, is_tiny_imagenet, load_val, model_method
from restoration.hub import COMMIT, PROBE_SECONDS, HubUnreachable, endpoint, fetch_pinned, probe, transport_errors
from restoration.inference import Restorer
from restoration.models import MODEL_TYPES, verify_checkpoint
from restoration.settings import Settings
from restoration.votes import VoteStore, submission_attempts, submissions, utc_iso, utc_now
from restoration.weights import FAMILIES, LoadedModel, ModelEntry

PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
RESTORER_TYPES = ("unet", "autoencoder")  # the table's types that restore images (not the classifiers)
ALLOWED_FILES = {CONFIG_NAME, WEIGHTS_NAME, "README.md", ".gitattributes"}
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".npz", ".joblib")
DTYPES = {"F32", "F16", "BF16", "I64"}  # I64: BatchNorm's num_batches_tracked
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")
MEGAPIXEL = 1 << 20  # a 1024×1024 image
FLOP_SIDE = 128  # FLOPs are counted on this square and scaled: convolutions cost the same per pixel
QUICK_VAL_IMAGES = 200  # Tiny ImageNet val: a fixed subset (data.subset, seed 0)
QUICK_PHOTOS = 4  # photos/val: a fixed subset, whole photos
DAY = 86_400.0


@dataclasses.dataclass(frozen=True)
class Rules:
    """What a submitted checkpoint may be. The shipped U-Nets are 2.0-2.4 M parameters and 155-204
    GFLOPs per megapixel; the limits leave room for twice that, not for a model that would hold
    Compare's cores for many seconds."""
    max_width: int = 256  # channels of any level (nfs)
    max_depth: int = 6  # resolution levels (len(nfs))
    max_blocks: int = 4  # ResBlocks per encoder stage (nbks)
    max_params: int = 8_000_000
    max_gflops: float = 400.0  # per 1-megapixel image
    max_bytes: int = 40 << 20  # model.safetensors
    max_config_bytes: int = 16 << 10
    output_range: tuple[float, float] = (-0.5, 1.5)  # the unclamped output on the probe (RGB in [0, 1])


RULES = Rules()


class Refused(CheckpointError):
    """A submission that breaks a rule; `str()` is one line: the rule, then the value that broke it."""

    def __init__(self, rule: str, detail: str):
        self.rule = rule
        super().__init__(f"{rule}: {' '.join(detail.split())}")


# -------------------------------------------------------------------------------------------- names


def parse_spec(spec: str) -> tuple[str, str]:
    """`owner/name@commit` → (repo id, commit). Only a full commit hash is a pin: a tag or a branch
    can be moved to other weights after the review."""
    repo_id, _, revision = spec.strip().partition("@")
    if not REPO_ID.match(repo_id):
        raise Refused("repo id", f"{repo_id!r} is not owner/name")
    if not COMMIT.match(revision):
        raise Refused("pinned commit", f"{revision!r} is not a 40-character commit hash (a tag or branch can move; "
                                       "pin the commit)")
    return repo_id, revision


def submission_name(repo_id: str, commit: str) -> str:
    """The contender's name: safe in file names and element ids (the Compare panels use it), and still
    saying who published it at which commit."""
    return f"{repo_id.replace('/', '--')}-{commit[:10]}"


def community_title(repo_id: str, commit: str, status: str) -> str:
    return f"{repo_id} @ {commit[:7]} · community" + (", unreviewed" if status == PENDING else "")


# -------------------------------------------------------------------------------------------- checks


def check_files(files: dict[str, int], rules: Rules = RULES):
    """`files` (path → size, the repo at the commit) holds our two files and nothing we would not read."""
    for path in sorted(files):
        if path.lower().endswith(PICKLE_SUFFIXES):
            raise Refused("no pickles", f"the repo holds {path} (only {WEIGHTS_NAME} is loaded; pickles can run code)")
        if path not in ALLOWED_FILES:
            raise Refused("only our files", f"the repo holds {path} (allowed: {', '.join(sorted(ALLOWED_FILES))})")
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if name not in files:
            raise Refused("checkpoint files", f"no {name} at this commit")
    if files[WEIGHTS_NAME] > rules.max_bytes:
        raise Refused("size", f"{WEIGHTS_NAME} is {files[WEIGHTS_NAME]:,} bytes (limit {rules.max_bytes:,})")
    if files[CONFIG_NAME] > rules.max_config_bytes:
        raise Refused("size", f"{CONFIG_NAME} is {files[CONFIG_NAME]:,} bytes (limit {rules.max_config_bytes:,})")


def _ints(config: dict, key: str) -> list[int]:
    value = config.get(key)
    if not isinstance(value, list | tuple) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise Refused("config", f"{key} = {value!r} is not a list of integers")
    return list(value)


def check_config(config: dict, rules: Rules = RULES):
    """The model's type and size arguments, before anything is built from them (a width of 10⁶ would
    take the memory before any other check ran)."""
    kind = config.get("model_type")
    if kind not in RESTORER_TYPES:
        known = f"of our table {sorted(MODEL_TYPES)}" if kind not in MODEL_TYPES else "a classifier, not a restorer"
        raise Refused("model type", f"{kind!r} is not one of {', '.join(RESTORER_TYPES)} ({known})")
    defaults = inspect.signature(MODEL_TYPES[kind]).parameters  # what an omitted argument is
    nfs = _ints(config, "nfs") if "nfs" in config else list(defaults["nfs"].default)
    nbks = _ints(config, "nbks") if "nbks" in config else list(defaults["nbks"].default)
    if not 2 <= len(nfs) <= rules.max_depth:
        raise Refused("depth", f"{len(nfs)} levels (nfs = {nfs}; allowed 2 to {rules.max_depth})")
    if max(nfs) > rules.max_width or min(nfs) < 1:
        raise Refused("width", f"nfs = {nfs} (each from 1 to {rules.max_width})")
    if len(nbks) != len(nfs) - 1 or max(nbks) > rules.max_blocks or min(nbks) < 1:
        raise Refused("blocks", f"nbks = {nbks} (one per level after the first, each from 1 to {rules.max_blocks})")


def measure(model) -> dict:
    """Parameters, and GFLOPs for a 1-megapixel image (torch's FLOP counter on a FLOP_SIDE square,
    scaled: every layer's cost is per pixel)."""
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, 3, FLOP_SIDE, FLOP_SIDE)
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.eval()(x)
    return {"params": sum(p.numel() for p in model.parameters()),
            "gflops_per_megapixel": round(counter.get_total_flops() * MEGAPIXEL / FLOP_SIDE ** 2 / 1e9, 3)}


def check_cost(facts: dict, rules: Rules = RULES):
    if facts["params"] > rules.max_params:
        raise Refused("parameters", f"{facts['params']:,} (limit {rules.max_params:,})")
    if facts["gflops_per_megapixel"] > rules.max_gflops:
        raise Refused("FLOPs", f"{facts['gflops_per_megapixel']:.0f} GFLOPs for a 1-megapixel image "
                               f"(limit {rules.max_gflops:.0f})")


def probe_image() -> torch.Tensor:
    """A fixed (1, 3, 40, 56) input: smooth colour plus detail, sides that are no multiple of any
    stride (the padding path runs too)."""
    g = torch.Generator().manual_seed(0)
    smooth = torch.nn.functional.interpolate(torch.rand(1, 3, 5, 7, generator=g), size=(40, 56), mode="bilinear")
    return (smooth + 0.05 * torch.randn(1, 3, 40, 56, generator=g)).clamp(0, 1)


def probe_model(model, rules: Rules = RULES):
    """The model's unclamped output on the probe: its size, finite, in range, the same twice."""
    x = probe_image()
    try:
        with torch.inference_mode():
            first, second = model(x), model(x)
    except RuntimeError as e:
        raise Refused("probe", f"the model fails on the probe image ({str(e).splitlines()[0][:200]})") from None
    if first.shape != x.shape:
        raise Refused("output shape", f"{tuple(first.shape)} for input {tuple(x.shape)}")
    bad = (~torch.isfinite(first)).sum().item()
    if bad:
        raise Refused("finite outputs", f"{bad} of {first.numel()} output values on the probe image are NaN or infinite")
    lo, hi = first.min().item(), first.max().item()
    if lo < rules.output_range[0] or hi > rules.output_range[1]:
        raise Refused("output range", f"[{lo:.3g}, {hi:.3g}] on the probe image (allowed {list(rules.output_range)})")
    if not torch.equal(first, second):
        raise Refused("deterministic", f"two runs on the probe image differ by up to {(first - second).abs().max():.3g}")


def check_folder(folder, rules: Rules = RULES) -> dict:
    """A local folder checked as a submission of it would be (its files, then `check_checkpoint`),
    before it is uploaded: what was measured, or `Refused`."""
    folder = Path(folder)
    if not folder.is_dir():
        raise Refused("checkpoint files", f"{folder} is not a folder")
    files = {p.relative_to(folder).as_posix(): p.stat().st_size for p in folder.rglob("*") if p.is_file()}
    check_files(files, rules)
    return check_checkpoint(folder, rules)[1]


def check_checkpoint(folder, rules: Rules = RULES) -> tuple[torch.nn.Module, dict]:
    """(the model, what was measured) of a downloaded folder, every check passed in order: config,
    cost, header, strict load, probe."""
    folder = Path(folder)
    local = lambda e: str(e).replace(f"{folder}/", "")  # say config.json, not this server's cache path
    try:
        config = read_config(folder)
    except CheckpointError as e:
        raise Refused("config", local(e)) from None
    check_config(config, rules)
    try:
        model = build(MODEL_TYPES[config["model_type"]], {k: v for k, v in config.items() if k != "model_type"}, folder)
        facts = {"model_type": config["model_type"], **measure(model), "bytes": (folder / WEIGHTS_NAME).stat().st_size}
    except CheckpointError as e:
        raise Refused("config", local(e)) from None
    except RuntimeError as e:  # e.g. a mean of two channels: built, but it cannot run on RGB
        raise Refused("config", f"the model it describes does not run ({str(e).splitlines()[0][:200]})") from None
    check_cost(facts, rules)
    try:
        dtypes = {dtype for dtype, _ in read_header(folder / WEIGHTS_NAME).values()}
        verify_checkpoint(folder)  # the header's tensors and shapes are the config's model's
    except CheckpointError as e:
        raise Refused("header", local(e)) from None
    if dtypes - DTYPES:
        raise Refused("header", f"tensor dtypes {sorted(dtypes - DTYPES)} (allowed {sorted(DTYPES)})")
    try:
        load_weights(model, folder)
    except (CheckpointError, RuntimeError) as e:
        raise Refused("strict load", local(e).splitlines()[0][:300]) from None
    probe_model(model, rules)
    return model.eval(), facts


# -------------------------------------------------------------------------------------------- the Hub


def list_files(repo_id: str, commit: str) -> dict[str, int]:
    """path → size of every file of the repo at `commit` (one listing request, nothing downloaded)."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        tree = HfApi().list_repo_tree(repo_id, revision=commit, recursive=True)
        return {f.path: f.size for f in tree if hasattr(f, "size")}  # RepoFolder has no size
    except RepositoryNotFoundError:
        raise Refused("repo", f"{repo_id} is not a model repo on {endpoint()}") from None
    except RevisionNotFoundError:
        raise Refused("pinned commit", f"{commit} is not a commit of {repo_id}") from None
    except transport_errors() as e:
        raise HubUnreachable(f"the Hub at {endpoint()} did not answer ({type(e).__name__}: {e})") from None


def download(repo_id: str, commit: str, rules: Rules = RULES, cache_dir=None, timeout: float = PROBE_SECONDS) -> Path:
    """The folder holding config.json and model.safetensors of `repo_id` at `commit`, nothing else
    fetched. A commit already in the cache needs no request (it cannot change, and its listing was
    checked when it was submitted); otherwise the repo's files are checked before anything is
    downloaded, and the Hub must serve that very commit."""
    from huggingface_hub.errors import HfHubHTTPError

    def check_listing():
        try:  # one quick request, no retries: a Hub that is down costs start-up seconds, not minutes
            probe(repo_id, CONFIG_NAME, commit, timeout=timeout)
        except HfHubHTTPError:
            pass  # it answered: the listing says what is wrong, naming the rule
        check_files(list_files(repo_id, commit), rules)

    folder = fetch_pinned(repo_id, commit, cache_dir, timeout, before_download=check_listing)
    if folder.name != commit:  # the cache keeps files under the commit the Hub said it served
        raise Refused("pinned commit", f"asked for {commit}, the Hub served {folder.name}")
    return folder


# -------------------------------------------------------------------------------------------- scoring


def quick_evaluation(model, settings: Settings, fidelity=None, val_images: int = QUICK_VAL_IMAGES,
                     photos: int = QUICK_PHOTOS) -> dict:
    """{dataset: {"images": n, "degradations": {degradation: {"bicubic": summary, "model": summary}}}}:
    evaluate.py's `evaluate` (PSNR, SSIM, luma figures, sharpness; with `fidelity`, the fidelity
    classifier, semantic fidelity on Tiny ImageNet) on a fixed subset of Tiny ImageNet val and of photos/val, where present, under
    each standard degradation. The same call scores our models (`reference_evaluation`), so the
    figures are comparable."""
    from tqdm.auto import tqdm

    restorer = Restorer.from_settings(model, settings, fast=False)
    methods = {"bicubic": upscale_bicubic, "model": model_method(restorer)}
    quiet = tqdm(disable=True)
    record = {}
    if is_tiny_imagenet(settings.val_dir):
        val = load_val(settings.val_dir, val_images)
        record["tiny-imagenet"] = {"images": len(val[0]), "degradations": {
            d: evaluate(methods, settings.val_dir, val_images, val=val, degradation=d, fidelity=fidelity, bar=quiet)
            for d in STANDARD}}
    if Path(settings.photo_val_dir).is_dir() and photos > 0:
        scores = {d: evaluate(methods, settings.photo_val_dir, photos, degradation=d, bar=quiet) for d in STANDARD}
        record["photos"] = {"images": scores[STANDARD[0]]["model"]["images"], "degradations": scores}
    return record


def reference_evaluation(store: VoteStore, models, settings: Settings, fidelity=None, compute: bool = True) -> dict[str, dict]:
    """name → `quick_evaluation` of each of `models` (ours, to show beside a submission), computed
    once per model and revision and kept in the vote store for every replica (`compute=False`: only
    those already kept; a page does not wait minutes for them, `restoration.submit show` computes them)."""
    out = {}
    for m in models:
        key = f"quick-evaluation:{m.entry.name}@{m.revision}:{settings.val_dir.name}:{Path(settings.photo_val_dir).name}"
        kept = store.note(key)
        if kept is None and not compute:
            continue
        if kept is None:
            kept = json.dumps(quick_evaluation(m.model, settings, fidelity))
            store.set_note(key, kept)
        out[m.entry.name] = json.loads(kept)
    return out


def evaluation_markdown(evaluation: dict, title: str, ours: dict[str, dict] | None = None,
                        titles: dict[str, str] | None = None) -> str:
    """One table per dataset and degradation (evaluate.format_table): bicubic, our models (`ours`:
    name → quick_evaluation), then the submission."""
    titles = titles or {}
    parts = []
    for dataset, scored in evaluation.items():
        for degradation, results in scored["degradations"].items():
            rows = {"bicubic": results["bicubic"]}
            for name, theirs in (ours or {}).items():
                mine = theirs.get(dataset, {}).get("degradations", {}).get(degradation, {}).get("model")
                if mine:
                    rows[name] = mine
            rows["submission"] = results["model"]
            names = {"submission": title, **titles}
            parts.append(f"**{dataset}, {degradation}** ({scored['images']} images)\n\n" + format_table(rows, names))
    return "\n\n".join(parts) or "(no evaluation data on this server)"


# -------------------------------------------------------------------------------------------- the store


@dataclasses.dataclass
class Submission:
    name: str
    repo_id: str
    revision: str
    family: str
    status: str
    reason: str = ""
    client: str = ""
    submitted_at: str = ""
    reviewed_at: str | None = None
    facts: dict = dataclasses.field(default_factory=dict)
    evaluation: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def from_row(cls, row: dict) -> "Submission":
        return cls(**{**row, "facts": json.loads(row["facts"]), "evaluation": json.loads(row["evaluation"])})

    @property
    def title(self) -> str:
        return community_title(self.repo_id, self.revision, self.status)

    def entry(self) -> ModelEntry:
        return ModelEntry(self.name, self.title, folder="", role="restorer", hub_repo=self.repo_id,
                          revision=self.revision, family=self.family, community=self.status)

    def loaded(self, model) -> LoadedModel:
        return LoadedModel(self.entry(), model, "hub", self.revision,
                           f"{self.title}: Hugging Face Hub {self.repo_id} @ {self.revision[:10]} ({self.status})")


def list_submissions(store: VoteStore, *statuses: str) -> list[Submission]:
    return [Submission.from_row(row) for row in store.submission_rows(*statuses)]


def _count_attempt(conn, client: str, settings: Settings, now: float):
    """Count this attempt against the client's daily cap, or refuse it. Refused attempts count too:
    each one costs a download and a probe (`python -m restoration.submit check FOLDER` costs nothing)."""
    a = submission_attempts.c
    conn.execute(submission_attempts.delete().where(a.client == client, a.at < now - DAY))
    today = conn.execute(sa.select(sa.func.count()).where(a.client == client)).scalar()
    if today >= settings.submissions_per_day:
        raise Refused("daily limit", f"{today} submissions from this client in the last 24 hours "
                                     f"(limit {settings.submissions_per_day})")
    conn.execute(submission_attempts.insert().values(client=client, at=now))


def _check_queue(conn, name: str, settings: Settings):
    """Not submitted before, and a place in the review queue."""
    c = submissions.c
    status = conn.execute(sa.select(c.status).where(c.name == name)).scalar()
    if status is not None:
        raise Refused("already submitted", f"{name} is {status}")
    pending = conn.execute(sa.select(sa.func.count()).where(c.status == PENDING)).scalar()
    if pending >= settings.max_pending:
        raise Refused("pending limit", f"{pending} submissions await review (limit {settings.max_pending}); "
                                       "try again later")


def submit(store: VoteStore, spec: str, settings: Settings, family: str = "lesson", client: str = "",
           rules: Rules = RULES, fidelity=None, cache_dir=None, now: float | None = None) -> tuple[Submission, LoadedModel]:
    """Check, score and store one submission as pending; (its record, the loaded model). Raises
    `Refused` (a broken rule), `HubUnreachable`, or `VoteStoreError`; stores nothing then but the
    attempt (once the spec parses: it counts against the client's daily cap)."""
    now = datetime.now(UTC).timestamp() if now is None else now
    repo_id, commit = parse_spec(spec)
    if family not in FAMILIES:
        raise Refused("family", f"{family!r} is not one of {', '.join(FAMILIES)}")
    name = submission_name(repo_id, commit)
    with store.transaction() as tx:  # before the download: a client over a cap costs nothing
        tx.lock_keys([f"arena:submit:{client}"])  # two replicas cannot both take a client's last attempt
        _check_queue(tx.conn, name, settings)
        _count_attempt(tx.conn, client, settings, now)
    model, facts = check_checkpoint(download(repo_id, commit, rules, cache_dir), rules)
    evaluation = quick_evaluation(model, settings, fidelity)
    row = {"name": name, "repo_id": repo_id, "revision": commit, "family": family, "status": PENDING, "reason": "",
           "client": client, "submitted_at": utc_iso(now), "reviewed_at": None, "facts": json.dumps(facts),
           "evaluation": json.dumps(evaluation)}
    with store.transaction() as tx:
        tx.lock_keys(["arena:submissions"])
        _check_queue(tx.conn, name, settings)  # again, locked: the queue may have filled during the checks
        tx.conn.execute(submissions.insert().values(**row))
    submission = Submission.from_row(row)
    return submission, submission.loaded(model)


def review(store: VoteStore, name: str, status: str, reason: str, settings: Settings) -> Submission:
    """Approve or reject a submission (any state may be changed again), keeping the reason. Approving
    is refused when `max_approved` are already contenders; rejecting needs a reason."""
    if status not in (APPROVED, REJECTED):
        raise ValueError(f"status must be {APPROVED!r} or {REJECTED!r}")
    if status == REJECTED and not reason.strip():
        raise Refused("reason", "a rejection says why (--reason)")
    c = submissions.c
    with store.transaction() as tx:
        tx.lock_keys(["arena:submissions"])
        row = tx.conn.execute(sa.select(submissions).where(c.name == name)).one_or_none()
        if row is None:
            raise Refused("no such submission", name)
        approved = tx.conn.execute(sa.select(sa.func.count()).where(c.status == APPROVED, c.name != name)).scalar()
        if status == APPROVED and approved >= settings.max_approved:
            raise Refused("approved limit", f"{approved} community models are contenders (limit "
                                            f"{settings.max_approved}); reject one first")
        changed = {"status": status, "reason": reason.strip(), "reviewed_at": utc_now()}
        tx.conn.execute(submissions.update().where(c.name == name).values(**changed))
        return Submission.from_row({**row._mapping, **changed})


def load_submitted_restorers(store: VoteStore, rules: Rules = RULES, cache_dir=None) -> tuple[list[LoadedModel], list[str]]:
    """The pending and approved submissions, downloaded at their commits (from the cache when there)
    and checked again, as `weights.load_available_restorers` loads ours: the models that load, and a
    line for each one that does not."""
    from restoration.votes import VoteStoreError

    try:
        stored = list_submissions(store, PENDING, APPROVED)
    except VoteStoreError as e:
        return [], [f"community models: not loaded ({e})"]
    loaded, problems = [], []
    for s in stored:
        try:
            model, _ = check_checkpoint(download(s.repo_id, s.revision, rules, cache_dir), rules)
        except Exception as e:  # noqa: BLE001 (any failure skips that model, as for ours)
            first = str(e).strip().splitlines()[0][:200] if str(e).strip() else ""
            problems.append(f"{s.title}: not loaded ({type(e).__name__}: {first})")
            continue
        loaded.append(s.loaded(model))
    return loaded, problems


def describe(s: Submission) -> str:
    """One line per submission, for the operator."""
    facts = s.facts
    cost = (f"{facts['params'] / 1e6:.2f} M params, {facts['gflops_per_megapixel']:.0f} GFLOPs/MP"
            if facts else "not measured")
    reason = f" — {s.reason}" if s.reason else ""
    return f"{s.name}  {s.status}  {s.repo_id}@{s.revision}  {s.family}  {cost}  submitted {s.submitted_at}{reason}"


# -------------------------------------------------------------------------------------------- the page

SUBMIT_HELP = ("Submit a ×2 super-resolution checkpoint from the Hugging Face Hub, pinned to a commit. It is checked "
               "and scored here, shown below on an example and in Compare as *community, unreviewed* (in its scores "
               "and zoom now, in a panel of its own after the next start), and joins the blind Judge once a reviewer "
               "approves it. How to train one, the rules and the limits: docs/submitting.md in the app's repository.")


def submit_from_page(store: VoteStore, spec: str, family: str, client: str, settings: Settings, fidelity,
                     ours, examples) -> tuple[str, list, LoadedModel | None]:
    """What the app's Submit tab shows: (Markdown saying what happened, [(picture, caption)] of the
    submission beside our same-family models on the first example, the loaded model or None). A
    refusal is one line; nothing here raises, so the app keeps serving."""
    from restoration.compare import compare
    from restoration.images import to_pil
    from restoration.uploads import open_upload
    from restoration.votes import VoteStoreError

    try:
        s, loaded = submit(store, str(spec or ""), settings, family=family, client=client, fidelity=fidelity)
    except Refused as e:
        return f"**Refused** — {e}", [], None
    except (CheckpointError, VoteStoreError) as e:  # the Hub unreachable, the store down: try again later
        return f"**Not submitted** — {type(e).__name__}: {str(e).splitlines()[0][:300]}", [], None
    same = [m for m in ours if m.entry.family == family and m.entry.community is None]
    try:
        reference = reference_evaluation(store, same, settings, fidelity, compute=False)
    except VoteStoreError:
        reference = {}
    text = (f"**Accepted, pending review**: `{s.name}`, {s.title}. {s.facts['params'] / 1e6:.2f} M parameters, "
            f"{s.facts['gflops_per_megapixel']:.0f} GFLOPs for a 1-megapixel image.\n\n"
            + evaluation_markdown(s.evaluation, s.title, reference, {m.entry.name: m.entry.title for m in same}))
    gallery = []
    if examples:
        panels = compare(open_upload(examples[0], "degrade", settings), "degrade", [*same, loaded], settings)
        gallery = [(to_pil(p.image), p.caption()) for p in panels]
    return text, gallery, loaded
