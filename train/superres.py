"""Train a ×2 super-resolution model (lesson 23's 25_superres).

    python -m train.superres --variant mse --out runs/unet-mse
    python -m train.superres --variant mse --degradation lesson --out runs/unet-mse-lesson   # the notebook's recipe
    python -m train.superres --variant perceptual --classifier runs/classifier --out runs/unet-perceptual
    python -m train.superres --variant crossconv --classifier runs/classifier --out runs/unet-crossconv
    python -m train.superres --variant autoencoder --out runs/autoencoder

With --classifier, the encoder starts from the classifier's weights and stays frozen for
--freeze-epochs (the lesson's recipe); the perceptual and cross-conv variants then also use the
classifier's features in their loss. The cross-conv variant without them (a random encoder and
a plain MSE loss) is a different recipe: ask for it with --no-classifier.

--degradation picks how training inputs are made (restoration/data/degrade.py): `mix` (the default, what
the shipped U-Nets are trained on) draws a kernel, blur, noise and JPEG per image so the models cope
with real low-resolution photos; `lesson` is the notebook's single antialiased bilinear ×½.

Photos (the photo family): with --data a folder of photos, training draws random --size crops at
the photos' own resolution (each photo decoded once; an epoch is --crops-per-epoch crops) and
validates on whole --val-data images, reporting luma PSNR gains over bicubic:

    python -m train.superres --variant mse --data ../shared/data/photos/train \
        --val-data ../shared/data/photos/val --init weights/unet-mse --no-erase --out runs/photo-mse
"""

import dataclasses
import typing
from pathlib import Path

from restoration.choices import MixConfig
from train.config import TrainConfig, parse_config

VARIANTS = ("mse", "perceptual", "crossconv", "autoencoder")


@dataclasses.dataclass
class SuperResConfig(TrainConfig):
    variant: str = dataclasses.field(default="mse", metadata={"choices": list(VARIANTS), "help": "which model and loss"})
    out: str | None = dataclasses.field(default=None, metadata={"help": "default runs/unet-<variant>"})
    lr: float = 2e-3
    classifier: str | None = dataclasses.field(default=None, metadata={
        "help": "classifier checkpoint folder: initialises the encoder (and the perceptual loss); "
                "needed by perceptual and crossconv (default: none)"})
    no_classifier: bool = dataclasses.field(default=False, metadata={
        "flag": True, "help": "crossconv only: train without a classifier (random encoder, MSE loss)"})
    freeze_epochs: int = dataclasses.field(default=1, metadata={"help": "epochs with the encoder frozen"})
    features: str = dataclasses.field(default="3:0.1", metadata={
        "help": "perceptual and crossconv: the classifier stages whose features the loss compares, STAGE:WEIGHT "
                "pairs (loss = MSE + Σ weight × feature MSE); the lesson's is 3:0.1"})
    antialias: bool = dataclasses.field(default=False, metadata={
        "help": "perceptual and crossconv: blur output and original a little (3×3 binomial) before the classifier, so "
                "its stride-2 convolutions cannot alias a pixel-scale checker into the feature loss"})
    detail: float = dataclasses.field(default=0.0, metadata={
        "help": "perceptual and crossconv: weight of the local-detail term (as much gradient energy as the original in "
                "each 8×8 patch; restoration/models/losses.py); 0 is the lesson's loss"})
    grain: float = dataclasses.field(default=0.0, metadata={
        "help": "perceptual and crossconv: weight of the high-frequency error where the original is flat "
                "(restoration/models/losses.py); 0 is the lesson's loss"})
    erase: bool = dataclasses.field(default=True, metadata={"help": "random erasing on training inputs"})
    degradation: str = dataclasses.field(default="mix", metadata={
        "help": "how inputs are made: mix, lesson, bicubic, area, lanczos or jpeg<quality> (see restoration/data/degrade.py)"})
    mix_blur: float = dataclasses.field(default=MixConfig.blur_p, metadata={
        "help": "mix: probability of a Gaussian blur before the downscale"})
    mix_noise: float = dataclasses.field(default=MixConfig.noise_p, metadata={"help": "mix: probability of noise"})
    mix_jpeg: float = dataclasses.field(default=MixConfig.jpeg_p, metadata={"help": "mix: probability of JPEG"})
    mix_quality: str = dataclasses.field(default="{},{}".format(*MixConfig.jpeg_quality), metadata={
        "help": "mix: the JPEG qualities drawn from, lowest,highest"})
    mix_weights: str = dataclasses.field(default=",".join(f"{w:g}" for w in MixConfig.kernel_weights), metadata={
        "help": "mix: how often each kernel (lesson, bicubic, area, lanczos) is drawn"})
    crops_per_epoch: int = dataclasses.field(default=4096, metadata={
        "help": "photos (--data a folder of images): random crops that make an epoch"})
    val_degradations: str = dataclasses.field(default="bicubic,jpeg75", metadata={
        "help": "photos: whole --val-data images are scored under each of these (luma PSNR gain over bicubic)"})
    soften: float = dataclasses.field(default=0.0, metadata={
        "help": "share of training originals blurred a little (target and input alike), as soft as camera photos"})
    init: str | None = dataclasses.field(default=None, metadata={
        "help": "start from this U-Net checkpoint's weights (fine-tuning; same variant and preset)"})

    retired: typing.ClassVar[dict] = TrainConfig.retired | {
        "--feature-stage": "--feature-stage and --feature-weight are now --features STAGE:WEIGHT (the lesson's: 3:0.1)",
        "--feature-weight": "--feature-stage and --feature-weight are now --features STAGE:WEIGHT (the lesson's: 3:0.1)"}

    def mix_config(self) -> MixConfig:
        lo, hi = (int(q) for q in self.mix_quality.split(","))
        return MixConfig(blur_p=self.mix_blur, noise_p=self.mix_noise, jpeg_p=self.mix_jpeg, jpeg_quality=(lo, hi),
                         kernel_weights=tuple(float(w) for w in self.mix_weights.split(",")))

    @property
    def photos(self) -> bool:
        """Training on a folder of photos at their own resolution (not Tiny ImageNet thumbnails)."""
        return not (Path(self.data) / "wnids.txt").is_file()

    def __post_init__(self):
        from restoration.data.degrade import check as check_degradation
        from restoration.models.losses import parse_features

        super().__post_init__()
        try:
            check_degradation(self.degradation)
            for d in self.val_degradations.split(","):
                check_degradation(d)
        except ValueError as e:
            raise SystemExit(f"--degradation / --val-degradations: {e}") from None
        try:
            quality, weights = [int(q) for q in self.mix_quality.split(",")], self.mix_weights.split(",")
            if len(quality) != 2 or not 1 <= quality[0] <= quality[1] <= 100:
                raise ValueError
            if len(weights) != 4 or min(float(w) for w in weights) < 0 or sum(float(w) for w in weights) <= 0:
                raise ValueError
        except ValueError:
            raise SystemExit(f"--mix-quality takes lowest,highest in 1-100 (got {self.mix_quality!r}); --mix-weights "
                             f"four non-negative weights, one per kernel (got {self.mix_weights!r})") from None
        try:
            parse_features(self.features)
        except ValueError as e:
            raise SystemExit(f"--features: {e}") from None
        if self.out is None:
            self.out = f"runs/{'autoencoder' if self.variant == 'autoencoder' else 'unet-' + self.variant}"
        if self.classifier and self.no_classifier:
            raise SystemExit("--classifier and --no-classifier contradict each other: pass one")
        if self.variant == "perceptual" and not self.classifier:
            raise SystemExit("--variant perceptual needs --classifier (the checkpoint whose features it compares), "
                             "e.g. --classifier weights/classifier (the shipped one) or runs/classifier")
        if self.variant == "crossconv" and not (self.classifier or self.no_classifier):
            raise SystemExit("--variant crossconv needs --classifier, e.g. --classifier weights/classifier (the "
                             "shipped one) or runs/classifier: the lesson's recipe starts the encoder from it and adds "
                             "its features to the loss. To train from scratch with a plain MSE loss instead, pass "
                             "--no-classifier")
        if self.variant == "autoencoder" and self.classifier:
            raise SystemExit("--variant autoencoder takes no --classifier")


