"""Start routes: thought leaders, enrichment, content match, audience match."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from worker.sim import fakedata
from worker.sim.core import sim_of
from worker.sim.discovery import MODE_RATES
from worker.sim.envelope import ApiError, Reply, read_object, validation_error
from worker.sim.jobs import AUDIENCE_MATCH, CONTENT_MATCH, ENRICHMENT, THOUGHT_LEADERS, Job
from worker.sim.params import Selection, opt_choice, opt_int, opt_str, opt_str_list, require_selection
from worker.sim.state import SimState, parse_overrides
from worker.sim.stats import body_sha256

POSTS_COST = {10: 3, 20: 5, 30: 8}
DEPTH_COST = {"quick_scan": 10, "deep_dive": 20, "comprehensive": 30}
START_MESSAGES = {
    CONTENT_MATCH: "Content analysis started. This may take a minute.",
    AUDIENCE_MATCH: "Audience analysis started. This may take a few minutes.",
}
CACHED_MESSAGE = "Existing analysis returned from cache."


def _cost_header(cost: int) -> dict[str, str]:
    return {"X-Toksta-Credit-Cost": str(cost)}


def _ensure_credits(state: SimState, cost: int) -> None:
    if cost > state.balance:
        raise ApiError(
            402,
            "INSUFFICIENT_CREDITS",
            "Insufficient credits for this operation.",
            {"required": cost, "remaining": state.balance},
        )


async def thought_leaders(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    keywords = body.get("keywords")
    if not isinstance(keywords, list) or len(keywords) < 5 or not all(isinstance(k, str) for k in keywords):
        raise validation_error("`keywords` must be an array of at least 5 strings.", field="keywords")
    count = opt_int(body, "count", 10, 1, 100)
    mode = opt_choice(body, "mode", "balanced", tuple(MODE_RATES))
    opt_choice(body, "posts_to_analyze", 10, (10, 20, 30))
    cap = opt_int(body, "max_candidates_to_analyze", 100, 1, 200)
    cost = cap * MODE_RATES[mode]
    _ensure_credits(state, cost)
    sha = body_sha256(body)
    job = state.create_job(
        THOUGHT_LEADERS,
        body_sha=sha,
        overrides=parse_overrides(body),
        params={"count": count, "mode": mode, "max_candidates_to_analyze": cap},
        reserved=cost,
    )
    state.charge(THOUGHT_LEADERS, cost)
    state.stats.record_start(sha)
    data = {"job_id": job.uid, "job_type": "thought_leaders", "status": "queued"}
    return Reply(data, status=202, headers=_cost_header(cost))


async def enrich(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    selection = require_selection(state, body)
    state.seen.update(selection.creator_ids)
    already = [c for c in selection.creator_ids if state.enriched_at(c) is not None]
    missing = [c for c in selection.creator_ids if c not in already and state.knobs(c).missing_profile]
    todo = [c for c in selection.creator_ids if c not in already and c not in missing]
    base: dict[str, Any] = {
        "creators_requested": len(selection.creator_ids),
        "selection": selection.to_json(),
    }
    if not todo:
        data = {
            **base,
            "jobs_created": 0,
            "all_complete": True,
            "already_enriched_count": len(already),
            "missing_linkedin_profiles": missing,
            "jobs": [],
        }
        return Reply(data, status=200, headers=_cost_header(0))
    _ensure_credits(state, len(todo))
    sha = body_sha256(body)
    overrides = parse_overrides(body)
    jobs = [state.create_job(ENRICHMENT, body_sha=sha, overrides=overrides, creator_id=c) for c in todo]
    state.charge(ENRICHMENT, len(todo))
    _record_creator_starts(state, body, todo)
    data = {
        **base,
        "jobs_created": len(jobs),
        "task_id": f"run_{secrets.token_hex(6)}",
        "credits": {"required": len(todo), "deducted": len(todo), "remaining": state.balance},
        "already_enriched_count": len(already),
        "missing_linkedin_profiles": missing,
        "jobs": [_enrich_job(job) for job in jobs],
    }
    return Reply(data, status=202, headers=_cost_header(len(todo)))


def _enrich_job(job: Job) -> dict[str, Any]:
    creator_id = job.creator_id or ""
    return {
        "job_id": job.public_id,
        "creator_id": creator_id,
        "creator_name": fakedata.creator_name(creator_id),
        "profile_url": fakedata.profile_url(creator_id),
        "status": "queued",
    }


@dataclass(frozen=True)
class _MatchStart:
    kind: str
    selection: Selection
    params: dict[str, Any]
    unit_cost: int
    body: dict[str, Any]


async def content_match(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    selection = require_selection(state, body)
    campaign_id = opt_str(body, "campaign_id")
    topics = opt_str_list(body, "topic_keywords") or opt_str_list(body, "keywords")
    if campaign_id is None and not topics:
        raise validation_error("`topic_keywords` is required when no `campaign_id` is given.", field="topic_keywords")
    posts = opt_choice(body, "posts_to_analyze", 10, tuple(POSTS_COST))
    params = {"campaign_id": campaign_id, "topic_keywords": sorted(topics or []), "posts_to_analyze": posts}
    start = _MatchStart(CONTENT_MATCH, selection, params, POSTS_COST[posts], body)
    data, cost = _start_matches(state, start)
    data = {**data, "posts_to_analyze": posts}
    return Reply(_ordered(data, "posts_to_analyze"), status=202, headers=_cost_header(cost))


async def audience_match(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    selection = require_selection(state, body)
    campaign_id = opt_str(body, "campaign_id")
    brief = opt_str(body, "campaign_brief") or opt_str(body, "target_audience")
    keywords = opt_str_list(body, "audience_keywords") or opt_str_list(body, "keywords")
    criteria = opt_str_list(body, "target_audience_criteria")
    if campaign_id is None and not (brief or keywords or criteria):
        raise validation_error(
            "Provide `campaign_brief`, `target_audience`, `audience_keywords` or `target_audience_criteria` "
            "when no `campaign_id` is given.",
            field="campaign_brief",
        )
    depth = opt_choice(body, "analysis_depth", "quick_scan", tuple(DEPTH_COST))
    params = {
        "campaign_id": campaign_id,
        "campaign_brief": brief,
        "audience_keywords": sorted(keywords or []),
        "target_audience_criteria": sorted(criteria or []),
        "analysis_depth": depth,
    }
    start = _MatchStart(AUDIENCE_MATCH, selection, params, DEPTH_COST[depth], body)
    data, cost = _start_matches(state, start)
    data = {**data, "analysis_depth": depth}
    return Reply(_ordered(data, "analysis_depth"), status=202, headers=_cost_header(cost))


def _ordered(data: dict[str, Any], extra: str) -> dict[str, Any]:
    """Key order of the examples (cosmetic: JSON objects are unordered)."""
    order = [
        "creators_requested",
        "selection",
        "campaign_id",
        extra,
        "jobs_created",
        "job_ids",
        "jobs",
        "failures",
    ]
    return {name: data[name] for name in order}


def _start_matches(state: SimState, start: _MatchStart) -> tuple[dict[str, Any], int]:
    """Creates the analyses of a match start; cached and failing creators cost nothing."""
    criteria = body_sha256(start.params)
    failures: list[dict[str, Any]] = []
    cached: list[Job] = []
    todo: list[str] = []
    for creator_id in start.selection.creator_ids:
        state.seen.add(creator_id)
        if state.knobs(creator_id).start_failure:
            failures.append(_failure(start.kind, creator_id))
            continue
        hit = _cache_hit(state, start.kind, creator_id, criteria)
        if hit is not None:
            cached.append(hit)
        else:
            todo.append(creator_id)
    cost = start.unit_cost * len(todo)
    _ensure_credits(state, cost)
    sha = body_sha256(start.body)
    overrides = parse_overrides(start.body)
    created = [
        state.create_job(start.kind, body_sha=sha, overrides=overrides, creator_id=c, params=start.params) for c in todo
    ]
    for job in created:
        state.cache[(start.kind, job.creator_id or "", criteria)] = job.uid
    if created:
        state.charge(start.kind, cost)
        _record_creator_starts(state, start.body, todo)
    entries = [_match_job(start.kind, job, cached=False) for job in created]
    entries += [_match_job(start.kind, job, cached=True) for job in cached]
    data = {
        "creators_requested": len(start.selection.creator_ids),
        "selection": start.selection.to_json(),
        "campaign_id": start.params.get("campaign_id"),
        "jobs_created": len(created),
        "job_ids": [entry["job_id"] for entry in entries],
        "jobs": entries,
        "failures": failures,
    }
    return data, cost


def _record_creator_starts(state: SimState, body: dict[str, Any], creators: list[str]) -> None:
    """Counts a creator-selected start once per creator whose job it created, as the body that
    creator alone would have been sent with: a start call shared by several requests still counts
    each request's start (for one-creator requests, exactly the sha of that request's own body)."""
    for creator_id in creators:
        state.stats.record_start(body_sha256({**body, "creator_ids": [creator_id]}))


def _cache_hit(state: SimState, kind: str, creator_id: str, criteria: str) -> Job | None:
    if not state.config.cache_analyses:
        return None
    uid = state.cache.get((kind, creator_id, criteria))
    job = state.jobs.get(uid) if uid else None
    return job if job is not None and state.status(job) == "succeeded" else None


def _failure(kind: str, creator_id: str) -> dict[str, Any]:
    what = "content" if kind == CONTENT_MATCH else "audience"
    return {
        "creator_id": creator_id,
        "error_code": "ANALYSIS_START_FAILED",
        "message": f"Could not start {what} analysis for this creator.",
    }


def _match_job(kind: str, job: Job, cached: bool) -> dict[str, Any]:
    creator_id = job.creator_id or ""
    return {
        "creator_id": creator_id,
        "analysis_id": job.uid,
        "job_id": job.public_id,
        "status": "succeeded" if cached else "pending",
        "cached": cached,
        "message": CACHED_MESSAGE if cached else START_MESSAGES[kind],
        "creator_name": fakedata.creator_name(creator_id),
        "profile_url": fakedata.profile_url(creator_id),
    }
