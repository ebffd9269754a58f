"""The names command lines offer as choices and defaults, kept free of torch so that every
command's `--help` answers at once. The modules that own each name import it from here, so code
keeps using `degrade.STANDARD`, `classifier.PRESETS`, `catalogue.FAMILIES`."""

# The ×2 degradations the evaluation reports and the app offers, in this order (restoration/data/degrade.py).
STANDARD = ("lesson", "bicubic", "jpeg75")

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
# A submission's family unless it says (as the app's Compare). restoration/arena/submissions.py still spells it
# too (a test keeps the two equal); it is to import this one.
DEFAULT_FAMILY = "photo"
