"""canonical_json is RFC 8785's text, byte for byte, whichever serializer writes it.

Fingerprints of stored requests were made by `rfc8785`: a request sent again after the orjson fast
path came in must fingerprint as before, or it would be refused as a conflicting duplicate.
"""

from __future__ import annotations

from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from worker.contract.canonical import _plain, canonical_json

_keys = st.one_of(st.text(max_size=6), st.text(alphabet=st.characters(codec="ascii"), max_size=6))
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**60), max_value=2**60),
    st.integers(min_value=-(2**53) - 2, max_value=2**53 + 2),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
    st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x7F), max_size=12),
)
_documents = st.recursive(
    _scalars,
    lambda children: st.one_of(st.lists(children, max_size=5), st.dictionaries(_keys, children, max_size=5)),
    max_leaves=30,
)


def _rfc8785(value: Any) -> bytes | type[Exception]:
    try:
        return rfc8785.dumps(value)
    except Exception as exc:
        return type(exc)


def _ours(value: Any) -> bytes | type[Exception]:
    try:
        return canonical_json(value)
    except Exception as exc:
        return type(exc)


@settings(max_examples=2000, deadline=None)
@given(_documents)
def test_canonical_json_is_rfc8785_text(value: Any) -> None:
    assert _ours(value) == _rfc8785(value)


@pytest.mark.parametrize(
    "value",
    [
        {"b": 1, "a": [True, False, None], "A": "x", "_": "", "~": {"z": -0, "y": -(2**53) + 1}},
        {"q": 'say "hi" \\ / <b>&amp;</b>', "n": 2**53 - 1},
        {"del": "\x7f", "tab": "a\tb", "nl": "\n", "nul": "\x00", "sep": "\u2028"},
        {"é": 1, "e": 2, "\U0001f600": 3, "\ufb01": 4},
        {"big": 2**53, "float": 1.0, "tiny": 1e-7, "neg": -0.0},
        {"kind": "enrichment", "params": {"creator_ids": ["3fa85f64-5717-4562-b3fc-2c963f66afa6"]}, "options": {}},
    ],
)
def test_edge_cases_match_rfc8785(value: dict[str, Any]) -> None:
    assert _ours(value) == _rfc8785(value)


def test_typical_request_takes_the_fast_path() -> None:
    """The point of the fast path: a usual request's content is plain (no float, ASCII only)."""
    content = {
        "kind": "content_match",
        "params": {"creator_ids": ["f5a0050f-ee41-4a54-b2dc-55c5040fee20"], "topic_keywords": ["devex", "b2b saas"]},
        "options": {"results_limit": 5, "include": ["posts"]},
    }
    assert _plain(content, 0)
    assert not _plain({"x": 0.5}, 0)
    assert not _plain({"x": "café"}, 0)
