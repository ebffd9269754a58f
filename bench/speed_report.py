"""What `python -m bench.speed` measures and prints (its --help lists the parts, in order): the
numbers behind the speed bars. `measure` runs them with the parsed arguments."""

import ast
import dataclasses
import gc
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench import engines
from bench.memory import memory, reset_peak
from bench.photos import test_image
from bench.voter import VoterClient
from restoration.data.degrade import prepare
from restoration.data.images import to_tensor
from restoration.hub.catalogue import load_available_restorers
from restoration.inference import engine
from restoration.inference.compare import Stopwatch, family_for_image
from restoration.inference.device import resolve
from restoration.inference.eligibility import Agreement
from restoration.inference.runner import choose_engine, release_memory, restorers_for
from restoration.settings import REPO, WINDOWS, Settings

# The bars of issue 31: a 1024² Compare ÷ the family's three fp32 eager passes, by the CPU's kind.
IN_PROCESS_BAR = {True: 0.35, False: 0.55}  # has bfloat16 instructions → bar
API_BAR = {True: 0.45, False: 0.6}
FIRST_PANEL_BAR = {"in-process": 0.3, "API": 0.6}  # seconds, at 1024²


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls (after one untimed call), in seconds: on a shared
    machine the minimum is the least disturbed."""
    return min(engines.run_times(fn, repeats))


def matmul_peak(sizes=(1024, 2048, 3072)) -> float:
    """GFLOP/s of the best fp32 matmul."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        best = max(best, 2 * n**3 / best_of(lambda: a @ b, 3) / 1e9)
    return best


def model_flops(model, side: int) -> int:
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model.restore(torch.rand(1, 3, side, side))
    return counter.get_total_flops()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def stop(proc: subprocess.Popen, grace: float):
    """Ask `proc` to end; kill it if it has not within `grace` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()


def measure_startup(threads: int, cache_dir: Path, timeout: float = 300):
    """(seconds to the page, seconds to the end of the warm-up, whether the page came first) for
    `python app.py` with an empty compile cache."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", TORCHINDUCTOR_CACHE_DIR=str(cache_dir),
               RESTORATION_VOTES_DB=str(cache_dir / "votes.db"), RESTORATION_THREADS=str(threads),
               GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
    log = cache_dir / "app.log"
    t0 = time.perf_counter()
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    page = warm = None
    try:
        while time.perf_counter() - t0 < timeout and proc.poll() is None and (page is None or warm is None):
            if page is None:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                        if r.status == 200:
                            page = time.perf_counter() - t0
                except OSError:
                    pass
            if warm is None and "fast path: warmed up" in log.read_text():
                warm = time.perf_counter() - t0
            time.sleep(0.2)
    finally:
        stop(proc, 10)
    text = log.read_text()
    line = next((ln for ln in text.splitlines() if "fast path:" in ln and "warmed up" in ln), "")
    if page is None or warm is None:
        print(f"  (start-up did not finish: page {page}, warm-up {warm}; log tail:\n{text[-2000:]})")
    return page, warm, line


def child_compare_memory(path: Path, threads: int) -> dict[str, float]:
    """The resident memory (MB) of a fresh process that loads the models, warms the fast path up
    (compile cache warm), and runs one Compare of the image at `path` through the app's handler:
    "start" its peak before the request, "idle" just before it, "peak" during it, "after" once done."""
    code = ("import torch, bench.speed_report as s; torch.set_num_threads(%d); "
            "print('MEMORY', s._one_compare(%r))" % (threads, str(path)))
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=900)
    m = re.search(r"MEMORY (\{.*\})", out.stdout)
    if not m:
        print(out.stdout[-1000:], out.stderr[-2000:])
        return dict.fromkeys(("start", "idle", "peak", "after"), float("nan"))
    return ast.literal_eval(m.group(1))


