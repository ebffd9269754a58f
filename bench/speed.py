"""How fast the app is on this machine, measured in one run: the numbers behind the speed bars.

    python -m bench.speed                   # everything (a few minutes on 2 cores)
    python -m bench.speed --skip-startup    # without starting the app in a subprocess
    python -m bench.speed --train           # also images/s of a training step, before/after
    python -m bench.speed --skip-startup --models 0 --skip-accuracy   # on a GPU: the Compares

On a GPU (RESTORATION_DEVICE, device.py) the start-up check, the in-process Compares and the app
run there; the candidates' and the accuracy tables stay on the CPU, and so do the eager passes
the Compares are divided by (on a GPU the bar is absolute: 0.5 s for a 1024² Compare).

Measured, in this order, with `--threads` torch threads:
1. start-up: `python app.py` in a subprocess with an empty compile cache (a cold start, as on a
   fresh Space): seconds until the page is served, and until the background warm-up has ended;
2. a matmul peak (fp32, the best of a few sizes): what "fraction of peak" divides by; the CPU's
   flags that matter (AVX2, AVX-512, bfloat16), and what the start-up check (restoration/inference/engine.py)
   chooses, with the seconds it took;
3. per model (`--models N`: the first N) and side (`--sides`, default 256² 1024² 2048²), every
   candidate engine of bench/engines.py through `runner.Restorer`'s windows against the plain
   eager forward pass (`model.restore` on the whole image): seconds (median, the candidates taking
   turns in each repeat), GFLOP/s (FLOPs of the whole-image forward pass, counted by torch's
   FlopCounterMode, over the time), % of the fp32 matmul peak, warm-up seconds, the resident
   memory the candidate added, and its largest difference from fp32 eager on the same windows;
4. the accuracy table: per model, degradation and data set (Tiny ImageNet val, photos/val centre
   crops), each candidate against fp32 eager on the candidate's own windows, through the app's
   8-bit path: ΔPSNR, ΔSSIM, the 99.9th percentile and the largest pixel move, and which
   candidates pass the eligibility bar (restoration/inference/eligibility.py) on every model and
   degradation; then what the window size alone does (fp32 on bf16's windows against fp32 on its
   own), on the photos (`--skip-compare` stops here);
5. end-to-end Compare in-process, through the app's streaming handler (`ArenaApp.compare`,
   degrade mode: degradation, every panel, PSNR and SSIM, the panels' files) with the heap frozen
   as the app freezes it: time to the first panel and to the last, for fp32 compiled and for the
   shipped choice, ÷ the family's three fp32 eager passes, and where the time went (each step of
   the median request, and the garbage collector's pauses);
6. the Compare through the running app's API, as a client sees it (`--skip-api` leaves it out):
   `python app.py` started, warmed up, and `/compare` at 256² and 1024² timed through Gradio's
   queue protocol (bench/voter.py), the first panel and every panel with their files downloaded,
   ÷ the same eager passes; and on the server, where the time went (the app's log line of each
   request, Gradio's own phases with GRADIO_PROFILING);
7. the 1024² Compare with the scene pool idle and rendering;
8. the resident memory of a fresh process that runs one 4-megapixel Compare: its peak during the
   request (bench/memory.py resets the peak before it), before and after it, and its start-up peak;
9. the judge: time from a vote to the next pair (`ArenaApp.vote`).

Ratios measured in the same run (speed-ups, fractions of peak, compare ÷ eager) carry over to
other machines; absolute seconds do not. Not a test: it prints lines for the table in docs/benchmarks.md.
"""

from restoration.cli import parser
from restoration.settings import Settings


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.speed", __doc__)
    p.add_argument("--threads", type=int, default=settings.threads, help="torch threads (default: RESTORATION_THREADS, else the usable CPUs: %(default)s)")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats of each measurement (sides over 1024: one)")
    p.add_argument("--votes", type=int, default=10, help="votes timed in the judge's part")
    p.add_argument("--skip-startup", action="store_true", help="no cold start of the app in a subprocess")
    p.add_argument("--skip-accuracy", action="store_true", help="no accuracy table (the slowest part)")
    p.add_argument("--sides", type=int, nargs="+", default=[256, 1024, 2048], help="image sides of the engines' table")
    p.add_argument("--only", nargs="+", help="only the candidates whose names start with these")
    p.add_argument("--models", type=int, default=None, help="only the first N models (a quick run)")
    p.add_argument("--int8-models", type=int, default=1, help="int8 PT2E for the first N models only (slow to compile)")
    p.add_argument("--tiny", type=int, default=64, help="Tiny ImageNet val images in the accuracy table")
    p.add_argument("--photos", type=int, default=8, help="photos of photos/val (centre crops) in the accuracy table")
    p.add_argument("--photo-side", type=int, default=512, help="side of the photos' centre crops in the accuracy table")
    p.add_argument("--train", action="store_true", help="also time a training step (compiling its backward takes minutes)")
    p.add_argument("--train-only", action="store_true", help="only the training step")
    p.add_argument("--memory-side", type=int, default=2048, help="side of the Compare whose peak RSS is measured")
    p.add_argument("--skip-api", action="store_true", help="no Compare through the running app's API")
    p.add_argument("--skip-compare", action="store_true", help="stop after the accuracy table (no Compare at all)")
    p.add_argument("--api-repeats", type=int, default=3, help="timed /compare requests per size")
    p.add_argument("--skip-pool", action="store_true", help="no Compare with the scene pool rendering")
    p.add_argument("--skip-memory", action="store_true", help="no memory of a 4-megapixel Compare")
    args = p.parse_args(argv)
    # The measurements load torch: imported after the arguments, so that --help answers at once.
    from bench.speed_report import measure

    measure(args, settings)


if __name__ == "__main__":
    main()
