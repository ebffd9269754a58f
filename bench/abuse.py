"""Load and abuse: what a hostile or merely busy crowd does to the running app.

    python -m bench.abuse                           # every scenario, against this checkout's app.py
    python -m bench.abuse --only stuffing kill      # some of them
    python -m bench.abuse --app-dir ../old-checkout  # another checkout's app.py (before/after figures)

Each scenario starts `python app.py` itself on a free loopback port (votes and temporary files in a
fresh temporary folder, the shipped weights), drives it through `gradio_client` the way a script
would, and stops it; every wait is bounded. Scenarios:

- stuffing: `--bots` threads (default 6) from this one address vote every 2.1 s for `--seconds`
  (default 60), each opening a fresh session every 20 votes; how many votes the server accepted,
  and how many the leaderboard counts.
- latency: a `--side`² (default 2048²) Compare request runs while a judge asks for a pair
  (/judge) and votes (/vote) `--rounds` times; the slowest of each.
- memory: the app's resident memory just before that Compare, its peak (VmHWM, reset when the
  Compare is sent) while it runs, and after; also the peak before it (start-up, compiling, the
  first pairs). Measured in the latency scenario's app (the judge's requests are small beside it).
  The Compare is sent a few seconds after start-up, while the fast path still compiles (the
  heavier case); with `--warm`, once the warm-up has ended.
- kill: 10 voters vote as fast as the app lets them (limits raised) for `--kill-after` seconds,
  then the app is killed with SIGKILL; acknowledged votes missing from the store afterwards.
- exit: after each scenario the app is stopped with SIGTERM; what it left in its temporary folder.

Not a test: it prints a table of figures. Run it on an otherwise idle machine: it uses every core.
"""

import os
import random
import re
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from bench.memory import memory, reset_peak
from bench.photos import test_image
from restoration.cli import parser

