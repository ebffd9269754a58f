"""Community models: anyone's ×2 upscaler on the Hugging Face Hub, at a pinned commit, checked before
it runs, scored, shown in Compare at once and ranked by the Judge once a reviewer approves it: our
own model types, and the architectures people use (ESRGAN, Real-ESRGAN's compact net, SwinIR, SPAN,
OmniSR, DAT, PLKSR...) through spandrel (foreign.py), behind our own checks.

    python -m restoration.arena.submit owner/name@<40-character commit>      # or the app's Submit tab
    python -m restoration.arena.submit approve NAME --reason "looks fine"
    python -m restoration.arena.submit reject NAME --reason "a copy of unet-mse"

A submission names its repo at a commit and the family it competes in (photos by default). The
repo's listing is checked before anything is downloaded (no pickles, nothing but model.safetensors,
an optional config.json, a README and .gitattributes, within the size limits); then those two files
are streamed into a fresh folder, cut off at their limits (submission_download.py), and checked
(submission_checks.py: header, config, build, FLOPs, strict load, probe); a refusal is one line (`Refused`) and removes
the folder, an accepted one is kept in the cache for the replicas' next start. Then the model is
scored on its family's quick set (submission_scores.py: evaluate.py's own functions on a fixed
subset) and stored in the vote store (`store.submissions`), which every replica reads at start-up,
and again once the store answers if it did not then (`load_submitted_restorers`;
`submit_tab.SubmitTab.load_community_later`).

Lifecycle: pending (in Compare, "community, unreviewed") → approved (a Judge contender and on the
leaderboard) or rejected (with its reason kept). Caps: downloads per client a day (an attempt
refused before any download, e.g. with the Hub unreachable, costs none), pending ones at a time,
approved contenders (Settings.submissions_per_day, max_pending, max_approved).
"""

import dataclasses
import json
import logging
import re
from datetime import UTC, datetime

import sqlalchemy as sa

from restoration.arena.store import VoteStore, VoteStoreError, utc_iso, utc_now
from restoration.arena.store_schema import submission_attempts, submissions
from restoration.arena.submission_checks import RULES, Refused, Rules, check_checkpoint, summary
from restoration.arena.submission_download import fetched
from restoration.arena.submission_scores import evaluation_markdown, quick_evaluation, reference_evaluation
from restoration.choices import DEFAULT_FAMILY  # as the app's Compare
from restoration.hub.catalogue import FAMILIES, LoadedModel, ModelEntry
from restoration.hub.transfer import COMMIT, HubUnreachable
from restoration.models.checkpoint import CheckpointError
from restoration.settings import Settings
from restoration.strict_json import one_line, shorten

log = logging.getLogger(__name__)
PENDING, APPROVED, REJECTED = "pending", "approved", "rejected"
OWNER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*")  # besides the Hub's own rules
DAY = 86_400.0


# -------------------------------------------------------------------------------------------- names


