"""End to end: the outcome rows of the wire contract, one test per row.

Real RabbitMQ, the simulator over HTTP, `toksta-worker run` as a subprocess (the `worker` fixture).
Every test asserts the whole reply (status, error object, job ids exactly as the start endpoint
returned them, result, api_calls, credits, AMQP properties) and what the simulator counted.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

import httpx

from worker.ops.requester import ReceivedReply, Requester
from worker.sim.jobs import FAILURE_MESSAGE
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]
REPLY_TIMEOUT = 30.0
ZERO_COUNTS = {"succeeded": 0, "failed": 0, "expired": 0, "canceled": 0}


# -- helpers ------------------------------------------------------------------------------------


def creators(n: int) -> list[str]:
    """Fresh creator UUIDs: the simulator caches match analyses per creator, so never share them."""
    return [str(uuid.uuid4()) for _ in range(n)]


def reply_of(requester: Requester, request_id: str, timeout: float = REPLY_TIMEOUT) -> ReceivedReply:
    reply = requester.wait_for(request_id, timeout)
    assert reply is not None, f"no reply for {request_id} within {timeout} s"
    return reply


def check_envelope(reply: ReceivedReply, request_id: str, kind: str, status: str, correlation_id: str) -> None:
    """The parts every reply of a valid request shares (wire contract, Replies)."""
    body = reply.body
    assert body["request_id"] == request_id
    assert body["kind"] == kind
    assert body["status"] == status
    assert (body["error"] is None) == (status == "succeeded")
    assert reply.properties.message_id == f"{request_id}:reply"
    assert reply.properties.correlation_id == correlation_id
    assert reply.properties.type == "toksta.analysis.reply.v1"
    assert reply.properties.content_type == "application/json"
    assert reply.headers["x-status"] == status
    assert body["received_at"] <= body["finished_at"]


def job_error(code: str, message: str, counts: dict[str, int]) -> dict[str, Any]:
    """The error object of a request that ended in an API terminal state other than succeeded."""
    return {
        "code": code,
        "message": message,
        "http_status": None,
        "retryable": False,
        "toksta_request_id": None,
        "details": dict(ZERO_COUNTS, **counts),
    }


def sim_job_ids(sim: SimulatorProcess, kind: str) -> list[str]:
    """Public ids of the simulator's jobs of `kind`, in creation order (as the start returned them)."""
    return [job["id"] for job in sim.admin.jobs() if job["kind"] == kind]


def direct(sim: SimulatorProcess, path: str, body: dict[str, Any]) -> dict[str, Any]:
    """What the API itself answers to one results call (made after the counters were read)."""
    response = httpx.post(f"{sim.base_url}{path}", json=body, headers=sim.headers(), timeout=10)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = response.json()["data"]
    return data


def wait_until(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)  # polling interval of a condition wait, not a synchronization sleep


def check_counters(sim: SimulatorProcess, replies: list[ReceivedReply]) -> dict[str, Any]:
    """No wrong-format id reached the API, and the replies' api_calls add up to the calls made."""
    stats = sim.admin.stats()
    assert stats["wrong_format_ids"] == 0
    assert stats["duplicate_starts"] == 0
    assert abs(sum(r.body["api_calls"] for r in replies) - stats["calls_total"]) < 0.01
    return stats


# -- every kind succeeding ----------------------------------------------------------------------


def test_thought_leaders_succeed_with_rows_cut_to_results_limit(requester: Requester, sim: SimulatorProcess) -> None:
    requester.publish(
        {
            "request_id": "tl-ok",
            "kind": "thought_leaders",
            "params": {"keywords": KEYWORDS, "count": 20},
            "options": {"results_limit": 3},
        },
        correlation_id="corr-tl-ok",
    )
    reply = reply_of(requester, "tl-ok")
    check_envelope(reply, "tl-ok", "thought_leaders", "succeeded", "corr-tl-ok")
    body = reply.body
    assert body["job_ids"] == sim_job_ids(sim, "thought_leaders")
    assert len(body["job_ids"]) == 1
    job_id = body["job_ids"][0]
    [sim_job] = sim.admin.jobs()
    assert body["credits"] == sim_job["credits_reserved"] == 200  # 100 candidates x 2 (balanced)
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 1
    assert stats["calls"]["POST /v1/creators/thought-leaders"] == 1
    assert body["api_calls"] == stats["calls_total"]
    job = body["result"]["job"]
    assert set(body["result"]) == {"job"}
    assert job["job_id"] == job_id
    assert job["status"] == "succeeded"
    assert job["result_count"] > 3
    assert len(job["results"]) == 3
    assert job == direct(sim, "/v1/jobs/results:bulk", {"job_ids": [job_id], "limit": 3})["jobs"][0]


