"""How fast the app is on this machine, measured in one run: the numbers behind the speed bars.

    python -m bench.speed                   # everything (a few minutes on 2 cores)
    python -m bench.speed --skip-startup    # without starting the app in a subprocess
    python -m bench.speed --train           # also images/s of a training step, before/after

Measured, in this order, with `--threads` torch threads:
1. start-up: `python app.py` in a subprocess with an empty compile cache (a cold start, as on a
   fresh Space): seconds until the page is served, and until the background warm-up has ended;
2. a matmul peak (fp32, the best of a few sizes): what "fraction of peak" divides by;
3. per model, at 256² and 1024²: the plain eager forward pass (`model.restore` on the whole image)
   and the fast path (`inference.Restorer`, warmed up), their GFLOP/s (FLOPs of the whole-image
   forward pass, counted by torch's FlopCounterMode, over the time) and fraction of the peak; the
   fast path's largest difference from the eager path on the same windows (must be ≤ 1e-4), and
   from the whole image (the windows' seams);
4. compile warm-up in this process (with the start-up run's compile cache on disk);
5. end-to-end Compare through the app's streaming handler (`ArenaApp.compare`, degrade mode:
   degradation, every panel, PSNR and SSIM, PNG files): time to the first panel and to the last;
6. the resident memory of a fresh process that runs one 4-megapixel Compare: its peak during the
   request (bench/memory.py resets the peak before it), before and after it, and its start-up peak;
7. the judge: time from a vote to the next pair (`ArenaApp.vote`).

Ratios measured in the same run (speed-ups, fractions of peak, compare ÷ eager) carry over to
other machines; absolute seconds do not. Not a test: it prints lines for the table in docs/benchmarks.md.
"""

import argparse
import ast
import dataclasses
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
from pathlib import Path

import torch
from PIL import Image
from torch.utils.flop_counter import FlopCounterMode

from bench.app_latency import test_image
from bench.memory import memory, reset_peak
from restoration.compare import restorers_for
from restoration.images import to_tensor
from restoration.inference import release_memory
from restoration.settings import REPO, Settings
from restoration.weights import load_available_restorers


def best_of(fn, repeats: int) -> float:
    """The fastest of `repeats` timed calls (after one untimed call), in seconds: on a shared
    machine the minimum is the least disturbed."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


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
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    text = log.read_text()
    line = next((ln for ln in text.splitlines() if "fast path:" in ln and "warmed up" in ln), "")
    if page is None or warm is None:
        print(f"  (start-up did not finish: page {page}, warm-up {warm}; log tail:\n{text[-2000:]})")
    return page, warm, line


def child_compare_memory(path: Path, threads: int) -> dict[str, float]:
    """The resident memory (MB) of a fresh process that loads the models, warms the fast path up
    (compile cache warm), and runs one Compare of the image at `path` through the app's handler:
    "start" its peak before the request, "idle" just before it, "peak" during it, "after" once done."""
    code = ("import torch, bench.speed as s; torch.set_num_threads(%d); "
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
    app = ArenaApp(settings, models)
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


def time_compare(app, path: Path, repeats: int):
    """(seconds to the first panel, seconds to the last), the medians over `repeats` requests
    through the app's streaming handler."""
    firsts, lasts = [], []
    for _ in range(repeats):
        t0 = time.perf_counter()
        first = None
        for _ in app.compare(str(path), "degrade", progress=_no_progress):
            first = first or time.perf_counter() - t0
        lasts.append(time.perf_counter() - t0)
        firsts.append(first)
    return statistics.median(firsts), statistics.median(lasts)


def judge_latency(app, votes: int):
    """Seconds from a vote to the reply with the next pair, for `votes` votes by one judge (the
    first pair waits for the app's pool of rendered scenes to fill; the votes then find it warm)."""
    session, token, *_ = app.next_pair(None, None)
    times = []
    for i in range(votes):
        t0 = time.perf_counter()
        out = app.vote("A" if i % 2 else "B", session, token)
        times.append(time.perf_counter() - t0)
        session, token = out[0], out[1]
    return times


def train_images_per_second(threads: int, steps: int = 6, batch: int = 32, side: int = 64):
    """A training step of the compact MSE U-Net (forward, MSE loss, backward, AdamW) on random
    batches: images/s eager contiguous, eager channels-last, and compiled channels-last."""
    from restoration.classifier import PRESETS
    from restoration.unet import UNet

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


