"""Running a restoration model on an image of any size: fast, with bounded memory.

`Restorer` wraps one model and takes the low-resolution image (3, h, w); it returns the restored
image (3, 2h, 2w). Our U-Nets take the ×2 nearest-neighbour upscale (`NearestInput`, windows.py,
makes that upscale part of the model the windows run); a foreign model (foreign.py,
`takes_low_resolution`) takes the low-resolution image itself. Both go through the same windows, cut on the low-resolution
image: `window` × `window` output pixels (`window // scale` a side on the low-resolution image, a
multiple of what the model's sides must divide by: half our U-Net's stride, or the size multiple a
foreign architecture asks for), so compiled code is reused for every image and memory depends on
the window, not on the image:

- an image under half a window's area runs whole (exactly the model's own output; padding it to a
  window would cost more than compiling saves);
- an image that fits one window is padded at its bottom and right edges (replicated, as the models
  themselves pad to their multiple) and run as one window;
- a larger image is covered by overlapping windows whose corners sit on that multiple's grid,
  the last one flush with the image's end; each keeps its output up to the middle of its overlap
  with the next, so every seam has at least `overlap` output pixels of context on both sides.
  Windows run `batch` at a time (a short last batch is filled up with zeros, so the shape stays put).
- on the fast path, for our U-Nets (`fits_windows`), the windows are fitted to each image: as few
  as `window` needs along each axis, each as small as that allows (windows.fitted_window; at least
  half a window a side), compiled once with dynamic shapes. A 1024² image then runs 1.13× its
  pixels in four 544² windows instead of 1.27× in four 576² ones. The reference path, foreign
  models and OpenVINO's converted windows keep one window size.

The fast path is the same computation on a copy of the model in channels-last memory format (in
fp32 with its batch norms folded into the convolutions: engine.fast_copy), through `torch.compile`
(inductor) where a C++ compiler is present; otherwise, or if compiling fails, a one-line notice
and the channels-last eager model. `fast=False` runs the plain eager model on the same windows:
outputs agree within float rounding (1e-4, tested). `warm_up` compiles the window shape ahead of
the first request; until it has finished, requests run channels-last eager, so an app can serve
at once.

`precision` (chosen at start-up by engine.py): "fp32" is the above; "openvino-f32" converts the
window shape to OpenVINO in float32 in the warm-up instead of compiling (and compiles after all if
that fails or is not faster); "bf16" (and on CUDA "fp16") runs the fast path's model under
autocast, no compile (on the CPU its warm-up tries OpenVINO bf16, kept only if faster and no pixel
of a test window moves more than 2/255 against fp32).

`device` (device.py): on CUDA the fast path's model lives on the GPU, an image goes there and its
output comes back (`_on_device`; inside `spaces.GPU` on ZeroGPU), nothing is compiled, and the
window is the largest the card's memory allows (images up to half its area run whole).

`before_window`, when given to a call, runs before each window (or whole image): the scene pool
passes a function that waits while a Compare is running or waiting, so a person's request never
waits longer than one window for a background render (scenes.py).

An 8-bit image (uint8) goes in and comes out as 8 bits, and only the windows being run are
float: a 4-megapixel image is 12 MB instead of 48, the app's panels stay small.
"""

import ctypes
import ctypes.util
import functools
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable, Sequence

import torch

from restoration.data.images import quantize, to_float
from restoration.data.uploads import list_images
from restoration.inference import engine
from restoration.inference.device import describe, gpu_function, window_side
from restoration.inference.torch_thread import Stopping
from restoration.inference.windows import fitted_window, low_resolution_model, window_cores, window_starts
from restoration.settings import Settings

CHANNELS_LAST = torch.channels_last


def release_memory():
    """Hand memory freed by the last model run back to the OS (glibc's malloc_trim; a no-op
    elsewhere). glibc keeps freed activations in its heap, so without this a process's resident
    memory stays at its largest forward pass on top of the images it holds."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


class _NoCudaRuntimeNotice(logging.Filter):
    """Drops torch's "No CUDA runtime is found, using CUDA_HOME=..." warning, and nothing else.
    torch.compile's CPU backend imports torch.utils.cpp_extension, which logs it when a CUDA
    toolkit is installed (nvcc on the PATH) but torch sees no GPU: on a CPU-only machine it reads
    like an error, and says nothing about our CPU kernels."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No CUDA runtime is found")


