"""Which precision runs the models, chosen at start-up by measurement on the machine that runs them.

The fast path's model is a copy of the model in channels-last memory format (`fast_copy`), in fp32
with each batch norm folded into the convolution before it (inference only, the same function up
to float rounding), run in one of these precisions:

- "fp32": float32, compiled with `torch.compile` on the CPU (runner.py). Always there.
- "bf16": autocast to bfloat16 (convolutions in bf16, accumulation and everything else in fp32),
  eager: on a CPU with bfloat16 instructions (AVX-512 BF16 or AMX; oneDNN's kernels), or on a GPU.
  Without those instructions oneDNN emulates bf16 in fp32, slower than fp32: never a candidate.
  Batch norms are not folded here: a folded norm's shift becomes a convolution bias rounded to
  bf16, and on the Perceptual U-Net · lesson that cost 0.02–0.04 dB on every photo (always lower),
  where the unfolded model's changes were within ±0.02 dB and of both signs.
- "fp16": autocast to float16, on CUDA only.
- "openvino-f32": the windows converted to OpenVINO in float32, where the optional `openvino`
  package is installed (kept by the warm-up only if faster than fp32 eager by GAIN_OVER_FP32_EAGER).

`choose` is the start-up check: where the hardware has a lower precision, it runs every shipped
restorer on a few small images under every degradation, in fp32 eager and in the candidate,
through the app's 8-bit path, holds the candidate to the eligibility bar (eligibility.py), and
times one window of each. The candidate ships if it is eligible and faster; otherwise fp32. The
`Choice`'s `line` says in plain words what runs and why.
"""

import contextlib
import copy
import dataclasses
import functools
import platform
import threading
import time
from collections.abc import Callable, Sequence

import torch
from torch.nn.utils.fusion import fuse_conv_bn_eval

from restoration.data.degrade import STANDARD, prepare
from restoration.data.images import ImageError, open_image, quantize, to_float, to_uint8
from restoration.inference.eligibility import Agreement, agreement

MAX_LEVELS = 2  # OpenVINO's warm-up check on one window: no pixel may move more than this against fp32
# On the CPU, bf16 (and OpenVINO f32's windows) must beat fp32 *eager* by this much to be chosen: the
# fp32 path it replaces is compiled (too slow to compile for a start-up check): on one 320² window
# compiled fp32 took 1/1.12 of eager's CPU time, bf16 autocast 1/1.77 (bench.delivery, one thread,
# AVX-512 BF16; docs/speed.md), and on whole 1024² images compiling gained more (bench.speed).
GAIN_OVER_FP32_EAGER = 1.6
# On a GPU fp32 is not compiled: a lower precision must only be faster than it.
GAIN_ON_GPU = 1.1
PRECISIONS = ("fp32", "bf16", "fp16", "openvino-f32")
# The speed check runs one 320² window: bf16's gain grows with the window (small convolutions are
# dominated by overheads; docs/speed.md), so a smaller stand-in would mislead, and a larger one
# would lengthen every start.
SELF_CHECK_SIDE = 320
CHECK_IMAGE_SIDE = 160  # the accuracy check's photo is cropped to this (seconds for every model)
LOW_PRECISION = {"bf16": torch.bfloat16, "fp16": torch.float16}


@dataclasses.dataclass(frozen=True)
class Choice:
    precision: str  # one of PRECISIONS
    line: str  # what was chosen and why, for the start-up log
    device: torch.device = torch.device("cpu")


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


def bf16_instructions(flags: set[str] | None = None) -> str | None:
    """The bfloat16 instructions this CPU has, in words ("AMX", "AVX-512 BF16"), or None."""
    flags = cpu_flags() if flags is None else flags
    if platform.system() == "Linux" and not flags:
        return None
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags or platform.system() != "Linux":  # elsewhere: oneDNN's word only
        return "AVX-512 BF16"
    return None


