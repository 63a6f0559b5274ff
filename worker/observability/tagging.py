"""Which request a log line or an error event is about: `request_context` and the tagged ingress.

`request_context(request_id=..., kind=...)` binds the request fields for everything logged inside
(JSON log keys) and forks Sentry's isolation scope, tagged with them and with fresh breadcrumbs,
so an error raised deep in the handling of a message (or logged by the ingress after it failed)
names its request and shows only what happened to it. `TaggedIngress` opens one around each
delivery, with the ids read from the message body as far as it is readable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sentry_sdk

from worker.logs import REQUEST_FIELDS, current_context, log_context
from worker.observability.errors import MAX_TAG_CHARS
from worker.runtime.ingress import Ingress
from worker.runtime.intake import Delivery


@contextmanager
def request_context(**fields: object) -> Iterator[dict[str, str]]:
    """Bind the request fields (None skipped, others ignored) to logs and to a Sentry scope."""
    known = {k: v for k, v in fields.items() if k in REQUEST_FIELDS and v is not None}
    outermost = not current_context()
    with log_context(**known) as bound, sentry_sdk.isolation_scope() as scope:
        if outermost:
            scope.clear_breadcrumbs()  # an event shows what happened to this request, not the one before
        for name, value in bound.items():
            if name in REQUEST_FIELDS:
                scope.set_tag(name, value[:MAX_TAG_CHARS])
        yield bound


def fields_of_body(body: bytes, max_bytes: int) -> dict[str, str]:
    """`request_id` and `kind` of a request body, best effort (an invalid body may have neither)."""
    if len(body) > max_bytes:
        return {}
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    if not isinstance(doc, dict):
        return {}
    return {
        name: value[:MAX_TAG_CHARS]
        for name in ("request_id", "kind")
        if isinstance(value := doc.get(name), str) and value
    }


class TaggedIngress(Ingress):
    """The ingress, with each delivery handled inside the request's context."""

    def handle(self, message: Delivery, ack: Callable[[], object], nack: Callable[[], object]) -> None:
        with request_context(**fields_of_body(message.body, self.settings.max_request_bytes)):
            super().handle(message, ack, nack)
