"""Which request a log line or an error event is about: `request_context` and the tagged ingress.

`request_context(request_id=..., kind=...)` binds the request fields for everything logged inside
(JSON log keys) and forks Sentry's isolation scope, tagged with them and with fresh breadcrumbs,
so an error raised deep in the handling of a message (or logged by the ingress after it failed)
names its request and shows only what happened to it. `TaggedIngress` opens one around the
handling of each message, with the ids the validator read from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import sentry_sdk

from worker.contract.models import Kind
from worker.logs import REQUEST_FIELDS, current_context, log_context
from worker.observability.errors import MAX_TAG_CHARS
from worker.runtime.ingress import Ingress


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


class TaggedIngress(Ingress):
    """The ingress, with each message handled inside its request's context (ids from the validator)."""

    def request_context(self, request_id: str | None, kind: object) -> AbstractContextManager[object]:
        kind_text = kind.value if isinstance(kind, Kind) else kind if isinstance(kind, str) else None
        return request_context(request_id=request_id, kind=kind_text)
