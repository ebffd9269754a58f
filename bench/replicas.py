"""Several replicas of the app on one PostgreSQL: throughput, caps, a killed replica, one leaderboard.

    python -m bench.replicas                              # every scenario
    python -m bench.replicas --only cap kill              # some of them
    python -m bench.replicas --voters 20 --replicas 1 2   # a smaller throughput grid

It starts its own throwaway PostgreSQL cluster on loopback (bench/postgres.py, fsync on), one
database per scenario, and each replica as `python app.py` on its own loopback port (bench/abuse.py's
RunningApp) with RESTORATION_VOTES_DB set to that database; voters drive the replicas through
Gradio's queue protocol as a page does (bench/voter.py: gradio_client's own CPU would be counted in
the replies), each voter on one replica (a Gradio page keeps its connection). Every wait is
bounded. Scenarios:

- throughput: `--max-replicas` replicas (default 4) are started and warmed up (the fast path
  compiled), caps raised out of the way; then for each voter count (`--voters`, default 20 and
  100) and replica count (`--replicas`, default 1 2 4) the voters, spread evenly over that many
  replicas, each ask for a pair, look `--think` seconds (default 2.1: a person's glance; the
  "too fast" rule stays at 2 s) and vote, for `--seconds` (default 30) after `--settle` seconds
  (default 40: the scene pools fill) not measured. Figures: accepted votes a second, p50/p95 of the
  vote reply (vote sent → reveal and next pair received, the pictures downloaded), the images
  judged, and how often a voter judged an image again within its last 10 pairs (the price of the
  scene pool's pacing). Also 40 voters on 2 replicas.
  After the runs: the leaderboard (summary and table) read from every replica, identical or not.
- cap: 2 replicas with the default caps (the per-judge minute cap raised, so the address's 30 a
  minute is the one that binds); `--bots` bots (default 6) from this one address, half on each
  replica, vote every 2.1 s for `--cap-seconds` (default 60). Votes accepted, and the valid votes
  the leaderboard of each replica counts.
- kill: 2 replicas, caps and the "too fast" rule off, 20 voters (10 on each) vote as fast as they
  can; after `--kill-after` seconds (default 15) one replica gets SIGKILL. Acknowledged votes (a
  reveal received) against the votes stored, per session: each reply says how many votes its
  session has in the store, so a session holding fewer than its voter was told is a lost vote.

Not a test: it prints figures. The replicas and the voters share this machine's cores, so the
figures say what one machine does with several replicas, not what several machines would.
"""

import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg

from bench.abuse import REPO, RunningApp, timed
from bench.postgres import Cluster
from bench.voter import VoterClient
from restoration.cli import parser

SCENARIOS = ("throughput", "cap", "kill")
VOTED = re.compile(r"[Yy]ou said")  # the reveal of an accepted vote
CAST = re.compile(r"cast this session: \*\*(\d+)\*\*")
IMAGE = re.compile(r"image `([^`]+)`")  # the judged pair's image, in the reveal
MANY = "1000000"
NO_CAPS = {"RESTORATION_VOTES_PER_MINUTE": MANY, "RESTORATION_VOTES_PER_DAY": MANY,
           "RESTORATION_ADDRESS_VOTES_PER_MINUTE": MANY, "RESTORATION_ADDRESS_VOTES_PER_DAY": MANY,
           "RESTORATION_PAIRS_PER_MINUTE": MANY}
SECRET = "bench-replicas-shared-secret-0123456789abcdef"


def start_replicas(n: int, url: str, work: Path, env: dict, extra: dict) -> list[RunningApp]:
    environ = {"RESTORATION_VOTES_DB": url, "RESTORATION_ARENA_SECRET": SECRET, **env, **extra}
    apps = []
    try:
        for i in range(n):
            apps.append(RunningApp(REPO, work / f"replica-{i}", env=environ))
    except BaseException:
        stop_all(apps)
        raise
    return apps


