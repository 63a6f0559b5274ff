"""Admin routes under /_sim (no auth): stats, reset, config, faults, jobs. For tests and benchmarks."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from worker.sim.config import ConfigError
from worker.sim.core import sim_of
from worker.sim.faults import Fault
from worker.sim.jobs import NON_TERMINAL, TERMINAL, Job
from worker.sim.state import SimState


def _bad(message: str, status: int = 400) -> web.Response:
    return web.json_response({"error": message}, status=status)


async def _json_object(request: web.Request) -> dict[str, Any]:
    raw = await request.read()
    try:
        body = json.loads(raw or b"{}")
    except ValueError as exc:
        raise ConfigError("body must be valid JSON") from exc
    if not isinstance(body, dict):
        raise ConfigError("body must be a JSON object")
    return body


async def stats(request: web.Request) -> web.Response:
    state = sim_of(request).state
    state.settle_due()
    return web.json_response(state.stats.to_json(state.balance))


async def calls(request: web.Request) -> web.Response:
    route = request.query.get("route")
    if not route:
        return _bad("query parameter `route` is required, e.g. `POST /v1/jobs/results:bulk`")
    return web.json_response(sim_of(request).state.stats.calls_json(route))


async def reset(request: web.Request) -> web.Response:
    sim_of(request).reset()
    return web.json_response({"reset": True})


async def get_config(request: web.Request) -> web.Response:
    return web.json_response(sim_of(request).state.config.to_json())


async def post_config(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        patch = await _json_object(request)
        config = sim.state.config.updated(patch)
    except ConfigError as exc:
        return _bad(str(exc))
    sim.state.apply_config(config, credits_given="credits" in patch)
    return web.json_response(config.to_json())


async def get_faults(request: web.Request) -> web.Response:
    return web.json_response({"faults": sim_of(request).faults.to_json()})


async def post_faults(request: web.Request) -> web.Response:
    sim = sim_of(request)
    try:
        body = await _json_object(request)
        raw = body.get("faults")
        if not isinstance(raw, list):
            raise ConfigError('body must read {"faults": [...]}')
        faults = [Fault.from_json(item) for item in raw]
    except ConfigError as exc:
        return _bad(str(exc))
    sim.faults.add(faults)
    return web.json_response({"faults": sim.faults.to_json()})


async def delete_faults(request: web.Request) -> web.Response:
    sim_of(request).faults.clear()
    return web.json_response({"faults": []})


def _job_json(state: SimState, job: Job) -> dict[str, Any]:
    now = state.now()
    ended = job.terminal_since(now)
    return {
        "id": job.public_id,
        "uid": job.uid,
        "kind": job.kind,
        "creator_id": job.creator_id,
        "status": job.status_at(now),
        "created_at": job.created_epoch,
        "terminal_at": state.clock.real_epoch(ended) if ended is not None else None,
        "start_body_sha256": job.body_sha256,
        "credits_reserved": job.reserved,
        "credits_charged": job.charged,
    }


async def jobs(request: web.Request) -> web.Response:
    state = sim_of(request).state
    state.settle_due()
    return web.json_response({"jobs": [_job_json(state, job) for job in state.jobs.values()]})


async def force_job(request: web.Request) -> web.Response:
    state = sim_of(request).state
    try:
        body = await _json_object(request)
    except ConfigError as exc:
        return _bad(str(exc))
    status = body.get("status")
    if status not in TERMINAL | NON_TERMINAL:
        return _bad(f"status must be one of {sorted(TERMINAL | NON_TERMINAL)}")
    job_id = request.match_info["id"]
    job = state.find_public(job_id) or state.jobs.get(job_id)
    if job is None:
        return _bad(f"unknown job {job_id}", status=404)
    state.force(job, str(status))
    return web.json_response(_job_json(state, job))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/_sim/stats", stats)
    app.router.add_get("/_sim/calls", calls)
    app.router.add_post("/_sim/reset", reset)
    app.router.add_get("/_sim/config", get_config)
    app.router.add_post("/_sim/config", post_config)
    app.router.add_get("/_sim/faults", get_faults)
    app.router.add_post("/_sim/faults", post_faults)
    app.router.add_delete("/_sim/faults", delete_faults)
    app.router.add_get("/_sim/jobs", jobs)
    app.router.add_post("/_sim/jobs/{id}", force_job)
