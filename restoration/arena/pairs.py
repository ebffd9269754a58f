"""Blind battles: who is judging (client keys), one-time tokens, limits, and judges to leave out.

- A client is keyed by its address (the socket's peer, or the last entry of a trusted proxy's
  header) and, as a judge, by that address plus an id its browser keeps in localStorage (or the
  session, for an API client that sends none). Both are stored only as HMACs with a server
  secret (`client_keys`), so the vote store never holds an address.
- `Arena.issue` registers a battle (an image, a degradation, two different models on random sides
  "A" and "B") under a one-time token. Each session has at most one live battle: issuing another
  (a skip) replaces it, and battles expire after `pending_ttl`, so no session can evict another's.
- `Arena.vote` accepts one answer per token, from the session it was issued to, no sooner than
  `min_vote_seconds` after it was shown, and within the caps (`Limits`) per judge and per address,
  per minute and per day. Live battles, caps and votes all live in the vote store and each
  decision is one transaction there, so neither a new session, a restart nor another replica
  behind the same load balancer resets or doubles them. Refused votes are not stored; a
  too-fast or over-the-cap vote leaves the pair usable.
- `flag_judges` names judges whose answers are implausible for a person (always the same answer,
  nearly always faster than a glance, or picking one model nearly every time); the leaderboard
  leaves their votes out and says how many.
"""

import dataclasses
import hashlib
import hmac
import ipaddress
import itertools
import math
import os
import random
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from sqlalchemy import exc as sa_exc

from restoration.arena.store import ANSWERS, VoteStore, is_database_url, utc_iso, vote_row
from restoration.settings import Settings

RATE_WINDOW_SECONDS = 60.0
DAY_SECONDS = 86_400.0
SWEEP_EVERY = 100  # pairs issued (by this replica) between two deletions of expired rows
NOT_ISSUED = ("This vote is for a pair this server did not issue to you (or it has expired or been skipped), so "
              "it was not counted. Here is a new pair.")


class Refused(Exception):
    """A request the limits turn down; the message is for the person."""


@dataclasses.dataclass(frozen=True)
class Contender:
    name: str  # the catalogue name, e.g. "unet-mse", or "bicubic"
    title: str
    revision: str  # the checkpoint that answered: a Hub commit or "local:<sha256 prefix>"


@dataclasses.dataclass(frozen=True)
class Client:
    address_key: str  # HMAC of the client's address
    judge_key: str  # HMAC of address + browser id (or session)


LOCAL = Client("local", "local")  # handlers called without a request (tests, scripts)


@dataclasses.dataclass(frozen=True)
class Battle:
    token: str
    session: str
    image_id: str
    degradation: str
    a: Contender
    b: Contender
    shown_at: float  # Arena clock when the battle was issued (its pictures are ready)
    client: Client = LOCAL
    family: str = ""  # the scene's model family (catalogue.FAMILIES); "" for votes from before it was kept
    crop: str = ""  # the scene's box in the image, "left top right bottom" (scene_renderer.crop_text); "" if unknown


@dataclasses.dataclass(frozen=True)
class VoteResult:
    accepted: bool
    message: str
    battle: Battle | None = None
    vote_id: int | None = None
    keep_pair: bool = False  # the judge may still vote on this pair (too fast, over a cap)


@dataclasses.dataclass(frozen=True)
class Limits:
    """The caps, as the settings of the same names give them (restoration/settings.py)."""
    votes_per_minute: int  # per judge
    votes_per_day: int
    address_votes_per_minute: int  # per address, all its judges together
    address_votes_per_day: int
    pairs_per_minute: int  # per address

    @classmethod
    def from_settings(cls, settings) -> "Limits":
        return cls(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(cls)})

    @classmethod
    def defaults(cls, **changes) -> "Limits":
        """The settings' defaults, with `changes`."""
        return dataclasses.replace(cls.from_settings(Settings()), **changes)


def tenths_down(seconds: float) -> str:
    """Seconds to one decimal, rounded down: 1.96 s is "1.9", never "2.0", so a vote refused for
    taking under 2 s never reads as having taken 2 s."""
    return f"{math.floor(max(seconds, 0.0) * 10 + 1e-9) / 10:.1f}"  # + 1e-9: 2.3 * 10 is 22.999999999999996


def new_session_id() -> str:
    """A pseudonymous id for one judge session: random, tied to nothing about the person."""
    return "s-" + secrets.token_hex(8)


def new_browser_id() -> str:
    return "b-" + secrets.token_hex(12)


# --------------------------------------------------------------------------------------------
# Client keys


