"""The parts of a super-resolution run (python -m train.superres) that need torch: the model it
starts from, its batches (Tiny ImageNet thumbnails or photo crops) and its validation."""

import torch

from restoration.choices import PRESETS
from restoration.data.datasets import BatchAugment
from restoration.data.degrade import even_crop, low_res, upscale_bicubic, upscale_nearest
from restoration.data.metrics import psnr_from_mse, psnr_y
from restoration.models.auto import load_checkpoint
from restoration.models.classifier import Classifier
from restoration.models.losses import NormalisedMSE
from restoration.models.unet import Autoencoder, UNet
from train.loop import Runtime, memory_format
from train.superres import SuperResConfig


def build_model(config: SuperResConfig):
    arch = PRESETS[config.preset]
    if config.variant == "autoencoder":
        return Autoencoder(**arch)
    return UNet(**arch, cross_conv=config.variant == "crossconv")


@torch.inference_mode()
def validate(model, inputs, targets, device, loss_fn, batch_size=250):
    """Validation loss (the training loss, and the pixel MSE in normalised units) and pooled
    PSNR over pre-degraded float pairs."""
    from tqdm.auto import tqdm

    model.eval()
    pixel_mse, sums = NormalisedMSE().to(device), {"loss": 0.0, "mse": 0.0, "sse": 0.0}
    for i in tqdm(range(0, len(inputs), batch_size), desc="validating", unit="batch", leave=False, mininterval=1):
        x, y = inputs[i:i + batch_size].to(device), targets[i:i + batch_size].to(device)
        out = model(x).float()
        n = len(x)
        sums["loss"] += loss_fn(out, y).item() * n
        sums["mse"] += pixel_mse(out, y).item() * n
        sums["sse"] += (out.clamp(0, 1) - y).pow(2).mean().item() * n
    model.train()
    n = len(inputs)
    return {"val_loss": sums["loss"] / n, "val_mse": sums["mse"] / n, "val_psnr": psnr_from_mse(sums["sse"] / n)}


@torch.inference_mode()
def bicubic_psnr(inputs, targets, device, batch_size=250) -> float:
    """Pooled PSNR of bicubic ×2 on the validation pairs `validate` scores: the baseline its
    `val_psnr` is read against. Each input is the nearest ×2 of its low-resolution image, so every
    other pixel of it is that image."""
    sse = 0.0
    for i in range(0, len(inputs), batch_size):
        low, y = inputs[i:i + batch_size, :, ::2, ::2].to(device), targets[i:i + batch_size].to(device)
        sse += (upscale_bicubic(low) - y).pow(2).mean().item() * len(low)
    return psnr_from_mse(sse / len(inputs))


def _val_photo_pairs(photos, degradations, device):
    """(degradation, original, low-resolution image) for each whole val photo under each
    degradation, drawn from the same seed every time (the same inputs every epoch)."""
    generator = torch.Generator().manual_seed(0)
    for d in degradations:
        for photo in photos:
            hr = even_crop(photo.to(device).float().div(255))[None]
            yield d, hr, low_res(hr, d, generator)


@torch.inference_mode()
def photos_psnr_y(restore, photos, degradations, device, desc="validating") -> dict[str, float]:
    """{"val_<degradation>_psnr_y": mean luma PSNR (the literature's protocol)} of `restore`
    (low-resolution batch → output) on whole val photos under each degradation."""
    from tqdm.auto import tqdm

    sums = {f"val_{d}_psnr_y": 0.0 for d in degradations}
    pairs = _val_photo_pairs(photos, degradations, device)
    for d, hr, low in tqdm(pairs, total=len(photos) * len(degradations), desc=desc, unit="img", leave=False,
                           mininterval=1):
        sums[f"val_{d}_psnr_y"] += psnr_y(restore(low), hr).item() / len(photos)
    return sums


