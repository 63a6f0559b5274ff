"""Discovery-job routes under /v1/jobs: status, results, bulk results, cancel.

They accept plain UUIDs only. Anything else (a `content-fit:` or `enrichment:` id, say)
is a 404, and the simulator counts it as a wrong-format id.
"""

from __future__ import annotations

from aiohttp import web

from worker.sim import views
from worker.sim.core import sim_of
from worker.sim.envelope import Reply, not_found, read_object, validation_error
from worker.sim.holds import hold
from worker.sim.jobs import TERMINAL, THOUGHT_LEADERS, Job, is_plain_uuid
from worker.sim.params import results_limit, wait_seconds
from worker.sim.state import SimState

BULK_MAX = 20
_WRONG_FORMAT = "Job not found. This route takes plain job UUIDs (no prefix)."


def _plain_id(state: SimState, raw: object) -> str:
    if not is_plain_uuid(raw):
        state.stats.wrong_format_ids += 1
        raise not_found(_WRONG_FORMAT, job_id=str(raw))
    return str(raw).lower()


def _discovery_job(state: SimState, uid: str) -> Job | None:
    job = state.jobs.get(uid)
    return job if job is not None and job.kind == THOUGHT_LEADERS else None


def _require_job(state: SimState, raw: object) -> Job:
    job = _discovery_job(state, _plain_id(state, raw))
    if job is None:
        raise not_found("Job not found.", job_id=str(raw))
    return job


async def job_status(request: web.Request) -> Reply:
    state = sim_of(request).state
    job = _require_job(state, request.match_info["id"])
    return Reply({"job": views.discovery_status(state, job)})


async def job_results(request: web.Request) -> Reply:
    state = sim_of(request).state
    body = await read_object(request)
    if not isinstance(body.get("job_id"), str):
        raise validation_error("`job_id` (a plain job UUID) is required.", field="job_id")
    limit = results_limit(body)
    wait = wait_seconds(body)
    job = _require_job(state, body["job_id"])
    await hold(state, wait, lambda: [] if state.status(job) in TERMINAL else [job])
    return Reply({"job": views.discovery_result(state, job, limit)}, meta={"wait_seconds": wait})


async def bulk_results(request: web.Request) -> Reply:
    """Up to 20 jobs in one call; `wait_seconds` is not supported here and is ignored."""
    state = sim_of(request).state
    body = await read_object(request)
    job_ids = body.get("job_ids")
    if not isinstance(job_ids, list) or not 1 <= len(job_ids) <= BULK_MAX:
        raise validation_error(f"`job_ids` must be an array of 1-{BULK_MAX} job UUIDs.", field="job_ids")
    limit = results_limit(body)
    wrong = [job_id for job_id in job_ids if not is_plain_uuid(job_id)]
    if wrong:
        state.stats.wrong_format_ids += len(wrong)
        raise not_found(_WRONG_FORMAT, invalid_job_ids=[str(job_id) for job_id in wrong])
    entries = []
    for job_id in job_ids:
        job = _discovery_job(state, job_id.lower())
        entries.append(views.discovery_bulk_entry(state, job, limit) if job else {"job_id": job_id, "found": False})
    found = sum(1 for entry in entries if entry["found"])
    meta = {"requested_count": len(job_ids), "found_count": found, "not_found_count": len(job_ids) - found}
    return Reply({"jobs": entries}, meta=meta)


async def cancel(request: web.Request) -> Reply:
    state = sim_of(request).state
    await read_object(request)
    job = _require_job(state, request.match_info["id"])
    canceled = state.cancel(job)
    return Reply({"job": views.cancel_view(state, job, canceled)})