def main(argv=None):
    settings = Settings.from_env()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=settings.threads)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--votes", type=int, default=10)
    p.add_argument("--skip-startup", action="store_true")
    p.add_argument("--train", action="store_true", help="also time a training step (compiling its backward takes minutes)")
    p.add_argument("--train-only", action="store_true", help="only the training step")
    p.add_argument("--memory-side", type=int, default=2048, help="side of the Compare whose peak RSS is measured")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    # A fresh compile cache, shared with the subprocesses: the start-up below is a cold start.
    cache = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(cache / "inductor")
    load = os.getloadavg()
    print(f"bench.speed: {args.threads} torch threads, {os.cpu_count()} CPUs, load average {load[0]:.1f} at the start, "
          f"torch {torch.__version__}, window {settings.tile_size}, overlap {settings.tile_overlap}, "
          f"batch {settings.tile_batch}")
    try:
        run(args, settings, cache)
    finally:
        shutil.rmtree(cache, ignore_errors=True)
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")


def run(args, settings, cache):
    if args.train_only:
        return report_training(args)
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
    eager = restorers_for(models, settings, fast=False)
    fast = restorers_for(models, settings, fast=True)
    t0 = time.perf_counter()
    for m in models:
        seconds = fast[m.entry.name].warm_up()
        print(f"compile warm-up {m.entry.title}: {seconds:.1f} s ({fast[m.entry.name].status})")
    print(f"compile warm-up, all models, in this process: {time.perf_counter() - t0:.1f} s")

    print("\n| model | side | GFLOP | eager whole (s) | eager GFLOP/s | fast (s) | fast GFLOP/s | fast % of peak | "
          "fast ÷ eager speed-up | max |fast − eager windows| | max |fast − whole| |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    eager_1024 = 0.0
    for side in (256, 1024):
        with tempfile.TemporaryDirectory() as tmp, Image.open(test_image(side, Path(tmp))) as im:
            x = to_tensor(im.convert("RGB"))  # photo-like: the seams' differences as on a photo
        for m in models:
            flops = model_flops(m.model, side)
            with torch.inference_mode():
                whole_out = m.model.restore(x[None])[0]
                t_eager = best_of(lambda: m.model.restore(x[None]), args.repeats if side == 256 else 2)
            r = fast[m.entry.name]
            t_fast = best_of(lambda: r(x), args.repeats if side == 256 else 2)
            out = r(x)
            diff_windows = (out - eager[m.entry.name](x)).abs().max().item()
            diff_whole = (out - whole_out).abs().max().item()
            if side == 1024:
                eager_1024 += t_eager
            print(f"| {m.entry.title} | {side}² | {flops / 1e9:.1f} | {t_eager:.3f} | {flops / t_eager / 1e9:.0f} | "
                  f"{t_fast:.3f} | {flops / t_fast / 1e9:.0f} | {100 * flops / t_fast / 1e9 / peak:.0f} % | "
                  f"{t_eager / t_fast:.2f}× | {diff_windows:.1e} | {diff_whole:.1e} |")

    from app import ArenaApp

    app_settings = dataclasses.replace(settings, votes_db=cache / "votes.db", min_vote_seconds=0.0, votes_per_minute=10**6,
                                       votes_per_day=10**6, address_votes_per_minute=10**6,
                                       address_votes_per_day=10**6, pairs_per_minute=10**6, threads=args.threads)
    app = ArenaApp(app_settings, models, restorers=fast)
    print("\nEnd-to-end Compare through ArenaApp.compare (degrade mode, all panels, PSNR + SSIM, PNG files), "
          f"median of {args.repeats}:")
    with tempfile.TemporaryDirectory() as tmp:
        for side in (256, 1024):
            first, last = time_compare(app, test_image(side, Path(tmp)), args.repeats)
            line = f"  {side}²: first panel {first:.2f} s, last panel {last:.2f} s"
            if side == 1024:
                line += (f"; the three eager forward passes at 1024²: {eager_1024:.2f} s; compare ÷ eager = "
                         f"{last / eager_1024:.2f}")
            print(line)

    with tempfile.TemporaryDirectory() as tmp:
        rss = child_compare_memory(test_image(args.memory_side, Path(tmp)), args.threads)
    print(f"resident memory of a process running one {args.memory_side}² ({args.memory_side**2 / 1e6:.1f} MP) Compare: "
          f"peak during it {rss['peak']:.0f} MB; {rss['idle']:.0f} MB before it (libraries, models, compiled code), "
          f"{rss['after']:.0f} MB after; the start-up's peak (loading, compiling) {rss['start']:.0f} MB")

    if app.arena is not None:
        times = judge_latency(app, args.votes)
        print(f"judge, vote → next pair ({args.votes} votes, {len(app.pool)} images in the pool): median "
              f"{statistics.median(times):.2f} s, max {max(times):.2f} s, first {times[0]:.2f} s")
    app.close()

    if args.train:
        report_training(args)


def report_training(args):
    rates = train_images_per_second(args.threads)
    print("\ntraining step (compact MSE U-Net, batch 32 at 64², AdamW):")
    for name, (ips, first) in rates.items():
        print(f"  {name}: {ips:.0f} images/s (first step {first:.1f} s)")


if __name__ == "__main__":
    main()
