"""Injected faults: each is consumed by the next matching /v1 call(s).

Kinds and what the client sees:
- `error`: an enveloped error (any status and code), the request is not processed.
- `plain_5xx`: a text/html gateway error without envelope; with `processed` (default true)
  the request is handled first, so its side effects happen.
- `reset_before_read`: TCP reset before the handler runs (nothing happens).
- `reset_after_read`: the request is fully handled, then the connection is reset.
- `malformed`: handled, then a 200 with a truncated, non-JSON body.
- `slow`: handled, then the answer is delayed `delay_seconds` simulated seconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

from worker.sim.config import ConfigError

FAULT_KINDS = ("error", "plain_5xx", "reset_before_read", "reset_after_read", "malformed", "slow")
STATUS_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    402: "INSUFFICIENT_CREDITS",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    429: "RATE_LIMITED",
    500: "INTERNAL_ERROR",
    501: "NOT_IMPLEMENTED",
}
_FIELDS = {"kind", "route", "count", "status", "code", "message", "processed", "delay_seconds", "retry_after"}


@dataclass(frozen=True)
class Fault:
    kind: str
    route: str = "*"
    count: int = 1
    status: int = 500
    code: str = "INTERNAL_ERROR"
    message: str = "Injected fault."
    processed: bool = True
    delay_seconds: float = 5.0
    retry_after: int | None = None

    @classmethod
    def from_json(cls, raw: object) -> Fault:
        if not isinstance(raw, Mapping):
            raise ConfigError("each fault must be an object")
        unknown = set(raw) - _FIELDS
        if unknown:
            raise ConfigError(f"fault has unknown keys {sorted(unknown)}")
        kind = raw.get("kind")
        if kind not in FAULT_KINDS:
            raise ConfigError(f"fault kind must be one of {', '.join(FAULT_KINDS)}")
        default_status = 502 if kind == "plain_5xx" else 500
        status = raw.get("status", default_status)
        if isinstance(status, bool) or not isinstance(status, int) or not 400 <= status <= 599:
            raise ConfigError("fault status must be an integer 400-599")
        count = raw.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            raise ConfigError("fault count must be an integer >= 1")
        fault = cls(
            kind=kind,
            route=_str(raw, "route", "*"),
            count=count,
            status=status,
            code=_str(raw, "code", STATUS_CODES.get(status, "INTERNAL_ERROR")),
            message=_str(raw, "message", "Injected fault."),
        )
        return _with_options(fault, raw)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _str(raw: Mapping[str, Any], name: str, default: str) -> str:
    value = raw.get(name, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"fault {name} must be a non-empty string")
    return value


def _with_options(fault: Fault, raw: Mapping[str, Any]) -> Fault:
    processed = raw.get("processed", True)
    if not isinstance(processed, bool):
        raise ConfigError("fault processed must be a boolean")
    delay = raw.get("delay_seconds", 5.0)
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or delay < 0:
        raise ConfigError("fault delay_seconds must be a number >= 0")
    retry_after = raw.get("retry_after")
    if retry_after is not None and (isinstance(retry_after, bool) or not isinstance(retry_after, int)):
        raise ConfigError("fault retry_after must be an integer")
    return replace(fault, processed=processed, delay_seconds=float(delay), retry_after=retry_after)


class FaultBook:
    """Pending faults in arrival order; the first one matching a route is used and its count spent."""

    def __init__(self) -> None:
        self._pending: list[Fault] = []

    def add(self, faults: list[Fault]) -> None:
        self._pending.extend(faults)

    def clear(self) -> None:
        self._pending.clear()

    def take(self, route_key: str) -> Fault | None:
        for index, fault in enumerate(self._pending):
            if fault.route in ("*", route_key):
                if fault.count <= 1:
                    del self._pending[index]
                else:
                    self._pending[index] = replace(fault, count=fault.count - 1)
                return fault
        return None

    def to_json(self) -> list[dict[str, Any]]:
        return [fault.to_json() for fault in self._pending]