def client_address(peer: str | None, headers=None, header: str = "") -> str:
    """The address to key a client by: the last entry of the trusted proxy's `header` (the
    address that proxy saw; entries before it are whatever the client wrote) when configured and
    present, else the socket's peer. IPv6 addresses are keyed by their /64, which one household
    or phone usually holds whole."""
    address = peer or "unknown"
    if header and headers is not None:
        value = headers.get(header) or ""
        if value.strip():
            address = value.split(",")[-1].strip()
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if ip.version == 6:
        if ip.ipv4_mapped:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_keys(secret: bytes, address: str, browser_id: str | None) -> Client:
    """HMAC-SHA256 keys (hex, 128 bits) of the address and of address + browser id: stable for
    the same client, meaningless without the secret. Every client at one address that sends no
    browser id is one judge: a script opening fresh sessions without one stays one judge, whose
    per-judge caps and flags count all its votes."""
    mac = lambda text: hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()[:32]
    who = f"browser:{browser_id}" if browser_id else "no browser id"
    return Client(mac(f"address\0{address}"), mac(f"judge\0{address}\0{who}"))


def load_secret(configured: str, votes_db) -> bytes:
    """The HMAC key: `configured` (RESTORATION_ARENA_SECRET) if set, else a random key kept beside
    the vote store in `<votes_db>.secret` (created once, readable by the owner only), so client
    keys stay the same across restarts. Not inside the database: a snapshot of the votes must not
    carry the key that would let someone test guessed addresses against it."""
    if configured:
        return configured.encode()
    if is_database_url(votes_db):  # Settings refuse this: replicas must share one key, not each make theirs
        raise ValueError("with a PostgreSQL vote store, set RESTORATION_ARENA_SECRET (the same on every replica)")
    path = Path(f"{votes_db}.secret")
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        key = path.read_bytes().strip()
        if len(key) < 32:
            raise OSError(f"{path}: too short to be the arena's secret; delete it to make a new one") from None
        return key
    with os.fdopen(fd, "wb") as f:
        key = secrets.token_hex(32).encode()
        f.write(key)
    return key


# --------------------------------------------------------------------------------------------
# Battles and votes


class _OverACap(Exception):
    """A cap reached once the vote was written: raised to roll its transaction back."""


