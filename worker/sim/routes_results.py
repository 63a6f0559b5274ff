"""Results routes: enrichment results and the four content/audience match result routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from worker.sim import views
from worker.sim.core import sim_of
from worker.sim.envelope import Reply, read_object, validation_error
from worker.sim.holds import hold
from worker.sim.jobs import (
    AUDIENCE_MATCH,
    CONTENT_MATCH,
    NON_TERMINAL,
    PREFIXES,
    TERMINAL,
    Job,
    is_plain_uuid,
)
from worker.sim.params import opt_choice, opt_int, opt_str, require_selection, select_creators, wait_seconds
from worker.sim.state import SimState


# --- enrichment ----------------------------------------------------------------------------
def _enrichment_status(state: SimState, creator_id: str) -> tuple[str, str | None]:
    """(status, enriched_at) of a creator the simulator knows."""
    enriched = state.enriched_at(creator_id)
    if enriched is not None:
        return "succeeded", state.clock.iso(enriched)
    jobs = state.enrichment_jobs(creator_id)
    if jobs:
        return state.status(jobs[-1]), None
    if state.knobs(creator_id).missing_profile:
        return "failed", None
    return "not_enriched", None


def _pending_enrichments(state: SimState, creators: list[str]) -> list[Job]:
    pending = []
    for creator_id in creators:
        jobs = state.enrichment_jobs(creator_id)
        if jobs and state.enriched_at(creator_id) is None and state.status(jobs[-1]) in NON_TERMINAL:
            pending.append(jobs[-1])
    return pending


async def enrichment_results(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    selection = require_selection(state, body)
    detail = opt_choice(body, "detail_level", "summary", ("summary", "full"))
    wait = wait_seconds(body)
    known = [c for c in selection.creator_ids if state.is_known_creator(c)]
    await hold(state, wait, lambda: _pending_enrichments(state, known))
    entries, expired = [], []
    for creator_id in known:
        status, enriched_at = _enrichment_status(state, creator_id)
        if status == "expired":
            expired.append(creator_id)
        else:
            entries.append(views.enrichment_entry(creator_id, status, enriched_at))
    data: dict[str, Any] = {
        "creators_requested": len(selection.creator_ids),
        "completed": sum(1 for e in entries if e["status"] == "succeeded"),
        "pending": sum(1 for e in entries if e["status"] in NON_TERMINAL),
        "selection": selection.to_json(),
        "results_summary": entries,
        "not_found_ids": [c for c in selection.creator_ids if c not in known],
        "expired_ids": expired,
    }
    if detail == "full":
        data["results"] = [views.enrichment_full(entry) for entry in entries]
    return Reply(data, meta={"detail_level": detail, "wait_seconds": wait})


# --- match routes --------------------------------------------------------------------------
@dataclass
class _Picked:
    """The jobs a match results call selected, by job ids or by creators."""

    selection: dict[str, Any]
    requested_count: int
    found: list[tuple[str, Job]] = field(default_factory=list)
    not_found_ids: list[str] = field(default_factory=list)
    creator_mode: bool = False

    def pending(self, state: SimState) -> list[Job]:
        return [job for _, job in self.found if state.status(job) not in TERMINAL]

    def split(self, state: SimState) -> tuple[list[tuple[str, Job]], list[str]]:
        """(live items, ids of expired ones)."""
        live = [(given, job) for given, job in self.found if state.status(job) != "expired"]
        expired = [given for given, job in self.found if state.status(job) == "expired"]
        return live, expired

    def header(self, live: list[tuple[str, Job]], expired: list[str]) -> dict[str, Any]:
        data: dict[str, Any] = {
            "selection": self.selection,
            "requested_count": self.requested_count,
            "found_count": len(live),
            "not_found_ids": self.not_found_ids,
            "expired_ids": expired,
        }
        if self.creator_mode:
            data["creators_requested"] = self.requested_count
            data["missing_creator_ids"] = list(self.not_found_ids)
        return data


def _job_by_id(state: SimState, kind: str, given: str) -> Job | None:
    prefix = PREFIXES[kind]
    bare = given[len(prefix) :] if given.startswith(prefix) else given
    if not is_plain_uuid(bare):
        return None
    job = state.jobs.get(bare.lower())
    return job if job is not None and job.kind == kind else None


def _pick(state: SimState, body: dict[str, Any], kind: str) -> _Picked:
    job_ids = body.get("job_ids")
    if job_ids is None and body.get("job_id") is not None:
        job_ids, source = [body["job_id"]], "job_id"
    else:
        source = "job_ids"
    if job_ids is not None:
        if not isinstance(job_ids, list) or not job_ids or not all(isinstance(j, str) for j in job_ids):
            raise validation_error("`job_id` must be a string and `job_ids` a non-empty array of strings.")
        unique = list(dict.fromkeys(job_ids))
        picked = _Picked({"source": source, "selected_count": len(unique)}, len(job_ids))
        for given in unique:
            job = _job_by_id(state, kind, given)
            if job is None:
                picked.not_found_ids.append(given)
            else:
                picked.found.append((given, job))
        return picked
    selection = select_creators(state, body)
    if selection is None:
        raise validation_error("Provide `job_id`, `job_ids`, `creator_ids`, `result_set_id` or `result_set_ids`.")
    campaign_id = opt_str(body, "campaign_id")
    picked = _Picked(selection.to_json(), len(selection.creator_ids), creator_mode=True)
    for creator_id in selection.creator_ids:
        job = state.latest_analysis(kind, creator_id, campaign_id)
        if job is None:
            picked.not_found_ids.append(creator_id)
        else:
            picked.found.append((creator_id, job))
    return picked


async def _match_call(
    request: web.Request, kind: str, build: Callable[[SimState, dict[str, Any], _Picked], dict[str, Any]]
) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    picked = _pick(state, body, kind)
    detail = opt_choice(body, "detail_level", "summary", ("summary", "full"))
    wait = wait_seconds(body)
    opt_int(body, "posts_limit_per_creator", 3, 1, 10)  # checked before holding, used by the builder
    opt_int(body, "engagers_limit", 5, 1, 30)
    await hold(state, wait, lambda: picked.pending(state))
    data = build(state, body, picked)
    return Reply(data, meta={"detail_level": detail, "wait_seconds": wait})


def _content_results(state: SimState, body: dict[str, Any], picked: _Picked) -> dict[str, Any]:
    live, expired = picked.split(state)
    data = {
        **picked.header(live, expired),
        "results_summary": [views.content_entry(state, j) for _, j in live],
    }
    if body.get("detail_level") == "full":
        data["results"] = [views.content_full(state, job) for _, job in live]
    return data


def _content_posts(state: SimState, body: dict[str, Any], picked: _Picked) -> dict[str, Any]:
    limit = opt_int(body, "posts_limit_per_creator", 3, 1, 10)
    live, expired = picked.split(state)
    source = "creator_id" if picked.creator_mode else "job_id"
    results = [views.content_posts(state, job, f"{source} {given}", limit) for given, job in live]
    return {
        **picked.header(live, expired),
        "detail_level": body.get("detail_level", "summary"),
        "posts_limit_per_creator": limit,
        "results": results,
    }


def _audience_results(state: SimState, body: dict[str, Any], picked: _Picked) -> dict[str, Any]:
    live, expired = picked.split(state)
    data = {
        **picked.header(live, expired),
        "results_summary": [views.audience_entry(state, j) for _, j in live],
    }
    if body.get("detail_level") == "full":
        data["results"] = [views.audience_full(state, job) for _, job in live]
    return data


def _audience_details(state: SimState, body: dict[str, Any], picked: _Picked) -> dict[str, Any]:
    limit = opt_int(body, "engagers_limit", 5, 1, 30)
    live, expired = picked.split(state)
    return {
        **picked.header(live, expired),
        "detail_level": body.get("detail_level", "summary"),
        "engagers_limit": limit,
        "results": [views.audience_details(state, job, limit) for _, job in live],
    }


async def content_results(request: web.Request) -> Reply:
    return await _match_call(request, CONTENT_MATCH, _content_results)


async def content_posts(request: web.Request) -> Reply:
    return await _match_call(request, CONTENT_MATCH, _content_posts)


async def audience_results(request: web.Request) -> Reply:
    return await _match_call(request, AUDIENCE_MATCH, _audience_results)


async def audience_details(request: web.Request) -> Reply:
    return await _match_call(request, AUDIENCE_MATCH, _audience_details)