def bf16_supported() -> bool:
    """Whether this CPU multiplies bf16 natively (AVX-512 BF16 or AMX), as oneDNN and the flags see it."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()) and bf16_instructions() is not None
    except (AttributeError, RuntimeError):
        return False


def cpu_summary() -> str:
    """'AVX512 (avx2, avx512, avx512_bf16, vnni)': torch's kernel level and the sets found."""
    found = [name for name, present in instruction_sets().items() if present]
    return f"{torch.backends.cpu.get_cpu_capability()} ({', '.join(found) or 'none detected'})"


def autocast(precision: str, device_type: str = "cpu"):
    """The context the models run in for `precision`: autocast to bf16 or fp16, or nothing."""
    return torch.autocast(device_type, dtype=LOW_PRECISION.get(precision, torch.bfloat16),
                          enabled=precision in LOW_PRECISION)


def run_in(precision: str, fn: Callable, x: torch.Tensor) -> torch.Tensor:
    """`fn(x)` in `precision` on x's device, always returned as float32 (what windows are assembled in)."""
    with autocast(precision, x.device.type):
        return fn(x).float()


def fold_batchnorm_(model: torch.nn.Module) -> torch.nn.Module:
    """Fold every batch norm that directly follows a convolution in a Sequential into that
    convolution (its weights scaled, its bias shifted), in place; the norm becomes an identity.
    Inference only (the running statistics are constants then): one pass over the activations
    fewer per convolution, the same function up to float rounding."""
    for module in model.modules():
        if isinstance(module, torch.nn.Sequential):
            for i in range(len(module) - 1):
                conv, norm = module[i], module[i + 1]
                if (isinstance(conv, torch.nn.Conv2d) and isinstance(norm, torch.nn.BatchNorm2d)
                        and norm.track_running_stats and norm.running_mean is not None):
                    module[i], module[i + 1] = fuse_conv_bn_eval(conv.eval(), norm.eval()), torch.nn.Identity()
    return model


def fast_copy(model: torch.nn.Module, device: torch.device | str = "cpu", precision: str = "fp32") -> torch.nn.Module:
    """The fast path's model: a copy (the caller's stays the fp32 eager reference), channels last,
    on `device`, its batch norms folded where it runs in fp32 (not in bf16 or fp16: see above)."""
    with torch.no_grad():
        fast = copy.deepcopy(model).eval()
        if precision not in LOW_PRECISION:
            fold_batchnorm_(fast)
    return fast.to(device=device, memory_format=torch.channels_last)


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


def _least_seconds(fns, repeats: int = 5, sync: Callable[[], None] = lambda: None) -> list[float]:
    """The least time of each function over `repeats` rounds, the functions taking turns in each
    round: on a shared machine the least is the least disturbed, and a disturbance during the
    check hits both alike instead of one."""
    for fn in fns:
        fn()  # the first call sets the kernels up
    sync()
    best = [float("inf")] * len(fns)
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t0 = time.perf_counter()
            fn()
            sync()
            best[i] = min(best[i], time.perf_counter() - t0)
    return best


def median_seconds(fn, repeats: int = 3) -> float:
    fn()  # the first call sets oneDNN's kernels up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


@dataclasses.dataclass(frozen=True)
class Check:
    """What the start-up check measured for one candidate precision."""
    agreement: Agreement  # the worst over every model × degradation
    reference_seconds: float  # fp32 eager, one SELF_CHECK_SIDE² window of the first model
    seconds: float  # the candidate, the same window

    @property
    def gain(self) -> float:
        return self.reference_seconds / self.seconds


def _eight_bit(fn: Callable, x: torch.Tensor, precision: str, device: torch.device) -> torch.Tensor:
    """The model's 8-bit output (3, H, W) on the CPU for an 8-bit input, as the app makes it."""
    batch = to_float(x[None].to(device)).contiguous(memory_format=torch.channels_last)
    return quantize(run_in(precision, fn, batch)[0]).cpu()


