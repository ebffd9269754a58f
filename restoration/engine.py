"""Which engine and precision run the models, chosen by measurement on the machine that runs them.

Candidates (bench/speed.py measures them all, with their accuracy; docs/speed.md has the figures):

- "fp32": today's path, channels-last + `torch.compile` in float32 (inference.py). Always there.
- "openvino-f32": the windows converted to OpenVINO in float32 in the background warm-up (seconds,
  against torch.compile's tens of seconds), where the optional `openvino` package is installed;
  kept only if a test window's pixels stay within `MAX_LEVELS` of fp32 eager and it runs at least
  `GAIN_OVER_FP32_EAGER`× fp32 eager, else today's path. The only faster candidate that passed the
  accuracy bar in bench.speed (docs/speed.md), and what "auto" picks where openvino is installed.
- "bf16": the channels-last model under CPU autocast to bfloat16: convolutions in bf16 (oneDNN's
  AVX-512 BF16 / AMX kernels), accumulation in fp32. ΔPSNR stayed within 0.008 dB everywhere, but
  pixels moved by up to 6/255 on Tiny ImageNet val (bench.speed's accuracy table), over the
  2/255 bar: so "auto" never picks it; RESTORATION_ENGINE=bf16 forces it (after the self-check
  below), and its warm-up tries OpenVINO with a bf16 hint (pixels moved up to 3/255 there).
  Fully converted bf16 weights moved pixels by 3.5/255 on one window already.

`choose` is the start-up self-check. It returns a `Choice` whose `line` says in one line what was
chosen and why; anything odd falls back to "fp32", today's path.
"""

import dataclasses
import functools
import os
import platform
import threading
import time
from collections.abc import Callable

import torch

MAX_LEVELS = 2  # the accuracy bar: no pixel may move more than 2/255 against fp32
# bf16 eager (and OpenVINO f32's windows) must beat fp32 *eager* by this much to be chosen: the fp32 path it replaces is
# compiled (too slow to compile for a start-up check), and on one 320² window compiling made fp32
# 1.2–1.5× faster than eager on a 2-core AVX-512 machine, where bf16 autocast was 2.3–2.4× (docs/speed.md).
GAIN_OVER_FP32_EAGER = 1.6
PRECISIONS = ("fp32", "bf16", "openvino-f32")
# bench.speed's accuracy table (docs/speed.md): bf16 autocast's worst pixel move on the shipped models
BF16_MEASURED_LEVELS = 6
# The self-check runs one window of the app's own size (Settings.tile_size): at 128² bf16's gain was
# 1.5×, at 320² 2.4× (small convolutions are dominated by overheads), so a smaller stand-in misleads.
SELF_CHECK_SIDE = 320


@dataclasses.dataclass(frozen=True)
class Choice:
    precision: str  # one of PRECISIONS: "fp32" is today's path
    line: str  # what was chosen and why, for the start-up log


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str]:
    """The CPU's instruction-set flags (Linux); empty where /proc/cpuinfo is absent."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def instruction_sets(flags: set[str] | None = None) -> dict[str, bool]:
    """The instruction sets that matter for the engines' speed, as detected here."""
    flags = cpu_flags() if flags is None else flags
    return {"avx2": "avx2" in flags, "avx512": "avx512f" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx_bf16": "amx_bf16" in flags,
            "vnni": bool({"avx512_vnni", "avx_vnni"} & flags), "amx_int8": "amx_int8" in flags}


def bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), as oneDNN sees it. Without
    it, oneDNN emulates bf16 in fp32: slower than fp32, so bf16 is never a candidate there."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and (
            platform.system() != "Linux" or bool({"avx512_bf16", "amx_bf16"} & cpu_flags()))
    except (AttributeError, RuntimeError):
        return False


def cpu_summary() -> str:
    """'AVX512 (avx2, avx512, avx512_bf16, vnni)': torch's kernel level and the sets found."""
    found = [name for name, present in instruction_sets().items() if present]
    return f"{torch.backends.cpu.get_cpu_capability()} ({', '.join(found) or 'none detected'})"


def autocast(precision: str):
    """The context the models run in for `precision`: CPU autocast to bf16, or nothing."""
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def run_in(precision: str, fn: Callable, x: torch.Tensor) -> torch.Tensor:
    """`fn(x)` in `precision`, always returned as float32 (what the windows are assembled in)."""
    with autocast(precision):
        return fn(x).float()


def levels_apart(a: torch.Tensor, b: torch.Tensor) -> int:
    """The largest difference of two [0, 1] images once each is rounded to 8 bits, in levels of 255."""
    return int(((a * 255).round() - (b * 255).round()).abs().max().item())


def check_image(side: int = SELF_CHECK_SIDE) -> torch.Tensor:
    """A fixed (1, 3, side, side) test input with smooth gradients, edges and fine texture (a
    uniform-noise input would flatter nothing and test little)."""
    g = torch.Generator().manual_seed(0)
    y, x = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
    smooth = torch.stack([x, y, (x + y) / 2])
    edges = ((torch.sin(x * 40) * torch.cos(y * 25)) > 0).float().expand(3, -1, -1)
    noise = torch.rand(3, side, side, generator=g)
    return (0.5 * smooth + 0.3 * edges + 0.2 * noise).clamp(0, 1)[None]