def _one_compare(path: str) -> dict[str, float]:
    """Run one Compare (fast path, warmed) in this process; its resident memory (MB) as
    `child_compare_memory` says."""
    from app import ArenaApp

    settings = dataclasses.replace(Settings.from_env(), votes_db=Path(tempfile.mkdtemp()) / "votes.db")
    models, _ = load_available_restorers(settings.weights_dir)
    choice = choose_engine(models, settings, resolve(settings.device))
    app = ArenaApp(settings, models, restorers=restorers_for(models, settings, precision=choice.precision,
                                                             device=choice.device))
    for r in app.restorers.values():
        r.warm_up()
    release_memory()
    before = memory()
    reset_peak()
    for _ in app.compare(path, "degrade", progress=_no_progress):
        pass
    during = memory()
    app.close()
    return {"start": round(before["VmHWM"]), "idle": round(before["VmRSS"]), "peak": round(during["VmHWM"]),
            "after": round(during["VmRSS"])}


def _no_progress(*args, **kwargs):
    pass


def warmed(restorers):
    for r in restorers.values():
        r.warm_up()
    return restorers


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _status(restorers) -> str:
    return next(iter(restorers.values())).status if restorers else "—"


def _build(name, make, model, settings):
    """(Restorer, warm-up seconds, MB of resident memory it added) of one candidate, or why not."""
    release_memory()
    before = engines.rss_mb()
    try:
        r, seconds = make(model, settings)
    except Exception as e:  # noqa: BLE001 (a candidate that fails is reported, not fatal)
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:150] if str(e) else ''}"
    release_memory()
    return r, seconds, engines.rss_mb() - before


