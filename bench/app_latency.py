"""How long the app makes people wait: request → all Compare panels, and fitting the leaderboard.

    python -m bench.app_latency                          # the shipped weights in weights/
    python -m bench.app_latency --weights-dir other/     # another weights folder
    python -m bench.app_latency --random-weights compact # before training: same size, random weights

Panels are timed through the same calls the app's Compare handler makes: open the uploaded PNG,
`compare.compare` (degrade, bicubic, every model, PSNR and SSIM), and the PNG files the page
serves. The leaderboard is fitted on synthetic votes in a temporary SQLite store, read back the
way the app reads it (per-judge counts, flags, the bicubic anchor). Not a test: it prints a table.
"""

import dataclasses
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.photos import test_image
from restoration.arena.ratings import fit_leaderboard
from restoration.arena.store import ANSWERS, VoteStore
from restoration.cli import parser
from restoration.settings import Settings


def random_models(preset: str) -> list:
    """The three restorers (LoadedModel) at their real size with random weights (timing does not
    depend on the weights)."""
    from restoration.choices import PRESETS
    from restoration.hub.catalogue import LoadedModel, ModelEntry
    from restoration.models.unet import UNet

    out = []
    for name, title, cross in [("unet-mse", "MSE U-Net", False), ("unet-perceptual", "Perceptual U-Net", False),
                               ("unet-crossconv", "Cross-conv U-Net", True)]:
        model = UNet(**PRESETS[preset], cross_conv=cross).eval()
        out.append(LoadedModel(ModelEntry(name, title, name), model, "local", "random", f"{title}: random weights"))
    return out


def time_request(path: Path, mode: str, models, settings: Settings, out: Path, restorers=None):
    """(total seconds, panels): what one Compare click costs the server."""
    from restoration.data.uploads import open_upload
    from restoration.inference.compare import compare, save_panels

    t0 = time.perf_counter()
    panels = compare(open_upload(path, mode, settings), mode, models, settings, restorers=restorers)
    save_panels(panels, out, path.stem)
    return time.perf_counter() - t0, panels


def synthetic_votes(n: int, names: list[str], seed: int = 0) -> list[tuple]:
    rng = np.random.default_rng(seed)
    strength = np.linspace(0.5, -0.5, len(names))
    a = rng.integers(0, len(names), n)
    b = (a + rng.integers(1, len(names), n)) % len(names)
    p_a = 1 / (1 + np.exp(strength[b] - strength[a]))
    u = rng.random(n)
    answers = np.where(u < 0.15, 2, np.where(u < 0.2, 3, np.where(rng.random(n) < p_a, 0, 1)))
    return [("2025-01-01T00:00:00+00:00", f"s-{i % 2000}", "examples/x.png", "lesson", names[a[i]], "r", names[b[i]],
             "r", ANSWERS[answers[i]], 3.0, f"t{i}", f"c-{i % 500}", f"j-{i % 2000}") for i in range(n)]


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.app_latency", __doc__)
    p.add_argument("--weights-dir", type=Path, default=settings.weights_dir, help="models.json and the checkpoints")
    p.add_argument("--random-weights", metavar="PRESET", default=None,
                   help="use random U-Nets of this classifier preset (compact, lesson) instead of weights")
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 1024], help="square test images of these sides")
    p.add_argument("--mode", choices=["degrade", "upscale"], default="degrade", help="the Compare tab's mode")
    p.add_argument("--repeats", type=int, default=3, help="timed requests per size (the median is shown)")
    p.add_argument("--votes", type=int, default=100_000, help="synthetic votes for the leaderboard fit")
    p.add_argument("--threads", type=int, default=settings.threads,
                   help="CPU threads for torch (default: RESTORATION_THREADS, else the CPUs this process may use: "
                        "%(default)s)")
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    import torch

    from restoration.arena.leaderboard import FlagRules, counted_outcomes, flag_judges
    from restoration.hub.catalogue import load_available_restorers
    from restoration.inference.runner import restorers_for

    torch.set_num_threads(args.threads)
    settings = dataclasses.replace(settings, weights_dir=args.weights_dir, threads=args.threads)

    if args.random_weights:
        models = random_models(args.random_weights)
    else:
        models, problems = load_available_restorers(args.weights_dir)
        for line in problems:
            print(line, file=sys.stderr)
        if not models:
            raise SystemExit(f"no restorer loads from {args.weights_dir}; try --random-weights compact")

    # The app's restorers: the fast path (unless RESTORATION_FAST=0), warmed up as at start-up.
    restorers = restorers_for(models, settings)
    warm = sum(r.warm_up() for r in restorers.values())
    print(f"{len(models)} models ({', '.join(m.entry.title for m in models)}), {args.threads} threads, "
          f"mode {args.mode}, {next(iter(restorers.values())).window}-pixel windows, fast path {'on' if settings.fast else 'off'} "
          f"(warm-up {warm:.0f} s)\n")
    print("| image | request → all panels (s), median of {} | per panel (ms): {} |".format(
        args.repeats, " · ".join(["bicubic", *[m.entry.title for m in models]])))
    print("|---|---:|---|")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for side in args.sizes:
            path = test_image(side, tmp)
            time_request(path, args.mode, models, settings, tmp, restorers)  # warm-up: first-call allocations
            runs = [time_request(path, args.mode, models, settings, tmp, restorers) for _ in range(args.repeats)]
            seconds = statistics.median(t for t, _ in runs)
            per_panel = " · ".join(f"{p.ms:.0f}" for p in runs[-1][1] if p.ms is not None)
            print(f"| {side}×{side} | {seconds:.2f} | {per_panel} |")

        names = [m.entry.name for m in models] + ["bicubic"]
        store = VoteStore(tmp / "votes.db")
        store.add_many(synthetic_votes(args.votes, names))
        # What the app's leaderboard does: per-judge counts, the flags, then the anchored fit.
        t0 = time.perf_counter()
        rows = store.judge_outcomes(FlagRules().fast_seconds)
        t1 = time.perf_counter()
        outcomes, left_out = counted_outcomes(rows, flag_judges(rows))
        board = fit_leaderboard(outcomes, names, rounds=settings.bootstrap_rounds, anchor="bicubic")
        t2 = time.perf_counter()
        store.write_public_csv(tmp / "votes.csv")
        t3 = time.perf_counter()
        csv_mb = (tmp / "votes.csv").stat().st_size / 1e6
        store.close()
    print(f"\nLeaderboard on {board.total_votes:,} synthetic votes ({left_out} left out): read per-judge counts "
          f"{1000 * (t1 - t0):.0f} ms, flags + Bradley–Terry + {settings.bootstrap_rounds} bootstrap rounds "
          f"{1000 * (t2 - t1):.0f} ms, total {1000 * (t2 - t0):.0f} ms; the public CSV export "
          f"{1000 * (t3 - t2):.0f} ms, {csv_mb:.1f} MB")
    for i in board.order():
        print(f"  {board.rank[i]}. {board.names[i]}: {board.rating[i]:.0f} "
              f"({board.lower[i]:.0f} – {board.upper[i]:.0f}), {board.votes[i]:,} votes")


if __name__ == "__main__":
    main()
