"""Settings read from the environment (and a `.env` file), as the operator interface names them.

One place for every knob: deployments, tests and docs depend on these names. `TOKSTA_TIME_SCALE`
shrinks every delay of the worker so tests and benchmarks run simulated minutes in seconds.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

KINDS = ("thought_leaders", "enrichment", "content_match", "audience_match")


class QueueType(StrEnum):
    CLASSIC = "classic"
    QUORUM = "quorum"


class LogFormat(StrEnum):
    JSON = "json"
    CONSOLE = "console"


class Settings(BaseSettings):
    """Every environment variable the service reads; README's settings table lists the same."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    toksta_api_key: SecretStr | None = None
    toksta_base_url: str = "https://api.toksta.com"
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    request_queue: str = Field("toksta.requests", min_length=1, max_length=200)
    queue_type: QueueType = QueueType.CLASSIC
    state_url: str | None = None
    state_dir: str = ".toksta-state"
    drain_seconds: float = Field(30.0, gt=0)
    max_request_bytes: int = Field(262144, gt=0)
    max_reply_bytes: int = Field(16 * 1024 * 1024, gt=0)
    default_deadline_seconds: int = Field(3600, ge=10, le=86400)
    idempotency_ttl_seconds: int = Field(604800, gt=0)
    tombstone_ttl_seconds: int = Field(86400, gt=0)
    poison_delivery_limit: int = Field(5, ge=1)
    admission_window: int = Field(16, ge=1)
    ingress_prefetch: int = Field(8, ge=1)
    # Kinds whose unconfirmed start call may be re-sent (the API has no idempotency key): default none.
    resend_unconfirmed_start: Annotated[frozenset[str], NoDecode] = frozenset()
    # Inline server-side hold on results endpoints (0-30 s); a tuning knob, never a thread sleep.
    poll_wait_seconds: int = Field(0, ge=0, le=30)
    http_timeout_seconds: float = Field(30.0, gt=0)
    # Rows due within this many API seconds join the current poll round (fewer calls, same cap).
    poll_coalesce_seconds: float = Field(5.0, ge=0)
    # A tick not started (or not renewed) this long after it was due is re-armed by a watchdog.
    tick_grace_seconds: float = Field(5.0, gt=0)
    # Longest real-time gap between two ticks of a family with nothing due (new requests wait at most this).
    tick_max_idle_seconds: float = Field(1.0, gt=0)
    # Test hook: request ids whose handling raises on every delivery (poison-message tests only).
    crash_request_ids: Annotated[frozenset[str], NoDecode] = frozenset()
    sentry_dsn: SecretStr | None = None
    metrics_port: int = Field(9191, ge=0, le=65535)
    log_format: LogFormat = LogFormat.JSON
    log_level: str = "INFO"
    toksta_time_scale: float = Field(1.0, gt=0, le=1000)

    @field_validator("resend_unconfirmed_start", mode="before")
    @classmethod
    def _split_kinds(cls, value: object) -> object:
        if isinstance(value, str):
            value = frozenset(part.strip() for part in value.split(",") if part.strip())
        if isinstance(value, (set, frozenset, list, tuple)):
            unknown = set(value) - set(KINDS)
            if unknown:
                raise ValueError(f"unknown kinds {sorted(unknown)}; use {', '.join(KINDS)}")
        return value

    @field_validator("crash_request_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return frozenset(part.strip() for part in value.split(",") if part.strip())
        return value

    @cached_property
    def dlq_queue(self) -> str:
        return f"{self.request_queue}.dlq"

    @cached_property
    def unroutable_queue(self) -> str:
        return f"{self.request_queue}.unroutable"

    def scaled(self, seconds: float) -> float:
        """Real seconds for `seconds` of API time (TOKSTA_TIME_SCALE shrinks waits in tests)."""
        return seconds * self.toksta_time_scale


def load_settings() -> Settings:
    return Settings()
