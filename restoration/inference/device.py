"""Where the models run: the CPU, or a CUDA GPU where there is one (RESTORATION_DEVICE).

- `auto` (the default): CUDA if torch sees a GPU, else the CPU; `cpu`; `cuda`, which refuses to
  start (one line, `DeviceError`) where torch sees none.
- On CUDA, "fp32" means fp32: TF32 (torch's default for convolutions on Ampere and later, 10-bit
  mantissas) is turned off, so the reference the lower precisions are held to is the real one.
- On CUDA a model sees whole images up to what the card's memory allows (`window_side`, measured
  with one forward pass at start-up, on the low-resolution image the models take), and windows of
  that size beyond it.
- On a ZeroGPU Space (the `spaces` package importable and SPACES_ZERO_GPU set, read in
  settings.py) a GPU is attached only inside functions decorated with `spaces.GPU`:
  `gpu_function` decorates there, and nowhere else (elsewhere `spaces` is never imported).
"""

import importlib.util
import math
from collections.abc import Callable

import torch

from restoration.settings import zero_gpu

DEVICES = ("auto", "cpu", "cuda")
MEMORY_FRACTION = 0.5  # of the card's free memory at start-up, for one forward pass (the scene pool shares it)
PROBE_SIDE = 256  # the side of the forward pass that measures memory per pixel
# ZeroGPU attaches a large card (tens of GB) only inside decorated calls, so nothing can be measured
# at start-up there: whole low-resolution images up to this side (an output of 4096², which covers
# the app's pixel limit).
ZERO_GPU_SIDE = 2048


class DeviceError(RuntimeError):
    """A device that cannot be used; the message is one line for the person starting the app."""


def resolve(name: str, cuda_available: Callable[[], bool] = torch.cuda.is_available) -> torch.device:
    """The device RESTORATION_DEVICE names ("auto", "cpu", "cuda")."""
    if name not in DEVICES:
        raise DeviceError(f"RESTORATION_DEVICE={name!r}: expected one of {', '.join(DEVICES)}")
    if name == "cpu" or (name == "auto" and not cuda_available()):
        return torch.device("cpu")
    if not cuda_available():
        raise DeviceError("RESTORATION_DEVICE=cuda, but torch sees no CUDA GPU here (no GPU, no driver, or a "
                          f"CPU-only torch {torch.__version__}); set RESTORATION_DEVICE=auto or cpu")
    torch.backends.cudnn.allow_tf32 = False  # fp32 is the reference: no 10-bit mantissas in it
    torch.backends.cuda.matmul.allow_tf32 = False
    return torch.device("cuda")


def on_zero_gpu() -> bool:
    """Whether this is a ZeroGPU Space: SPACES_ZERO_GPU set and the `spaces` package installed."""
    return zero_gpu() and importlib.util.find_spec("spaces") is not None


def gpu_function(fn: Callable) -> Callable:
    """`fn` as ZeroGPU requires GPU work to run (decorated with `spaces.GPU`, which attaches a GPU
    for the call) on a ZeroGPU Space; `fn` itself everywhere else."""
    if not on_zero_gpu():
        return fn
    import spaces  # only here: on ZeroGPU, where the platform installs it

    return spaces.GPU(fn)


def describe(device: torch.device) -> str:
    """'the CPU' or 'CUDA (NVIDIA A10G, 22.1 GB)', for the start-up line."""
    if device.type != "cuda":
        return "the CPU"
    if on_zero_gpu():
        return "CUDA (ZeroGPU: a GPU attached for each request)"
    props = torch.cuda.get_device_properties(device)
    return f"CUDA ({props.name}, {props.total_memory / 1e9:.1f} GB)"


def window_side(model, device: torch.device, stride: int, at_least: int, fraction: float = MEMORY_FRACTION,
                precision_context: Callable = lambda: torch.autocast("cuda", enabled=False)) -> int:
    """The side of the largest square window of the model's input (the low-resolution image,
    runner.py) whose forward pass fits in `fraction` of the card's free memory (measured: one
    pass at PROBE_SIDE², its peak over the memory before it, per input pixel), a multiple of
    `stride`, at least `at_least`. Images of up to half its area run whole."""
    if device.type != "cuda":
        return at_least
    if on_zero_gpu():
        return max(at_least, ZERO_GPU_SIDE // stride * stride)
    x = torch.rand(1, 3, PROBE_SIDE, PROBE_SIDE, device=device).contiguous(memory_format=torch.channels_last)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode(), precision_context():
        model.restore(x)
    per_pixel = (torch.cuda.max_memory_allocated(device) - before) / PROBE_SIDE**2
    free, _total = torch.cuda.mem_get_info(device)
    side = int(math.sqrt(fraction * free / max(per_pixel, 1.0)))
    return max(at_least, side // stride * stride)
