"""How long `python app.py` takes to serve when it is told to take its models from the Hub but the
Hub is unreachable, and what the page then says about each model.

    python -m bench.hub_down_start

Runs `python app.py` with RESTORATION_MODEL_SOURCE=hub and HF_ENDPOINT at a port where nothing
listens: with the shipped weights/models.json (nothing pinned yet), and with a copy of weights/
whose revisions are pinned (so the Hub is really asked); then with a Hub that accepts the
connection and never answers, with and without huggingface_hub's telemetry. A first run with
RESTORATION_MODEL_SOURCE=local is the baseline. Polls the page until it answers and checks that it
names the fallback for every model; prints the seconds from the start of the process. Not a test.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

from restoration.cli import parser
from restoration.settings import REPO


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_once(weights: Path, tmp: str, hub: str, timeout: float = 60.0, extra: dict | None = None):
    env = os.environ | {"RESTORATION_MODEL_SOURCE": "hub", "HF_ENDPOINT": hub, "HF_HOME": f"{tmp}/hf",
                        "RESTORATION_WEIGHTS_DIR": str(weights), "RESTORATION_VOTES_DB": f"{tmp}/votes.db",
                        "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"} | (extra or {})
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()
    page, seconds = None, None
    try:
        while time.monotonic() - start < timeout and proc.poll() is None and page is None:
            url = next((m.group(1) for m in map(re.compile(r"Running on local URL:\s+(\S+)").search, list(lines)) if m),
                       None)
            try:
                if url:
                    page = urllib.request.urlopen(url, timeout=2).read().decode()
                    seconds = time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.05)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    variables = [f"{k}={v}" for k, v in ({"RESTORATION_MODEL_SOURCE": "hub"} | (extra or {})).items()]
    variables += [f"HF_ENDPOINT={hub}", f"RESTORATION_WEIGHTS_DIR={weights.name}"]
    print(f"\n$ {' '.join(variables)} python app.py")
    print("  " + "  ".join(lines[:4]).rstrip())
    if page is None:
        raise SystemExit(f"the app did not serve within {timeout:.0f} s")
    return seconds, page, lines


def report(weights: Path, tmp: str, expect: str | None, hub: str, extra: dict | None = None):
    seconds, page, _ = serve_once(weights, tmp, hub, extra=extra)
    if expect is None:  # the baseline: the shipped weights, the Hub not asked
        print(f"served after {seconds:.1f} s")
        return
    from restoration.hub.catalogue import read_catalog  # here: --help needs no torch

    restorers = [e for e in read_catalog(weights) if e.role == "restorer"]
    labels = {e.title: re.search(re.escape(f"{e.title}: local `{e.folder}`") + r" \(local:\w+\) \(([^)]*)\)", page)
              for e in restorers}
    named = [t for t, m in labels.items() if m and m.group(1) == expect]
    print(f"served after {seconds:.1f} s; the page's source line names \"{expect}\" for {len(named)} of "
          f"{len(restorers)} models")


def main(argv=None):
    parser("python -m bench.hub_down_start", __doc__).parse_args(argv)  # no options: --help, and a clear refusal
    with tempfile.TemporaryDirectory() as tmp:
        closed = f"http://127.0.0.1:{closed_port()}"
        report(REPO / "weights", tmp, None, closed, {"RESTORATION_MODEL_SOURCE": "local"})
        report(REPO / "weights", tmp, "not published yet", closed)
        pinned = Path(tmp) / "weights-pinned"
        shutil.copytree(REPO / "weights", pinned)
        catalog = json.loads((pinned / "models.json").read_text())
        for row in catalog["models"]:
            row["revision"] = row["revision"] or "0123456789abcdef0123456789abcdef01234567"
        (pinned / "models.json").write_text(json.dumps(catalog))
        report(pinned, tmp, "the Hub is unreachable", closed)
        # A Hub that takes the connection and never answers: the timeouts, not a refusal, decide.
        with socket.socket() as silent:
            silent.bind(("127.0.0.1", 0))
            silent.listen(16)
            silent_url = f"http://127.0.0.1:{silent.getsockname()[1]}"
            report(pinned, tmp, "the Hub is unreachable", silent_url)
            # huggingface_hub's first request also fetches its agent registry (3 s more when the Hub is
            # silent) unless telemetry is off, as `python -m train.publish space` sets it on the Space.
            report(pinned, tmp, "the Hub is unreachable", silent_url, {"HF_HUB_DISABLE_TELEMETRY": "1"})
            report(pinned, tmp, None, silent_url, {"RESTORATION_MODEL_SOURCE": "local"})  # what is not ours


if __name__ == "__main__":
    main()
