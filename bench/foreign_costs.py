"""What well-known ×2 architectures cost, as a submission's checks measure it: the values its
model.safetensors holds and its GFLOPs per output megapixel (submission_checks.gflops_per_megapixel,
counted on the meta device: nothing runs), at the sizes their papers or model zoos use, randomly
initialised (the cost does not depend on the weights). Beside the limits of submission_checks.Rules.

    python -m bench.foreign_costs

Not a test: it prints a Markdown table (docs/submitting.md quotes it).
"""

import warnings

from restoration.cli import parser


def sizes() -> dict:
    """name → a function building the model at that size (spandrel's own classes)."""
    from spandrel.architectures.Compact import Compact
    from spandrel.architectures.ESRGAN import ESRGAN
    from spandrel.architectures.OmniSR import OmniSR
    from spandrel.architectures.PLKSR import RealPLKSR
    from spandrel.architectures.SPAN import SPAN
    from spandrel.architectures.SwinIR import SwinIR

    return {
        "Real-ESRGAN compact, 64 features, 16 convs": lambda: Compact(num_feat=64, num_conv=16, upscale=2),
        "SPAN, 48 channels": lambda: SPAN(num_in_ch=3, num_out_ch=3, feature_channels=48, upscale=2),
        "OmniSR, 64 features": lambda: OmniSR(num_feat=64, up_scale=2),
        "SwinIR lightweight (60 dims, 4 × 6 blocks, window 8)": lambda: SwinIR(
            upscale=2, img_size=64, window_size=8, depths=[6] * 4, embed_dim=60, num_heads=[6] * 4, mlp_ratio=2,
            upsampler="pixelshuffledirect"),
        "RealPLKSR, 64 dims, 28 blocks": lambda: RealPLKSR(dim=64, n_blocks=28, upscaling_factor=2),
        "ESRGAN (RRDBNet, 64 features, 23 blocks: Real-ESRGAN x2plus)": lambda: ESRGAN(
            in_nc=3, out_nc=3, num_filters=64, num_blocks=23, scale=2),
    }


def main(argv=None):
    parser("python -m bench.foreign_costs", __doc__).parse_args(argv)  # no options: --help, and a clear refusal
    import torch  # after parse_args, as spandrel in sizes(): --help needs no torch

    from restoration.arena.submission_checks import RULES, gflops_per_megapixel
    from restoration.models.foreign import ForeignModel

    print(f"Limits: {RULES.max_params / 1e6:.0f} M values, {RULES.max_gflops:.0f} GFLOPs per output megapixel.\n")
    print("| model | architecture | values | GFLOPs per output megapixel | within the limits |")
    print("|---|---|---:|---:|---|")
    for name, make in sizes().items():
        torch.manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = make().state_dict()
        values = sum(v.numel() for v in state.values())
        model = ForeignModel.from_state_dict(state)
        gflops = gflops_per_megapixel(model)
        fits = values <= RULES.max_params and gflops <= RULES.max_gflops
        print(f"| {name} | {model.architecture} | {values / 1e6:.2f} M | {gflops:.0f} | {'yes' if fits else 'no'} |")


if __name__ == "__main__":
    main()