def report_engines(args, settings, models, peak):
    """The candidates' table (engines.py): per model and side, seconds (median), GFLOP/s, % of the
    fp32 matmul peak, speed-up over fp32 eager, warm-up, memory, max |Δ| against fp32 eager on the
    same windows. Candidates run in turn within each repeat, so a disturbance hits them alike.
    Returns ({model: fp32 eager seconds at 1024²}, {model: today's Restorer})."""
    makers = engines.candidates(args.threads, Path(settings.val_dir))
    if args.only:
        makers = {k: v for k, v in makers.items() if k.startswith((*args.only, "fp32"))}
    for name, why in makers.items():
        if isinstance(why, str):
            print(f"candidate {name}: skipped ({why})")
    makers = {k: v for k, v in makers.items() if not isinstance(v, str)}
    print("\n| model | candidate | warm-up (s) | +memory (MB) | side | GFLOP | eager fp32 (s) | candidate (s) | GFLOP/s | "
          "% of fp32 peak | × eager | max |Δ| vs eager windows (/255) |")
    print("|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    eager_1024, today = {}, {}
    for k, m in enumerate(models[:args.models]):
        built = {}
        for name, make in makers.items():
            if name.startswith("int8") and k >= args.int8_models:
                continue
            b = _build(name, make, m.model, settings)
            if isinstance(b, str):
                print(f"| {m.entry.title} | {name} | {b} |")
            else:
                built[name] = b
        references = {name: engines.same_windows(m.model, settings, r) for name, (r, *_) in built.items()}
        for side in args.sides:
            with tempfile.TemporaryDirectory() as tmp, Image.open(test_image(side, Path(tmp))) as im:
                # As Compare runs it: the Restorers take the low-resolution image ((side / 2)²), the
                # eager pass the U-Net's input, its ×2 nearest upscale; both give side² pixels.
                low, x, _ = prepare(to_tensor(im.convert("RGB")), "degrade")
            flops = model_flops(m.model, side)
            repeats = args.repeats if side <= 1024 else 1
            times = {name: [] for name in ["eager", *built]}
            with torch.inference_mode():
                ref = {name: reference(low) for name, reference in references.items()}
                for name, (r, *_ ) in built.items():
                    r(low)  # the first call sets kernels up
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    m.model.restore(x[None])
                    times["eager"].append(time.perf_counter() - t0)
                    for name, (r, *_) in built.items():
                        t0 = time.perf_counter()
                        r(low)
                        times[name].append(time.perf_counter() - t0)
            t_eager = statistics.median(times["eager"])
            if side == 1024:
                eager_1024[m.entry.name] = t_eager
            for name, (r, warm, mb) in built.items():
                t = statistics.median(times[name])
                apart = (r(low) - ref[name]).abs().max().item() * 255
                print(f"| {m.entry.title} | {name} | {warm:.1f} | {mb:.0f} | {side}² | {flops / 1e9:.1f} | {t_eager:.3f} | "
                      f"{t:.3f} | {flops / t / 1e9:.0f} | {100 * flops / t / 1e9 / peak:.0f} % | {t_eager / t:.2f}× | "
                      f"{apart:.2f} |", flush=True)
            release_memory()
        today[m.entry.name] = built["fp32 compiled (today)"][0]
        m_accuracy = {name: r for name, (r, *_) in built.items() if not name.startswith("fp32")}
        _CANDIDATES[m.entry.name] = m_accuracy
    return eager_1024, today


_CANDIDATES: dict[str, dict] = {}  # model → candidate name → Restorer (for the accuracy table)


def report_accuracy(args, settings, models):
    """Per model, degradation and data set: each candidate against fp32 eager (the same windows,
    the app's 8-bit path): ΔPSNR, ΔSSIM, the 99.9th percentile and the largest pixel move; eligible
    only if every model × degradation passes the bar (eligibility.py)."""
    sets = engines.accuracy_sets(settings, args.tiny, args.photos, args.photo_side)
    print(f"\nAccuracy against fp32 eager ({', '.join(f'{k}: {len(v)} images' for k, v in sets.items())}; photos "
          f"centre-cropped to {args.photo_side}²): ΔPSNR = candidate − fp32 (dB, mean over the images) / ΔSSIM / "
          "99.9th percentile of |Δ| / max |Δ| (levels of 255):")
    names = list(next(iter(_CANDIDATES.values()), {})) or ["bf16 autocast"]
    print("| model | degradation | data | fp32 PSNR | " + " | ".join(f"{n}: ΔPSNR / ΔSSIM / p99.9 / max" for n in names)
          + " |")
    print("|---|---|---|---:|" + "---:|" * len(names))
    worst: dict[str, list[Agreement]] = {}
    for m in models:
        if m.entry.name not in _CANDIDATES:  # beyond --models: the cheap candidates (no compile, no calibration)
            cheap = {k: v for k, v in engines.candidates(args.threads, Path(settings.val_dir), cheap=True).items()
                     if k in names and not isinstance(v, str)}
            _CANDIDATES[m.entry.name] = {k: b[0] for k, make in cheap.items()
                                         if not isinstance(b := _build(k, make, m.model, settings), str)}
        for degradation in engines.DEGRADATIONS:
            for data, images in sets.items():
                if not images:
                    continue
                cells, base = [], None
                for name in names:
                    r = _CANDIDATES[m.entry.name].get(name)
                    if r is None:
                        cells.append("—")
                        continue
                    found, base = engines.accuracy(r, engines.same_windows(m.model, settings, r), images, degradation)
                    worst.setdefault(name, []).append(found)
                    cells.append(f"{found.psnr_delta:+.4f} / {found.ssim_delta:+.5f} / {found.p999} / {found.max_levels}"
                                 + ("" if found.eligible else " ✗"))
                base = f"{base:.2f}" if base is not None else "—"
                print(f"| {m.entry.title} | {degradation} | {data} | {base} | " + " | ".join(cells) + " |", flush=True)
    counts = {name: sum(name in c for c in _CANDIDATES.values()) for name in worst}
    for name, found in worst.items():
        w = Agreement.worst(found)
        print(f"  {name}: worst {w.text()}: {'eligible' if w.eligible else 'NOT eligible: ' + '; '.join(w.failures())}"
              + (f" (measured on {counts[name]} of {len(models)} models)" if counts[name] < len(models) else ""))
    report_window_effect(args, settings, models, sets["photos/val"])


def report_window_effect(args, settings, models, photos):
    """What the windows alone do to the picture: fp32 eager on the fast path's windows (fitted, at
    most settings.WINDOWS["bf16"]) against fp32 eager on the reference path's (WINDOWS["eager"], one
    size: an image that fits one window is padded to it at its bottom and right edges), on the photos."""
    if not photos or WINDOWS["bf16"] == WINDOWS["eager"]:
        return
    found = []
    for m in models:
        wide, narrow = (engines.Restorer(m.model, window=WINDOWS[p], overlap=settings.tile_overlap, fast=False, fit=fit)
                        for p, fit in (("bf16", True), ("eager", False)))
        found += [engines.accuracy(wide, narrow, photos, degradation)[0] for degradation in engines.DEGRADATIONS]
    w = Agreement.worst(found)
    print(f"  fp32 eager on the fast path's windows (fitted, at most {WINDOWS['bf16']} pixels) against fp32 eager on "
          f"{WINDOWS['eager']}-pixel ones "
          f"(photos/val, every model and degradation): worst {w.text()}: the windows alone "
          f"{'keep' if w.eligible else 'do NOT keep'} the picture by the bar")


def compare_with_pool(app, path: Path, repeats: int):
    """(median seconds of a 1024² Compare with the scene pool idle (full), with it rendering): for
    the busy case every ready scene is counted used up just before the request, so the pool's
    thread is rendering replacements when it starts."""
    pool = app.scenes
    idle, busy = [], []
    for _ in range(repeats):
        deadline = time.perf_counter() + 300
        while pool.ready() < pool.size and time.perf_counter() < deadline:
            time.sleep(0.2)
        idle.append(time_compare(app, path, 1).last)
        with pool._cond:
            for scene in pool._ready:
                scene.uses = max(scene.uses, pool.uses)
            pool._cond.notify_all()
        time.sleep(0.5)  # the thread is into a render
        busy.append(time_compare(app, path, 1).last)
    return statistics.median(idle), statistics.median(busy)


@dataclasses.dataclass
class Timed:
    """One path's Compare at one size: medians over the requests, and the median request's steps."""
    first: float  # seconds to the first panel
    last: float  # seconds to the last panel (and its scores)
    gc_ms: float  # the garbage collector's pauses during the median request
    steps: dict[str, float]  # the median request's Stopwatch (ms)

    def where(self) -> str:
        return f"{'; '.join(f'{k} {v:.0f}' for k, v in self.steps.items())} (ms); gc pauses {self.gc_ms:.0f} ms"


class GcPauses:
    """Milliseconds the cyclic garbage collector held the interpreter, while installed."""

    def __init__(self):
        self.ms, self._t0 = 0.0, None

    def __call__(self, phase, info):
        if phase == "start":
            self._t0 = time.perf_counter()
        elif self._t0 is not None:
            self.ms += (time.perf_counter() - self._t0) * 1000

    def __enter__(self):
        gc.callbacks.append(self)
        return self

    def __exit__(self, *exc):
        gc.callbacks.remove(self)


def time_compare(app, path: Path, repeats: int) -> Timed:
    """The medians over `repeats` requests through the app's streaming handler (degrade mode)."""
    runs = []
    for _ in range(repeats):
        with GcPauses() as pauses:
            t0 = time.perf_counter()
            first = None
            for _ in app.compare(str(path), "degrade", progress=_no_progress):
                first = first or time.perf_counter() - t0
            last = time.perf_counter() - t0
        runs.append((last, first, pauses.ms, dict(app.last_compare.ms)))
    runs.sort(key=lambda r: r[0])
    last, _, gc_ms, steps = runs[len(runs) // 2]
    return Timed(statistics.median(r[1] for r in runs), last, gc_ms, steps)


def start_app(threads: int, cache: Path, log: Path, env: dict | None = None, timeout: float = 1800,
              renderer_timeout: float = 300):
    """`python app.py` in a subprocess, once its fast path and its scene renderer have warmed up:
    (the process, its URL). Its scene pool keeps one scene (RESTORATION_SCENE_POOL=1): once that is
    rendered the pool is idle, as a full pool is until votes use its scenes up (the pool rendering
    is measured on its own, by `compare_with_pool`). GRADIO_PROFILING=1: Gradio keeps each
    request's phases (`gradio_phases`)."""
    port = free_port()
    env = dict(os.environ, GRADIO_SERVER_PORT=str(port), GRADIO_SERVER_NAME="127.0.0.1", GRADIO_ANALYTICS_ENABLED="False",
               GRADIO_PROFILING="1", PYTHONUNBUFFERED="1", TORCHINDUCTOR_CACHE_DIR=str(cache / "inductor"),
               RESTORATION_VOTES_DB=str(cache / "api-votes.db"), RESTORATION_THREADS=str(threads),
               RESTORATION_SCENE_POOL="1", **(env or {}))
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + timeout
    while "fast path: warmed up" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"the app did not warm up (exit code {proc.poll()}); its log:\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    # The scene renderer warms up after its first scene, at the lowest priority (compiling, where
    # fp32 ships, takes minutes on a busy machine): waited for a while, and said if it is still at it.
    deadline = time.monotonic() + renderer_timeout
    while "scene renderer: fast path warmed up" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.5)
    if "scene renderer: fast path warmed up" not in log.read_text():
        print(f"  (the app's scene renderer was still warming up, at the lowest priority, after {renderer_timeout:.0f} s)")
    return proc, f"http://127.0.0.1:{port}/"


def api_compare(client: VoterClient, path: Path) -> tuple[float, float, int]:
    """(seconds to the first panel, seconds to every panel, MB downloaded) of one `/compare` as the
    page makes it: the upload is sent first (the page uploads an image when it is picked, before
    Restore is pressed), then the clock runs from the request to each step whose files have all
    been downloaded."""
    upload = client.upload(path)
    fetched = len(client.fetched)
    t0 = time.perf_counter()
    first = None
    for outputs, done in client.stream(upload, "degrade", "lesson", False, None, api_name="/compare"):
        if first is None and any(isinstance(o, str) and o.endswith(".webp") for o in outputs):
            first = time.perf_counter() - t0
        if done:
            last = time.perf_counter() - t0
    return first, last, len(client.fetched) - fetched


def log_steps(log: Path, size: str) -> list[dict[str, float]]:
    """The Stopwatch steps of each Compare of `size` ("1024×1024") in the app's log, in order."""
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith(f"compare {size},")]
    return [Stopwatch.parse(ln.split(": ", 1)[1]) for ln in lines]


