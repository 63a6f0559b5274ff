"""Hypothesis strategies for hostile request messages: bodies, AMQP properties, publishing users.

A probe is what one client publishes: raw body bytes, `pika.BasicProperties` keyword arguments and
the connection (user) it uses. Bodies start from valid requests and are broken on purpose (bytes,
encoding, JSON shape, fields, size); whether a probe is really invalid, and why, is decided by the
contract's own validator, not here. Valid requests carry the placeholder `PLACEHOLDER` as their
`request_id`; `finalize` replaces it by a unique id so valid probes never collide by accident.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pika
import pika.exceptions
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

PLACEHOLDER = "@@RID@@"
KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM", "devex", "sim:duration=1"]
CREATORS = ["f0e1d2c3-b4a5-4678-9abc-def012345678", "a1b2c3d4-e5f6-4789-9abc-0123456789ab"]
ANALYSIS_KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")
NEAR_MISS_KINDS = ["Thought_Leaders", "thought-leaders", "CANCEL", " enrichment", "enrichment\n", "", "audience"]
BAD_REQUEST_IDS = ["", "a" * 129, "has space", "abc\n", "ü-umlaut", "a/b", "tab\there", "\u200b", "x" * 500]
INT64 = 2**63 - 1


@dataclass(frozen=True)
class Targets:
    """Names a probe may point at: the worker's queues, our reply queues and publishing users."""

    request_queue: str
    reply_queues: tuple[str, str]
    missing_queue: str
    users: tuple[str, ...]

    def hostile(self) -> list[str]:
        """Reply queue names the worker must never publish to."""
        rq = self.request_queue
        return [
            rq,
            f"{rq}.dlq",
            f"{rq}.unroutable",
            f"{rq}.ticks",
            f"{rq}.ticks.XQ",
            f"{rq}.wait.50ms",
            f"{rq}.wait.5000ms",
            f"{rq}.",
            "amq.rabbitmq.reply-to",
            "amq.rabbitmq.reply-to.g1h2AA==",
            "amq.gen-JzTY20BRgKO-HjmUJj0wLg",
            "amq.direct",
            "amq.",
            "q" * 255 + "x",
            "é" * 128,
            "",
        ]

    def property_reply_queues(self) -> list[str | None]:
        """Values for the `reply_to` property (AMQP short strings: at most 255 bytes)."""
        names = [n for n in self.hostile() if len(n.encode("utf-8")) <= 255]
        return [*self.reply_queues, self.missing_queue, None, *names]


@dataclass(frozen=True)
class Probe:
    body: bytes
    props: dict[str, Any]
    user: str | None  # None: the guest connection; else one of Targets.users
    label: str


# -- JSON building blocks -----------------------------------------------------------------------------


def json_scalars() -> st.SearchStrategy[Any]:
    return (
        st.none()
        | st.booleans()
        | st.integers()  # unbounded on purpose: beyond 2**53 is not canonical JSON (RFC 8785)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=12)
    )


def json_values() -> st.SearchStrategy[Any]:
    return st.recursive(
        json_scalars(),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
        max_leaves=6,
    )


def _keywords(min_size: int = 5) -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(KEYWORDS) | st.text(min_size=1, max_size=10), min_size=min_size, max_size=7)


def _creators() -> st.SearchStrategy[list[str]]:
    return st.lists(st.sampled_from(CREATORS), min_size=1, max_size=2, unique=True)


