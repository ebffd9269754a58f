"""Where each model came from: card, training data and command, and commit, for every entry the
catalogue has."""

import dataclasses

from restoration.hub.catalogue import ModelEntry, read_catalog
from restoration.hub.provenance import card_training, provenance, provenance_markdown
from tests.support import REVISION

CARD = """---
library_name: pytorch
---

# A model

## Training

- Data: `data/tiny-imagenet-200` (train split, 40000 images; validation on 500 val images), 32×32 crops.
- Epochs: 3 of 3.
- Sessions (each command as run; `--resume` continues the same run):

  - `python -m train.superres --variant mse --out runs/a` on 1 × CPU process, steps 0→10, 1.0 min
  - `python -m train.superres --variant mse --out runs/a --resume` on 1 × CPU process, steps 10→20, 1.0 min

## Evaluation
"""


@dataclasses.dataclass
class Served:  # the fields of catalogue.LoadedModel that provenance reads
    source: str
    revision: str


def test_the_training_section_of_a_card_is_read():
    data, commands = card_training(CARD)
    assert data.startswith("`data/tiny-imagenet-200` (train split") and len(commands) == 2
    assert commands[0] == "python -m train.superres --variant mse --out runs/a"
    assert card_training("# no training section") == (None, [])


def test_every_catalogue_entry_gets_its_card_data_command_and_commit(tiny_weights, tmp_path):
    entries = read_catalog(tiny_weights)
    (tiny_weights / "unet-mse" / "README.md").write_text(CARD)
    # Four restorers and a classifier: nothing assumes three models.
    extra = ModelEntry("unet-new", "New U-Net", "unet-new", hub_repo="test-org/unet-new", revision=None)
    entries = [*entries, extra]
    text = provenance_markdown(entries, tiny_weights, {"unet-mse": Served("hub", REVISION),
                                                       "unet-perceptual": Served("local", "local:0123abcd")})
    lines = text.splitlines()
    assert len(lines) == len(entries) == 5
    mse, perceptual, _crossconv, classifier, new = lines
    assert mse.startswith("- **MSE U-Net** (restorer): card [test-org/unet-mse](https://huggingface.co/test-org/"
                          f"unet-mse/blob/{REVISION}/README.md)")
    assert "trained on `data/tiny-imagenet-200` (train split" in mse and "32×32 crops;" in mse
    assert "command `python -m train.superres --variant mse --out runs/a` (then 1 more session, in the card)" in mse
    assert f"serving Hub commit `{REVISION[:10]}`" in mse
    assert f"Hub commit `{REVISION[:10]}`; serving the local weights (`local:0123abcd`)" in perceptual
    assert "training data: not in the card" in perceptual and "training command: not in the card" in perceptual
    assert classifier.startswith("- **Tiny ImageNet classifier** (classifier)") and f"Hub commit `{REVISION[:10]}`" \
        in classifier
    # Not published: the card shipped in weights/<folder>/README.md, and no commit.
    assert f"card `{tiny_weights.name}/unet-new/README.md` (not published yet)" in new and "no Hub commit yet" in new
    assert provenance(extra, tmp_path / "nowhere").data is None  # no card at all: said, not a crash
