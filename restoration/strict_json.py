"""JSON from untrusted bytes (a safetensors header, a submitted config.json), parsed within bounds.

Python's `json.loads` accepts what a hostile file can use against the process that reads it: nesting
thousands deep (a `RecursionError`), integers of thousands of digits (a `ValueError` past Python's
4,300-digit limit, and quadratic time before it), duplicate keys (the last one wins, where another
reader may take the first), NaN and Infinity. `loads` refuses each of them, and anything else that is
not JSON, with one `UntrustedJSON` line naming what was read; it never raises anything else. Which
types the result may hold is the caller's to check (checkpoint.read_header, submissions.read_config).
"""

import json
import re

MAX_NUMBER_CHARS = 32  # an int64, a float with its exponent: no value we read needs more
_SPECIAL = re.compile(r'[\[\]{}"\\]')  # what the depth scan looks at: brackets, quotes, backslashes


class UntrustedJSON(ValueError):
    """Bytes that are not JSON within our bounds; `str()` is one line."""


def loads(data: bytes, what: str, max_bytes: int, max_depth: int):
    """The JSON value of `data` (at most `max_bytes`, nested at most `max_depth` arrays or objects
    deep), or `UntrustedJSON` saying, in one line, what about `what` was refused."""
    if len(data) > max_bytes:
        raise UntrustedJSON(f"{what}: {len(data):,} bytes (limit {max_bytes:,})")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise UntrustedJSON(f"{what}: not UTF-8 text") from None
    if nesting(text, max_depth) > max_depth:
        raise UntrustedJSON(f"{what}: nested more than {max_depth} deep")
    try:
        return json.loads(text, object_pairs_hook=_object(what), parse_int=_number(int, what),
                          parse_float=_number(float, what), parse_constant=_constant(what))
    except UntrustedJSON:
        raise
    except (ValueError, RecursionError, TypeError) as e:  # JSONDecodeError is a ValueError
        raise UntrustedJSON(f"{what}: not valid JSON ({one_line(e, 120)})") from None


def nesting(text: str, stop: int) -> int:
    """How deep arrays and objects nest in `text` (counted outside strings, in one pass: linear in
    the text, whatever it holds), or `stop + 1` as soon as it is deeper than `stop`."""
    depth = deepest = 0
    in_string, escaped = False, -1
    for m in _SPECIAL.finditer(text):
        i, c = m.start(), m.group()
        if i == escaped:  # the character after a backslash, inside a string
            continue
        if in_string:
            if c == "\\":
                escaped = i + 1
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            deepest = max(deepest, depth)
            if deepest > stop:
                return deepest
        elif c in "]}":
            depth -= 1
    return deepest


def _object(what: str):
    def build(pairs: list) -> dict:
        value = {}
        for k, v in pairs:
            if k in value:
                raise UntrustedJSON(f"{what}: the key {shorten(k, 60)!r} appears twice")
            value[k] = v
        return value

    return build


def _number(kind, what: str):
    def parse(text: str):
        if len(text) > MAX_NUMBER_CHARS:
            raise UntrustedJSON(f"{what}: a number of {len(text):,} characters (limit {MAX_NUMBER_CHARS})")
        try:
            value = kind(text)
        except ValueError:  # e.g. Python's 4,300-digit limit on int(), should the bound above be raised
            raise UntrustedJSON(f"{what}: a number Python refuses to read") from None
        if kind is float and value in (float("inf"), float("-inf")):
            raise UntrustedJSON(f"{what}: a number too large for a float ({shorten(text, 40)})")
        return value

    return parse


def _constant(what: str):
    def refuse(name: str):
        raise UntrustedJSON(f"{what}: {name} is not JSON")

    return refuse


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters (an ellipsis says it was cut)."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(error: BaseException | str, limit: int = 200) -> str:
    """An error's message as one line of at most `limit` characters."""
    return shorten(" ".join(str(error).split()), limit)
