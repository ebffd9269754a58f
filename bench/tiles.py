"""Which window size (`RESTORATION_TILE_SIZE`) to run the models in: time and memory per size.

    python -m bench.tiles                                   # windows 544, 384, 320 at 512² – 2048²
    python -m bench.tiles --tiles 320 288 --sides 1024 2048

For each window size, one `inference.Restorer` per shipped U-Net, on the fast path and warmed up
(compiled once per size); then, for each image side, the three models run on one 8-bit image (as
Compare runs them), `--repeats` times: the median seconds for all three, and how far the
process's resident memory rose above where it stood before (VmHWM, reset before each run through
/proc/self/clear_refs): the models' activations, which grow with the window, not with the image.

Smaller windows repeat more context at the seams (`overlap` pixels each side) but keep the
activations in the caches: on 2 CPU cores 320 came out as fast as 544, or faster, at every side
but 1024², with half the memory. Not a test: it prints a table; run it on an idle machine.
"""

import os
import statistics
import time

import torch

from bench.memory import memory, reset_peak
from restoration.cli import parser
from restoration.inference import Restorer, release_memory
from restoration.settings import Settings
from restoration.weights import load_available_restorers


def measure(restorers, x, repeats: int) -> tuple[float, float]:
    """(median seconds to run every restorer on x, the largest rise in resident memory in MB)."""
    seconds, rise = [], 0.0
    for _ in range(repeats):
        release_memory()
        base = memory()["VmRSS"]
        reset_peak()
        t0 = time.perf_counter()
        for r in restorers:
            r(x)
        seconds.append(time.perf_counter() - t0)
        rise = max(rise, memory()["VmHWM"] - base)
    return statistics.median(seconds), rise


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.tiles", __doc__)
    p.add_argument("--tiles", type=int, nargs="+", default=[544, 384, 320], help="window sizes to try")
    p.add_argument("--sides", type=int, nargs="+", default=[512, 768, 1024, 1536, 2048], help="square image sides")
    p.add_argument("--overlap", type=int, default=settings.tile_overlap)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=settings.threads)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    models, _ = load_available_restorers(settings.weights_dir)
    print(f"bench.tiles: {args.threads} torch threads, load average {os.getloadavg()[0]:.1f}, overlap {args.overlap}, "
          f"models: {', '.join(m.entry.name for m in models)} (fast path, warmed up; 8-bit images)\n")
    print("| window | " + " | ".join(f"{s}²: s · MB" for s in args.sides) + " |")
    print("|---:|" + "---:|" * len(args.sides))
    generator = torch.Generator().manual_seed(0)
    for tile in args.tiles:
        restorers = [Restorer(m.model, window=tile, overlap=args.overlap) for m in models]
        for r in restorers:
            r.warm_up()
        cells = []
        for side in args.sides:
            x = torch.randint(0, 256, (3, side // 2, side // 2), dtype=torch.uint8, generator=generator)  # low-res
            for r in restorers:
                r(x)  # first run at this size: allocations settle
            seconds, rise = measure(restorers, x, args.repeats)
            cells.append(f"{seconds:.2f} · +{rise:.0f}")
        print(f"| {tile} | " + " | ".join(cells) + " |", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
