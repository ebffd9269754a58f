"""Helpers for the submission tests (tests/test_submissions.py, test_foreign_submissions.py,
test_hostile_submissions.py): a repo's files as the loopback Hub holds them, and the checks that a
refusal is one line naming its rule and stores nothing."""

import struct

import pytest

from restoration.arena.submission_checks import MAX_LINE
from restoration.arena.submissions import Refused, submit
from restoration.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME


def hub_files(folder, readme: bool = True) -> dict:
    """A checkpoint folder's files as a repo on the Hub holds them (with a README)."""
    files = {f.name: f.read_bytes() for f in folder.iterdir() if f.name in (CONFIG_NAME, WEIGHTS_NAME)}
    return files | ({"README.md": b"# a community model\n"} if readme else {})


def safetensors_file(header: bytes, data: bytes = b"") -> bytes:
    """A file in safetensors' layout: the header's length (8 bytes, little-endian), the header, the data."""
    return struct.pack("<Q", len(header)) + header + data


def refused(store, spec, settings, rule, **kwargs) -> str:
    """The one-line refusal of `spec`, checked to name `rule`; nothing is stored."""
    with pytest.raises(Refused) as caught:
        submit(store, spec, settings, **kwargs)
    message = str(caught.value)
    assert caught.value.rule == rule and message.startswith(f"{rule}: ") and "\n" not in message, message
    assert len(message) <= MAX_LINE and store.submission_rows() == []
    return message


def refused_after(store, spec, settings, rule, **kwargs) -> str:
    """As `refused`, with submissions already in the store: they are left as they were."""
    before = store.submission_rows()
    with pytest.raises(Refused) as caught:
        submit(store, spec, settings, **kwargs)
    assert caught.value.rule == rule and store.submission_rows() == before, str(caught.value)
    return str(caught.value)
