"""The dramatiq broker and actor of a worker process (`dramatiq worker.runtime.app`).

Imported in every worker process after the fork. The only actor is the family tick; starts,
polls, fetches and replies all happen inside it, under its lease.
"""

from __future__ import annotations

import logging
import uuid

import dramatiq

from worker.amqp.broker import make_broker
from worker.runtime.context import runtime
from worker.runtime.family_tick import FamilyTick, Superseded
from worker.runtime.lifecycle import Lifecycle
from worker.runtime.ticks import TICK_ACTOR, TickScheduler

log = logging.getLogger(__name__)

_settings = runtime().settings
broker = make_broker(_settings)
broker.add_middleware(Lifecycle())
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name=TICK_ACTOR, queue_name=f"{_settings.request_queue}.ticks", time_limit=15 * 60 * 1000)
def family_tick(kind: str, seq: int) -> None:
    """Run tick `seq` of family `kind` if it is current; always hand over to the next one."""
    rt = runtime()
    scheduler = TickScheduler(rt)
    if not scheduler.claim(kind, seq):
        return
    delay = rt.settings.tick_max_idle_seconds
    tick = FamilyTick(rt, kind, lambda: scheduler.renew(kind, seq), uuid.uuid4().hex)
    try:
        delay = tick.run()
    except Superseded:
        log.info("tick of %s superseded; the newer one carries on", kind)
        return
    except Exception:
        log.exception("tick of %s failed; re-arming", kind)
    scheduler.rearm(kind, seq, delay, hold=bool(tick.refused))