def stop_all(apps: list[RunningApp]):
    for app in apps:
        app.stop()


def quietly(fn):
    """Run fn with stderr muted: the clients' streaming threads print tracebacks when a replica is
    killed under them, which is the point of the scenario."""
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    try:
        return fn()
    finally:
        sys.stderr.close()
        sys.stderr = stderr


def leaderboard(app: RunningApp):
    summary, ranking, _matrix = app.client().predict(api_name="/leaderboard")
    return summary, ranking


def valid_votes(summary: str) -> int:
    return int(re.search(r"\*\*(\d+)\*\* valid votes", summary).group(1))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def left_out(summary: str) -> int:
    return int(re.search(r"\*\*(\d+)\*\* votes left out", summary).group(1))


def error_line(e: BaseException) -> str:
    return f"{type(e).__name__}: {str(e)[:80]}"


def percentiles(replies: list[float]) -> tuple[float | None, float | None]:
    if len(replies) < 2:
        return (round(replies[0], 2) if replies else None), None
    return round(statistics.median(replies), 2), round(statistics.quantiles(replies, n=20)[-1], 2)


# ------------------------------------------------------------------------------------ scenarios


def voting_run(apps: list[RunningApp], voters: int, seconds: float, settle: float, think: float) -> dict:
    """`voters` voters spread evenly over `apps`, each voting every `think` seconds."""
    replies, accepted, refused, errors = [], [0], [0], []
    images, seen_again = set(), [0]  # the images judged; votes on an image the voter judged in its last 10 pairs
    lock = threading.Lock()
    start = time.monotonic()
    measure_from, end = start + settle, start + settle + seconds

    def voter(i):
        rng = random.Random(i)
        try:
            client = VoterClient(apps[i % len(apps)].url)
            client.predict(api_name="/judge")
        except Exception as e:  # noqa: BLE001 (a figure, reported)
            with lock:
                errors.append(error_line(e))
            return
        recent = []
        while time.monotonic() + think < end:
            time.sleep(think * rng.uniform(1.0, 1.1))
            result, s = timed(client.predict, rng.choice(["A", "B", "tie"]), api_name="/vote")
            counted = time.monotonic() >= measure_from
            with lock:
                if isinstance(result, Exception):
                    errors.append(error_line(result))
                elif VOTED.search(result[4] or ""):
                    image = IMAGE.search(result[4]).group(1)
                    if counted:
                        accepted[0] += 1
                        replies.append(s)
                        images.add(image)
                        seen_again[0] += image in recent
                    recent = [*recent, image][-10:]
                else:
                    refused[0] += counted

    threads = [threading.Thread(target=voter, args=(i,), daemon=True) for i in range(voters)]
    for t in threads:
        t.start()
    # Where the CPU goes in the measured window: the replicas (the app, Gradio) and the voters (this process).
    time.sleep(max(0.0, measure_from - time.monotonic()))
    servers, clients = sum(cpu_seconds(a.proc.pid) for a in apps), sum(os.times()[:2])
    time.sleep(max(0.0, end - time.monotonic()))
    servers = sum(cpu_seconds(a.proc.pid) for a in apps) - servers
    clients = sum(os.times()[:2]) - clients
    for t in threads:
        t.join(max(1.0, end - time.monotonic()) + 60)
    p50, p95 = percentiles(replies)
    per_vote = lambda cpu: round(1000 * cpu / accepted[0]) if accepted[0] else None
    return {"replicas": len(apps), "voters": voters, "measured_s": seconds,
            "votes_per_s": round(accepted[0] / seconds, 1), "vote_reply_p50_s": p50, "vote_reply_p95_s": p95, "refused": refused[0], "errors": len(errors),
            "replica_cpu_ms_per_vote": per_vote(servers), "voter_cpu_ms_per_vote": per_vote(clients),
            "images_judged": len(images),
            "seen_again_in_10_pct": round(100 * seen_again[0] / accepted[0], 1) if accepted[0] else None,
            "first_error": errors[0] if errors else ""}


