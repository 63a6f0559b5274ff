"""Sentry from a running worker: a handler crash is reported with its request's tags, a 402 is not,
and no event carries the API key or a bearer header."""

from __future__ import annotations

import uuid

from worker.ops.harness import WorkerGroup
from worker.sim.testing import SimulatorProcess

from .helpers import CANARY_KEY, ENRICH_ROUTE, SentrySink, enrichment, json_lines, make_deployment, wait_until


def test_crash_is_reported_tagged_and_scrubbed_and_a_402_is_not(sim: SimulatorProcess, sentry_sink: SentrySink) -> None:
    crash_id = f"crash-{uuid.uuid4().hex[:8]}"
    paid_id = f"paid-{uuid.uuid4().hex[:8]}"
    deployment = make_deployment(sim)
    group = WorkerGroup(
        deployment,
        processes=2,
        threads=2,
        env={
            "SENTRY_DSN": sentry_sink.dsn,
            "CRASH_REQUEST_IDS": crash_id,
            "POISON_DELIVERY_LIMIT": "2",
            "METRICS_PORT": "0",
        },
    )
    sim.admin.add_faults({"kind": "error", "route": ENRICH_ROUTE, "status": 402, "code": "INSUFFICIENT_CREDITS"})
    try:
        group.start()
        with deployment.requester() as requester:
            requester.publish(enrichment(paid_id))
            paid = requester.wait_for(paid_id, timeout=60)
            assert paid is not None and paid.body["status"] == "error"
            assert paid.body["error"]["http_status"] == 402
            requester.publish(enrichment(crash_id))
            poisoned = requester.wait_for(crash_id, timeout=60)
            assert poisoned is not None and poisoned.body["error"]["code"] == "POISON_MESSAGE"
        assert group.terminate(timeout=30) == 0  # the processes flush Sentry as they stop
    finally:
        group.stop()
        deployment.delete_queues()
        sim.admin.clear_faults()

    events = wait_until(sentry_sink.events, 10, "an error event")
    crashes = [e for e in events if (e.get("tags") or {}).get("request_id") == crash_id]
    assert crashes, [e.get("tags") for e in events]
    assert crashes == events  # nothing else was an error: not the 402 answer
    assert all(e["tags"].get("kind") == "enrichment" for e in crashes)
    assert all(e["level"] == "error" for e in crashes)
    for raw in sentry_sink.raw():
        assert CANARY_KEY.encode() not in raw
        assert b"Bearer" not in raw
        assert paid_id.encode() not in raw  # not even as a breadcrumb of the crash's events
    assert sentry_sink.paths and all(p == "/api/1/envelope/" for p in sentry_sink.paths)
    # The ingress logs the crash without `extra=`; the bound request context still names it.
    failed = [line for line in json_lines(group.log_path) if line["msg"].startswith("request handler failed")]
    assert failed and all(line.get("request_id") == crash_id for line in failed)
    assert CANARY_KEY not in group.log_text()