class Arena:
    """Issues battles and validates votes. Every decision is one transaction in the vote store
    (live pairs, caps, votes): several replicas on one database decide as one, and a restart
    forgets nothing. What stays in memory is what this replica offers (contenders, images)."""

    def __init__(self, store: VoteStore, contenders: Sequence[Contender], *, min_vote_seconds: float = 2.0,
                 limits: Limits | None = None, clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None, pending_ttl: float = 3600.0):
        if len(contenders) < 2:
            raise ValueError("judging needs at least two models")
        self.store = store
        self.contenders = {c.name: c for c in contenders}
        self.min_vote_seconds, self.limits = min_vote_seconds, limits or Limits.defaults()
        # Seconds since the epoch: the replicas' clocks agree on it (a monotonic clock is per machine).
        self.clock = clock
        self.rng = rng or random.SystemRandom()  # unpredictable sides: a judge cannot guess them
        self.pending_ttl = pending_ttl
        self._issued = itertools.count()  # every SWEEP_EVERY pairs, expired ones are deleted

    def draw_pair(self, names: Iterable[str] | None = None) -> tuple[Contender, Contender]:
        """Two different contenders in random order (A, B), among `names` (e.g. those a scene
        rendered) when given."""
        candidates = [c for n, c in self.contenders.items() if names is None or n in set(names)]
        a, b = self.rng.sample(candidates, 2)
        return a, b

    def issue(self, session: str, client: Client, drawn: tuple[str, str, Contender, Contender], family: str = "",
              crop: str = "") -> Battle:
        """Register a battle for `session` (replacing its live one): `drawn` = (image id,
        degradation, A, B), a scene's image and a pair, with the scene's `family` and `crop` (kept
        with the vote). Call it once the pictures are ready: the clock for "too fast" starts here.
        Raises `Refused` when the address asks for pairs too often, and `VoteStoreError` when the
        store cannot be reached."""
        image_id, degradation, a, b = drawn
        now = self.clock()
        battle = Battle(secrets.token_urlsafe(16), session, image_id, degradation, a, b, now, client, family, crop)
        cap = self.limits.pairs_per_minute
        with self.store.transaction() as tx:
            # The session's row first, then the address's (the order of `vote`, so no two wait in
            # a cycle), and the address's as late as possible: from its lock to the commit, every
            # other request of that address waits (one statement, one count, the commit).
            tx.put_live_pair(_live_pair_row(battle, now + self.pending_ttl))
            tx.add_pair_issue(client.address_key, now)
            if next(self._issued) % SWEEP_EVERY == 0:
                tx.drop_expired(now, RATE_WINDOW_SECONDS)
            tx.lock_keys([client.address_key])  # the count and the insert are one step for every replica
            if tx.pairs_since(client.address_key, now - RATE_WINDOW_SECONDS) > cap:  # this pair included
                raise Refused(f"Too many new pairs from your connection (at most {cap} a minute); please wait a "
                              "little.")  # rolled back: the pair on screen stays live
        return battle

    def pending(self, session: str | None) -> Battle | None:
        """The session's live battle, if it has one that has not expired."""
        with self.store.transaction() as tx:
            row = tx.live_pair(session or "")
        return self._battle(row) if row is not None and row.expires_at >= self.clock() else None

    def _battle(self, row) -> Battle:
        """A live pair's row as a Battle (titles from this replica's contenders; the revisions are
        those that were shown)."""
        def contender(name, revision):
            known = self.contenders.get(name)
            return Contender(name, known.title if known else name, revision)
        return Battle(row.token, row.session, row.image, row.degradation, contender(row.model_a, row.revision_a),
                      contender(row.model_b, row.revision_b), row.shown_at, Client(row.client, row.judge),
                      row.family, row.crop)

    def vote(self, token, session, answer, client: Client = LOCAL) -> VoteResult:
        """Accept or refuse one vote. Accepted means committed: the result comes back only after
        the vote's transaction has. Raises `VoteStoreError` when the store cannot be reached."""
        if not isinstance(answer, str) or answer not in ANSWERS:
            shown = repr(answer) if isinstance(answer, str) else f"a {type(answer).__name__}"
            return VoteResult(False, f"Unknown answer {shown[:40]}; choose one of {', '.join(ANSWERS)}.",
                              keep_pair=True)
        if not isinstance(token, str | None) or not isinstance(session, str | None):
            return VoteResult(False, NOT_ISSUED)
        now = self.clock()
        try:
            with self.store.transaction() as tx:
                # The session's pair first (its row locked: one vote per pair), the client's rows
                # last: from their lock to the commit every other vote of that address waits, so
                # that stretch is one statement, one count (this vote included) and the commit.
                row = tx.live_pair(session or "", lock=True)
                if row is None or row.expires_at < now or not token or row.token != token:
                    if token and tx.token_used(token):
                        return VoteResult(False, "This pair has already been judged; votes count once.")
                    return VoteResult(False, NOT_ISSUED)
                battle = self._battle(row)
                elapsed = now - battle.shown_at
                if elapsed < self.min_vote_seconds:
                    return VoteResult(False, f"That was too fast: please look at both images for at least "
                                             f"{self.min_vote_seconds:g} s; you took {tenths_down(elapsed)} s. The "
                                             "vote was not counted.", battle, keep_pair=True)
                vote_id = tx.insert_vote(vote_row(dataclasses.replace(battle, client=client), answer, elapsed,
                                                  utc_iso(now)))
                tx.drop_live_pair(session)
                tx.lock_keys([client.address_key, client.judge_key])
                refusal = self._over_a_cap(tx, client, now)
                if refusal:
                    raise _OverACap(refusal)  # rolled back: the vote is not stored, the pair stays live
        except _OverACap as e:
            return VoteResult(False, f"{e} The vote was not counted; please wait a little.", battle, keep_pair=True)
        except sa_exc.IntegrityError:  # the token is in a vote already (cannot happen while pairs are locked)
            return VoteResult(False, "This pair has already been judged; votes count once.")
        return VoteResult(True, "Vote recorded.", battle, vote_id)

    def _over_a_cap(self, tx, client: Client, now: float) -> str | None:
        """Counted in the votes table, inside the vote's transaction (whose vote the counts
        include), with the client's rows locked."""
        lim = self.limits
        counts = tx.votes_since({"judge": client.judge_key, "client": client.address_key},
                                now - RATE_WINDOW_SECONDS, now - DAY_SECONDS)
        (judge_minute, judge_day), (address_minute, address_day) = counts["judge"], counts["client"]
        if judge_minute > lim.votes_per_minute:
            return f"Too many votes: at most {lim.votes_per_minute} a minute per judge."
        if address_minute > lim.address_votes_per_minute:
            return (f"Too many votes from your connection: at most {lim.address_votes_per_minute} a minute from "
                    "one address, shared by everyone behind it.")
        if judge_day > lim.votes_per_day:
            return f"You have reached the limit of {lim.votes_per_day} votes a day. Thank you for judging!"
        if address_day > lim.address_votes_per_day:
            return (f"Your connection has reached the limit of {lim.address_votes_per_day} votes a day, shared by "
                    "everyone behind its address.")
        return None

    def votes_cast(self, session: str | None) -> int:
        return self.store.count(session) if session else 0


def _live_pair_row(battle: Battle, expires_at: float) -> dict:
    return {"session": battle.session, "token": battle.token, "image": battle.image_id,
            "degradation": battle.degradation, "model_a": battle.a.name, "revision_a": battle.a.revision,
            "model_b": battle.b.name, "revision_b": battle.b.revision, "shown_at": battle.shown_at,
            "expires_at": expires_at, "client": battle.client.address_key, "judge": battle.client.judge_key,
            "family": battle.family, "crop": battle.crop}
