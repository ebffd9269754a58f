"""Super-resolution models of other architectures (ESRGAN, Real-ESRGAN's compact net, SwinIR, SPAN,
OmniSR, DAT, PLKSR and the rest), detected from a state dict by spandrel, the loader ComfyUI and
chaiNNer use, and given the interface our models have.

    model = ForeignModel.from_state_dict(safetensors.torch.load_file("model.safetensors"))
    model.architecture, model.licence, model.scale    # "SPAN", "Apache-2.0", 2
    model.restore(low)                                # (N, 3, h, w) in [0, 1] → (N, 3, 2h, 2w)

Only spandrel's main package, whose architectures carry permissive licences (LICENCES below); never
`spandrel_extra_arches` (non-commercial ones): this project does not install or register it, and
should another library register its architectures, they are not in LICENCES, so a model of one is
refused (submission_checks: rule `licence`).

spandrel reads an architecture's hyper-parameters from the tensors' shapes, so a file whose shapes
lie can make it build a model of any size before its weights are compared with the model (a
window of 1,000 pixels read off one tensor is a 10¹²-value buffer). Every build therefore runs under
`allocation_cap`: each operation's output is sized on the meta device first, and the build is
stopped once it would have allocated BUILD_BYTES in all. What a submission must be (scale 2, RGB,
within the cost limits) is checked by submission_checks.py; this module only builds.
"""

import warnings
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from restoration.models.checkpoint import CheckpointError
from restoration.strict_json import one_line

MODEL_TYPE = "spandrel"  # config.json's model_type for a foreign model (the file is optional)
# An 8 M-value model's build allocates about 200 MB in all (SwinIR with 4 M values: 100 MB, weights
# initialised and then overwritten by the state dict); five times that is still no threat to a server.
BUILD_BYTES = 1 << 30

# The licence of each architecture's code in spandrel 0.4.2's main package, as its repository's
# libs/spandrel/spandrel/architectures/<id>/__arch/LICENSE says. (The weights are the submitter's.)
LICENCES = {
    "ATD": "Apache-2.0", "AuraSR": "CC-BY-SA-4.0", "CRAFT": "Apache-2.0", "Compact": "BSD-3-Clause",
    "DAT": "Apache-2.0", "DCTLSA": "Apache-2.0", "DITN": "Apache-2.0", "DRCT": "MIT", "DRUNet": "MIT", "DnCNN": "MIT",
    "ESRGAN": "Apache-2.0", "FBCNN": "Apache-2.0", "FDAT": "MIT", "FFTformer": "MIT", "GFPGAN": "Apache-2.0",
    "GRL": "MIT", "HAT": "MIT", "HVICIDNet": "MIT", "IPT": "Apache-2.0", "KBNet": "MIT", "LaMa": "Apache-2.0",
    "MMRealSR": "BSD-3-Clause", "MixDehazeNet": "MIT", "MoESR": "MIT", "MoSR": "MIT", "NAFNet": "MIT",
    "OmniSR": "Apache-2.0", "PLKSR": "MIT", "RCAN": "MIT", "RGT": "Apache-2.0", "RealCUGAN": "MIT",
    "RestoreFormer": "Apache-2.0", "RetinexFormer": "MIT", "SAFMN": "Apache-2.0", "SAFMNBCIE": "Apache-2.0",
    "SCUNet": "Apache-2.0", "SPAN": "Apache-2.0", "SeemoRe": "Apache-2.0", "SwiftSRGAN": "CC0-1.0",
    "Swin2SR": "Apache-2.0", "SwinIR": "Apache-2.0", "Uformer": "MIT",
}


class ForeignModelError(CheckpointError):
    """A state dict spandrel's main package cannot build; `str()` is one line."""


class BuildTooLarge(ForeignModelError):
    """A build stopped by `allocation_cap`."""