@st.composite
def valid_requests(draw: st.DrawFn, targets: Targets) -> dict[str, Any]:
    """A request the contract accepts (with the placeholder id); short jobs keep the run fast."""
    kind = draw(st.sampled_from([*ANALYSIS_KINDS, "cancel"]))
    options: dict[str, Any] = {}
    if kind == "thought_leaders":
        params: dict[str, Any] = {"keywords": [*draw(_keywords(4)), "sim:duration=1"]}
        if draw(st.booleans()):
            options["results_limit"] = draw(st.integers(1, 200))
    elif kind == "cancel":
        params = {"request_id": "tgt-" + draw(st.from_regex(r"[A-Za-z0-9._:-]{1,20}", fullmatch=True))}
    else:
        params = {"creator_ids": draw(_creators())}
        if kind == "content_match":
            params["topic_keywords"] = draw(_keywords(1))
            if draw(st.booleans()):
                options["include"] = ["posts"]
        if kind == "audience_match":
            params["audience_keywords"] = draw(_keywords(1))
            if draw(st.booleans()):
                options["include"] = ["details"]
        if draw(st.booleans()):
            options["detail_level"] = draw(st.sampled_from(["summary", "full"]))
    if draw(st.booleans()):
        options["deadline_seconds"] = draw(st.integers(600, 86400))
    body: dict[str, Any] = {"request_id": PLACEHOLDER, "kind": kind, "params": params}
    if options:
        body["options"] = options
    if draw(st.integers(0, 3)) == 0:
        body["reply_to"] = draw(st.sampled_from([*targets.reply_queues, targets.missing_queue]))
    return body


def _encode(doc: Any) -> bytes:
    return json.dumps(doc).encode("utf-8")


# -- broken bodies ------------------------------------------------------------------------------------


def _field_mutation(draw: st.DrawFn, body: dict[str, Any], targets: Targets) -> tuple[str, dict[str, Any]]:
    doc = json.loads(json.dumps(body))
    how = draw(
        st.sampled_from(
            [
                "drop",
                "retype",
                "extra_key",
                "bad_request_id",
                "bad_kind",
                "bad_options",
                "bad_params",
                "extra_param",
                "hostile_reply_to",
            ]
        )
    )
    if how == "drop":
        doc.pop(draw(st.sampled_from(["request_id", "kind", "params"])), None)
    elif how == "retype":
        doc[draw(st.sampled_from(["request_id", "kind", "params", "options", "reply_to"]))] = draw(json_values())
    elif how == "extra_key":
        doc[draw(st.text(min_size=1, max_size=12) | st.sampled_from(["requestId", "Kind", "option", "\ud800"]))] = draw(
            json_values()
        )
    elif how == "bad_request_id":
        doc["request_id"] = draw(st.sampled_from(BAD_REQUEST_IDS) | st.text(max_size=140))
    elif how == "bad_kind":
        doc["kind"] = draw(st.sampled_from(NEAR_MISS_KINDS) | st.text(max_size=20))
    elif how == "bad_options":
        key, value = draw(
            st.sampled_from(
                [
                    ("deadline_seconds", 9),
                    ("deadline_seconds", 86401),
                    ("deadline_seconds", 10.5),
                    ("deadline_seconds", "60"),
                    ("deadline_seconds", True),
                    ("results_limit", 0),
                    ("results_limit", 201),
                    ("results_limit", 1.0),
                    ("include", ["posts", "details"]),
                    ("include", "posts"),
                    ("detail_level", "verbose"),
                    ("dedline_seconds", 60),
                    ("\ud800", 1),
                ]
            )
            | st.tuples(st.text(max_size=10), json_values())
        )
        doc["options"] = {key: value} if draw(st.booleans()) else {**(doc.get("options") or {}), key: value}
    elif how == "bad_params":
        doc["params"] = draw(
            st.sampled_from(
                [
                    {"keywords": ["a", "b"]},
                    {"keywords": "growth"},
                    {"keywords": [1, 2, 3, 4, 5]},
                    {"creator_ids": []},
                    {"creator_ids": [""]},
                    {"creator_ids": CREATORS, "result_set_id": "rs_1"},
                    {"result_set_ids": []},
                    {"request_id": ""},
                    {"request_id": 7},
                    {},
                ]
            )
            | st.dictionaries(st.text(max_size=12), json_values(), max_size=4)
        )
    elif how == "extra_param":
        params = doc.get("params") if isinstance(doc.get("params"), dict) else {}
        params[draw(st.text(max_size=10))] = draw(
            json_values() | st.sampled_from([2**53 + 1, -(2**60), 10**30, "\udfff", {"\ud800": 1}])
        )
        doc["params"] = params
    else:
        doc["reply_to"] = draw(st.sampled_from(targets.hostile()) | json_values())
    return f"field:{how}", doc


