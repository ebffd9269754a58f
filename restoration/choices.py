"""The names command lines offer as choices and defaults, kept free of torch so that every
command's `--help` answers at once. The modules that own each name import it from here, so code
keeps using `degrade.STANDARD`, `degrade.MixConfig`, `classifier.PRESETS`, `catalogue.FAMILIES`."""

import dataclasses

# The downscaling kernels of the ×2 degradations (restoration/data/degrade.py).
KERNELS = ("lesson", "bicubic", "area", "lanczos")
# The ×2 degradations the evaluation reports and the app offers, in this order (restoration/data/degrade.py).
STANDARD = ("lesson", "bicubic", "jpeg75")


@dataclasses.dataclass(frozen=True)
class MixConfig:
    """The random draw of `mix`, per image. Kept mild: the photos people bring are downscaled,
    maybe compressed, not wrecked. Blur before the downscale is off by default: measured on
    photos, training to undo it taught the U-Nets to over-sharpen (halos) everything else."""

    kernels: tuple[str, ...] = KERNELS
    kernel_weights: tuple[float, ...] = (0.5, 0.3, 0.1, 0.1)  # bilinear and bicubic are the common ones
    blur_p: float = 0.0          # probability of a Gaussian blur before the downscale
    blur_sigma: tuple[float, float] = (0.3, 0.7)
    noise_p: float = 0.1         # probability of Gaussian noise on the low-resolution image
    noise_sigma: tuple[float, float] = (1 / 255, 3 / 255)
    jpeg_p: float = 0.5          # probability of JPEG compression of the low-resolution image
    jpeg_quality: tuple[int, int] = (60, 95)

    def __post_init__(self):
        if len(self.kernel_weights) != len(self.kernels):
            object.__setattr__(self, "kernel_weights", (1.0,) * len(self.kernels))  # uniform over a custom list


# Model sizes: the widths and block counts of the encoder (restoration/models/classifier.py).
PRESETS = {
    # The notebooks' models: sized for a GPU.
    "lesson": dict(nfs=(32, 64, 128, 256, 512, 1024), nbks=(3, 2, 2, 1, 1)),
    # Small enough to train on a CPU and ship in the repo (a U-Net on it stays under 2.5 M parameters).
    "compact": dict(nfs=(16, 32, 64, 96, 192), nbks=(1, 1, 2, 2)),
    # Wider and deeper than compact, still under 6 MB in fp16: the independent fidelity classifier.
    "wide": dict(nfs=(32, 48, 96, 128, 224), nbks=(1, 2, 2, 2)),
}

# A restorer's family: the data it learnt from (restoration/hub/catalogue.py). The lesson's models
# reproduce the notebook on Tiny ImageNet's 64×64 thumbnails; the photo family learnt from
# full-resolution photo patches.
FAMILIES = {"photo": "Photos", "lesson": "Tiny ImageNet (the lesson's)"}
# A submission's family unless it says (as the app's Compare; restoration/arena/submissions.py imports it).
DEFAULT_FAMILY = "photo"
