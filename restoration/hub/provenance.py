"""Where each model came from, for people: its model card (the Hub page when published, else the
card shipped in `weights/<folder>/README.md`), the data and the command it was trained with (read
from that card's Training section, which `train/ship.py` writes), and the commit that is serving.

Every entry of the catalogue (`weights/models.json`) gets a line, whatever it holds: restorers,
the perceptual-loss classifier and the fidelity classifier alike.
"""

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

HUB_URL = "https://huggingface.co"
CARD = "README.md"
# The card's Training section (train/ship.py): "- Data: `…` (train split, …)." and one line per
# session, "  - `python -m train.superres …` on 1 × CPU process …".
DATA_LINE = re.compile(r"^- Data: (.+)$", re.MULTILINE)
SESSION_LINE = re.compile(r"^\s+- `(python -m [^`]+)`", re.MULTILINE)


@dataclasses.dataclass(frozen=True)
class Provenance:
    title: str
    role: str
    card: str  # a Markdown link to the Hub page, or the local card's path in code quotes
    data: str | None  # as the card says it (Markdown)
    command: str | None  # the first training session's command
    more_sessions: int  # sessions after the first (resumed or fine-tuned runs)
    commit: str  # what is serving: "Hub commit 0123456789" or the local weights' fingerprint

    def markdown(self) -> str:
        parts = [f"**{self.title}** ({self.role}): card {self.card}"]
        parts.append(f"trained on {self.data.rstrip('.')}" if self.data else "training data: not in the card")
        if self.command:
            more = f" (then {self.more_sessions} more session{'s' * (self.more_sessions > 1)}, in the card)" \
                if self.more_sessions else ""
            parts.append(f"command `{self.command}`{more}")
        else:
            parts.append("training command: not in the card")
        parts.append(self.commit)
        return "- " + "; ".join(parts) + "."


def card_training(card_text: str) -> tuple[str | None, list[str]]:
    """(the data line, the session commands) of a model card; (None, []) where it has none."""
    data = DATA_LINE.search(card_text)
    return (data.group(1).strip() if data else None), SESSION_LINE.findall(card_text)


def provenance(entry, weights_dir, loaded=None) -> Provenance:
    """One catalogue entry (`catalogue.ModelEntry`); `loaded` is its `catalogue.LoadedModel` when the
    app loaded it (then the commit is the one that is serving)."""
    local_card = Path(weights_dir) / entry.folder / CARD
    published = bool(entry.hub_repo and entry.revision)
    if published:
        card = f"[{entry.hub_repo}]({HUB_URL}/{entry.hub_repo}/blob/{entry.revision}/{CARD})"
    else:
        card = f"`{Path(weights_dir).name}/{entry.folder}/{CARD}` (not published yet)"
    try:
        data, commands = card_training(local_card.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        data, commands = None, []
    commit = f"Hub commit `{entry.revision[:10]}`" if published else "no Hub commit yet"
    if loaded is not None and loaded.source == "hub":
        commit = f"serving Hub commit `{loaded.revision[:10]}`"
    elif loaded is not None:
        commit += f"; serving the local weights (`{loaded.revision}`)"
    return Provenance(entry.title, entry.role, card, data, commands[0] if commands else None,
                      max(len(commands) - 1, 0), commit)


def provenance_markdown(entries: Sequence, weights_dir, loaded: Mapping[str, object] | None = None) -> str:
    """A Markdown list, one line per catalogue entry (in catalogue order)."""
    loaded = loaded or {}
    return "\n".join(provenance(e, weights_dir, loaded.get(e.name)).markdown() for e in entries)


def source_label(model) -> str:
    """"Hub org/repo @ 0123456789" or "local weights (sha256 0123abcd…)": which copy is serving."""
    if model.source == "hub":
        return f"Hub {model.entry.hub_repo} @ {model.revision[:10]}"
    fallback = f" ({model.fallback})" if model.fallback else ""  # e.g. "(not published yet)"
    return f"local `{model.entry.folder}` ({model.revision}){fallback}"


def header_markdown(title: str, titles: list[str]) -> str:
    """The page's header, naming the models that were loaded (from weights/models.json), so that
    adding a model to the catalogue changes it."""
    names = titles[0] if len(titles) == 1 else ", ".join(titles[:-1]) + " and " + titles[-1]
    return (f"# {title}\n×2 super-resolution models from fast.ai lesson 23: {names}. Compare them on your own "
            "images, judge them blind, and see whether people agree with PSNR.")