def _byte_mutation(draw: st.DrawFn, body: dict[str, Any]) -> tuple[str, bytes]:
    raw = _encode(body)
    how = draw(st.sampled_from(["invalid_byte", "truncate", "utf16", "latin1", "bom", "nan", "big_float", "dup_key"]))
    if how == "invalid_byte":
        at = draw(st.integers(0, len(raw)))
        return f"bytes:{how}", raw[:at] + bytes([draw(st.integers(0x80, 0xFF))]) + raw[at:]
    if how == "truncate":
        return f"bytes:{how}", raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    if how == "utf16":
        return f"bytes:{how}", json.dumps(body).encode("utf-16")
    if how == "latin1":
        return f"bytes:{how}", json.dumps(dict(body, note="Grüße"), ensure_ascii=False).encode("latin-1", "replace")
    if how == "bom":
        return f"bytes:{how}", b"\xef\xbb\xbf" + raw
    if how == "nan":
        literal = draw(st.sampled_from(["NaN", "Infinity", "-Infinity"]))
        return f"bytes:{how}", raw[:-1] + f',"options":{{"deadline_seconds":{literal}}}}}'.encode()
    if how == "big_float":
        literal = draw(st.sampled_from(["1e400", "-1e400", "1e-400", "123456789012345678901234567890"]))
        params = json.dumps(body.get("params", {}))[:-1]
        sep = "," if params.strip() != "{" else ""
        doc = dict(body)
        doc.pop("params", None)
        text = json.dumps(doc)[:-1] + f', "params": {params}{sep}"n": {literal}}}}}'
        return f"bytes:{how}", text.encode()
    return f"bytes:{how}", b'{"request_id":"dup-a",' + raw[1:]


@st.composite
def bodies(draw: st.DrawFn, targets: Targets, max_bytes: int) -> tuple[str, bytes]:
    """A body (label, bytes): mostly broken, sometimes valid."""
    family = draw(
        st.sampled_from(["valid", "binary", "text", "non_object", "deep", "field", "field", "field", "bytes", "huge"])
    )
    base = draw(valid_requests(targets))
    if family == "valid":
        return "valid", _encode(base)
    if family == "binary":
        return "binary", draw(st.binary(max_size=200))
    if family == "text":
        return "text", draw(st.text(max_size=200)).encode("utf-8")
    if family == "non_object":
        return "non_object", _encode(draw(json_values().filter(lambda v: not isinstance(v, dict))))
    if family == "deep":
        depth = draw(st.integers(60, 70) | st.integers(400, max_bytes // 2 - 80))  # the limit is 64
        nested = "[" * depth + "]" * depth
        if draw(st.booleans()):
            return "deep:top", nested.encode()
        return (
            "deep:param",
            f'{{"request_id":"{PLACEHOLDER}","kind":"thought_leaders","params":{{"keywords":{nested}}}}}'.encode(),
        )
    if family == "field":
        label, doc = _field_mutation(draw, base, targets)
        return label, _encode(doc)
    if family == "bytes":
        return _byte_mutation(draw, base)
    size = draw(st.integers(max_bytes + 1, max_bytes * 5))
    if draw(st.booleans()):
        return "huge:binary", b"\xff" * size
    base["params"]["padding"] = "x" * size
    return "huge:json", _encode(base)


# -- AMQP properties ----------------------------------------------------------------------------------


def _short_text() -> st.SearchStrategy[str]:
    return st.text(max_size=40)


def _binary_id() -> st.SearchStrategy[bytes]:
    """Non-UTF-8 bytes: pika hands such a short string to the consumer as `bytes`."""
    return st.binary(min_size=1, max_size=32).map(lambda b: b"\xff" + b)


def _header_values() -> st.SearchStrategy[Any]:
    scalar = st.text(max_size=30) | st.integers(-INT64, INT64) | st.booleans() | st.binary(max_size=20) | st.none()
    return st.recursive(
        scalar,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), inner, max_size=3),
        max_leaves=5,
    )


