"""What a Compare costs besides the models, and one window of a model in each precision: the
figures behind restoration/inference/compare.py's file formats, metrics.py's blur and engine.py's speed rule.

    python -m bench.delivery                 # everything (a minute or two; compiling is most of it)
    python -m bench.delivery --skip-compile  # without the compiled fp32 window

All on one torch thread, as CPU time (`time.process_time`, the least of `--repeats`): on a
machine whose other core is busy, CPU time is what another process disturbs least.

1. Encoding one panel losslessly (bench.speed's 1024² test photo, and the centre of the first
   photo of photos/val, at most 1024², where there is one): PNG at zlib level 1 (the downloads), WebP lossless at
   method 0 (the panels), and PNG at zlib's default level 6 for scale; milliseconds and file size.
2. SSIM's separable 11-tap blur of a 1024² image's five maps (a band of 64 rows): banded matrix
   products (metrics._blur) against oneDNN's depthwise convolution (11×1, then 1×11); and one whole
   `ssim()` of two 1024² images.
3. One window of the first shipped model (the start-up check's, engine.SELF_CHECK_SIDE: 320² output pixels):
   fp32 eager, fp32 compiled (torch.compile, as the app warms it up) and bf16 autocast where the
   CPU has bfloat16 instructions; engine.GAIN_OVER_FP32_EAGER is the bar bf16 must clear against
   fp32 eager, since the path it replaces is compiled.
"""

from restoration.cli import parser
from restoration.settings import Settings


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.delivery", __doc__)
    p.add_argument("--repeats", type=int, default=5, help="timed calls per figure; the least CPU time counts")
    p.add_argument("--skip-compile", action="store_true", help="no compiled fp32 window (compiling is most of the run)")
    args = p.parse_args(argv)
    # The measurements load torch: imported after the arguments, so that --help answers at once.
    from bench.delivery_report import measure

    measure(args, settings)


if __name__ == "__main__":
    main()