def test_enrichment_polled_after_202(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(3)
    requester.publish({"request_id": "en-poll", "kind": "enrichment", "params": {"creator_ids": ids}})
    reply = reply_of(requester, "en-poll")
    check_envelope(reply, "en-poll", "enrichment", "succeeded", "en-poll")
    body = reply.body
    assert body["job_ids"] == [f"enrichment:{c}" for c in ids] == sim_job_ids(sim, "enrichment")
    assert body["credits"] == 3
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 3
    assert stats["calls"]["POST /v1/creators/enrich"] == 1
    assert stats["calls"]["POST /v1/enrichments/results"] >= 1
    assert body["api_calls"] == stats["calls_total"]
    result = body["result"]
    assert [e["creator_id"] for e in result["results_summary"]] == ids
    assert all(e["status"] == "succeeded" for e in result["results_summary"])
    assert (result["completed"], result["pending"], result["not_found_ids"], result["expired_ids"]) == (3, 0, [], [])
    assert "results" not in result  # no detail_level asked: the API's summary shape, nothing added
    assert result == direct(sim, "/v1/enrichments/results", {"creator_ids": ids})


def test_enrichment_synchronous_200_still_fetches_the_result(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(2)
    sim.admin.configure(creators={c: {"enriched": True} for c in ids})
    requester.publish(
        {
            "request_id": "en-sync",
            "kind": "enrichment",
            "params": {"creator_ids": ids},
            "options": {"detail_level": "full"},
        }
    )
    reply = reply_of(requester, "en-sync")
    check_envelope(reply, "en-sync", "enrichment", "succeeded", "en-sync")
    body = reply.body
    assert body["job_ids"] == []  # a 200 start creates no job
    assert body["credits"] == 0  # X-Toksta-Credit-Cost: 0
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 0
    assert stats["calls"] == {"POST /v1/creators/enrich": 1, "POST /v1/enrichments/results": 1}
    assert body["api_calls"] == 2
    result = body["result"]
    assert [e["creator_id"] for e in result["results"]] == ids
    assert all(e["status"] == "succeeded" and e["enriched_at"] for e in result["results_summary"])
    assert result == direct(sim, "/v1/enrichments/results", {"creator_ids": ids, "detail_level": "full"})


def test_content_match_over_several_creators_with_posts(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(3)
    requester.publish(
        {
            "request_id": "cm-ok",
            "kind": "content_match",
            "params": {"creator_ids": ids, "topic_keywords": ["devex", "platform engineering"]},
            "options": {"include": ["posts"]},
        },
        correlation_id="corr-cm",
    )
    reply = reply_of(requester, "cm-ok")
    check_envelope(reply, "cm-ok", "content_match", "succeeded", "corr-cm")
    body = reply.body
    assert body["job_ids"] == sim_job_ids(sim, "content_match")
    assert len(body["job_ids"]) == 3 and all(j.startswith("content-fit:") for j in body["job_ids"])
    assert body["credits"] == 9  # 3 creators x 3 credits (10 posts)
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 3
    assert stats["calls"]["POST /v1/creators/content-match"] == 1
    assert stats["calls"]["POST /v1/content-match/posts"] == 1
    result = dict(body["result"])
    posts = result.pop("posts")
    assert [e["job_id"] for e in result["results_summary"]] == body["job_ids"]
    assert all(e["status"] == "succeeded" for e in result["results_summary"])
    assert sorted(p["job_id"] for p in posts["results"]) == sorted(body["job_ids"])
    assert result == direct(sim, "/v1/content-match/results", {"job_ids": body["job_ids"]})
    assert posts == direct(sim, "/v1/content-match/posts", {"job_ids": body["job_ids"]})


def test_audience_match_with_details_and_full_detail_level(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(2)
    requester.publish(
        {
            "request_id": "am-ok",
            "kind": "audience_match",
            "params": {"creator_ids": ids, "audience_keywords": ["cmo", "vp marketing"]},
            "options": {"include": ["details"], "detail_level": "full"},
        }
    )
    reply = reply_of(requester, "am-ok")
    check_envelope(reply, "am-ok", "audience_match", "succeeded", "am-ok")
    body = reply.body
    assert body["job_ids"] == sim_job_ids(sim, "audience_match")
    assert len(body["job_ids"]) == 2 and all(j.startswith("audience-fit:") for j in body["job_ids"])
    assert body["credits"] == 20  # 2 creators x 10 credits (quick_scan)
    stats = check_counters(sim, [reply])
    assert stats["calls"]["POST /v1/creators/audience-match"] == 1
    assert stats["calls"]["POST /v1/audience-match/details"] == 1
    result = dict(body["result"])
    details = result.pop("details")
    assert [e["job_id"] for e in result["results"]] == body["job_ids"]  # `full` adds `results`
    assert all(e["analysis_depth"] == "quick_scan" for e in result["results"])
    query = {"job_ids": body["job_ids"], "detail_level": "full"}
    assert result == direct(sim, "/v1/audience-match/results", query)
    assert details == direct(sim, "/v1/audience-match/details", query)
    assert details["detail_level"] == "full"


# -- terminal states other than succeeded --------------------------------------------------------


def test_failed_job_is_job_failed(requester: Requester, sim: SimulatorProcess) -> None:
    requester.publish(
        {
            "request_id": "tl-failed",
            "kind": "thought_leaders",
            "params": {"keywords": [*KEYWORDS, "sim:outcome=failed"]},
        }
    )
    reply = reply_of(requester, "tl-failed")
    check_envelope(reply, "tl-failed", "thought_leaders", "failed", "tl-failed")
    body = reply.body
    assert body["error"] == job_error("JOB_FAILED", FAILURE_MESSAGE, {"failed": 1})
    assert body["job_ids"] == sim_job_ids(sim, "thought_leaders")
    assert body["result"]["job"]["status"] == "failed"
    assert body["result"]["job"]["error_message"] == FAILURE_MESSAGE
    assert body["credits"] == 200
    stats = check_counters(sim, [reply])
    assert stats["jobs_created"] == 1


def test_expired_job_is_job_expired(requester: Requester, sim: SimulatorProcess) -> None:
    requester.publish(
        {
            "request_id": "tl-expired",
            "kind": "thought_leaders",
            "params": {"keywords": [*KEYWORDS, "sim:outcome=expired"]},
        }
    )
    reply = reply_of(requester, "tl-expired")
    check_envelope(reply, "tl-expired", "thought_leaders", "expired", "tl-expired")
    error = reply.body["error"]
    assert error["code"] == "JOB_EXPIRED"
    assert isinstance(error["message"], str) and error["message"]  # the API gives no error_message here
    assert error == job_error("JOB_EXPIRED", error["message"], {"expired": 1})
    assert reply.body["job_ids"] == sim_job_ids(sim, "thought_leaders")
    assert reply.body["result"]["job"]["status"] == "expired"
    check_counters(sim, [reply])


def test_mixed_request_with_one_failed_item_fails(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(3)
    sim.admin.configure(creators={ids[1]: {"outcome": "failed"}})
    requester.publish(
        {
            "request_id": "cm-mixed",
            "kind": "content_match",
            "params": {"creator_ids": ids, "topic_keywords": ["devex"]},
            "options": {"include": ["posts"]},
        }
    )
    reply = reply_of(requester, "cm-mixed")
    check_envelope(reply, "cm-mixed", "content_match", "failed", "cm-mixed")
    body = reply.body
    assert body["error"] == job_error("JOB_FAILED", FAILURE_MESSAGE, {"succeeded": 2, "failed": 1})
    assert body["job_ids"] == sim_job_ids(sim, "content_match")
    assert len(body["job_ids"]) == 3
    summary = {e["creator_id"]: e["status"] for e in body["result"]["results_summary"]}
    assert summary == {ids[0]: "succeeded", ids[1]: "failed", ids[2]: "succeeded"}
    failed_job = body["job_ids"][1]
    posts = body["result"]["posts"]["results"]  # fetched for succeeded items only
    assert sorted(p["job_id"] for p in posts) == sorted(j for j in body["job_ids"] if j != failed_job)
    check_counters(sim, [reply])


def test_start_time_failures_count_as_failed_items(requester: Requester, sim: SimulatorProcess) -> None:
    match_ids, enrich_ids = creators(3), creators(3)
    sim.admin.configure(
        creators={match_ids[0]: {"start_failure": True}, enrich_ids[0]: {"missing_profile": True}},
    )
    requester.publish(
        {
            "request_id": "cm-startfail",
            "kind": "content_match",
            "params": {"creator_ids": match_ids, "keywords": ["devex"]},
        }
    )
    requester.publish({"request_id": "en-missing", "kind": "enrichment", "params": {"creator_ids": enrich_ids}})
    match, enrich = reply_of(requester, "cm-startfail"), reply_of(requester, "en-missing")

    check_envelope(match, "cm-startfail", "content_match", "failed", "cm-startfail")
    message = "Could not start content analysis for this creator."  # the start response's failures[].message
    assert match.body["error"] == job_error("JOB_FAILED", message, {"succeeded": 2, "failed": 1})
    assert match.body["job_ids"] == sim_job_ids(sim, "content_match")
    assert len(match.body["job_ids"]) == 2
    assert match.body["credits"] == 6  # the failed creator costs nothing

    check_envelope(enrich, "en-missing", "enrichment", "failed", "en-missing")
    error = enrich.body["error"]
    assert isinstance(error["message"], str) and error["message"]
    assert error == job_error("JOB_FAILED", error["message"], {"succeeded": 2, "failed": 1})
    assert enrich.body["job_ids"] == [f"enrichment:{c}" for c in enrich_ids[1:]]
    assert enrich.body["credits"] == 2
    stats = check_counters(sim, [match, enrich])
    assert stats["jobs_created"] == 4


def test_not_found_ids_fail_their_items(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(2)
    requester.publish(
        {
            "request_id": "cm-gone",
            "kind": "content_match",
            "params": {"creator_ids": ids, "topic_keywords": ["devex", "sim:duration=300"]},
        }
    )
    wait_until(lambda: len(sim.admin.jobs()) == 2, 15, "the two analyses to start")
    started = sim_job_ids(sim, "content_match")
    sim.admin.reset()  # the API forgets the analyses: the next poll reports them in not_found_ids
    reply = reply_of(requester, "cm-gone")
    check_envelope(reply, "cm-gone", "content_match", "failed", "cm-gone")
    body = reply.body
    assert body["job_ids"] == started
    assert body["error"]["code"] == "JOB_FAILED"
    assert body["error"]["details"] == dict(ZERO_COUNTS, failed=2)
    assert body["result"]["not_found_ids"] == started
    assert body["result"]["results_summary"] == []
    assert (body["result"]["requested_count"], body["result"]["found_count"]) == (2, 0)
    assert sim.admin.stats()["wrong_format_ids"] == 0


# -- validation and credits ---------------------------------------------------------------------


def test_invalid_params_are_caught_before_any_call(requester: Requester, sim: SimulatorProcess) -> None:
    cases = {
        "bad-tl": ("thought_leaders", {"keywords": KEYWORDS[:4]}, "params.keywords"),
        "bad-en": ("enrichment", {"creator_ids": creators(1), "result_set_id": "rs-1"}, "params"),
        "bad-cm": ("content_match", {"creator_ids": creators(1)}, "params"),
        "bad-am": ("audience_match", {"creator_ids": creators(1), "analysis_depth": "deep_dive"}, "params"),
    }
    raws: dict[str, bytes] = {}
    for request_id, (kind, params, _) in cases.items():
        raws[request_id] = json.dumps({"request_id": request_id, "kind": kind, "params": params}).encode()
        requester.publish(raws[request_id], correlation_id=f"corr-{request_id}")
    replies = {r.body["request_id"]: r for r in requester.collect(len(cases), timeout=REPLY_TIMEOUT)}
    assert set(replies) == set(cases)
    for request_id, (kind, _, path) in cases.items():
        reply = replies[request_id]
        assert reply.body["kind"] == kind
        assert reply.body["status"] == "error"
        assert reply.headers["x-status"] == "error"
        assert reply.properties.message_id == f"invalid:{hashlib.sha256(raws[request_id]).hexdigest()[:32]}"
        assert reply.properties.correlation_id == f"corr-{request_id}"
        error = reply.body["error"]
        assert (error["code"], error["retryable"], error["http_status"]) == ("INVALID_REQUEST", False, None)
        assert [e["path"] for e in error["details"]["errors"]] == [path]
        assert (reply.body["job_ids"], reply.body["api_calls"], reply.body["credits"]) == ([], 0, None)
    assert sim.admin.stats()["calls_total"] == 0


def test_credits_are_what_the_start_call_reported(requester: Requester, sim: SimulatorProcess) -> None:
    ids = creators(2)
    requests = {
        "cr-tl": ("thought_leaders", {"keywords": KEYWORDS, "mode": "strict", "max_candidates_to_analyze": 20}),
        "cr-en": ("enrichment", {"creator_ids": ids}),
        "cr-cm": ("content_match", {"creator_ids": ids, "topic_keywords": ["devex"], "posts_to_analyze": 20}),
        "cr-am": ("audience_match", {"creator_ids": ids, "campaign_brief": "CMOs", "analysis_depth": "deep_dive"}),
    }
    for request_id, (kind, params) in requests.items():
        requester.publish({"request_id": request_id, "kind": kind, "params": params})
    replies = {rid: reply_of(requester, rid) for rid in requests}
    for request_id, (kind, _) in requests.items():
        check_envelope(replies[request_id], request_id, kind, "succeeded", request_id)
    credits = {rid: r.body["credits"] for rid, r in replies.items()}
    # thought leaders: the reservation (20 candidates x 3, strict), before the refund of the unused part
    assert credits == {"cr-tl": 60, "cr-en": 2, "cr-cm": 10, "cr-am": 40}
    stats = check_counters(sim, list(replies.values()))
    [tl_job] = [j for j in sim.admin.jobs() if j["kind"] == "thought_leaders"]
    assert tl_job["credits_reserved"] == 60
    assert stats["credits_balance"] == 100_000 - tl_job["credits_charged"] - 2 - 10 - 40
