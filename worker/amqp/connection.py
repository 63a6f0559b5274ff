"""Opening RabbitMQ connections the same way everywhere, and naming them so operators can find them.

Every connection carries a `connection_name` (visible in `rabbitmqctl list_connections` and the
management UI), a heartbeat, a `blocked_connection_timeout` (a broker under a memory or disk alarm
blocks publishers; without a timeout a publish would hang forever) and socket timeouts. Values given
in the URL's query string (`?heartbeat=60`) win over our defaults, so operators can tune them through
`AMQP_URL` alone. `amqps://` URLs get TLS through pika's `URLParameters`.

The password never leaves this module: `safe_url` masks it for logs, and `AmqpUnavailable` carries
only the masked URL.
"""

from __future__ import annotations

import os
from urllib.parse import parse_qs, urlsplit, urlunsplit

import pika
import pika.exceptions

from worker import __version__

DEFAULT_BLOCKED_CONNECTION_TIMEOUT = 60.0
DEFAULT_SOCKET_TIMEOUT = 10.0
DEFAULT_STACK_TIMEOUT = 15.0


class AmqpError(Exception):
    """Base of this package's errors."""


class AmqpUnavailable(AmqpError):
    """The broker cannot be reached (or refused us); the text never contains the password."""


def safe_url(amqp_url: str) -> str:
    """`amqp_url` with its password replaced by `***`, for logs and error texts."""
    parts = urlsplit(amqp_url)
    if parts.password is None:
        return amqp_url
    host = parts.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = f"{parts.username or ''}:***@{host}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _scrub(text: str, amqp_url: str) -> str:
    password = urlsplit(amqp_url).password
    return text.replace(password, "***") if password else text


def connection_parameters(amqp_url: str, *, name: str, heartbeat: int = 30) -> pika.URLParameters:
    """pika parameters for `amqp_url` with our name and timeouts (URL query values win)."""
    try:
        params = pika.URLParameters(amqp_url)
    except (ValueError, TypeError, KeyError) as exc:  # pika's errors for malformed URLs
        raise AmqpUnavailable(f"invalid AMQP URL {safe_url(amqp_url)}: {_scrub(str(exc), amqp_url)}") from None
    given = parse_qs(urlsplit(amqp_url).query)
    if "heartbeat" not in given:
        params.heartbeat = heartbeat
    if "blocked_connection_timeout" not in given:
        params.blocked_connection_timeout = DEFAULT_BLOCKED_CONNECTION_TIMEOUT
    if "socket_timeout" not in given:
        params.socket_timeout = DEFAULT_SOCKET_TIMEOUT
    if "stack_timeout" not in given:
        params.stack_timeout = DEFAULT_STACK_TIMEOUT
    params.client_properties = {
        "connection_name": f"{name} (pid {os.getpid()})",
        "product": "toksta-worker",
        "version": __version__,
    }
    return params


def open_connection(amqp_url: str, *, name: str, heartbeat: int = 30) -> pika.BlockingConnection:
    """A new BlockingConnection named `name`; raises `AmqpUnavailable` when the broker cannot be used.

    The connection is confined to the calling thread (pika's BlockingConnection is not thread-safe).
    """
    params = connection_parameters(amqp_url, name=name, heartbeat=heartbeat)
    try:
        return pika.BlockingConnection(params)
    except (pika.exceptions.AMQPError, OSError) as exc:
        detail = _scrub(str(exc) or type(exc).__name__, amqp_url)
        raise AmqpUnavailable(
            f"cannot connect to RabbitMQ at {safe_url(amqp_url)}: {type(exc).__name__}: {detail}"
        ) from None
