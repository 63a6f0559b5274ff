"""A no-op dramatiq actor on the worker's own broker (`make_broker`: confirm_delivery=True, the same
middleware), for the pipeline bench's drain-rate baseline. Its queue comes from BENCH_NOOP_QUEUE.

    dramatiq bench._noop_actor --processes 2 --threads 4
"""

from __future__ import annotations

import os

import dramatiq

from worker.amqp.broker import make_broker
from worker.settings import Settings

QUEUE = os.environ.get("BENCH_NOOP_QUEUE", "bench.noop")
ACTOR = "bench_noop"

broker = make_broker(Settings(), name="toksta-bench-noop")
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=ACTOR, queue_name=QUEUE)
def noop() -> None:
    """Does nothing: what is measured is the broker round trip (deliver, run, ack)."""