_CPP_EXTENSION_LOGGER = "torch.utils.cpp_extension"


def quiet_cuda_home_warning():
    """Install `_NoCudaRuntimeNotice` on torch's cpp_extension logger (once), before anything
    compiles. (With a GPU torch does not log it, so the filter then drops nothing.)"""
    logger = logging.getLogger(_CPP_EXTENSION_LOGGER)
    if not any(isinstance(f, _NoCudaRuntimeNotice) for f in logger.filters):
        logger.addFilter(_NoCudaRuntimeNotice())


def kernel_cache_per_capability():
    """Give a process that limits torch's CPU capability (ATEN_CPU_CAPABILITY, as docs/speed.md's
    emulation of an AVX2-only CPU does) its own cache of compiled kernels, beside the default one,
    unless TORCHINDUCTOR_CACHE_DIR names another. torch.compile's disk cache is not keyed by that
    capability: kernels cached under ATEN_CPU_CAPABILITY=avx2 and loaded by a process without it
    corrupted the heap ("malloc_consolidate(): invalid chunk size", torch 2.14), so a plain
    `python app.py` after the emulated benchmark crashed while warming up."""
    from torch._inductor.runtime.cache_dir_utils import default_cache_dir

    capability = os.environ.get("ATEN_CPU_CAPABILITY")
    # torch writes its default into the variable the first time it looks (loading a model does).
    if capability and os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, "", default_cache_dir()):
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = f"{default_cache_dir()}-{capability}"


def compiler_available() -> bool:
    """Whether inductor can build CPU kernels here: a C++ compiler on the PATH."""
    return any(shutil.which(c) for c in filter(None, (os.environ.get("CXX"), "g++", "c++", "clang++")))


def _device_of(model) -> torch.device:
    """Where a model's weights are (the CPU for a model without any, or one that is not a module)."""
    parameters = getattr(model, "parameters", None)
    first = next(parameters(), None) if callable(parameters) else None
    return first.device if first is not None else torch.device("cpu")


def _on_device(call):
    """A Restorer's call run where its fast path lives: on the CPU as it is; on a GPU the image is
    moved there and the output back to the input's device, inside `spaces.GPU` on ZeroGPU."""
    @functools.wraps(call)
    def run(self, x, *args, **kwargs):
        if self.device.type == "cpu":
            return call(self, x, *args, **kwargs)
        return self._gpu(lambda: call(self, x.to(self.device), *args, **kwargs).to(x.device))
    return run


def _call(thunk):
    """`thunk()`: what `gpu_function` decorates, so that on ZeroGPU a GPU is attached for each call."""
    return thunk()


