"""Evaluate ×2 super-resolution on Tiny ImageNet val or any folder of images.

    python -m restoration.inference.evaluate                                  # shipped models, Tiny ImageNet val
    python -m restoration.inference.evaluate --degradation lesson,bicubic,jpeg75 --json weights/evaluation.json
    python -m restoration.inference.evaluate --data ~/photos --models weights/unet-mse runs/unet-mse
    python -m restoration.inference.evaluate --limit 1000 --json results.json

One table per degradation (how the low-resolution images are made: restoration/data/degrade.py), with
the nearest-neighbour and bicubic baselines. PSNR is given two ways on RGB: pooled (one MSE over
every pixel of the set) and the mean of per-image values; and as the super-resolution literature
reports it: Y-PSNR and Y-SSIM on the BT.601 luma channel with a 2-pixel border shaved, averaged over
images (what published ×2 figures on photo sets mean). See restoration/data/metrics.py for SSIM and
sharpness, and the grain in flat areas (`grid`, `flat`). Whole images are evaluated (a folder's photos at their own size, cropped to even sides).

On Tiny ImageNet it also reports semantic fidelity: the fidelity classifier's top-1 accuracy on each
method's output, and the share of its top-1 on the originals that this keeps ("kept"). The fidelity
classifier took no part in training any U-Net, so it favours none. It also reports the perceptual-loss
classifier's own top-1 on the originals.
"""

import argparse

from restoration.choices import STANDARD
from restoration.cli import parser
from restoration.settings import Settings


def main(argv=None):
    settings = Settings.from_env()
    args = arguments(settings).parse_args(argv)
    # The evaluation loads torch: imported after the arguments, so that --help answers at once.
    from restoration.inference.evaluation import run

    run(args, settings, argv)


def arguments(settings: Settings) -> argparse.ArgumentParser:
    p = parser("python -m restoration.inference.evaluate", __doc__)
    p.add_argument("--data", default=str(settings.val_dir),
                   help="Tiny ImageNet folder (its val split) or a folder of images (default: %(default)s)")
    p.add_argument("--degradation", default=",".join(STANDARD),
                   help="comma-separated degradations, one table each (default: %(default)s); "
                        "see restoration/data/degrade.py: lesson, bicubic, area, lanczos, jpeg<quality>")
    p.add_argument("--models", nargs="*", default=None,
                   help="checkpoint folders (default: the restorers in weights/models.json)")
    p.add_argument("--classifier", default=None,
                   help="the perceptual-loss classifier, scored on the originals (default: the one in "
                        "weights/models.json, unless --models is given)")
    p.add_argument("--fidelity-classifier", default=None,
                   help="the independent classifier for semantic fidelity (default: the role 'fidelity' model in "
                        "weights/models.json; 'none' to skip)")
    # The option's old name, kept so that recorded commands still run; not shown in --help.
    p.add_argument("--judge", dest="old_judge", default=None, help=argparse.SUPPRESS)
    p.add_argument("--limit", type=int, default=None, help="evaluate N images, a fixed random subset (default: all)")
    p.add_argument("--batch-size", type=int, default=100, help="images per model call (default: %(default)s)")
    p.add_argument("--cache-dir", default=None, help="keep the decoded val set here for next time (default: none)")
    p.add_argument("--threads", type=int, default=settings.threads,
                   help="torch CPU threads (default: RESTORATION_THREADS, else the CPUs this process may use: "
                        "%(default)s)")
    p.add_argument("--device", default="cpu", help="where the models run: cpu or cuda (default: %(default)s)")
    p.add_argument("--json", default=None, help="also write the results to this JSON file (default: none)")
    return p


if __name__ == "__main__":
    main()
