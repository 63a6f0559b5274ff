"""Error reporting to Sentry (on when SENTRY_DSN is set), with the API key kept out of every event.

sentry-sdk's own integrations do the capturing: Dramatiq (exceptions of the tick actor),
Logging (records at ERROR and above become events; lower ones become breadcrumbs) and Httpx
(breadcrumbs of API calls). So what the code logs below ERROR (a 402 answered to the client, an
invalid request) never becomes an event. Events carry the request's `request_id`, `kind`,
`job_id` and `toksta_request_id` as tags, from the scope `tagging.request_context` opens and from
the `extra=` fields of the log record.

`before_send` and `before_breadcrumb` walk the whole event and replace the API key, the DSN, any
`Bearer ...` value and the values of credential-named keys (`Authorization`, ...). Local variables
are not sent at all: a truncated secret in a frame's locals would slip past an exact-match scrub.
No trace headers are added to API calls (`trace_propagation_targets=[]`): they are a third party.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

import sentry_sdk
from sentry_sdk.integrations.dramatiq import DramatiqIntegration
from sentry_sdk.integrations.httpx import HttpxIntegration
from sentry_sdk.integrations.logging import LoggingIntegration

from worker import __version__
from worker.logs import REQUEST_FIELDS, Scrubber
from worker.settings import Settings

log = logging.getLogger(__name__)

REDACTED = "[redacted]"
_CREDENTIAL_KEYS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api_key",
        "toksta_api_key",
        "sentry_dsn",
    }
)
MAX_TAG_CHARS = 200  # Sentry's limit for a tag value


def known_secrets(settings: Settings) -> list[str]:
    """The values no event may carry."""
    found = []
    for secret in (settings.toksta_api_key, settings.sentry_dsn):
        if secret is not None:
            found.append(secret.get_secret_value())
    return found


class EventScrubber:
    """`before_send` / `before_breadcrumb`: a scrubbed copy of everything, plus request tags."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self._scrub = Scrubber(secrets)

    def event(self, event: Any, hint: Any) -> Any:
        cleaned = self.clean(event)
        if isinstance(cleaned, dict):
            _promote_request_fields(cleaned)
        return cleaned

    def breadcrumb(self, crumb: Any, hint: Any) -> Any:
        return self.clean(crumb)

    def clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._scrub(value)
        if isinstance(value, Mapping):
            return {
                key: REDACTED if _is_credential(key) and value[key] is not None else self.clean(value[key])
                for key in value
            }
        if isinstance(value, (list, tuple)):
            if len(value) == 2 and isinstance(value[0], str) and _is_credential(value[0]):
                return [value[0], REDACTED]  # a header as a [name, value] pair
            return [self.clean(item) for item in value]
        return value


def _is_credential(key: object) -> bool:
    return isinstance(key, str) and key.lower() in _CREDENTIAL_KEYS


def _promote_request_fields(event: dict[str, Any]) -> None:
    """Request fields passed as a log record's `extra=` become tags (the scope may not have them)."""
    extra = event.get("extra")
    if not isinstance(extra, Mapping):
        return
    tags = event.setdefault("tags", {})
    if not isinstance(tags, dict):
        return
    for name in REQUEST_FIELDS:
        value = extra.get(name)
        if value is not None and name not in tags:
            tags[name] = str(value)[:MAX_TAG_CHARS]


def init_sentry(settings: Settings) -> bool:
    """Start error reporting when SENTRY_DSN is set; True when it is on.

    Called by `run` before the workers fork (the Dramatiq integration must patch the broker class
    before a broker exists; no thread is started until the first event, and the transport restarts
    its thread in each child) and again at each process boot, where it is a no-op if already on.
    """
    if settings.sentry_dsn is None:
        return False
    if sentry_sdk.get_client().is_active():
        return True
    scrubber = EventScrubber(known_secrets(settings))
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(),
        release=f"toksta-worker@{__version__}",
        integrations=[
            DramatiqIntegration(),
            LoggingIntegration(level=logging.INFO, event_level=logging.ERROR),
            HttpxIntegration(),
        ],
        before_send=scrubber.event,
        before_breadcrumb=scrubber.breadcrumb,
        send_default_pii=False,
        include_local_variables=False,
        trace_propagation_targets=[],
        traces_sample_rate=None,
    )
    log.info("error reporting to Sentry is on")
    return True


def flush_sentry(timeout: float = 2.0) -> None:
    """Send what is queued: forked worker processes exit without running atexit handlers."""
    client = sentry_sdk.get_client()
    if client.is_active():
        client.flush(timeout=timeout)
