"""Train the Tiny ImageNet classifier (lesson 23's 24_imgnet_tiny).

    python -m train.classifier --epochs 10 --out runs/classifier
    torchrun --nproc_per_node 4 -m train.classifier --preset lesson --epochs 25   # several GPUs

It supplies the perceptual loss and the encoder weights of the perceptual and cross-conv U-Nets.
"""

import dataclasses
import typing

from restoration.choices import PRESETS
from train.config import TrainConfig, parse_config


@dataclasses.dataclass
class ClassifierConfig(TrainConfig):
    out: str = dataclasses.field(default="runs/classifier", metadata={"help": "the run folder"})
    epochs: int | None = dataclasses.field(default=None, metadata={
        "help": "epochs to train; with --minutes alone, as many as the minutes allow (default: 10)"})
    default_epochs: typing.ClassVar[int] = 10
    lr: float = 6e-3
    drop: float = dataclasses.field(default=0.1, metadata={"help": "dropout before the last linear layer"})
    trivial_augment: bool = dataclasses.field(default=True, metadata={"help": "TrivialAugmentWide (the lesson's)"})
    erase: bool = dataclasses.field(default=True, metadata={"help": "random erasing (the lesson's)"})
    preact: bool = dataclasses.field(default=False, metadata={"help": "pre-activation ResBlocks"})


def main(argv=None):
    config = parse_config(ClassifierConfig, argv, description=__doc__, prog="python -m train.classifier")
    # The training modules load torch: imported after the arguments, so that --help answers at once.
    import torch.nn.functional as F

    from restoration.data.datasets import BatchAugment
    from restoration.models.classifier import Classifier, top1_accuracy
    from train.loop import Runtime, command_line, fit, load_data, memory_format, next_steps, seed_everything

    runtime = Runtime(config.device, config.threads)
    generator = seed_everything(config.seed, runtime.rank)
    train, val, caches = load_data(config, runtime)
    labels = getattr(getattr(train, "dataset", train), "names", None)  # Tiny ImageNet's class names, if any
    model = Classifier(**PRESETS[config.preset], n_classes=200, preact=config.preact, drop=config.drop,
                       labels=labels if labels and len(labels) == 200 else None)
    model = model.to(runtime.device, memory_format=memory_format(config))  # ~1.4× faster convs on CPU
    if runtime.main:
        print(f"classifier ({config.preset}): {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters; "
              f"{len(train)} training images, {len(val)} validation images, device {runtime.device} × {runtime.world}")

    (train_x, train_y), (val_x, val_y) = caches
    augment = BatchAugment(config.size, generator)

    def make_loader(batches):
        for idx in batches:
            x = augment.classifier_batch(train_x[idx].to(runtime.device), True, config.trivial_augment, config.erase)
            yield x, train_y[idx].to(runtime.device)

    def validate(m):
        return top1_accuracy(m, val_x, val_y, runtime.device, desc="validating")

    def loss_step(module, batch):
        x, y = batch
        logits = module(x).float()
        return F.cross_entropy(logits, y), {"acc": (logits.argmax(1) == y).float().mean()}

    try:
        reason = fit(model=model, loss_step=loss_step, make_loader=make_loader, n_train=len(train), validate=validate,
                     config=config, runtime=runtime, generator=generator, command=command_line("train.classifier", argv),
                     bar_metrics=("acc",))
    finally:
        runtime.close()
    if runtime.main:
        print(next_steps(config.out, reason, f"python -m restoration.inference.evaluate --models --classifier {config.out} "
                                             "--fidelity-classifier none --limit 1000"))


if __name__ == "__main__":
    main()