@st.composite
def headers(draw: st.DrawFn) -> dict[str, Any] | None:
    shape = draw(st.sampled_from(["none", "random", "huge", "forged", "traceparent"]))
    if shape == "none":
        return None
    if shape == "random":
        return draw(st.dictionaries(st.text(min_size=1, max_size=20), _header_values(), max_size=5))
    if shape == "huge":
        size = draw(st.integers(10_000, 60_000))
        return {"x-padding": "h" * size, "traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"}
    if shape == "forged":
        return {
            "x-reject-reason": "poison",
            "x-error": "forged",
            "x-deliveries": 99,
            "x-original-routing-key": "amq.direct",
            "x-unroutable-reason": "nacked",
            "x-status": "succeeded",
        }
    return {
        "traceparent": draw(
            st.sampled_from(["00-" + "c" * 32 + "-" + "d" * 16 + "-01", "garbage", "", 7]) | _binary_id()
        )
    }


@st.composite
def properties(draw: st.DrawFn, targets: Targets, user_id: str | None) -> dict[str, Any]:
    props: dict[str, Any] = {
        "reply_to": draw(st.sampled_from(targets.property_reply_queues())),
        "correlation_id": draw(st.none() | st.just("") | _short_text() | _binary_id()),
        "message_id": draw(st.none() | _short_text() | _binary_id()),
        "content_type": draw(
            st.sampled_from([None, "application/json", "text/plain", "application/octet-stream"]) | _short_text()
        ),
        "content_encoding": draw(st.sampled_from([None, "gzip", "utf-16"])),
        "delivery_mode": draw(st.sampled_from([None, 1, 2])),
        "priority": draw(st.none() | st.integers(0, 9)),
        "type": draw(st.none() | _short_text()),
        "app_id": draw(st.none() | _short_text()),
        "expiration": draw(st.sampled_from([None, "600000"])),
        "timestamp": draw(st.none() | st.integers(0, 2**32)),
        "headers": draw(headers()),
    }
    if user_id is not None:
        props["user_id"] = user_id
    return {k: v for k, v in props.items() if v is not None or k == "reply_to"}


def encodable(props: dict[str, Any]) -> bool:
    """Whether pika can put these properties on the wire (short strings: at most 255 bytes)."""
    try:
        pika.BasicProperties(**props).encode()
    except (pika.exceptions.ShortStringTooLong, TypeError, ValueError, UnicodeError):
        return False
    return True


@st.composite
def probes(draw: st.DrawFn, targets: Targets, max_bytes: int) -> Probe:
    label, body = draw(bodies(targets, max_bytes))
    user = draw(st.sampled_from([None, None, *targets.users]))
    own_name = "guest" if user is None else user
    user_id = draw(st.sampled_from([None, own_name]))
    props = draw(properties(targets, user_id).filter(encodable))
    return Probe(body, props, user, label)


# -- building a corpus ---------------------------------------------------------------------------------


def build_corpus(strategy: st.SearchStrategy[Probe], count: int) -> list[Probe]:
    """`count` probes drawn by hypothesis, deterministically (derandomized, no example database)."""
    corpus: list[Probe] = []

    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def collect(probe: Probe) -> None:
        corpus.append(probe)

    collect()
    return corpus


def finalize(corpus: list[Probe], prefix: str) -> list[Probe]:
    """Give every probe's placeholder request id a unique value."""
    marker = PLACEHOLDER.encode()
    return [replace(p, body=p.body.replace(marker, f"{prefix}{i}".encode())) for i, p in enumerate(corpus)]
