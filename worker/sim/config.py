"""The simulator's knobs: set from the command line, changed at run time through `POST /_sim/config`.

Validation lives here so that a mistyped knob fails loudly (400 on the admin route, exit 2 on
the command line) instead of silently running a benchmark with the wrong setting.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

OUTCOMES = ("succeeded", "failed", "expired", "canceled")
DEFAULT_KEY = "tk_test_simulator"


class ConfigError(ValueError):
    """A knob has an invalid value; the message names the knob."""


@dataclass(frozen=True)
class CreatorKnobs:
    """Per-creator behaviour (keyed by creator UUID)."""

    enriched: bool = False
    missing_profile: bool = False
    start_failure: bool = False
    outcome: str | None = None
    duration: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "enriched": self.enriched,
            "missing_profile": self.missing_profile,
            "start_failure": self.start_failure,
            "outcome": self.outcome,
            "duration": self.duration,
        }

    @classmethod
    def from_json(cls, creator_id: str, raw: object) -> CreatorKnobs:
        if not isinstance(raw, Mapping):
            raise ConfigError(f"creators[{creator_id}] must be an object")
        unknown = set(raw) - {"enriched", "missing_profile", "start_failure", "outcome", "duration"}
        if unknown:
            raise ConfigError(f"creators[{creator_id}] has unknown keys {sorted(unknown)}")
        flags = {name: raw.get(name, False) for name in ("enriched", "missing_profile", "start_failure")}
        for name, value in flags.items():
            if not isinstance(value, bool):
                raise ConfigError(f"creators[{creator_id}].{name} must be a boolean")
        outcome = raw.get("outcome")
        if outcome is not None and outcome not in OUTCOMES:
            raise ConfigError(f"creators[{creator_id}].outcome must be one of {', '.join(OUTCOMES)}")
        duration = raw.get("duration")
        if duration is not None:
            duration = _non_negative(duration, f"creators[{creator_id}].duration")
        return cls(outcome=outcome, duration=duration, **flags)


@dataclass(frozen=True)
class SimConfig:
    """Everything `POST /_sim/config` can change. `credits` is the balance set at (re)start or by config."""

    rate_limit: int = 60
    credits: int = 100_000
    job_seconds: tuple[float, float] = (5.0, 30.0)
    outcomes: Mapping[str, float] = field(default_factory=lambda: {"succeeded": 1.0})
    disabled_routes: frozenset[str] = frozenset()
    creators: Mapping[str, CreatorKnobs] = field(default_factory=dict)
    keys: tuple[str, ...] = (DEFAULT_KEY,)
    latency_ms: float = 0.0
    cache_analyses: bool = True

    def to_json(self) -> dict[str, Any]:
        """The config as JSON. Accepted keys are reported by count only: a key is a secret."""
        return {
            "rate_limit": self.rate_limit,
            "credits": self.credits,
            "job_seconds": list(self.job_seconds),
            "outcomes": dict(self.outcomes),
            "disabled_routes": sorted(self.disabled_routes),
            "creators": {cid: knobs.to_json() for cid, knobs in self.creators.items()},
            "keys_count": len(self.keys),
            "latency_ms": self.latency_ms,
            "cache_analyses": self.cache_analyses,
        }

    def updated(self, patch: Mapping[str, Any]) -> SimConfig:
        """A copy with `patch` applied; raises ConfigError naming the first bad knob."""
        unknown = set(patch) - _PATCHERS.keys()
        if unknown:
            raise ConfigError(f"unknown config keys {sorted(unknown)}")
        changes: dict[str, Any] = {}
        for name, value in patch.items():
            changes[name] = _PATCHERS[name](self, value)
        return replace(self, **changes)


def _non_negative(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ConfigError(f"{name} must be a number >= 0")
    return float(value)


def _int_at_least(value: object, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}")
    return value


def parse_job_seconds(value: object) -> tuple[float, float]:
    """`[min, max]` (or "min,max") simulated seconds, 0 <= min <= max."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",")]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ConfigError("job_seconds must be [min, max]")
    try:
        low, high = (float(part) for part in value)
    except (TypeError, ValueError) as exc:
        raise ConfigError("job_seconds must be two numbers") from exc
    if low < 0 or high < low:
        raise ConfigError("job_seconds needs 0 <= min <= max")
    return (low, high)


def parse_outcomes(value: object) -> dict[str, float]:
    """`{"succeeded": 9, "failed": 1}` or "succeeded=9,failed=1"; weights >= 0 with a positive sum."""
    if isinstance(value, str):
        pairs: dict[str, object] = {}
        for part in filter(None, (p.strip() for p in value.split(","))):
            name, sep, weight = part.partition("=")
            if not sep:
                raise ConfigError(f"outcomes entry {part!r} must read status=weight")
            try:
                pairs[name.strip()] = float(weight)
            except ValueError as exc:
                raise ConfigError(f"outcomes weight {weight!r} is not a number") from exc
        value = pairs
    if not isinstance(value, Mapping) or not value:
        raise ConfigError("outcomes must be a non-empty {status: weight} object")
    weights = {str(name): _non_negative(weight, f"outcomes.{name}") for name, weight in value.items()}
    unknown = set(weights) - set(OUTCOMES)
    if unknown:
        raise ConfigError(f"outcomes has unknown statuses {sorted(unknown)}; use {', '.join(OUTCOMES)}")
    if sum(weights.values()) <= 0:
        raise ConfigError("outcomes weights must not all be 0")
    return weights


def _patch_creators(config: SimConfig, value: object) -> dict[str, CreatorKnobs]:
    if not isinstance(value, Mapping):
        raise ConfigError("creators must be an object {creator_uuid: knobs}")
    merged = dict(config.creators)
    for creator_id, knobs in value.items():
        try:
            canonical = str(uuid.UUID(str(creator_id)))
        except ValueError as exc:
            raise ConfigError(f"creators key {creator_id!r} is not a UUID") from exc
        merged[canonical] = CreatorKnobs.from_json(canonical, knobs)
    return merged


def _patch_keys(_: SimConfig, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(k, str) and k for k in value):
        raise ConfigError("keys must be a non-empty list of non-empty strings")
    return tuple(value)


def _patch_routes(_: SimConfig, value: object) -> frozenset[str]:
    if not isinstance(value, list) or not all(isinstance(r, str) for r in value):
        raise ConfigError('disabled_routes must be a list of route keys like "POST /v1/creators/enrich"')
    return frozenset(value)


def _patch_bool(value: object, name: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be a boolean")
    return value


_PATCHERS: dict[str, Any] = {
    "rate_limit": lambda _c, v: _int_at_least(v, "rate_limit", 0),
    "credits": lambda _c, v: _int_at_least(v, "credits", 0),
    "job_seconds": lambda _c, v: parse_job_seconds(v),
    "outcomes": lambda _c, v: parse_outcomes(v),
    "disabled_routes": _patch_routes,
    "creators": _patch_creators,
    "keys": _patch_keys,
    "latency_ms": lambda _c, v: _non_negative(v, "latency_ms"),
    "cache_analyses": lambda _c, v: _patch_bool(v, "cache_analyses"),
}