def parse_spec(spec: str) -> tuple[str, str]:
    """`owner/name@commit` → (repo id, commit). The repo id must pass huggingface_hub's own
    validator and be owner/name; only a full commit hash is a pin: a tag or a branch can be moved
    to other weights after the review. Nothing is asked of the Hub."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    if not isinstance(spec, str):
        raise Refused("repo id", f"{type(spec).__name__} is not owner/name@commit")
    repo_id, _, revision = spec.strip().partition("@")
    shown = shorten(repr(repo_id), 80)
    try:
        validate_repo_id(repo_id)
    except HFValidationError:
        raise Refused("repo id", f"{shown} is not a Hub repo id (huggingface_hub refuses it)") from None
    if not OWNER_NAME.fullmatch(repo_id):
        raise Refused("repo id", f"{shown} is not owner/name")
    if not COMMIT.fullmatch(revision):
        raise Refused("pinned commit", f"{shorten(repr(revision), 60)} is not a 40-character commit hash (a tag or "
                                       "branch can move; pin the commit)")
    return repo_id, revision


def submission_name(repo_id: str, commit: str) -> str:
    """The contender's name: safe in file names and element ids (the Compare panels use it), and still
    saying who published it at which commit."""
    return f"{repo_id.replace('/', '--')}-{commit[:10]}"


def community_title(repo_id: str, commit: str, status: str, architecture: str | None = None,
                    licence: str | None = None) -> str:
    """"alice/x @ 0123456 · SPAN (Apache-2.0) · community, unreviewed": the repo, the commit, a
    foreign model's architecture and its code's licence, the review state."""
    kind = f" · {architecture} ({licence})" if licence else ""
    return f"{repo_id} @ {commit[:7]}{kind} · community" + (", unreviewed" if status == PENDING else "")


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
        return community_title(self.repo_id, self.revision, self.status, self.facts.get("architecture"),
                               self.facts.get("licence"))

    def entry(self) -> ModelEntry:
        return ModelEntry(self.name, self.title, folder="", role="restorer", hub_repo=self.repo_id,
                          revision=self.revision, family=self.family, community=self.status,
                          architecture=self.facts.get("architecture"), licence=self.facts.get("licence"))

    def loaded(self, model) -> LoadedModel:
        return LoadedModel(self.entry(), model, "hub", self.revision,
                           f"{self.title}: Hugging Face Hub {self.repo_id} @ {self.revision[:10]} ({self.status})")


def list_submissions(store: VoteStore, *statuses: str) -> list[Submission]:
    return [Submission.from_row(row) for row in store.submission_rows(*statuses)]


def _attempts_today(conn, client: str, now: float) -> int:
    a = submission_attempts.c
    conn.execute(submission_attempts.delete().where(a.client == client, a.at < now - DAY))
    return conn.execute(sa.select(sa.func.count()).where(a.client == client)).scalar()


def _check_daily_cap(conn, client: str, settings: Settings, now: float):
    """Refuse a client whose downloads in the last 24 hours reached the cap."""
    today = _attempts_today(conn, client, now)
    if today >= settings.submissions_per_day:
        raise Refused("daily limit", f"{today} downloads for this client's submissions in the last 24 hours "
                                     f"(limit {settings.submissions_per_day})")


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


def submit(store: VoteStore, spec: str, settings: Settings, family: str = DEFAULT_FAMILY, client: str = "",
           rules: Rules = RULES, fidelity=None, cache_dir=None, now: float | None = None) -> tuple[Submission, LoadedModel]:
    """Check, score and store one submission as pending; (its record, the loaded model). Raises
    `Refused` (a broken rule, or any unexpected error, logged with its traceback), `HubUnreachable`,
    or `VoteStoreError`; stores nothing then. Only a download counts against the client's daily cap:
    an attempt refused before it (a malformed spec, the Hub unreachable, a missing commit, a listing
    that breaks the rules) costs nothing."""
    now = datetime.now(UTC).timestamp() if now is None else now
    repo_id, commit = parse_spec(spec)
    if family not in FAMILIES:
        raise Refused("family", f"{shorten(repr(family), 40)} is not one of {', '.join(FAMILIES)}")
    name = submission_name(repo_id, commit)
    with store.transaction() as tx:  # before the Hub is asked: a client over a cap costs nothing
        _check_queue(tx.conn, name, settings)
        _check_daily_cap(tx.conn, client, settings, now)

    def count_the_download():
        with store.transaction() as tx:
            tx.lock_keys([f"arena:submit:{client}"])  # two replicas cannot both take a client's last download
            _check_daily_cap(tx.conn, client, settings, now)
            tx.conn.execute(submission_attempts.insert().values(client=client, at=now))

    try:
        with fetched(repo_id, commit, rules, cache_dir, before_download=count_the_download) as folder:
            model, facts = check_checkpoint(folder, rules)
            evaluation = quick_evaluation(model, settings, family, fidelity)
            row = {"name": name, "repo_id": repo_id, "revision": commit, "family": family, "status": PENDING,
                   "reason": "", "client": client, "submitted_at": utc_iso(now), "reviewed_at": None,
                   "facts": json.dumps(facts), "evaluation": json.dumps(evaluation)}
            with store.transaction() as tx:
                tx.lock_keys(["arena:submissions"])
                _check_queue(tx.conn, name, settings)  # again, locked: the queue may have filled during the checks
                tx.conn.execute(submissions.insert().values(**row))
    except (Refused, HubUnreachable, VoteStoreError):  # what the rules, the Hub and the store say, one line each
        raise
    except Exception as e:  # noqa: BLE001 (any other failure: one line for the submitter, the traceback logged)
        log.exception("submission %s: unexpected error", shorten(repr(spec), 120))  # the traceback, for the operator
        raise Refused("unexpected error", f"{type(e).__name__}: {one_line(e, 160)} (logged for the operator)") \
            from None
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
    """The pending and approved submissions, from the cache (or downloaded again at their commits)
    and checked again, as `catalogue.load_available_restorers` loads ours: the models that load, and a
    line for each one that does not. Raises `VoteStoreError` when the store does not answer (the app
    then tries again until it does: ArenaApp.load_community_later)."""
    loaded, problems = [], []
    for s in list_submissions(store, PENDING, APPROVED):
        try:
            with fetched(s.repo_id, s.revision, rules, cache_dir) as folder:
                model, _ = check_checkpoint(folder, rules)
        except Exception as e:  # noqa: BLE001 (any failure skips that model, as for ours)
            problems.append(f"{s.title}: not loaded ({type(e).__name__}: {one_line(e, 200)})")
            continue
        loaded.append(s.loaded(model))
    return loaded, problems


def describe(s: Submission) -> str:
    """One line per submission, for the operator."""
    cost = summary(s.facts) if s.facts else "not measured"
    reason = f" — {s.reason}" if s.reason else ""
    return f"{s.name}  {s.status}  {s.repo_id}@{s.revision}  {s.family}  {cost}  submitted {s.submitted_at}{reason}"


# -------------------------------------------------------------------------------------------- the page

DOC = "docs/submitting.md"


def submit_help(space: str | None = None) -> str:
    """The Submit tab's introduction, its pointer to the doc a link (on the Space's repository when
    the catalogue names the Space; the doc ships with it)."""
    from restoration.hub.provenance import HUB_URL

    doc = f"[{DOC}]({HUB_URL}/spaces/{space}/blob/main/{DOC})" if space else f"`{DOC}` in the app's repository"
    return ("Submit a ×2 super-resolution model from the Hugging Face Hub, pinned to a commit: one of this project's "
            "U-Nets, or a model of the architectures people use (ESRGAN, Real-ESRGAN compact, SwinIR, SPAN, "
            "OmniSR, DAT, PLKSR and more, loaded by spandrel) as `model.safetensors`. It is checked and scored here "
            "on its family's images, shown below on an example and in Compare as *community, unreviewed* (in its "
            "scores and zoom now, in a panel of its own after the next start), and joins the blind Judge of its "
            f"family once a reviewer approves it. How to submit, what is checked and why: {doc}.")


def submit_from_page(store: VoteStore, spec: str, family: str, client: str, settings: Settings, fidelity,
                     ours, examples) -> tuple[str, list, LoadedModel | None]:
    """What the app's Submit tab shows: (Markdown saying what happened, [(picture, caption)] of the
    submission beside our same-family models on the first example, the loaded model or None). A
    refusal is one line; nothing here raises, so the app keeps serving."""
    from restoration.data.images import to_pil
    from restoration.data.uploads import open_upload
    from restoration.inference.compare import compare

    try:
        s, loaded = submit(store, spec if isinstance(spec, str) else "", settings,
                           family=family if isinstance(family, str) else "", client=client, fidelity=fidelity)
    except Refused as e:
        return f"**Refused** — {e}", [], None
    except (CheckpointError, VoteStoreError) as e:  # the Hub unreachable, the store down: try again later
        return f"**Not submitted** — {type(e).__name__}: {one_line(e, 300)}", [], None
    same = [m for m in ours if m.entry.family == family and m.entry.community is None]
    try:
        reference = reference_evaluation(store, same, settings, fidelity, compute=False)
    except VoteStoreError:
        reference = {}
    text = (f"**Accepted, pending review**: `{s.name}`, {s.title}: {summary(s.facts)}. Competes in "
            f"{FAMILIES[s.family]}.\n\n"
            + evaluation_markdown(s.evaluation, s.title, reference, {m.entry.name: m.entry.title for m in same}))
    gallery = []
    try:
        if examples:
            panels = compare(open_upload(examples[0], "degrade", settings), "degrade", [*same, loaded], settings)
            gallery = [(to_pil(p.image), p.caption()) for p in panels]
    except Exception:  # noqa: BLE001 (the submission is stored: a failed preview must not say otherwise)
        log.exception("submission %s: the preview failed", s.name)
    return text, gallery, loaded