def gradio_phases(url: str, n: int) -> list[dict]:
    """Gradio's phases (ms) of the last `n` /compare requests (GRADIO_PROFILING), or [] without it."""
    try:
        with urllib.request.urlopen(f"{url}gradio_api/profiling/traces", timeout=10) as r:
            traces = json.loads(r.read())
    except OSError:
        return []
    return [t for t in traces if t.get("fn_name") == "compare"][-n:]


def report_api(args, cache: Path, eager_three: Callable[[], float], has_bf16: bool):
    """The Compare through the running app's API (section 6 of the docstring). `eager_three()`
    times the family's three fp32 eager passes at 1024² in this process: run before each timed
    request, so that the ratio divides by passes measured under the same load."""
    log = cache / "api-app.log"
    t0 = time.perf_counter()
    proc, url = start_app(args.threads, cache, log)
    engine_line = next((ln for ln in log.read_text().splitlines() if ln.startswith("engine:")), "")
    print(f"\nThe Compare through the app's API (a fresh `python app.py`, warmed up in {time.perf_counter() - t0:.0f} s; "
          f"{engine_line.strip()}); median of {args.api_repeats} requests, each after a warm-up request:")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            client = VoterClient(url, timeout=600)
            try:
                for side in (256, 1024):
                    path = test_image(side, Path(tmp))
                    api_compare(client, path)  # warm-up: the first request of a size allocates
                    runs, eager = [], []
                    for _ in range(args.api_repeats):
                        if side == 1024:
                            eager.append(eager_three())
                        runs.append(api_compare(client, path))
                    runs.sort(key=lambda r: r[1])
                    first, last, files = runs[len(runs) // 2]
                    line = (f"  {side}²: first panel {statistics.median(r[0] for r in runs):.2f} s, every panel "
                            f"{last:.2f} s ({files} files downloaded)")
                    if side == 1024:
                        three = statistics.median(eager)
                        line += (f"; the three fp32 eager passes, each time before: {', '.join(f'{e:.2f}' for e in eager)}"
                                 f" s; ÷ their median = {last / three:.2f} (bar ≤ {API_BAR[has_bf16]}); first panel bar "
                                 f"≤ {FIRST_PANEL_BAR['API']} s")
                    print(line, flush=True)
                    steps = log_steps(log, f"{side}×{side}")[-args.api_repeats:]
                    if steps:
                        median = sorted(steps, key=lambda st: sum(st.values()))[len(steps) // 2]
                        print(f"    on the server, the handler (median request, {sum(median.values()):.0f} ms): "
                              + "; ".join(f"{k} {v:.0f}" for k, v in median.items()) + " (ms)")
                    phases = gradio_phases(url, args.api_repeats)
                    if phases:
                        keys = ("queue_wait_ms", "fn_call_ms", "postprocess_ms", "postprocess_move_to_cache_ms",
                                "save_file_to_cache_ms", "streaming_diff_ms", "total_ms", "n_iterations")
                        print("    Gradio's phases (median): " + "; ".join(
                            f"{k.removesuffix('_ms')} {statistics.median(p.get(k, 0) for p in phases):.0f}" for k in keys)
                              + " (ms; n_iterations: steps)")
            finally:
                client.close()
    finally:
        stop(proc, 30)


def judge_latency(app, votes: int):
    """Seconds from a vote to the reply with the next pair, for `votes` votes by one judge (the
    first pair waits for the app's pool of rendered scenes to fill; the votes then find it warm)."""
    out = app.next_pair(None, None)
    times = []
    for i in range(votes):
        t0 = time.perf_counter()
        out = app.vote("A" if i % 2 else "B", out["session"], out["token"])
        times.append(time.perf_counter() - t0)
    return times


def train_images_per_second(threads: int, steps: int = 6, batch: int = 32, side: int = 64):
    """A training step of the compact MSE U-Net (forward, MSE loss, backward, AdamW) on random
    batches: images/s eager contiguous, eager channels-last, and compiled channels-last."""
    from restoration.models.classifier import PRESETS
    from restoration.models.unet import UNet

    out = {}
    for name, channels_last, compiled in [("eager", False, False), ("channels_last", True, False),
                                          ("compiled channels_last", True, True)]:
        torch.manual_seed(0)
        model = UNet(**PRESETS["compact"])
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        model = model.to(memory_format=fmt).train()
        opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.rand(batch, 3, side, side).contiguous(memory_format=fmt)
        y = torch.rand(batch, 3, side, side).contiguous(memory_format=fmt)
        forward = torch.compile(model) if compiled else model

        def step():
            loss = torch.nn.functional.mse_loss(forward(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        t0 = time.perf_counter()
        step()  # the first step compiles
        first = time.perf_counter() - t0
        seconds = best_of(step, steps)
        out[name] = (batch / seconds, first)
    return out


def flags_line() -> str:
    """The CPU's name and the flags that matter for the engines, in words."""
    name = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?") \
        if Path("/proc/cpuinfo").exists() else "?"
    sets = engine.instruction_sets()
    yes = lambda b: "yes" if b else "no"  # noqa: E731
    return (f"CPU: {name}, {os.cpu_count()} cores; AVX2 {yes(sets['avx2'])}, AVX-512 {yes(sets['avx512'])}, "
            f"bfloat16 instructions (AVX-512 BF16 or AMX) {yes(sets['avx512_bf16'] or sets['amx_bf16'])}; "
            f"torch kernels: {engine.cpu_summary()}; oneDNN bf16: {engine.bf16_supported()}")


def run(args, settings, cache):
    if args.train_only:
        return report_training(args)
    print(flags_line())
    if not args.skip_startup:
        page, warm, line = measure_startup(args.threads, cache)
        fmt = lambda v: "—" if v is None else f"{v:.1f} s"  # noqa: E731
        print(f"start-up (cold compile cache): page served after {fmt(page)}, warm-up ended after {fmt(warm)}; "
              f"page before warm-up end: {page is not None and warm is not None and page < warm}")
        print(f"  app said: {line.strip()}")

    peak = matmul_peak()
    print(f"matmul peak (fp32): {peak:.0f} GFLOP/s")

    models, problems = load_available_restorers(settings.weights_dir)
    if problems:
        print("\n".join(problems))
    t0 = time.perf_counter()
    device = resolve(settings.device)  # on a GPU the Compare runs there; the eager passes stay on the CPU
    choice = choose_engine(models, settings, device)
    print(f"the start-up check ({time.perf_counter() - t0:.1f} s) says: {choice.line}", flush=True)
    has_bf16 = engine.bf16_supported() and not settings.simulate_no_bf16
    _, fast = report_engines(args, settings, models, peak)
    if not args.skip_accuracy:
        report_accuracy(args, settings, models)
    if args.skip_compare:
        return
    with tempfile.TemporaryDirectory() as tmp:  # the Compare's test images are photos: the photo family runs
        family = family_for_image(test_image(1024, Path(tmp)), sorted({m.entry.family for m in models}))
        x = to_tensor(Image.open(test_image(1024, Path(tmp))).convert("RGB"))
    for m in models:  # the models a quick run (--models) left out: compiled if the Compare below runs them
        if m.entry.name not in fast:
            fast[m.entry.name] = restorers_for([m], settings, precision="fp32", device=device)[m.entry.name]
            if m.entry.family == family:
                fast[m.entry.name].warm_up()

    from restoration.arena.app_state import ArenaApp, freeze_heap

    app_settings = dataclasses.replace(settings, votes_db=cache / "votes.db", min_vote_seconds=0.0, votes_per_minute=10**6,
                                       votes_per_day=10**6, address_votes_per_minute=10**6,
                                       address_votes_per_day=10**6, pairs_per_minute=10**6, threads=args.threads)
    shipped = warmed(restorers_for(models, settings, precision=choice.precision, device=choice.device))
    paths = {"fp32 compiled" if device.type == "cpu" else "fp32": fast,
             f"shipped ({choice.precision}: {_status(shipped)})": shipped}
    bar = IN_PROCESS_BAR[has_bf16]
    print("\nEnd-to-end Compare in-process, through ArenaApp.compare (degrade mode, one family's 3 U-Nets, every panel, "
          f"PSNR + SSIM, the panels' files), the heap frozen as the app freezes it, the scene pool stopped; the paths "
          f"and the family's three fp32 eager passes at 1024² take turns, median of {args.repeats}:")
    with tempfile.TemporaryDirectory() as tmp:
        apps = {name: ArenaApp(app_settings, models, restorers=restorers) for name, restorers in paths.items()}
        for app in apps.values():
            if app.scenes:
                app.scenes.stop()
        runs_family = [m for m in models if m.entry.family == family]

        def eager_three() -> float:
            with torch.inference_mode():
                return sum(_seconds(lambda: m.model.restore(x[None])) for m in runs_family)  # noqa: B023 (called at once)

        # Before the heap is frozen, as this benchmark ran its Compare until issue 31 (the app itself
        # freezes it at start-up): the garbage collector walks everything loaded and compiled so far.
        unfrozen = test_image(1024, Path(tmp))
        for name, app in apps.items():
            time_compare(app, unfrozen, 1)  # the first request of a size allocates
            t = time_compare(app, unfrozen, 1)
            print(f"  {name}, 1024², the heap not frozen (objects tracked: {len(gc.get_objects()):,}): every panel "
                  f"{t.last:.2f} s, of which gc pauses {t.gc_ms:.0f} ms", flush=True)
        freeze_heap()
        for side in (256, 1024):
            path = test_image(side, Path(tmp))
            for app in apps.values():
                time_compare(app, path, 1)  # the first request of a size allocates
            rounds, eager = {name: [] for name in apps}, []
            for _ in range(args.repeats):
                if side == 1024:
                    eager.append(eager_three())
                for name, app in apps.items():
                    rounds[name].append(time_compare(app, path, 1))
            if eager:
                print(f"  the family's {len(runs_family)} fp32 eager forward passes at 1024², each round: "
                      f"{', '.join(f'{e:.2f}' for e in eager)} s (median {statistics.median(eager):.2f} s)")
            for name, runs in rounds.items():
                runs.sort(key=lambda t: t.last)
                timed = runs[len(runs) // 2]
                line = (f"  {name}, {side}²: first panel {statistics.median(t.first for t in runs):.2f} s, "
                        f"every panel {timed.last:.2f} s")
                if side == 1024:
                    line += (f"; ÷ the eager passes' median = {timed.last / statistics.median(eager):.2f} (bar ≤ {bar} "
                             f"on a CPU {'with' if has_bf16 else 'without'} bfloat16); first panel bar ≤ "
                             f"{FIRST_PANEL_BAR['in-process']} s")
                print(line)
                print(f"    where the time went (median request): {timed.where()}", flush=True)
        for app in apps.values():
            app.close()
        del apps
        if not args.skip_api:
            report_api(args, cache, eager_three, has_bf16)
        if not args.skip_pool:
            app = ArenaApp(app_settings, models, restorers=shipped)
            if app.scenes is not None:
                idle, busy = compare_with_pool(app, test_image(1024, Path(tmp)), args.repeats)
                print(f"  1024² Compare with the scene pool idle {idle:.2f} s, rendering {busy:.2f} s: "
                      f"{busy / idle:.2f}× (bar ≤ 1.2)")
                if app.arena is not None:
                    times = judge_latency(app, args.votes)
                    print(f"judge, vote → next pair ({args.votes} votes, {len(app.pool)} images in the pool): median "
                          f"{statistics.median(times):.2f} s, max {max(times):.2f} s, first {times[0]:.2f} s")
            else:
                print("  (no judge pool here: the scene pool's effect is not measured)")
            app.close()

    if not args.skip_memory:
        with tempfile.TemporaryDirectory() as tmp:
            rss = child_compare_memory(test_image(args.memory_side, Path(tmp)), args.threads)
        print(f"resident memory of a process running one {args.memory_side}² ({args.memory_side**2 / 1e6:.1f} MP) "
              f"Compare: peak during it {rss['peak']:.0f} MB; {rss['idle']:.0f} MB before it (libraries, models, compiled "
              f"code), {rss['after']:.0f} MB after; the start-up's peak (loading, compiling) {rss['start']:.0f} MB")

    if args.train:
        report_training(args)


def report_training(args):
    rates = train_images_per_second(args.threads)
    print("\ntraining step (compact MSE U-Net, batch 32 at 64², AdamW):")
    for name, (ips, first) in rates.items():
        print(f"  {name}: {ips:.0f} images/s (first step {first:.1f} s)")


def measure(args, settings):
    """Every part of `python -m bench.speed` that `args` asks for, printed as it is measured."""
    torch.set_num_threads(args.threads)
    # A fresh compile cache, shared with the subprocesses: the start-up below is a cold start.
    cache = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
    load = os.getloadavg()
    print(f"bench.speed: {args.threads} torch threads, {os.cpu_count()} CPUs, load average {load[0]:.1f} at the start, "
          f"torch {torch.__version__}, window {settings.tile_size or 'by precision'}, overlap {settings.tile_overlap}, "
          f"batch {settings.tile_batch}")
    try:
        run(args, settings, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