def main(argv=None):
    config = parse_config(SuperResConfig, argv, description=__doc__, prog="python -m train.superres")
    # The training modules load torch: imported after the arguments, so that --help answers at once.
    from restoration.models.losses import NormalisedMSE, PerceptualLoss, parse_features
    from train.loop import Runtime, command_line, fit, load_data, memory_format, next_steps, seed_everything
    from train.superres_parts import photo_batches, starting_model, thumbnail_batches

    runtime = Runtime(config.device, config.threads)
    generator = seed_everything(config.seed, runtime.rank)
    train, val, caches = load_data(config, runtime, photos=config.photos)
    model, classifier = starting_model(config, runtime)
    use_features = classifier is not None and config.variant in ("perceptual", "crossconv")
    if use_features:
        loss_fn = PerceptualLoss(classifier, parse_features(config.features), config.grain, config.antialias,
                                 config.detail)
        loss_fn = loss_fn.to(runtime.device, memory_format=memory_format(config))
    else:
        loss_fn = NormalisedMSE().to(runtime.device)
    if runtime.main:
        print(f"{config.variant} ({config.preset}): {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
              f"loss {'perceptual' if use_features else 'MSE'}; encoder "
              f"{'from ' + config.classifier + f', frozen for {config.freeze_epochs} epoch(s)' if classifier else 'from scratch'}"
              f"{'; all weights from ' + config.init if config.init else ''}; "
              f"inputs degraded by {config.degradation}; "
              f"{len(train)} training {'photos' if config.photos else 'images'}, {len(val)} validation images, device {runtime.device} × {runtime.world}")

    def on_epoch_start(epoch):
        if classifier is not None:
            model.set_encoder_trainable(epoch >= config.freeze_epochs)

    def loss_step(module, batch):
        x, y = batch
        return loss_fn(module(x).float(), y), {}

    batches = photo_batches if config.photos else thumbnail_batches
    make_loader, run_validation = batches(config, runtime, caches, generator, loss_fn)
    try:
        reason = fit(model=model, loss_step=loss_step, make_loader=make_loader,
                     n_train=config.crops_per_epoch if config.photos else len(train),
                     validate=run_validation, config=config, runtime=runtime, generator=generator,
                     command=command_line("train.superres", argv), on_epoch_start=on_epoch_start)
    finally:
        runtime.close()
    if runtime.main:
        data = f"--data {config.val_data} " if config.photos and config.val_data else "--limit 1000 "
        print(next_steps(config.out, reason, f"python -m restoration.inference.evaluate --models {config.out} {data}"
                                             "--degradation lesson,bicubic,jpeg75"))


if __name__ == "__main__":
    main()
