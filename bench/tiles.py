"""Which window size (`RESTORATION_TILE_SIZE`) to run the models in: time and memory per size.

    python -m bench.tiles                                   # windows 576 and 320 at 512² – 2048²
    python -m bench.tiles --tiles 320 288 --sides 1024 2048
    python -m bench.tiles --precision bf16 --tiles 576 320 --sides 512 1024 2048 --threads 1

For each window size, one `runner.Restorer` per shipped U-Net, on the fast path and warmed up
(compiled once per size); then, for each image side, every model runs on one 8-bit image (as
Compare runs them), `--repeats` times: the median seconds for all of them (and the CPU seconds
this process used: on a busy machine, what other processes disturb least), and how far the
process's resident memory rose above where it stood before (VmHWM, reset before each run through
/proc/self/clear_refs): the models' activations, which grow with the window, not with the image;
and the pixels the windows run, ÷ the image's (the overlaps' cost, the same for every model).
Each size runs twice by default (`--fit`): with windows fitted to each image, no larger than the
size, as the fast path cuts them (runner.py), and all of the size. `--precision` runs the fast
path in that precision (bf16: where the CPU has it; CPU time on one thread, `--threads 1`, is what
a busy machine disturbs least).

Smaller windows repeat more context at the seams (`overlap` pixels each side) but keep the
activations in the caches: on 2 CPU cores 320 came out as fast as 544, or faster, at every side
but 1024², with half the memory. Not a test: it prints a table; run it on an idle machine.
"""

import os
import statistics
import time

from bench.memory import memory, reset_peak
from restoration.cli import parser
from restoration.settings import Settings


def measure(restorers, x, repeats: int) -> tuple[float, float, float]:
    """(median seconds to run every restorer on x, their median CPU seconds (this process's), the
    largest rise in resident memory in MB)."""
    from restoration.inference.runner import release_memory

    seconds, cpu, rise = [], [], 0.0
    for _ in range(repeats):
        release_memory()
        base = memory()["VmRSS"]
        reset_peak()
        t0, c0 = time.perf_counter(), time.process_time()
        for r in restorers:
            r(x)
        seconds.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
        rise = max(rise, memory()["VmHWM"] - base)
    return statistics.median(seconds), statistics.median(cpu), rise


def window_pixels(r, side: int) -> float:
    """The pixels the Restorer `r`'s windows cover on a side² output (an image under half a window
    runs whole: its own), ÷ side²."""
    from restoration.inference.runner import window_starts

    low = side // r.scale
    if 2 * low * low <= r.window * r.window:
        return 1.0
    window = r.window_sides(low, low)[0]  # square: the same both ways
    starts = window_starts(max(low, window), window, r.overlap, r.stride)
    return len(starts) ** 2 * window**2 / low**2


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.tiles", __doc__)
    p.add_argument("--tiles", type=int, nargs="+", default=[576, 320], help="window sizes to try")
    p.add_argument("--sides", type=int, nargs="+", default=[512, 768, 1024, 1536, 2048], help="square image sides")
    p.add_argument("--overlap", type=int, default=settings.tile_overlap)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=settings.threads)
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16"), help="the fast path's precision")
    p.add_argument("--fit", default="both", choices=("fitted", "one-size", "both"),
                   help="windows fitted to each image (the fast path's), of one size, or both in turn")
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    import torch

    from restoration.hub.catalogue import load_available_restorers
    from restoration.inference import engine
    from restoration.inference.runner import Restorer

    torch.set_num_threads(args.threads)
    models, _ = load_available_restorers(settings.weights_dir)
    print(f"bench.tiles: CPU {engine.cpu_summary()}; {args.threads} torch threads, load average "
          f"{os.getloadavg()[0]:.1f}, overlap {args.overlap}, "
          f"models: {', '.join(m.entry.name for m in models)} (fast path in {args.precision}, warmed up; 8-bit "
          "images)\n")
    print("| window | " + " | ".join(f"{s}²: s (CPU s) · MB · pixels run" for s in args.sides) + " |")
    print("|---:|" + "---:|" * len(args.sides))
    generator = torch.Generator().manual_seed(0)
    fits = {"fitted": [True], "one-size": [False], "both": [True, False]}[args.fit]
    for tile, fit in ((t, f) for t in args.tiles for f in fits):
        restorers = [Restorer(m.model, window=tile, overlap=args.overlap, precision=args.precision, fit=fit)
                     for m in models]
        for r in restorers:
            r.warm_up()
        cells = []
        for side in args.sides:
            x = torch.randint(0, 256, (3, side // 2, side // 2), dtype=torch.uint8, generator=generator)  # low-res
            for r in restorers:
                r(x)  # first run at this size: allocations settle
            seconds, cpu, rise = measure(restorers, x, args.repeats)
            cells.append(f"{seconds:.2f} ({cpu:.2f}) · +{rise:.0f} · {window_pixels(restorers[0], side):.2f}×")
        print(f"| {tile}{' fitted' if fit else ''} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