def validate_photos(model, photos, degradations, device, bicubic: dict[str, float]):
    """The model's mean luma PSNR on whole val photos under each degradation, bicubic's beside it
    (`bicubic`: `photos_psnr_y` of bicubic, measured once per run) and the gain, e.g.
    {"val_bicubic_psnr_y": 31.2, "val_bicubic_psnr_y_bicubic": 28.8, "val_bicubic_gain": 2.4}."""
    model.eval()
    ours = photos_psnr_y(lambda low: model.restore(upscale_nearest(low)), photos, degradations, device)
    model.train()
    scores = {}
    for d in degradations:
        key = f"val_{d}_psnr_y"
        scores |= {key: ours[key], f"{key}_bicubic": bicubic[key], f"val_{d}_gain": ours[key] - bicubic[key]}
    return scores


def starting_model(config: SuperResConfig, runtime: Runtime):
    """(the model to train, on the run's device, the classifier or None): a new model, all of its
    weights from --init, or its encoder from --classifier; --resume loads its state later (fit)."""
    model = build_model(config)
    classifier = Classifier.from_pretrained(config.classifier) if config.classifier else None
    if config.init and not config.resume:
        start = load_checkpoint(config.init)
        if start.config != model.config:
            raise SystemExit(f"--init {config.init}: its config differs from this run's ({config.variant}, {config.preset})")
        model.load_state_dict(start.state_dict(), strict=True)
    elif classifier is not None and not config.resume:
        model.load_encoder_from(classifier)  # strict: the classifier must have this preset's shapes
    return model.to(runtime.device, memory_format=memory_format(config)), classifier


def photo_batches(config: SuperResConfig, runtime: Runtime, caches, generator, loss_fn):
    """(make_loader, run_validation) on photos: random crops of the training photos, degraded as
    they are drawn; whole val photos under each --val-degradations (`loss_fn` is not used)."""
    train_photos, val_photos = caches
    augment = BatchAugment(config.size, generator)
    val_degradations = config.val_degradations.split(",")
    # Bicubic on the same val photos, measured once: the baseline every epoch's PSNR is read against.
    bicubic = photos_psnr_y(upscale_bicubic, val_photos, val_degradations, runtime.device, desc="bicubic on val")

    def make_loader(batches):
        for idx in batches:  # the indices only count the crops: each is drawn at random
            crops = augment.photo_crops(train_photos, len(idx), runtime.device)
            yield augment.sr_pairs(crops, train=True, erase=config.erase, degradation=config.degradation,
                                   mix_config=config.mix_config(), soften=config.soften, cropped=True)

    def run_validation(m):
        return validate_photos(m, val_photos, val_degradations, runtime.device, bicubic)

    return make_loader, run_validation


def thumbnail_batches(config: SuperResConfig, runtime: Runtime, caches, generator, loss_fn):
    """(make_loader, run_validation) on Tiny ImageNet: the training images in batches, degraded as
    they are drawn; a fixed set of val pairs, scored with `loss_fn` too."""
    (train_images, _), (val_images, _) = caches
    augment = BatchAugment(config.size, generator)

    def make_loader(batches):
        for idx in batches:
            yield augment.sr_pairs(train_images[idx].to(runtime.device), train=True, erase=config.erase,
                                   degradation=config.degradation, mix_config=config.mix_config(),
                                   soften=config.soften)

    # The validation inputs are drawn once, from their own seed: the same set every epoch and run.
    val_augment = BatchAugment(config.size, torch.Generator().manual_seed(config.seed + 1))
    val_inputs, val_targets = val_augment.sr_pairs(val_images, train=False, degradation=config.degradation,
                                                   mix_config=config.mix_config())
    # Bicubic on the same val pairs, measured once: the baseline every epoch's val_psnr is read against.
    bicubic = bicubic_psnr(val_inputs, val_targets, runtime.device)

    def run_validation(m):
        scores = validate(m, val_inputs, val_targets, runtime.device, loss_fn)
        return scores | {"val_psnr_bicubic": bicubic, "val_psnr_gain": scores["val_psnr"] - bicubic}

    return make_loader, run_validation