def throughput(cluster: Cluster, work: Path, args) -> list[dict]:
    url = cluster.create_database("throughput")
    apps = start_replicas(args.max_replicas, url, work / "throughput", NO_CAPS, args.app_env)
    try:
        for app in apps:
            if not app.wait_for_warm_up(timeout=600, renderer=True):  # the scene renderer's compile too
                raise RuntimeError(f"replica on port {app.port} did not warm up; see {app.work / 'app.log'}")
        print(f"  {len(apps)} replicas warmed up", flush=True)
        grid = [(v, n) for v in args.voters for n in args.replicas if n <= len(apps)]
        if 2 <= len(apps):
            grid.append((40, 2))
        results = []
        for voters, n in grid:
            figures = voting_run(apps[:n], voters, args.seconds, args.settle, args.think)
            print("  " + ", ".join(f"{k}: {v}" for k, v in figures.items()), flush=True)
            results.append(figures)
        boards = [leaderboard(app) for app in apps]
        same = all(b == boards[0] for b in boards)
        print(f"  leaderboard from each of {len(apps)} replicas: {[valid_votes(s) for s, _ in boards]} valid votes, "
              f"{[left_out(s) for s, _ in boards]} left out (flagged); summary and table identical: {same}", flush=True)
        return results
    finally:
        stop_all(apps)


