"""What the app's handlers reply to the page, without Gradio: each handler returns its outputs by
name (restoration/arena/app_state.py), a value that is more than a value as an `Update`, a user's
mistake as a `Refusal` (one line, shown in the page)."""

import dataclasses
from contextlib import contextmanager
from pathlib import Path

from restoration.arena.store import VoteStoreError

STORE_DOWN = ("The vote store cannot be reached right now (it may be restarting), so nothing was recorded; please "
              "try again in a minute. Compare works meanwhile.")
UNSET = object()


class Refusal(ValueError):
    """A request the app turns down, with the one line that says why (shown in the page)."""


@dataclasses.dataclass
class Update:
    """A component's new value with some of its properties (those left UNSET keep theirs)."""
    value: object = None
    label: object = UNSET
    visible: object = UNSET
    choices: object = UNSET
    elem_classes: object = UNSET

    def properties(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # not asdict: it copies UNSET
        return {k: v for k, v in values.items() if v is not UNSET}


HIDDEN = Update(None, visible=False)


@contextmanager
def store_reachable():
    """A vote store that is down is a message for the judge, not a crash; the next request after
    it is back works (restoration/arena/store.py)."""
    try:
        yield
    except VoteStoreError as e:
        raise Refusal(STORE_DOWN) from e


def upload_path(upload) -> tuple[str, str]:
    """(path on the server, the name the user gave it) from an image input that was not
    preprocessed: Gradio's file payload, or a plain path (tests, API)."""
    if not upload:
        raise Refusal("Upload an image or pick one of the examples first.")
    if isinstance(upload, dict):
        path = upload.get("path")
        if not path:
            raise Refusal("The upload did not arrive; please try again.")
        return path, upload.get("orig_name") or Path(path).name
    return str(upload), Path(str(upload)).name


def checked(value, allowed, what: str, extra=()) -> str:
    """`value` if it is one of `extra` + `allowed` (the API skips a radio's own check), else a Refusal."""
    if value not in (*extra, *allowed):
        raise Refusal(f"Unknown {what} {str(value)[:40]!r}: choose {'all or ' if extra else ''}one of "
                      f"{', '.join(allowed)}.")
    return value