@contextmanager
def allocation_cap(limit: int = BUILD_BYTES):
    """Raise `BuildTooLarge` from the first tensor operation inside that would take the bytes
    allocated in the block past `limit` (freed ones count too: a bound, not a measure)."""
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_leaves, tree_map

    def to_meta(value):
        return value.to("meta") if isinstance(value, torch.Tensor) else value

    class Cap(TorchDispatchMode):
        total = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            meta_kwargs = tree_map(to_meta, kwargs) | ({"device": torch.device("meta")} if "device" in kwargs else {})
            try:  # the output's size, from the meta device (a factory's too): nothing is allocated
                sized = func(*tree_map(to_meta, args), **meta_kwargs)
                new = sum(t.numel() * t.element_size() for t in tree_leaves(sized) if isinstance(t, torch.Tensor))
            except Exception:  # noqa: BLE001 (no meta kernel, or a value read back: small, run it)
                new = 0
            self.total += new
            if self.total > limit:
                raise BuildTooLarge(f"building it would allocate over {limit / 2**30:.0f} GiB ({func} asks for "
                                    f"{new:,} bytes): its tensors' shapes describe a far larger model")
            return func(*args, **kwargs)

    with Cap():
        yield


class ForeignModel(nn.Module):
    """A spandrel model with our models' interface: `forward` (unclamped) and `restore` (clamped to
    [0, 1]) take the low-resolution image itself, padded to the size the architecture needs (its
    minimum, multiple, square) and cropped back; `scale`, `architecture`, `licence` say what it is.
    Its state dict is the wrapped model's, keys unchanged, so that it can be detected again."""

    model_type = MODEL_TYPE
    takes_low_resolution = True  # our U-Nets take the ×2 nearest upscale (runner.Restorer serves both)

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self.architecture_id = str(descriptor.architecture.id)
        self.architecture = descriptor.architecture.name
        self.licence = LICENCES.get(self.architecture_id, "unknown")
        self.purpose, self.tags = descriptor.purpose, list(descriptor.tags)
        self.scale, self.in_channels, self.out_channels = descriptor.scale, descriptor.input_channels, \
            descriptor.output_channels
        req = descriptor.size_requirements
        self.minimum, self.multiple, self.square = req.minimum, req.multiple_of, req.square
        # How spandrel calls this architecture (a few return a tuple, or rescale): its descriptor's own call.
        self._call = getattr(descriptor, "_call_fn", None) or (lambda model, image: model(image))
        self.config = {"architecture": self.architecture_id}

    @classmethod
    def from_state_dict(cls, state: dict) -> "ForeignModel":
        """Detect and build the architecture of `state` (name → tensor) with spandrel's main
        registry, under `allocation_cap`; the weights are loaded strictly (every key and shape)."""
        from spandrel import MAIN_REGISTRY, ImageModelDescriptor, UnsupportedModelError

        try:
            with allocation_cap(), warnings.catch_warnings():
                warnings.simplefilter("ignore")  # architectures' deprecation notices are not the submitter's to read
                descriptor = MAIN_REGISTRY.load(dict(state))  # a copy: some loaders rename keys in place
        except UnsupportedModelError:
            raise ForeignModelError("no architecture of spandrel's main package matches these tensors") from None
        except BuildTooLarge:
            raise
        except Exception as e:  # noqa: BLE001 (a loader's KeyError, shape mismatch, assertion...: one line)
            raise ForeignModelError(f"spandrel could not build it ({type(e).__name__}: {one_line(e, 160)})") from None
        if not isinstance(descriptor, ImageModelDescriptor):
            raise ForeignModelError(f"{descriptor.architecture.name} takes an image and a mask ({descriptor.purpose}), "
                                    "not an image")
        return cls(descriptor).eval()

    def size_for(self, h: int, w: int) -> tuple[int, int]:
        """The (height, width) an input of h × w is padded to."""
        up = lambda n: -(-max(n, self.minimum) // self.multiple) * self.multiple  # noqa: E731
        h, w = up(h), up(w)
        return (max(h, w),) * 2 if self.square else (h, w)

    def forward(self, x):
        h, w = x.shape[-2:]
        ph, pw = self.size_for(h, w)
        if (ph, pw) != (h, w):
            x = F.pad(x, (0, pw - w, 0, ph - h), mode="replicate")
        return self._call(self.net, x)[..., :h * self.scale, :w * self.scale]

    def restore(self, x):
        return self.forward(x).clamp(0, 1)

    def state_dict(self, *args, **kwargs):
        return self.net.state_dict(*args, **kwargs)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        return self.net.load_state_dict(state_dict, strict=strict, assign=assign)