def cap(cluster: Cluster, work: Path, args) -> dict:
    url = cluster.create_database("cap")
    apps = start_replicas(2, url, work / "cap", {"RESTORATION_VOTES_PER_MINUTE": "1000"}, args.app_env)
    accepted, refused, errors = [0] * args.bots, [0] * args.bots, [0] * args.bots
    first_error = []
    end = time.monotonic() + args.cap_seconds
    try:
        def bot(i):
            rng = random.Random(i)
            try:
                client = VoterClient(apps[i % 2].url)
                client.predict(api_name="/judge")
            except Exception as e:  # noqa: BLE001 (a figure, reported)
                errors[i] += 1
                first_error.append(error_line(e))
                return
            while time.monotonic() + 2.1 < end:
                time.sleep(2.1)
                result, _ = timed(client.predict, rng.choice(["A", "B"]), api_name="/vote")
                if isinstance(result, Exception):
                    errors[i] += 1
                    first_error.append(error_line(result))
                elif VOTED.search(result[4] or ""):
                    accepted[i] += 1
                else:
                    refused[i] += 1

        threads = [threading.Thread(target=bot, args=(i,), daemon=True) for i in range(args.bots)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(args.cap_seconds + 60)
        # Valid and flagged (left out) together: the bots are one judge voting every 2.1 s, which the
        # leaderboard may flag as too fast; what the cap bounds is the votes stored.
        summaries = [leaderboard(app)[0] for app in apps]
        counted = [valid_votes(s) + left_out(s) for s in summaries]
        return {"replicas": 2, "bots": args.bots, "seconds": args.cap_seconds, "accepted": sum(accepted),
                "accepted_per_replica": [sum(accepted[i::2]) for i in range(2)], "refused": sum(refused),
                "errors": sum(errors), "leaderboard_votes_per_replica": counted,
                "address_cap_per_minute": 30, "first_error": first_error[0] if first_error else ""}
    finally:
        stop_all(apps)


def kill(cluster: Cluster, work: Path, args) -> dict:
    url = cluster.create_database("kill")
    apps = start_replicas(2, url, work / "kill", {**NO_CAPS, "RESTORATION_MIN_VOTE_SECONDS": "0"}, args.app_env)
    voters = 20
    told = [0] * voters  # the session's stored votes, as the voter's last acknowledged reply said
    acknowledged, replies = [0] * voters, []
    stop = threading.Event()

    def voter(i):
        client = VoterClient(apps[i % 2].url)
        client.predict(api_name="/judge")
        while not stop.is_set():
            result, s = timed(client.predict, random.choice(["A", "B", "tie"]), api_name="/vote")
            if stop.is_set():
                return  # a reply that raced the kill is not counted either way
            if isinstance(result, tuple | list) and VOTED.search(result[4] or ""):
                acknowledged[i] += 1
                told[i] = int(CAST.search(result[5]).group(1))
                replies.append(s)

    try:
        threads = [threading.Thread(target=voter, args=(i,), daemon=True) for i in range(voters)]
        for t in threads:
            t.start()
        time.sleep(args.kill_after)

        def kill_one():
            apps[0].proc.kill()
            stop.set()
            apps[0].proc.wait()
            for t in threads:
                t.join(10)
            time.sleep(1)

        quietly(kill_one)
        acked = sum(acknowledged)
        with psycopg.connect(url) as conn:
            stored = conn.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
            per_session = sorted((n for (n,) in conn.execute("SELECT COUNT(*) FROM votes GROUP BY session")),
                                 reverse=True)
        # Each voter is one session; matched largest to largest, a session holding fewer votes than
        # its voter was told it had is a lost acknowledged vote (a matching exists iff this holds).
        per_voter = sorted(told, reverse=True)
        per_session += [0] * (len(per_voter) - len(per_session))
        lost = sum(max(0, t - s) for t, s in zip(per_voter, per_session))
        p50, p95 = percentiles(replies)
        return {"replicas": 2, "voters": voters, "seconds_before_kill": args.kill_after, "acknowledged": acked,
                "stored": stored, "acknowledged_lost": lost, "vote_reply_p50_s": p50, "vote_reply_p95_s": p95,
                "surviving_replica_answers": apps[1].proc.poll() is None and bool(leaderboard(apps[1])[0])}
    finally:
        stop_all(apps)


def main(argv=None):
    p = parser("python -m bench.replicas", __doc__)
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="the scenarios to run")
    p.add_argument("--max-replicas", type=int, default=4, help="throughput: replicas started")
    p.add_argument("--replicas", type=int, nargs="+", default=[1, 2, 4], help="throughput: replica counts")
    p.add_argument("--voters", type=int, nargs="+", default=[20, 100], help="throughput: voter counts")
    p.add_argument("--seconds", type=float, default=30, help="throughput: measured seconds per run")
    p.add_argument("--settle", type=float, default=40,
                   help="throughput: seconds of each run not measured (the scene pools fill, their renders settle)")
    p.add_argument("--think", type=float, default=2.1, help="throughput: seconds a voter looks before voting")
    p.add_argument("--bots", type=int, default=6, help="cap: bots from this one address")
    p.add_argument("--cap-seconds", type=float, default=60, help="cap: how long the bots vote")
    p.add_argument("--kill-after", type=float, default=15, help="kill: seconds of voting before kill -9")
    p.add_argument("--app-env", nargs="+", default=[], metavar="NAME=VALUE",
                   help="more environment for every replica, e.g. RESTORATION_SCENE_USES=1000")
    args = p.parse_args(argv)
    args.app_env = dict(item.split("=", 1) for item in args.app_env)
    print(f"app: {REPO}/app.py, weights: {REPO / 'weights'}, {os.cpu_count()} cores\n", flush=True)
    with Cluster() as cluster, tempfile.TemporaryDirectory(prefix="replicas-") as tmp:
        print(f"PostgreSQL on 127.0.0.1:{cluster.port} ({cluster.bin})", flush=True)
        for name in args.only:
            print(f"{name}:", flush=True)
            started = time.monotonic()
            if name == "throughput":
                throughput(cluster, Path(tmp), args)
            else:
                figures = (cap if name == "cap" else kill)(cluster, Path(tmp), args)
                for key, value in figures.items():
                    print(f"  {key}: {value}")
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
