"""The inference engines and precisions that restoration/inference/engine.py chooses among, and those it
does not ship, measured on the shipped U-Nets through `runner.Restorer`'s fixed windows: speed,
warm-up, memory, and the accuracy cost against fp32 eager (bench/speed_report.py prints the tables).

Candidates (each one only where its package is installed; the others are skipped with a line):
- "fp32 compiled": today's path (channels-last + torch.compile);
- "bf16 autocast": what ships where the CPU has bfloat16 instructions and it passes the bar (engine.py);
- "openvino f32" / "openvino bf16": the `openvino` package (f32: what "auto" ships where installed) (pip, no compiler), the window shape
  converted with `ov.convert_model`, inference precision hint f32 / bf16;
- "onnxruntime fp32": `onnxruntime` (and `onnx` for the export);
- "int8 pt2e": PT2E static quantisation with torchao's X86InductorQuantizer, calibrated on val
  windows, compiled by inductor.
"""

import copy
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from bench.memory import memory
from restoration.arena.scenes import center_crop
from restoration.data.degrade import STANDARD, prepare
from restoration.data.images import open_image, to_tensor
from restoration.data.metrics import psnr
from restoration.inference import engine
from restoration.inference.eligibility import Agreement, agreement
from restoration.inference.runner import Restorer, release_memory


def with_window_runner(restorer: Restorer, runner: Callable, window_shape) -> Restorer:
    """`restorer` running `runner` on its window batches (shape `window_shape`), eager otherwise."""
    restorer._compiled = lambda x: runner(x) if tuple(x.shape) == tuple(window_shape) else restorer._eager(x)
    return restorer


def _onnxruntime_runner(model, shape, threads):
    import onnxruntime as ort

    path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-engines-{os.getpid()}-{id(model)}.onnx"
    with torch.inference_mode():
        torch.onnx.export(engine._Restore(model).eval(), (torch.rand(shape),), str(path), dynamo=False,
                          opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # Its threads would otherwise spin after each run, taking the cores from the next candidate.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    path.unlink(missing_ok=True)
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.contiguous().numpy()})[0])


def calibration_windows(val_dir: Path, side: int, count: int = 8) -> list[torch.Tensor]:
    """Windows' inputs (1, 3, side / 2, side / 2): Tiny ImageNet val images degraded as in Compare."""
    files = sorted((Path(val_dir) / "val" / "images").glob("*.JPEG"))[:count]
    out = []
    for f in files:
        im = to_tensor(open_image(f).convert("RGB").resize((side, side)))
        out.append(prepare(im, "degrade")[0][None])
    return out


def _int8_runner(model, shape, threads, calibration):
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    module = engine._Restore(copy.deepcopy(model)).eval()
    example = (torch.rand(shape),)
    exported = torch.export.export(module, example).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for x in calibration:
            prepared(torch.nn.functional.interpolate(x, size=shape[-2:]))
    converted = convert_pt2e(prepared)
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    compiled = torch.compile(converted, dynamic=False)
    with torch.no_grad():
        compiled(*example)
    inductor_config.freezing = False
    return lambda x: compiled(x.contiguous())


def candidates(threads: int, val_dir: Path, cheap: bool = False) -> dict[str, Callable]:
    """name → make(model, settings) returning (Restorer, warm-up seconds), or a str: why skipped."""
    def torch_path(precision):
        def make(model, settings):
            r = Restorer.from_settings(model, settings, precision=precision)
            if precision == "bf16" and cheap:
                return r, 0.0
            with engine.without_openvino():  # the torch path alone; openvino is its own row
                return r, r.warm_up()
        return make

    def runner_path(build):
        def make(model, settings):
            r = Restorer.from_settings(model, settings, precision="fp32")
            r._tried = True  # no torch.compile: the runner replaces it
            shape = (settings.tile_batch, 3, r.window, r.window)
            t0 = time.perf_counter()
            with_window_runner(r, build(r._fast_model, shape), shape)
            r.status = "window runner"
            return r, time.perf_counter() - t0
        return make

    out: dict[str, Callable | str] = {} if cheap else {"fp32 compiled (today)": torch_path("fp32")}
    out["bf16 autocast"] = torch_path("bf16") if engine.bf16_supported() else "no bf16 on this CPU"
    ov = engine.openvino_module()
    for hint in ("f32", "bf16"):
        out[f"openvino {hint}"] = (runner_path(lambda m, s, h=hint: engine.openvino_runner(m, s, threads, h))
                                   if ov else "openvino not installed")
    try:
        import onnx  # noqa: F401  (is it installed?)
        import onnxruntime  # noqa: F401
        out["onnxruntime fp32"] = runner_path(lambda m, s: _onnxruntime_runner(m, s, threads))
    except ImportError:
        out["onnxruntime fp32"] = "onnxruntime/onnx not installed"
    if cheap:  # no int8: its calibration and compile take minutes a model
        return out
    try:
        import torchao  # noqa: F401
        calibration = calibration_windows(val_dir, 64)
        out["int8 pt2e (torchao)"] = (runner_path(lambda m, s: _int8_runner(m, s, threads, calibration))
                                      if calibration else "no val images to calibrate on")
    except ImportError:
        out["int8 pt2e (torchao)"] = "torchao not installed"
    return out


def run_times(fn, repeats: int) -> list[float]:
    """Seconds of `repeats` timed calls, after one untimed call (warm caches, compiled code)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return times


def accuracy_sets(settings, tiny: int, photos: int, photo_side: int) -> dict[str, list[torch.Tensor]]:
    """uint8 images (3, H, W): `tiny` Tiny ImageNet val images (64²) and `photos` photos of
    photos/val, centre-cropped to `photo_side`."""
    val = sorted((Path(settings.val_dir) / "val" / "images").glob("*.JPEG"))[:tiny]
    photo_files = sorted(p for p in Path(settings.photo_val_dir).rglob("*") if p.suffix.lower() in
                         (".png", ".jpg", ".jpeg"))[:photos]
    load = lambda p: (to_tensor(open_image(p).convert("RGB")) * 255).round().to(torch.uint8)
    crop = lambda p: (to_tensor(center_crop(open_image(p).convert("RGB"), photo_side)) * 255).round().to(torch.uint8)
    return {"tiny-imagenet val": [load(p) for p in val], "photos/val": [crop(p) for p in photo_files]}


def same_windows(model, settings, restorer: Restorer) -> Restorer:
    """fp32 eager on `restorer`'s windows: what a candidate is compared with, so that only its
    precision differs. (Another window size changes the picture by itself, at the bottom and right
    edges of an image that is padded to fill one window: docs/speed.md.)"""
    return Restorer(model, window=restorer.window * restorer.scale, overlap=settings.tile_overlap,
                    batch=settings.tile_batch, fast=False, fit=restorer.fit)


def accuracy(restorer: Restorer, reference: Restorer, images: list[torch.Tensor], degradation: str):
    """(`restorer`'s agreement with `reference` (eligibility.py), the reference's mean PSNR) over
    `images` through the app's 8-bit path (prepare → model → uint8)."""
    outputs, references, truths = [], [], []
    for image in images:
        low, _, truth = prepare(image, "degrade", degradation)
        outputs.append(restorer(low))
        references.append(reference(low))
        truths.append(truth)
    release_memory()
    found: Agreement = agreement(outputs, references, truths)
    return found, statistics.mean(float(psnr(r, t)[0]) for r, t in zip(references, truths))


def rss_mb() -> float:
    return memory()["VmRSS"]


DEGRADATIONS = STANDARD
