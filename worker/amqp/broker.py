"""The dramatiq broker: dramatiq's RabbitmqBroker, able to declare quorum queues.

dramatiq 2.2 declares every actor queue (and its `.DQ` delay and `.XQ` dead-letter queues) without
`x-queue-type`, and `x-max-priority` when priorities are on. A quorum queue redeclared without
`x-queue-type: quorum` fails with PRECONDITION_FAILED, so with `QUEUE_TYPE=quorum` this subclass adds
the type to all three declarations (and never sets `x-max-priority`: quorum queues have no
priorities). With `classic` the arguments are exactly dramatiq's. The overridden methods are private
dramatiq API, which is why the project pins dramatiq `2.2.*`.

`confirm_delivery=True` always: dramatiq then publishes `mandatory` and waits for the broker's
confirm, so an enqueue either reached a queue or raised.
"""

from __future__ import annotations

from typing import Any

import pika.exceptions
from dramatiq.brokers.rabbitmq import DEAD_MESSAGE_TTL, RabbitmqBroker
from dramatiq.common import dq_name, xq_name
from dramatiq.middleware import (
    AgeLimit,
    Callbacks,
    Middleware,
    Pipelines,
    ShutdownNotifications,
    TimeLimit,
)

from worker.amqp.connection import connection_parameters
from worker.amqp.topology import PRECONDITION_FAILED, TopologyMismatch
from worker.settings import QueueType, Settings


class TokstaBroker(RabbitmqBroker):
    """RabbitmqBroker with `queue_type` for its actor queues and publisher confirms always on."""

    def __init__(
        self,
        *,
        url: str,
        queue_type: QueueType,
        name: str = "toksta-worker-dramatiq",
        heartbeat: int = 30,
        middleware: list[Middleware] | None = None,
    ) -> None:
        super().__init__(url=url, confirm_delivery=True, middleware=middleware)
        self.queue_type = queue_type
        # Replace dramatiq's plain URLParameters by ours: connection name and timeouts.
        params = [connection_parameters(u, name=name, heartbeat=heartbeat) for u in url.split(";")]
        self.parameters = params[0] if len(params) == 1 else params

    @property
    def quorum(self) -> bool:
        return self.queue_type is QueueType.QUORUM

    def _build_queue_arguments(self, queue_name: str) -> dict[str, Any]:
        """dramatiq's arguments for an actor queue and its `.DQ`, plus the queue type for quorum."""
        arguments: dict[str, Any] = {
            "x-dead-letter-exchange": "",
            "x-dead-letter-routing-key": xq_name(queue_name),
        }
        if self.quorum:
            arguments["x-queue-type"] = str(QueueType.QUORUM)
        elif self.max_priority:
            arguments["x-max-priority"] = self.max_priority
        return arguments

    def _declare_queue(self, queue_name: str) -> Any:
        arguments = self._build_queue_arguments(queue_name)
        return self._declare(queue_name, arguments)

    def _declare_dq_queue(self, queue_name: str) -> Any:
        arguments = self._build_queue_arguments(queue_name)
        return self._declare(dq_name(queue_name), arguments)

    def _declare_xq_queue(self, queue_name: str) -> Any:
        # A static TTL, as in dramatiq: messages expire head-first.
        arguments: dict[str, Any] = {"x-message-ttl": DEAD_MESSAGE_TTL}
        if self.quorum:
            arguments["x-queue-type"] = str(QueueType.QUORUM)
        return self._declare(xq_name(queue_name), arguments)

    def _declare(self, name: str, arguments: dict[str, Any]) -> Any:
        """Declare on this thread's channel; a mismatch becomes `TopologyMismatch` (not retried)."""
        try:
            return self.channel.queue_declare(queue=name, durable=True, arguments=arguments)
        except pika.exceptions.ChannelClosedByBroker as exc:
            if exc.reply_code != PRECONDITION_FAILED:
                raise
            del self.channel  # closed by the broker; the next caller opens a fresh one
            raise TopologyMismatch(name, arguments, str(exc.reply_text)) from None


def default_middleware() -> list[Middleware]:
    """dramatiq's defaults minus `Retries`, and no `Prometheus`.

    - `Retries` is left out: by default it retries 20 times with backoff up to 7 days through the
      `.DQ` queue (held unacked in worker memory until the eta, past RabbitMQ's consumer_timeout)
      and then dead-letters to `.XQ`, which nothing reads. Our actors handle failure explicitly (a
      request that cannot finish gets an `error` reply). Consequences: an exception escaping an
      actor is logged and its message acknowledged (dropped); actors must not pass retry options
      such as `max_retries` (dramatiq rejects options no middleware declares).
    - `Prometheus` is left out: its exposition server binds port 9191 and answers every path, and it
      writes under the temp dir at import; metrics are served with prometheus-client instead.
    """
    return [AgeLimit(), TimeLimit(), ShutdownNotifications(), Callbacks(), Pipelines()]


def make_broker(settings: Settings, *, name: str = "toksta-worker-dramatiq") -> TokstaBroker:
    """The worker's broker, configured from settings (AMQP_URL, QUEUE_TYPE)."""
    return TokstaBroker(
        url=settings.amqp_url,
        queue_type=settings.queue_type,
        name=name,
        middleware=default_middleware(),
    )


__all__ = ["TokstaBroker", "default_middleware", "make_broker"]
