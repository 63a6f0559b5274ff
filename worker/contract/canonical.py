"""RFC 8785 canonical JSON and the fingerprints built from it.

Duplicates are recognised by comparing `kind` + `params` + `options` as canonical JSON, so key
order and number spelling never make two equal requests look different.

Every new request is fingerprinted once, and `rfc8785` serializes in Python (about 2% of a worker's
CPU in bench/pipeline.py). Most requests hold only printable ASCII strings, small integers, booleans
and nulls; for those, orjson's compact output with sorted keys is byte for byte RFC 8785's (the
same escapes, key order and integer spelling), so orjson writes them. Anything else (a float, a
non-ASCII or control character, an integer RFC 8785 may refuse) goes to `rfc8785`, which decides.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson
import rfc8785

# RFC 8785 writes integers as IEEE 754 doubles do; beyond 2**53 it refuses or rounds: not ours to say.
_EXACT_INT = 2**53
# Deeper documents go to rfc8785 (the request validator refuses them long before this anyway).
_PLAIN_DEPTH = 64


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) serialization of `value`."""
    if _plain(value, 0):
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return rfc8785.dumps(value)


def _plain(value: Any, depth: int) -> bool:
    """True when `value` holds nothing on which orjson and RFC 8785 could write different text."""
    kind = type(value)
    if kind is str:
        text: str = value
        return text.isascii() and text.isprintable()
    if kind is int:
        number: int = value
        return -_EXACT_INT < number < _EXACT_INT
    if value is None or kind is bool:
        return True
    if depth >= _PLAIN_DEPTH:
        return False
    if kind is dict:
        return all(type(k) is str and _plain(k, depth) and _plain(v, depth + 1) for k, v in value.items())
    if kind is list:
        return all(_plain(item, depth + 1) for item in value)
    return False


def request_content(kind: str, params: Any, options: Any) -> bytes:
    """The canonical content a duplicate must match; absent options equal `{}`."""
    return canonical_json({"kind": kind, "params": params, "options": options or {}})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