class Restorer:
    """One model, ready to restore low-resolution images (3, h, w) of any size through one window
    shape. `window` and `overlap` are in output pixels; `self.window` and `self.overlap` are what
    they are on the low-resolution image, where the windows are cut."""

    def __init__(self, model, window: int = 320, overlap: int = 32, batch: int = 1, fast: bool = True,
                 notice: Callable[[str], None] = print, precision: str = "fp32", threads: int | None = None,
                 device: torch.device | str | None = None, fit: bool | None = None):
        self.model = low_resolution_model(model.eval())
        self.scale = int(self.model.scale)
        self.stride = max(1, int(self.model.multiple))  # what a window's sides divide by, on the low-resolution image
        self.device = torch.device(device) if fast and device is not None else _device_of(self.model)
        if precision not in engine.PRECISIONS:
            raise ValueError(f"precision must be one of {engine.PRECISIONS}, got {precision!r}")
        if precision == "fp16" and self.device.type != "cuda":
            raise ValueError("precision fp16 runs on a CUDA device only")
        self.fast, self.notice = fast, notice
        self.precision = precision if fast else "fp32"  # the reference path stays fp32
        align = lambda n: -(-n // self.stride) * self.stride  # noqa: E731
        self.window = align(max(-(-window // self.scale), int(self.model.minimum), 1))
        self._fast_model = None
        if fast:
            # A copy (batch norms folded, channels last, on the device), so the caller's model stays
            # the eager reference.
            self._fast_model = engine.fast_copy(self.model, self.device, self.precision)
            self.window = window_side(self._fast_model, self.device, self.stride, self.window,
                                      precision_context=lambda: engine.autocast(self.precision, self.device.type))
        self.overlap, self.batch = -(-max(0, overlap) // self.scale), max(1, batch)
        # Fitted windows are at least half a window a side: smaller ones recompile (deep maps a few pixels across).
        self.least = align(self.window // 2)
        if self.window - 2 * self.overlap < self.stride:
            raise ValueError(f"window {self.window * self.scale} is too small for {self.overlap * self.scale} pixels "
                             "of context on each side")
        # Windows fitted to each image on the fast path where the model's compiled code takes any size
        # (the reference path keeps its figures' one size); `fit` overrides (an eager reference).
        self.fit = (fast and getattr(self.model, "fits_windows", False)) if fit is None else fit
        self.threads = threads or torch.get_num_threads()
        self.status = ("eager" if not fast else f"{self.precision} autocast on {describe(self.device)}"
                       if self.device.type == "cuda" else "bf16 channels-last eager (autocast)"
                       if self.precision == "bf16" else "channels-last eager (not warmed up yet)")
        self._lock = threading.Lock()
        self._compiled, self._tried = None, False
        self._gpu = gpu_function(_call) if self.device.type == "cuda" else _call

    @classmethod
    def from_settings(cls, model, settings, fast: bool | None = None, precision: str = "fp32", **kwargs):
        fast = settings.fast if fast is None else fast
        return cls(model, window=settings.window(precision if fast else "eager"), overlap=settings.tile_overlap,
                   batch=settings.tile_batch, fast=fast, threads=settings.threads, precision=precision, **kwargs)

    # ------------------------------------------------------------------------------- running

    def _eager(self, x):
        """The model, uncompiled (channels last on the fast path), on a batch of any shape."""
        if not self.fast:
            return self.model.restore(x)
        return engine.run_in(self.precision, self._fast_model.restore, x.contiguous(memory_format=CHANNELS_LAST))

    def _run(self, x):
        """The model on a batch of windows (N, 3, window, window): compiled once warmed up."""
        compiled = self._compiled
        if compiled is None:
            return self._eager(x)
        return compiled(x.contiguous(memory_format=CHANNELS_LAST))

    @torch.inference_mode()
    @_on_device
    def whole(self, low):
        """The model on a batch of low-resolution images (N, 3, h, w) as it is, no windows: for
        batches of small images of one size (once warmed up, each new shape compiles once)."""
        return self._run(low).contiguous()

    @torch.inference_mode()
    @_on_device
    def __call__(self, low, before_window: Callable[[], None] | None = None):
        """The restored image (3, sh, sw) of a low-resolution image (3, h, w): float in [0, 1], or
        uint8, and then the output is uint8 too (rounded), a quarter of the memory of a float image.
        Either way only the windows being run are ever float. `before_window()` runs before each
        window. Windows are cut on the low-resolution image; where each one's output is kept (its
        core, up to the middle of its overlap with the next) is reckoned in output pixels."""
        before_window = before_window or (lambda: None)
        c, h, w = low.shape
        eight_bit = low.dtype == torch.uint8
        finish = quantize if eight_bit else torch.Tensor.contiguous
        s, k, n = self.window, self.stride, self.scale
        ha, wa = -(-h // k) * k, -(-w // k) * k  # the sides on the stride grid
        if 2 * ha * wa <= s * s:
            before_window()
            return finish(self._eager(to_float(low[None]))[0])
        sy, sx = self.window_sides(ha, wa)
        hp, wp = max(sy, ha), max(sx, wa)
        if (hp, wp) != (h, w):
            low = torch.nn.functional.pad(low[None], (0, wp - w, 0, hp - h), mode="replicate")[0]
        ys, xs = window_starts(hp, sy, self.overlap, k), window_starts(wp, sx, self.overlap, k)
        cores = lambda starts, side, length: window_cores([a * n for a in starts], side * n, length * n)  # noqa: E731
        windows = [(y, cy, x0, cx) for y, cy in zip(ys, cores(ys, sy, h)) for x0, cx in zip(xs, cores(xs, sx, w))]
        windows = [wd for wd in windows if wd[1][0] < wd[1][1] and wd[3][0] < wd[3][1]]
        if len(windows) == 1 and (hp, wp) == (sy, sx):
            before_window()
            return finish(self._run(to_float(low[None]))[0, :, :h * n, :w * n])
        out = torch.empty(c, h * n, w * n, dtype=low.dtype, device=low.device)
        for i in range(0, len(windows), self.batch):
            group = windows[i:i + self.batch]
            # Built in the layout the fast path wants; a short last batch is padded with zeros so
            # the shape (and the compiled code) stays the same.
            buf = torch.empty(self.batch, c, sy, sx, dtype=torch.float32 if eight_bit else low.dtype, device=low.device,
                              memory_format=CHANNELS_LAST if self.fast else torch.contiguous_format)
            buf[len(group):] = 0
            for j, (y, _, x0, _) in enumerate(group):
                buf[j].copy_(low[:, y:y + sy, x0:x0 + sx])
            if eight_bit:
                buf[:len(group)].div_(255)
            before_window()
            result = self._run(buf)
            for j, (y, (y0, y1), x0, (x1a, x1b)) in enumerate(group):
                core = result[j, :, y0 - y * n:y1 - y * n, x1a - x0 * n:x1b - x0 * n]
                out[:, y0:y1, x1a:x1b] = quantize(core) if eight_bit else core
        return out

    def window_sides(self, h: int, w: int) -> tuple[int, int]:
        """The windows' (height, width) on a low-resolution image of h × w (on the stride grid) that
        does not run whole: fitted to it, or `window` square."""
        if not self.fit:
            return self.window, self.window
        return tuple(fitted_window(n, self.window, self.overlap, self.stride, self.least) for n in (h, w))

    # ------------------------------------------------------------------------------- warm-up

    def warm_up(self) -> float:
        """Compile the fast path for the shapes it uses (one window; `batch` windows); seconds
        taken. Without a C++ compiler, or if compiling fails, the fast path stays eager (channels
        last) and a one-line notice says why. Safe to call from a background thread."""
        if not self.fast or self.device.type == "cuda":  # on a GPU autocast eager is the fast path
            return 0.0
        t0 = time.perf_counter()
        with self._lock:
            if self._tried:
                return 0.0
            self._tried = True
            if self.precision == "bf16":
                self._warm_up_openvino("bf16")
                return time.perf_counter() - t0
            if self.precision == "openvino-f32" and self._warm_up_openvino("f32"):
                return time.perf_counter() - t0
            not_kept = f" ({self.status})" if self.precision == "openvino-f32" else ""
            if not compiler_available():
                self._give_up("no C++ compiler found")
                return time.perf_counter() - t0
            quiet_cuda_home_warning()
            kernel_cache_per_capability()
            try:
                # Fitted windows: symbolic sizes, traced on a window not square (else h and w are one size).
                compiled = torch.compile(self._fast_model.restore, dynamic=self.fit)
                shape = (self.window, self.window - self.stride if self.fit else self.window)
                with torch.inference_mode():
                    for n in sorted({1, self.batch}):
                        x = torch.rand(n, 3, *shape, device=self.device)
                        compiled(x.contiguous(memory_format=CHANNELS_LAST))
            except Exception as e:  # noqa: BLE001 (any failure of the compiler stack means: stay eager)
                self._give_up(f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200])
                return time.perf_counter() - t0
            self._compiled = compiled
            self.status = "compiled (torch.compile, channels last)" + not_kept
        return time.perf_counter() - t0

    def _warm_up_openvino(self, hint: str) -> bool:
        """Convert the window shapes to OpenVINO with precision `hint` (where it is installed) and
        keep it only if no pixel of a test window moves more than engine.MAX_LEVELS against fp32
        eager and it runs faster than the eager path (bf16 autocast; for f32, fp32 eager by
        engine.GAIN_OVER_FP32_EAGER, what compiling would gain); `status` says what happened.
        Whether it was kept."""
        # bf16 stays on autocast; f32 goes on to compile, whose status then ends with this reason in brackets.
        say = (lambda why: f"bf16 channels-last eager (autocast; {why})") if hint == "bf16" else (lambda why: why)
        gain = 1.0 if hint == "bf16" else engine.GAIN_OVER_FP32_EAGER
        if engine.openvino_module() is None:
            if hint == "f32":  # chosen only where openvino is installed; bf16 just runs on without it
                self.status = say("openvino not installed")
            return False
        try:
            runners = {n: engine.openvino_runner(self._fast_model, (n, 3, self.window, self.window), self.threads,
                                                 hint) for n in sorted({1, self.batch})}
            x = engine.check_image(self.window).contiguous(memory_format=CHANNELS_LAST)
            with torch.inference_mode():
                reference = self.model.restore(x.contiguous())
                apart = engine.levels_apart(runners[1](x), reference)
                t_ov = engine.median_seconds(lambda: runners[1](x))
                t_bf16 = engine.median_seconds(lambda: self._eager(x))
        except Exception as e:  # noqa: BLE001 (any converter failure means: stay on the torch path)
            self.status = say(f"openvino failed: {type(e).__name__}")
            return False
        figures = f"{t_ov * 1000:.0f} ms a window against {t_bf16 * 1000:.0f} ms eager, max |Δ| {apart}/255"
        if apart > engine.MAX_LEVELS or t_ov * gain >= t_bf16:
            self.status = say(f"openvino {hint} not kept: {figures}")
            return False
        shape = (3, self.window, self.window)
        self.fit = False  # converted for one window shape: every image is cut into it
        # Converted for the window shapes only; anything else (`whole` on small images) runs bf16 eager.
        self._compiled = lambda x: (runners[x.shape[0]](x) if x.shape[0] in runners and tuple(x.shape[1:]) == shape
                                    else self._eager(x))
        self.status = f"openvino {hint} ({figures})"
        return True

    def _give_up(self, why: str):
        self.status = f"channels-last eager (torch.compile unavailable: {why})"
        self.notice(f"fast path: torch.compile unavailable ({why}); running the model eagerly in channels-last format")


def warm_up_in_background(restorers: Sequence[Restorer], done: Callable[[float], None] | None = None,
                          run: Callable = lambda fn: fn()) -> threading.Thread:
    """Warm every restorer up from a daemon thread, each through `run` (the app's: on its torch
    thread, torch_thread.py; requests meanwhile run eagerly); `done(seconds)` afterwards."""
    def warm_all():
        t0 = time.perf_counter()
        for r in restorers:
            try:
                run(r.warm_up)
            except Stopping:  # the app stopped first: nothing to finish
                return
        if done:
            done(time.perf_counter() - t0)

    thread = threading.Thread(target=warm_all, name="fast-path warm-up", daemon=True)
    thread.start()
    return thread


def timed(fn, *args, **kwargs):
    """(result, milliseconds)."""
    t0 = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, (time.perf_counter() - t0) * 1000


def restorers_for(models: Sequence, settings: Settings, fast: bool | None = None, precision: str = "fp32",
                  device: torch.device | str | None = None) -> dict[str, Restorer]:
    """name → `Restorer` for each `catalogue.LoadedModel`, set up as `settings` say, in `precision`
    on `device` (engine.choose's pick: `Choice.precision`, `Choice.device`)."""
    return {m.entry.name: Restorer.from_settings(m.model, settings, fast=fast, precision=precision, device=device)
            for m in models}


def choose_engine(models: Sequence, settings: Settings, device: torch.device = torch.device("cpu")) -> "engine.Choice":
    """The start-up check (engine.py) on every one of `models` (the app passes the shipped ones:
    community models run in fp32), on `device` (device.resolve), as `settings` allow; its accuracy
    images are crops of the examples (engine.check_images)."""
    if not settings.fast:
        return engine.Choice("fp32", f"engine: fp32 eager on {describe(device)} (RESTORATION_FAST is off)", device)
    images = engine.check_images(list_images(settings.examples_dir))
    return engine.choose([low_resolution_model(m.model) for m in models], images, settings.engine, device,
                         settings.simulate_no_bf16, where=describe(device))
