"""Messages that arrive together are handled together, with the outcome each would have alone.

The ingress registers the new requests of one batch of deliveries with one read and one write and
acknowledges them with one ack; any other message (a cancel, a duplicate, a conflict, an invalid
one) goes on its own, in its place in the order of arrival. Here the messages are in the request
queue before the worker starts, so they reach it in the prefetch's batches.
"""

from __future__ import annotations

import uuid
from typing import Any

from worker.ops.harness import Deployment, WorkerGroup
from worker.sim.testing import SimulatorProcess


def _enrichment(request_id: str, creator: str | None = None) -> dict[str, Any]:
    """An enrichment request; the same id gets the same creator unless another is given."""
    creator = creator or str(uuid.uuid5(uuid.NAMESPACE_URL, request_id))
    return {"request_id": request_id, "kind": "enrichment", "params": {"creator_ids": [creator]}}


def test_a_preloaded_mix_gets_the_answers_of_one_by_one(deployment: Deployment, sim: SimulatorProcess) -> None:
    deployment.declare_queues()
    creator = str(uuid.uuid4())
    with deployment.requester() as client:
        client.publish(_enrichment("target", creator))
        client.publish({"request_id": "cancel-1", "kind": "cancel", "params": {"request_id": "target"}})
        for n in range(12):
            client.publish(_enrichment(f"new-{n}"))
        client.publish(_enrichment("new-0"), correlation_id="second-sender")  # same content: a second target
        client.publish(_enrichment("new-1", creator))  # same id, other content
        client.publish(b'{"request_id": "broken", "kind": "enrichment"}')
        for n in range(12, 20):
            client.publish(_enrichment(f"new-{n}"))
        with WorkerGroup(deployment, processes=1, threads=4):
            replies = client.collect(25, timeout=60)
            extra = client.collect(26, timeout=2)[25:]  # nothing more may come

    assert extra == []
    by_id: dict[str, list[dict[str, Any]]] = {}
    for reply in replies:
        by_id.setdefault(reply.body["request_id"], []).append(reply.body)
    new_1 = sorted(by_id.pop("new-1"), key=lambda body: body["status"])
    assert [body["status"] for body in new_1] == ["error", "succeeded"]
    assert new_1[0]["error"]["code"] == "REQUEST_ID_CONFLICT"
    new_0 = by_id.pop("new-0")
    assert [body["status"] for body in new_0] == ["succeeded", "succeeded"]
    for n in range(2, 20):
        assert [body["status"] for body in by_id.pop(f"new-{n}")] == ["succeeded"]
    # The cancel came after its target, so it cancels a registered row: had the order been lost, the
    # target would have arrived after a tombstone. (Its family's tick is woken through a 50 ms queue,
    # so the target is almost surely still waiting: "canceled before its start call".)
    (cancel,) = by_id.pop("cancel-1")
    assert cancel["result"]["canceled"] is True
    (target,) = by_id.pop("target")
    assert target["status"] == "canceled"
    assert target["error"]["details"] == {"canceled_by": "cancel-1"}
    assert target["error"]["message"] != "a cancel request arrived before this request"
    (broken,) = by_id.pop("broken")
    assert broken["error"]["code"] == "INVALID_REQUEST"
    assert by_id == {}