def _least_seconds(fns, repeats: int = 5) -> list[float]:
    """The least time of each function over `repeats` rounds, the functions taking turns in each
    round: on a shared machine the least is the least disturbed, and a disturbance during the
    check hits both alike instead of one."""
    for fn in fns:
        fn()  # the first call sets oneDNN's kernels up
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def _median_seconds(fn, repeats: int = 3) -> float:
    fn()  # the first call sets oneDNN's kernels up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def self_check(model, side: int = SELF_CHECK_SIDE) -> tuple[float, float, int]:
    """(fp32 seconds, bf16 seconds, levels apart) for one channels-last window of `model`."""
    x = check_image(side).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        model = model.eval()
        reference = run_in("fp32", model.restore, x)
        apart = levels_apart(run_in("bf16", model.restore, x), reference)
        t32, t16 = _least_seconds([lambda: run_in("fp32", model.restore, x), lambda: run_in("bf16", model.restore, x)])
    return t32, t16, apart


def choose(model, engine: str = "auto", simulate_no_bf16: bool = False, side: int = SELF_CHECK_SIDE,
           check: Callable = self_check, supported: Callable[[], bool] = bf16_supported,
           openvino: Callable = lambda: openvino_module() is not None) -> Choice:
    """The engine and precision to run on this machine, and the one line that says why. `engine`:
    "auto" (OpenVINO f32 where installed, else today's path), "fp32" (today's path, forced), "bf16"
    (forced, if the self-check passes); `simulate_no_bf16` acts as a CPU without bf16 instructions."""
    today = "fp32 (channels-last + torch.compile, today's path)"
    if engine == "fp32":
        return Choice("fp32", f"engine: {today}: forced by RESTORATION_ENGINE=fp32")
    if engine == "auto":
        bf16_note = (f"bf16 not used: it moved pixels by up to {BF16_MEASURED_LEVELS}/255 (bar {MAX_LEVELS}/255)"
                     if not simulate_no_bf16 else "RESTORATION_SIMULATE_NO_BF16 is set")
        if openvino():
            return Choice("openvino-f32", f"engine: OpenVINO f32 for the windows (converted in the background warm-up, "
                                          f"kept if ≥ {GAIN_OVER_FP32_EAGER:g}× fp32 eager and exact, else {today}); "
                                          f"{bf16_note}")
        return Choice("fp32", f"engine: {today}: openvino not installed; {bf16_note}")
    if simulate_no_bf16 or not supported():
        why = "RESTORATION_SIMULATE_NO_BF16 is set" if simulate_no_bf16 else "this CPU has no bf16 instructions"
        return Choice("fp32", f"engine: {today}: {why}")
    if model is None:
        return Choice("fp32", f"engine: {today}: no model to check")
    try:
        t32, t16, apart = check(model, side)
    except Exception as e:  # noqa: BLE001 (any failure of the bf16 kernels means: today's path)
        return Choice("fp32", f"engine: {today}: the bf16 self-check failed ({type(e).__name__})")
    figures = f"one {side}² window: fp32 {t32 * 1000:.0f} ms, bf16 {t16 * 1000:.0f} ms, max |Δ| {apart}/255"
    if apart > MAX_LEVELS:
        return Choice("fp32", f"engine: {today}: bf16 moved a pixel by {apart}/255 (> {MAX_LEVELS}); {figures}")
    if t32 < GAIN_OVER_FP32_EAGER * t16:
        return Choice("fp32", f"engine: {today}: bf16 under {GAIN_OVER_FP32_EAGER:g}× fp32 eager; {figures}")
    return Choice("bf16", f"engine: bf16 (channels-last autocast, {cpu_summary()}): {t32 / t16:.1f}× fp32 eager; "
                          f"{figures}")


@functools.cache
def openvino_module():
    """The `openvino` package where it is installed (it is optional), else None."""
    if os.environ.get("RESTORATION_NO_OPENVINO"):
        return None
    try:
        import openvino
    except ImportError:
        return None
    return openvino


class _Restore(torch.nn.Module):
    """`model.restore` as a module's forward, for converters that trace a module."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model.restore(x)


def openvino_runner(model, shape: tuple[int, ...], threads: int, hint: str = "bf16") -> Callable | None:
    """A function running `model.restore` on float32 batches of exactly `shape` through OpenVINO
    with inference precision `hint` ("bf16" or "f32"), or None without the `openvino` package."""
    ov = openvino_module()
    if ov is None:
        return None
    with torch.inference_mode():
        converted = ov.convert_model(_Restore(model).eval(), example_input=torch.rand(shape))
    compiled = ov.Core().compile_model(converted, "CPU", {"INFERENCE_PRECISION_HINT": hint,
                                                          "INFERENCE_NUM_THREADS": threads,
                                                          "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    lock = threading.Lock()  # one infer request: Compare and the scene pool take turns, window by window

    def run(x: torch.Tensor) -> torch.Tensor:
        with lock:
            result = request.infer({0: x.contiguous().numpy()})[0]
            return torch.from_numpy(result.copy())

    return run
