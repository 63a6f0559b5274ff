"""The per-family rules against the simulator over real HTTP: ids, selectors, shared-response filtering.

Several requests of one family are started, then polled together in the coalesced calls the worker
makes; each request's share of the shared responses must hold exactly its own items, with counts
recomputed, and no prefixed id may ever reach /v1/jobs/*.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest

from worker.api.client import TokstaClient
from worker.contract.models import Kind
from worker.families import (
    RULES,
    Item,
    Work,
    bare_id,
    is_plain_uuid,
    may_resend_unconfirmed,
    rules_for,
    summarize,
)
from worker.sim.testing import SimulatorProcess

KEYWORDS = ["B2B SaaS", "demand generation", "marketing analytics", "growth", "ABM"]


def creators(n: int) -> list[str]:
    return [str(uuid.uuid4()) for _ in range(n)]


def params_for(kind: Kind, ids: list[str]) -> dict[str, Any]:
    if kind is Kind.THOUGHT_LEADERS:
        return {"keywords": [*KEYWORDS, uuid.uuid4().hex]}
    if kind is Kind.ENRICHMENT:
        return {"creator_ids": ids}
    if kind is Kind.CONTENT_MATCH:
        return {"creator_ids": ids, "topic_keywords": ["devex"]}
    return {"creator_ids": ids, "target_audience_criteria": ["VP Marketing"]}


def start(client: TokstaClient, kind: Kind, ids: list[str], options: dict[str, Any] | None = None) -> Work:
    rules = rules_for(kind)
    params = params_for(kind, ids)
    outcome = rules.read_start(rules.start(client, params), params)
    return Work(
        key=f"req-{uuid.uuid4().hex[:8]}",
        kind=kind,
        params=params,
        options=options or {},
        job_ids=outcome.job_ids,
        items=outcome.items,
        selector=outcome.selector,
    )


def poll_until_terminal(client: TokstaClient, works: list[Work], deadline: float = 30.0) -> dict[str, dict[str, Any]]:
    """Poll all works together (one call per group), as a tick does, until none is pending."""
    rules = rules_for(works[0].kind)
    payloads: dict[str, dict[str, Any]] = {}
    end = time.monotonic() + deadline
    while any(w.pending() for w in works):
        assert time.monotonic() < end, "jobs did not finish"
        groups: dict[tuple[Any, ...], list[Work]] = {}
        for work in works:
            groups.setdefault(rules.poll_group(work), []).append(work)
        for batch in groups.values():
            response = rules.poll(client, batch, wait_seconds=2)
            read_of = rules.poll_reader(response.data)
            for work in batch:
                read = read_of(work)
                work.items = read.items
                if read.payload is not None:
                    payloads[work.key] = read.payload
    return payloads


@pytest.mark.parametrize("kind", [Kind.ENRICHMENT, Kind.CONTENT_MATCH, Kind.AUDIENCE_MATCH])
def test_shared_poll_response_is_filtered_to_each_request(
    client: TokstaClient, family_sim: SimulatorProcess, kind: Kind
) -> None:
    works = [start(client, kind, creators(n)) for n in (1, 2, 3)]
    before = family_sim.admin.stats()["calls"].get(rules_for(kind).poll_route, 0)
    payloads = poll_until_terminal(client, works)
    after = family_sim.admin.stats()["calls"].get(rules_for(kind).poll_route, 0)
    rounds = after - before
    assert rounds >= 1
    for work in works:
        payload = payloads[work.key]
        mine = {bare_id(j) for j in work.selector.get("job_ids", [])} or set(work.selector.get("creator_ids", []))
        key = "job_id" if "job_ids" in work.selector else "creator_id"
        entries = payload.get("results_summary", [])
        seen = {bare_id(e[key]) if key == "job_id" else e[key] for e in entries}
        assert seen == mine, f"{kind}: {work.key} saw {seen}, owns {mine}"
        if "requested_count" in payload:
            assert payload["requested_count"] == len(mine)
            assert payload["found_count"] == len(mine)
        if "creators_requested" in payload:
            assert payload["creators_requested"] == len(mine)
            assert payload["pending"] == 0
            assert payload["completed"] == len(mine)
        assert payload["selection"]["selected_count"] == len(mine)
        assert summarize(work.items).status == "succeeded"


def test_one_round_polls_every_request_of_a_family_in_one_call(
    client: TokstaClient, family_sim: SimulatorProcess
) -> None:
    works = [start(client, Kind.CONTENT_MATCH, creators(2)) for _ in range(5)]
    rules = rules_for(Kind.CONTENT_MATCH)
    before = family_sim.admin.stats()["calls"].get(rules.poll_route, 0)
    rules.poll(client, works, wait_seconds=0)
    assert family_sim.admin.stats()["calls"][rules.poll_route] == before + 1


def test_thought_leaders_ids_are_plain_and_bulk_is_split_at_twenty(
    client: TokstaClient, family_sim: SimulatorProcess
) -> None:
    works = [start(client, Kind.THOUGHT_LEADERS, [], {"results_limit": 2}) for _ in range(3)]
    for work in works:
        assert len(work.job_ids) == 1 and is_plain_uuid(work.job_ids[0])
    payloads = poll_until_terminal(client, works)
    for work in works:
        job = payloads[work.key]["job"]
        assert job["job_id"] == work.job_ids[0]
        assert len(job["results"]) <= 2
    assert family_sim.admin.stats()["wrong_format_ids"] == 0
    assert RULES[Kind.THOUGHT_LEADERS].batch_limit == 20


def test_no_rule_ever_sends_a_prefixed_id_to_the_jobs_routes(
    client: TokstaClient, family_sim: SimulatorProcess
) -> None:
    """Start and poll every family together; the simulator counts prefixed ids on /v1/jobs/*."""
    by_kind = {kind: [start(client, kind, creators(2)) for _ in range(2)] for kind in RULES}
    for works in by_kind.values():
        poll_until_terminal(client, works)
    for work in by_kind[Kind.CONTENT_MATCH] + by_kind[Kind.AUDIENCE_MATCH]:
        assert all(j.startswith(rules_for(work.kind).job_id_prefix) for j in work.job_ids)
    for work in by_kind[Kind.ENRICHMENT]:
        assert all(j.startswith("enrichment:") for j in work.job_ids)
    assert family_sim.admin.stats()["wrong_format_ids"] == 0


def test_include_followups_are_filtered_too(client: TokstaClient) -> None:
    works = [start(client, Kind.CONTENT_MATCH, creators(2), {"include": ["posts"]}) for _ in range(2)]
    poll_until_terminal(client, works)
    rules = rules_for(Kind.CONTENT_MATCH)
    assert all(rules.wants_followup(w) for w in works)
    response = rules.followup(client, works)
    for work in works:
        extra = rules.read_followup(response.data, work)
        assert {bare_id(e["job_id"]) for e in extra["results"]} == {bare_id(j) for j in work.job_ids}
        assert extra["requested_count"] == len(work.job_ids)


def test_synchronous_enrichment_is_read_as_complete(client: TokstaClient, family_sim: SimulatorProcess) -> None:
    ids = creators(2)
    family_sim.admin.configure(creators={c: {"enriched": True} for c in ids})
    work = start(client, Kind.ENRICHMENT, ids)
    assert work.job_ids == []
    assert set(work.items) == set(ids)
    payloads = poll_until_terminal(client, [work])
    assert payloads[work.key]["pending"] == 0


def test_start_time_failures_are_failed_items(client: TokstaClient, family_sim: SimulatorProcess) -> None:
    ok, bad = creators(1)[0], creators(1)[0]
    family_sim.admin.configure(creators={bad: {"start_failure": True}})
    work = start(client, Kind.CONTENT_MATCH, [ok, bad])
    failed = [i for i in work.items.values() if i.status == "failed"]
    assert len(failed) == 1
    poll_until_terminal(client, [work])
    summary = summarize(work.items)
    assert summary.status == "failed" and summary.code == "JOB_FAILED"
    assert summary.counts == {"succeeded": 1, "failed": 1, "expired": 0, "canceled": 0}


def test_missing_linkedin_profiles_fail_their_creator(client: TokstaClient, family_sim: SimulatorProcess) -> None:
    ok, missing = creators(2)
    family_sim.admin.configure(creators={missing: {"missing_profile": True}})
    work = start(client, Kind.ENRICHMENT, [ok, missing])
    assert work.items[missing].status == "failed"
    assert work.selector["creator_ids"] == [ok]
    poll_until_terminal(client, [work])
    assert summarize(work.items).counts["succeeded"] == 1


def test_summary_severity_order() -> None:
    items = {"a": Item("succeeded"), "b": Item("expired", "gone"), "c": Item("canceled")}
    summary = summarize(items)
    assert (summary.status, summary.code, summary.message) == ("expired", "JOB_EXPIRED", "gone")
    # The first non-succeeded item has no message: a short description instead.
    assert summarize({"x": Item("canceled"), "y": Item("expired", "gone")}).message == "1 of 2 item(s) expired"
    items["d"] = Item("failed", "boom")
    assert summarize(items).status == "failed"
    assert summarize({"a": Item("succeeded")}).code is None


def test_resend_policy_is_off_by_default() -> None:
    for kind in RULES:
        assert not may_resend_unconfirmed(kind, frozenset())
    assert may_resend_unconfirmed(Kind.ENRICHMENT, frozenset({"enrichment"}))
