"""Shared start calls against the simulator over real HTTP: one call for several requests, split back.

Requests whose start bodies differ only in `creator_ids` share one start call; each request's
outcome must hold exactly its own jobs, failures and missing profiles, its credits must be its
share of the call's, and a payload that cannot be split must be refused rather than guessed at.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

import pytest

from tests.families.test_families import creators, params_for, poll_until_terminal
from worker.api.client import TokstaClient
from worker.contract.models import Kind
from worker.families import MalformedPayload, Work, bare_id, rules_for, summarize
from worker.runtime.start_batches import start_groups
from worker.sim.testing import SimulatorProcess

SHARED_KINDS = [Kind.ENRICHMENT, Kind.CONTENT_MATCH, Kind.AUDIENCE_MATCH]


def start_shared(client: TokstaClient, kind: Kind, groups: list[list[str]]) -> tuple[list[Work], Any]:
    rules = rules_for(kind)
    params_list = [params_for(kind, ids) for ids in groups]
    response = rules.start(client, rules.shared_params(params_list))
    outcomes = rules.read_shared_start(response, params_list)
    works = [
        Work(f"req-{i}", kind, p, {}, o.job_ids, o.items, o.selector)
        for i, (p, o) in enumerate(zip(params_list, outcomes, strict=True))
    ]
    return works, outcomes


@pytest.mark.parametrize("kind", SHARED_KINDS)
def test_one_call_starts_several_requests_and_each_keeps_its_own(
    client: TokstaClient, family_sim: SimulatorProcess, kind: Kind
) -> None:
    groups = [creators(1), creators(2), creators(3)]
    works, outcomes = start_shared(client, kind, groups)
    assert family_sim.admin.stats()["calls"][rules_for(kind).start_route] == 1
    assert family_sim.admin.stats()["jobs_created"] == 6
    seen: set[str] = set()
    for work, ids in zip(works, groups, strict=True):
        assert len(work.job_ids) == len(ids)
        assert not seen & set(work.job_ids), "a job given to two requests"
        seen |= set(work.job_ids)
        if kind is Kind.ENRICHMENT:
            assert set(work.items) == set(ids)
        else:
            assert set(work.selector["job_ids"]) == set(work.job_ids)
    # Credits are split by billable jobs: 1 per profile, 3 per content analysis, 10 per audience one.
    rate = {Kind.ENRICHMENT: 1, Kind.CONTENT_MATCH: 3, Kind.AUDIENCE_MATCH: 10}[kind]
    assert [o.credits for o in outcomes] == [rate * len(ids) for ids in groups]
    payloads = poll_until_terminal(client, works)
    for work, ids in zip(works, groups, strict=True):
        entries = payloads[work.key]["results_summary"]
        assert {e["creator_id"] for e in entries} == set(ids)
        assert summarize(work.items).status == "succeeded"


def test_failures_and_missing_profiles_land_on_their_own_request(
    client: TokstaClient, family_sim: SimulatorProcess
) -> None:
    ok, bad = creators(2)
    family_sim.admin.configure(creators={bad: {"start_failure": True}})
    works, _ = start_shared(client, Kind.CONTENT_MATCH, [[ok], [bad]])
    assert [i.status for i in works[0].items.values()] == ["pending"]
    assert [i.status for i in works[1].items.values()] == ["failed"]
    assert works[1].job_ids == []

    fine, missing = creators(2)
    family_sim.admin.configure(creators={missing: {"missing_profile": True}})
    works, _ = start_shared(client, Kind.ENRICHMENT, [[fine], [missing]])
    assert works[0].items[fine].status == "pending" and works[0].selector["creator_ids"] == [fine]
    assert works[1].items[missing].status == "failed" and works[1].selector["creator_ids"] == []


def test_a_creator_in_two_requests_is_one_job_shared_by_both(client: TokstaClient) -> None:
    common, a, b = creators(3)
    works, outcomes = start_shared(client, Kind.CONTENT_MATCH, [[common, a], [common, b]])
    common_jobs = set(works[0].job_ids) & set(works[1].job_ids)
    assert len(common_jobs) == 1
    assert outcomes[0].credits == outcomes[1].credits == 4.5  # 3 jobs x 3 credits, the shared one halved
    payloads = poll_until_terminal(client, works)
    for work in works:
        assert {bare_id(e["job_id"]) for e in payloads[work.key]["results_summary"]} == {
            bare_id(j) for j in work.job_ids
        }


def test_upper_case_creator_ids_are_matched_to_the_api_echo(client: TokstaClient) -> None:
    ids = [c.upper() for c in creators(2)]
    works, _ = start_shared(client, Kind.AUDIENCE_MATCH, [[ids[0]], [ids[1]]])
    assert all(len(w.job_ids) == 1 for w in works)


def test_a_job_without_its_creator_cannot_be_split(client: TokstaClient) -> None:
    rules = rules_for(Kind.CONTENT_MATCH)
    params_list = [params_for(Kind.CONTENT_MATCH, creators(1)) for _ in range(2)]
    response = rules.start(client, rules.shared_params(params_list))
    jobs = [{k: v for k, v in job.items() if k != "creator_id"} for job in response.data["jobs"]]
    broken = dataclasses.replace(response, data=dict(response.data, jobs=jobs))
    with pytest.raises(MalformedPayload, match="creator_id"):
        rules.read_shared_start(broken, params_list)
    # One request alone needs no split: its own start is read as before.
    assert rules.read_shared_start(broken, params_list[:1])[0].job_ids == response.data["job_ids"]


# -- grouping (pure) ------------------------------------------------------------------------------


def row(params: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"params": params, **extra}


def test_groups_share_only_equal_criteria_and_respect_the_creator_limit() -> None:
    rules = rules_for(Kind.CONTENT_MATCH)
    dev = [(f"d{i}", row({"creator_ids": creators(20), "topic_keywords": ["devex"]})) for i in range(3)]
    other = ("o", row({"creator_ids": creators(1), "topic_keywords": ["fintech"]}))
    alone = ("a", row({"creator_ids": creators(1), "topic_keywords": ["devex"]}, start_alone=True))
    result_set = ("r", row({"result_set_id": "rs_1", "topic_keywords": ["devex"]}))
    groups = start_groups(rules, [dev[0], other, dev[1], alone, result_set, dev[2]])
    # 20 + 20 creators fit the limit of 50; the third 20 opens a new call.
    assert groups == [["d0", "d1"], ["o"], ["a"], ["r"], ["d2"]]


def test_unknown_params_keys_must_match_too() -> None:
    rules = rules_for(Kind.ENRICHMENT)
    a = ("a", row({"creator_ids": creators(1), "x_flag": 1}))
    b = ("b", row({"creator_ids": creators(1), "x_flag": 2}))
    c = ("c", row({"creator_ids": creators(1), "x_flag": 1}))
    assert start_groups(rules, [a, b, c]) == [["a", "c"], ["b"]]


def test_thought_leaders_never_share_a_start() -> None:
    rules = rules_for(Kind.THOUGHT_LEADERS)
    same = {"keywords": ["a", "b", "c", "d", "e"]}
    assert start_groups(rules, [("x", row(same)), ("y", row(same))]) == [["x"], ["y"]]


def test_shared_body_is_the_common_body_with_the_union_of_creators() -> None:
    rules = rules_for(Kind.AUDIENCE_MATCH)
    one, two, three = (str(uuid.uuid4()) for _ in range(3))
    body = rules.shared_params(
        [
            {"creator_ids": [one, two], "audience_keywords": ["cmo"], "analysis_depth": "deep_dive"},
            {"creator_ids": [two, three], "audience_keywords": ["cmo"], "analysis_depth": "deep_dive"},
        ]
    )
    assert body == {"creator_ids": [one, two, three], "audience_keywords": ["cmo"], "analysis_depth": "deep_dive"}