@contextlib.contextmanager
def one_thread():
    """torch on one thread for the block. The check runs so: on a machine whose cores are also
    busy with other work, a thread that loses its core makes the other wait at every barrier,
    which on two threads made the check many times slower and its speed ratio wrong (seen on
    this project's shared 2-core machines when the check was written)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def check_precision(models: Sequence[torch.nn.Module], images: Sequence[torch.Tensor], precision: str,
                    device: torch.device = torch.device("cpu"), degradations: Sequence[str] = STANDARD,
                    side: int = SELF_CHECK_SIDE) -> Check:
    """`precision` on `device` against fp32 eager on the CPU, through the app's 8-bit path (each of
    the uint8 `images` degraded, its low-resolution image restored, rounded): the worst agreement
    over every model and degradation, and the speed of one window of side² output pixels of the
    first model against fp32 on `device`; on one CPU thread (`one_thread`). `models` take the
    low-resolution image, as the runner gives it (windows.low_resolution_model)."""
    cases = []
    with torch.inference_mode(), one_thread():
        for model in models:
            model = model.eval()
            fast = fast_copy(model, device, precision)
            for degradation in degradations:
                inputs = [prepare(image, "degrade", degradation) for image in images]
                outputs = [_eight_bit(fast.restore, low, precision, device) for low, _, _ in inputs]
                references = [_eight_bit(model.restore, low, "fp32", torch.device("cpu")) for low, _, _ in inputs]
                cases.append(agreement(outputs, references, [truth for *_, truth in inputs]))
            del fast
        fast = fast_copy(models[0], device, precision)
        reference = models[0] if device.type == "cpu" else fast_copy(models[0], device)  # fp32 eager on the device
        low_side = max(1, side // int(getattr(models[0], "scale", 1)))
        x = check_image(low_side).to(device).contiguous(memory_format=torch.channels_last)
        sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
        t32, t_low = _least_seconds([lambda: run_in("fp32", reference.restore, x),
                                     lambda: run_in(precision, fast.restore, x)], sync=sync)
    return Check(Agreement.worst(cases), t32, t_low)


def choose(models: Sequence[torch.nn.Module], images: Sequence[torch.Tensor], engine: str = "auto",
           device: torch.device = torch.device("cpu"), simulate_no_bf16: bool = False, where: str = "the CPU",
           check: Callable = check_precision, cpu_bf16: Callable[[], str | None] | None = None,
           gpu_bf16: Callable[[], bool] = lambda: torch.cuda.is_bf16_supported(),
           openvino: Callable[[], bool] = lambda: openvino_module() is not None) -> Choice:
    """The precision to run `models` in on `device`, and the one line that says why. `engine`:
    "auto" (the fastest eligible candidate, else fp32), "fp32", "bf16" or "fp16" (forced, where the
    hardware has it: no eligibility veto, the figures said). `images`: small uint8 images for the
    accuracy check (`check_images`). `simulate_no_bf16` acts as a CPU without bf16 instructions;
    `where` names the device in the line (device.describe)."""
    on_cpu = device.type == "cpu"
    fp32, needed = ("fp32 (compiled)", GAIN_OVER_FP32_EAGER) if on_cpu else ("fp32", GAIN_ON_GPU)

    def fallback(why: str) -> Choice:
        if on_cpu and engine == "auto" and openvino():
            return Choice("openvino-f32", f"engine: OpenVINO f32 windows on {where} where the warm-up measures them "
                                          f"{GAIN_OVER_FP32_EAGER:g}× faster than fp32, else {fp32}: {why}", device)
        return Choice("fp32", f"engine: {fp32} on {where}: {why}", device)

    if engine == "fp32":
        return fallback("forced by RESTORATION_ENGINE=fp32")
    if on_cpu:
        if engine == "fp16":
            return fallback("RESTORATION_ENGINE=fp16 runs on a CUDA GPU only")
        instructions = None if simulate_no_bf16 else (cpu_bf16 or _cpu_bf16)()
        if instructions is None:
            asked = "RESTORATION_ENGINE=bf16, but " if engine == "bf16" else ""
            simulated = " (RESTORATION_SIMULATE_NO_BF16 is set)" if simulate_no_bf16 else ""
            return fallback(f"{asked}this CPU has no bfloat16 instructions{simulated}")
        candidates, has = ["bf16"], f"this CPU has bfloat16 instructions ({instructions})"
    else:
        candidates = [engine] if engine != "auto" else ["fp16", *(["bf16"] if gpu_bf16() else [])]
        has = "this GPU computes in half precision"
    if not models:
        return fallback("no model to check")
    checks = {}
    for precision in candidates:
        try:
            checks[precision] = check(models, images, precision, device)
        except Exception as e:  # noqa: BLE001 (any failure of the low-precision kernels means: fp32)
            return fallback(f"the {precision} check failed ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''})")
    cases = f"{len(models)} models × {len(STANDARD)} degradations"
    if engine != "auto":
        precision, c = engine, checks[engine]
        verdict = "same picture" if c.agreement.eligible else "NOT the same picture by the bar: " + "; ".join(
            c.agreement.failures())
        return Choice(precision, f"engine: {precision} on {where}, forced by RESTORATION_ENGINE={engine}: "
                                 f"{c.gain:.1f}× faster than fp32 here, {verdict} ({cases}: {c.agreement.text()})", device)
    eligible = {p: c for p, c in checks.items() if c.agreement.eligible}
    fast_enough = {p: c for p, c in eligible.items() if c.gain >= needed}
    if fast_enough:
        precision = max(fast_enough, key=lambda p: fast_enough[p].gain)
        c = fast_enough[precision]
        return Choice(precision, f"engine: {precision} on {where}: {has}, {c.gain:.1f}× faster than fp32 here, "
                                 f"same picture ({cases}: {c.agreement.text()})", device)
    if eligible:
        best = max(eligible, key=lambda p: eligible[p].gain)
        return fallback(f"{best} is only {eligible[best].gain:.1f}× faster than fp32 here (needs {needed:g}×)")
    worst = {p: "; ".join(c.agreement.failures()) for p, c in checks.items()}
    return fallback("; ".join(f"{p} would change the picture ({why})" for p, why in worst.items()))


def _cpu_bf16() -> str | None:
    """This CPU's bfloat16 instructions where oneDNN can use them (`bf16_instructions`), else None."""
    return bf16_instructions() if bf16_supported() else None


