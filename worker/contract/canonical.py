"""RFC 8785 canonical JSON and the fingerprints built from it.

Duplicates are recognised by comparing `kind` + `params` + `options` as canonical JSON, so key
order and number spelling never make two equal requests look different.
"""

from __future__ import annotations

import hashlib
from typing import Any

import rfc8785


def canonical_json(value: Any) -> bytes:
    """The RFC 8785 (JCS) serialization of `value`."""
    return rfc8785.dumps(value)


def request_content(kind: str, params: Any, options: Any) -> bytes:
    """The canonical content a duplicate must match; absent options equal `{}`."""
    return canonical_json({"kind": kind, "params": params, "options": options or {}})


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