REPO = Path(__file__).resolve().parent.parent
SCENARIOS = ("stuffing", "latency", "kill")
VOTED = re.compile(r"[Yy]ou said")  # the reveal of an accepted vote


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RunningApp:
    """`python app.py` in a subprocess with its own votes database and temporary folder."""

    def __init__(self, app_dir: Path, work: Path, env: dict | None = None, ready_timeout: float = 240):
        self.work = work
        work.mkdir(parents=True, exist_ok=True)
        (work / "tmp").mkdir(exist_ok=True)
        self.port = free_port()
        self.db = work / "votes.db"
        environ = {**os.environ, "GRADIO_SERVER_NAME": "127.0.0.1", "GRADIO_SERVER_PORT": str(self.port),
                   "GRADIO_ANALYTICS_ENABLED": "False", "TMPDIR": str(work / "tmp"),
                   "GRADIO_TEMP_DIR": str(work / "tmp" / "gradio"), "RESTORATION_VOTES_DB": str(self.db),
                   "RESTORATION_WEIGHTS_DIR": str(REPO / "weights"), "PYTHONUNBUFFERED": "1", **(env or {})}
        self.log = open(work / "app.log", "w")
        self.proc = subprocess.Popen([sys.executable, "app.py"], cwd=app_dir, env=environ, stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}/"
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the app exited ({self.proc.returncode}); see {work / 'app.log'}")
            try:
                with urllib.request.urlopen(self.url, timeout=2):
                    return
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the app did not answer within {ready_timeout} s")

    def client(self):
        from gradio_client import Client

        return Client(self.url, verbose=False, analytics_enabled=False)

    def memory(self) -> dict[str, float]:
        """VmRSS and VmHWM (peak) of the app's process, in MB."""
        return memory(self.proc.pid)

    def warmed_up(self, renderer: bool = False) -> bool:
        """Whether the app has said that its fast path's warm-up has ended (and, with `renderer`,
        its scene renderer's, which compiles after the app's in a child process)."""
        log = (self.work / "app.log").read_text(errors="replace")
        return "fast path: warmed up" in log and (not renderer or "scene renderer: fast path warmed up" in log)

    def wait_for_warm_up(self, timeout: float = 300, renderer: bool = False) -> bool:
        deadline = time.monotonic() + timeout
        while not self.warmed_up(renderer) and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.5)
        return self.warmed_up(renderer)

    def leftovers(self) -> tuple[int, int]:
        """(files, bytes) left in the app's temporary folder, Gradio's cache included."""
        files = [p for p in (self.work / "tmp").rglob("*") if p.is_file()]
        return len(files), sum(p.stat().st_size for p in files)

    def stop(self, sig=signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


def counted_votes(client) -> tuple[int, int | None]:
    """(valid votes, votes left out) from the leaderboard's summary."""
    summary = client.predict(api_name="/leaderboard")[0]
    valid = int(re.search(r"\*\*(\d+)\*\* valid votes", summary).group(1))
    left = re.search(r"\*\*(\d+)\*\* votes left out", summary)
    return valid, int(left.group(1)) if left else None


def timed(fn, *args, **kwargs):
    t0 = time.perf_counter()
    try:
        result = fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001 (a refusal or a timeout is a figure here, not a crash)
        result = e
    return result, time.perf_counter() - t0


# ------------------------------------------------------------------------------------ scenarios


def stuffing(app_dir: Path, work: Path, bots: int, seconds: float, per_session: int = 20) -> dict:
    app = RunningApp(app_dir, work)
    accepted, refused, errors, sessions = [0] * bots, [0] * bots, [0] * bots, [0] * bots
    messages: dict[str, int] = {}
    end = time.monotonic() + seconds
    lock = threading.Lock()

    def bot(i):
        rng = random.Random(i)
        while time.monotonic() < end:
            try:
                client = app.client()
                client.predict(api_name="/judge")
                sessions[i] += 1
                for _ in range(per_session):
                    time.sleep(2.1)
                    if time.monotonic() >= end:
                        return
                    reveal = client.predict(rng.choice(["A", "B"]), api_name="/vote")[4]
                    if VOTED.search(reveal or ""):
                        accepted[i] += 1
                    else:
                        refused[i] += 1
                        with lock:
                            key = (reveal or "")[:60]
                            messages[key] = messages.get(key, 0) + 1
            except Exception as e:  # noqa: BLE001 (a refused /judge: count it, open a new session)
                errors[i] += 1
                with lock:
                    key = f"{type(e).__name__}: {str(e)[:60]}"
                    messages[key] = messages.get(key, 0) + 1
                time.sleep(2.1)

    threads = [threading.Thread(target=bot, args=(i,)) for i in range(bots)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 120)
    elapsed = time.monotonic() - t0
    valid, left_out = counted_votes(app.client())
    app.stop()
    files, size = app.leftovers()
    return {"bots": bots, "seconds": round(elapsed), "sessions": sum(sessions), "accepted": sum(accepted),
            "refused": sum(refused), "errors": sum(errors), "counted": valid, "left_out": left_out,
            "refusals": dict(sorted(messages.items(), key=lambda kv: -kv[1])[:4]),
            "leftover_files": files, "leftover_mb": round(size / 1e6, 1)}


def latency(app_dir: Path, work: Path, side: int, rounds: int, limit: float = 150, warm: bool = False) -> dict:
    app = RunningApp(app_dir, work)
    image = test_image(side, work)
    judge = app.client()
    timed(judge.predict, api_name="/judge")  # the first pair (the pool fills after start)
    time.sleep(3)
    if warm:
        app.wait_for_warm_up()
        time.sleep(3)  # the scene pool's last render
    warm_at_start = app.warmed_up()
    idle = app.memory()
    reset_peak(app.proc.pid)  # from here VmHWM is the peak while the Compare runs
    from gradio_client import handle_file

    uploader = app.client()
    t0 = time.monotonic()
    job = uploader.submit(handle_file(str(image)), "degrade", api_name="/compare")
    time.sleep(5)  # the upload arrives and the Compare starts
    judge_s, vote_s, voted = [], [], 0
    for _ in range(rounds):
        result, s = timed(judge.predict, api_name="/judge", )
        judge_s.append(s)
        time.sleep(2.1)
        result, s = timed(judge.predict, "tie", api_name="/vote")
        vote_s.append(s)
        voted += isinstance(result, tuple | list) and bool(VOTED.search(result[4] or ""))
    during = time.monotonic() - t0
    try:
        job.result(timeout=max(1.0, limit - (time.monotonic() - t0)))
        compare_s = round(time.monotonic() - t0, 1)
    except Exception as e:  # noqa: BLE001
        compare_s = f"not done in {limit:.0f} s ({type(e).__name__})"
    peak = app.memory()
    app.stop()
    files, size = app.leftovers()
    return {"side": side, "judge_max_s": round(max(judge_s), 2), "judge_median_s": round(statistics.median(judge_s), 2),
            "vote_max_s": round(max(vote_s), 2), "vote_median_s": round(statistics.median(vote_s), 2),
            "votes_accepted": voted, "rounds": rounds, "judged_during_s": round(during, 1),
            "compare_s": compare_s, "warm_up_done_at_compare": warm_at_start,
            "rss_start_peak_mb": round(idle["VmHWM"]), "rss_idle_mb": round(idle["VmRSS"]),
            "rss_peak_mb": round(peak["VmHWM"]), "rss_after_mb": round(peak["VmRSS"]), "leftover_files": files, "leftover_mb": round(size / 1e6, 1)}


def kill(app_dir: Path, work: Path, voters: int = 10, kill_after: float = 20) -> dict:
    many = "1000000"
    app = RunningApp(app_dir, work, env={
        "RESTORATION_MIN_VOTE_SECONDS": "0", "RESTORATION_VOTES_PER_MINUTE": many, "RESTORATION_VOTES_PER_DAY": many,
        "RESTORATION_ADDRESS_VOTES_PER_MINUTE": many, "RESTORATION_ADDRESS_VOTES_PER_DAY": many,
        "RESTORATION_PAIRS_PER_MINUTE": many})
    acknowledged, replies = [0] * voters, []
    stop = threading.Event()

    def voter(i):
        client = app.client()
        client.predict(api_name="/judge")
        while not stop.is_set():
            result, s = timed(client.predict, random.choice(["A", "B", "tie"]), api_name="/vote")
            if stop.is_set():
                return  # a reply that raced the kill is not counted either way
            if isinstance(result, tuple | list) and VOTED.search(result[4] or ""):
                acknowledged[i] += 1
                replies.append(s)

    threads = [threading.Thread(target=voter, args=(i,), daemon=True) for i in range(voters)]
    for t in threads:
        t.start()
    time.sleep(kill_after)
    acked = sum(acknowledged)  # read before the kill: every one of these was answered
    # The clients' streaming threads print a traceback when the connection dies: expected here.
    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")
    app.proc.kill()
    stop.set()
    app.proc.wait()
    app.log.close()
    for t in threads:
        t.join(10)
    time.sleep(1)
    sys.stderr.close()
    sys.stderr = stderr
    db = sqlite3.connect(app.db)
    stored = db.execute("SELECT COUNT(*) FROM votes").fetchone()[0]
    db.close()
    return {"voters": voters, "seconds": kill_after, "acknowledged": acked, "stored": stored,
            "acknowledged_missing": max(0, acked - stored),
            "vote_reply_median_s": round(statistics.median(replies), 2) if replies else None,
            "vote_reply_p95_s": round(statistics.quantiles(replies, n=20)[-1], 2) if len(replies) > 20 else None}


def main(argv=None):
    p = parser("python -m bench.abuse", __doc__)
    p.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="the scenarios to run")
    p.add_argument("--app-dir", type=Path, default=REPO, help="the checkout whose app.py to run")
    p.add_argument("--bots", type=int, default=6, help="stuffing: bot threads from this one address")
    p.add_argument("--seconds", type=float, default=60, help="stuffing: how long the bots vote")
    p.add_argument("--side", type=int, default=2048, help="latency: the Compare request's square image side")
    p.add_argument("--rounds", type=int, default=4, help="latency: /judge + /vote rounds while it runs")
    p.add_argument("--warm", action="store_true",
                   help="latency: send the Compare once the fast path's warm-up has ended (default: at once, "
                        "while it compiles, the heavier case)")
    p.add_argument("--kill-after", type=float, default=20, help="kill: seconds of voting before kill -9")
    args = p.parse_args(argv)
    print(f"app: {args.app_dir.resolve()}/app.py, weights: {REPO / 'weights'}, {os.cpu_count()} cores\n")
    with tempfile.TemporaryDirectory(prefix="abuse-") as tmp:
        for name in args.only:
            work = Path(tmp) / name
            if name == "stuffing":
                figures = stuffing(args.app_dir, work, args.bots, args.seconds)
            elif name == "latency":
                figures = latency(args.app_dir, work, args.side, args.rounds, warm=args.warm)
            else:
                figures = kill(args.app_dir, work, kill_after=args.kill_after)
            print(f"{name}:")
            for key, value in figures.items():
                print(f"  {key}: {value}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