def check_images(paths: Sequence, side: int = CHECK_IMAGE_SIDE) -> list[torch.Tensor]:
    """Small uint8 images (3, H, W) for the accuracy check: the first thumbnail (≤ 128 pixels a
    side, like Tiny ImageNet's) and the first larger photo among `paths`, the photo's centre cropped
    to side²; the synthetic `check_image` where there are none."""
    thumbnail = photo = None
    for path in paths:
        try:
            image = open_image(path)
        except ImageError:
            continue
        if max(image.size) <= 128 and thumbnail is None:
            thumbnail = image
        elif max(image.size) > 128 and photo is None:
            w, h = image.size
            left, top = max(0, (w - side) // 2), max(0, (h - side) // 2)
            photo = image.crop((left, top, left + min(w, side), top + min(h, side)))
        if thumbnail is not None and photo is not None:
            break
    found = [to_uint8(im) for im in (thumbnail, photo) if im is not None]
    return found or [quantize(check_image(side)[0])]


_openvino_off = False  # inside `without_openvino()`


@contextlib.contextmanager
def without_openvino():
    """The torch paths alone while inside (bench.engines' torch rows, tests): `openvino_module()`
    is None, installed or not."""
    global _openvino_off
    before, _openvino_off = _openvino_off, True
    openvino_module.cache_clear()
    try:
        yield
    finally:
        _openvino_off = before
        openvino_module.cache_clear()


@functools.cache
def openvino_module():
    """The `openvino` package where it is installed (it is optional), else None."""
    if _openvino_off:
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
