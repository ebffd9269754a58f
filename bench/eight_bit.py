"""What Compare's 8-bit low-resolution input does to the scores, against a float one.

    python -m bench.eight_bit                  # the images in examples/, the three degradations

Compare rounds the low-resolution image to 8 bits before the models see it (as a real image is,
and as the PNG a user downloads is), where training and `restoration.inference.evaluate` keep it float.
For each image, degradation and model, this prints nothing but the summary: the PSNR (of the
8-bit output, against the original) with the 8-bit input minus the PSNR with the float input.
Images over 0.7 megapixels are halved first, to keep the run short.
"""

import statistics

from restoration.choices import STANDARD
from restoration.cli import parser
from restoration.settings import Settings


def main(argv=None):
    settings = Settings.from_env()
    p = parser("python -m bench.eight_bit", __doc__)
    p.add_argument("--data", default=settings.examples_dir, help="a folder of images")
    p.add_argument("--threads", type=int, default=settings.threads)
    args = p.parse_args(argv)
    # The work's modules load torch: imported after the arguments, so that --help answers at once.
    import torch

    from restoration.data.degrade import prepare
    from restoration.data.images import open_image, quantize, to_tensor, to_uint8
    from restoration.data.metrics import psnr
    from restoration.data.uploads import list_images
    from restoration.hub.catalogue import load_available_restorers
    from restoration.inference.runner import Restorer

    torch.set_num_threads(args.threads)
    models, _ = load_available_restorers(settings.weights_dir)
    images = []
    for path in list_images(args.data):
        image = open_image(path)
        if image.width * image.height > 700_000:
            image = image.resize((image.width // 2, image.height // 2))
        images.append((path.name, image))
    print(f"{len(images)} images from {args.data}; PSNR with the 8-bit input − PSNR with the float input, in dB\n")
    print("| degradation | model | mean | min | max | largest on |")
    print("|---|---|---:|---:|---:|---|")
    for degradation in STANDARD:
        for m in models:
            restorer = Restorer.from_settings(m.model, settings, fast=False)
            diffs = {}
            for name, image in images:
                float_input, _, _ = prepare(to_tensor(image), "degrade", degradation)
                eight_bit_input, _, reference = prepare(to_uint8(image), "degrade", degradation)
                diffs[name] = float(psnr(restorer(eight_bit_input), reference)[0]
                                    - psnr(quantize(restorer(float_input)), reference)[0])
            largest = max(diffs, key=lambda k: abs(diffs[k]))
            print(f"| {degradation} | {m.entry.title} | {statistics.mean(diffs.values()):+.3f} | "
                  f"{min(diffs.values()):+.3f} | {max(diffs.values()):+.3f} | {largest} |", flush=True)


if __name__ == "__main__":
    main()
