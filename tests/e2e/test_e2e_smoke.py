"""Smoke: every kind succeeds end to end through a real worker process."""

from __future__ import annotations

from worker.ops.demo_cli import CREATORS
from worker.ops.requester import Requester
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]


def test_every_kind_succeeds(requester: Requester, sim: SimulatorProcess) -> None:
    requests = [
        {
            "request_id": "tl-1",
            "kind": "thought_leaders",
            "params": {"keywords": KEYWORDS},
            "options": {"results_limit": 3},
        },
        {"request_id": "en-1", "kind": "enrichment", "params": {"creator_ids": CREATORS}},
        {
            "request_id": "cm-1",
            "kind": "content_match",
            "params": {"creator_ids": CREATORS, "topic_keywords": ["devex"]},
            "options": {"include": ["posts"]},
        },
        {
            "request_id": "am-1",
            "kind": "audience_match",
            "params": {"creator_ids": CREATORS, "audience_keywords": ["cmo"]},
            "options": {"include": ["details"]},
        },
    ]
    for body in requests:
        requester.publish(body, correlation_id=f"corr-{body['request_id']}")
    replies = {r.body["request_id"]: r for r in requester.collect(4, timeout=60)}
    assert set(replies) == {"tl-1", "en-1", "cm-1", "am-1"}
    for request_id, reply in replies.items():
        assert reply.body["status"] == "succeeded", reply.body
        assert reply.body["error"] is None
        assert reply.properties.message_id == f"{request_id}:reply"
        assert reply.properties.correlation_id == f"corr-{request_id}"
        assert reply.headers["x-status"] == "succeeded"
        assert reply.body["api_calls"] >= 1
    assert len(replies["tl-1"].body["result"]["job"]["results"]) <= 3
    assert "posts" in replies["cm-1"].body["result"]
    assert "details" in replies["am-1"].body["result"]
    stats = sim.admin.stats()
    assert stats["wrong_format_ids"] == 0
    assert abs(sum(r.body["api_calls"] for r in replies.values()) - stats["calls_total"]) < 0.01
