"""Cutting one shared poll response into each request's part, with hand-made responses.

The poll readers index a response once per call and look each request's entries up by its ids
(`families._SharedResponse`). These responses put what a lookup could get wrong side by side:
entries of several requests interleaved, job ids echoed bare or prefixed, ids given as objects,
entries that name nobody, and fields that are not lists. Each part must be what filtering the
whole response for that request gives, in the response's order.
"""

from __future__ import annotations

from typing import Any

from worker.contract.models import Kind
from worker.families import Item, Work, bare_id, rules_for

A1, A2, B1, C1 = (f"{n}1111111-1111-4111-8111-11111111111{n}" for n in range(4))


def match_work(key: str, *bare: str) -> Work:
    job_ids = [f"content-fit:{b}" for b in bare]
    return Work(key, Kind.CONTENT_MATCH, {}, {}, job_ids, {j: Item() for j in job_ids}, {"job_ids": job_ids})


def enrichment_work(key: str, *creators: str) -> Work:
    return Work(key, Kind.ENRICHMENT, {}, {}, [], {c: Item() for c in creators}, {"creator_ids": list(creators)})


def match_response() -> dict[str, Any]:
    return {
        "results_summary": [
            {"job_id": f"content-fit:{A1}", "status": "succeeded", "score": 1},
            {"job_id": B1, "status": "failed", "error_message": "no posts"},  # echoed bare
            {"status": "succeeded"},  # names no job: nobody's
            "not an entry",
            {"job_id": A2, "status": "pending"},
            {"job_id": f"content-fit:{A1}", "status": "succeeded", "score": 2},  # a second entry of A1
        ],
        "results": {"not": "a list"},
        "not_found_ids": [f"content-fit:{C1}", {"job_id": B1}],
        "expired_ids": [],
        "requested_count": 9,
        "found_count": 9,
    }


def reference_part(data: dict[str, Any], mine: set[str]) -> dict[str, Any]:
    """The part by the definition: every entry and id of the request's own jobs, in order."""

    def owned(entry: Any) -> bool:
        return isinstance(entry, dict) and bare_id(str(entry.get("job_id", ""))) in mine

    part = dict(data)
    part["results_summary"] = [e for e in data["results_summary"] if owned(e)]
    part["not_found_ids"] = [i for i in data["not_found_ids"] if isinstance(i, str) and bare_id(i) in mine]
    part["expired_ids"] = []
    part["requested_count"] = len(mine)
    part["found_count"] = len(mine) - len(part["not_found_ids"])
    return part


def test_each_request_reads_its_own_entries_in_response_order() -> None:
    data = match_response()
    works = [match_work("a", A1, A2), match_work("b", B1), match_work("c", C1)]
    read_of = rules_for(Kind.CONTENT_MATCH).poll_reader(data)
    reads = {work.key: read_of(work) for work in works}

    for work in works:
        mine = {bare_id(j) for j in work.job_ids}
        assert reads[work.key].payload == reference_part(data, mine)
    assert [e["score"] for e in reads["a"].payload["results_summary"] if "score" in e] == [1, 2]  # type: ignore[index]
    assert reads["a"].payload["results"] == {"not": "a list"}  # type: ignore[index]
    assert {k: i.status for k, i in reads["a"].items.items()} == {
        f"content-fit:{A1}": "succeeded",
        f"content-fit:{A2}": "pending",
    }
    assert reads["b"].items[f"content-fit:{B1}"].status == "failed"  # not found (given as an object) wins
    assert reads["c"].items[f"content-fit:{C1}"].status == "failed"
    assert reads["c"].payload["found_count"] == 0  # type: ignore[index]


def test_parts_are_copies_that_share_nothing() -> None:
    data = match_response()
    read_of = rules_for(Kind.CONTENT_MATCH).poll_reader(data)
    first, again = read_of(match_work("a", A1)), read_of(match_work("a", A1))
    assert first.payload is not None and again.payload is not None
    first.payload["results_summary"][0]["score"] = 99
    assert again.payload["results_summary"][0]["score"] == 1
    assert data["results_summary"][0]["score"] == 1


def test_enrichment_entries_are_looked_up_by_creator() -> None:
    data: dict[str, Any] = {
        "results_summary": [
            {"creator_id": A1, "enriched_at": "2026-01-01T00:00:00Z"},
            {"creator_id": ["not", "an", "id"]},  # nobody's
            {"creator_id": B1},
        ],
        "results": [{"creator_id": B1, "name": "b"}, {"creator_id": A1, "name": "a"}],
        "not_found_ids": [A2],
        "expired_ids": [],
        "creators_requested": 9,
        "pending": 9,
        "completed": 0,
    }
    read_of = rules_for(Kind.ENRICHMENT).poll_reader(data)
    a, b = read_of(enrichment_work("a", A1, A2)), read_of(enrichment_work("b", B1))

    assert a.payload is not None and b.payload is not None
    assert a.payload["results_summary"] == [data["results_summary"][0]]
    assert a.payload["results"] == [{"creator_id": A1, "name": "a"}]
    assert a.payload["not_found_ids"] == [A2]
    assert (a.payload["creators_requested"], a.payload["pending"], a.payload["completed"]) == (2, 0, 2)
    assert {c: i.status for c, i in a.items.items()} == {A1: "succeeded", A2: "failed"}
    assert b.payload["results"] == [{"creator_id": B1, "name": "b"}]
    assert b.payload["not_found_ids"] == []
    assert (b.payload["pending"], b.items[B1].status) == (1, "pending")
