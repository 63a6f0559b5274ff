"""JSON shapes of jobs and per-item results, field for field as the OpenAPI examples show them."""

from __future__ import annotations

from typing import Any

from worker.sim import discovery, fakedata
from worker.sim.clock import iso_from_epoch
from worker.sim.jobs import FAILURE_MESSAGE, SOURCE_STATUS, TERMINAL, Job
from worker.sim.state import SimState

RETENTION_DAYS = 30
_RETENTION_SECONDS = RETENTION_DAYS * 86400.0
DEPTH_ENGAGERS = {"quick_scan": 100, "deep_dive": 300, "comprehensive": 600}


def _times(state: SimState, job: Job) -> dict[str, Any]:
    now = state.now()
    ended = job.terminal_since(now)
    created = job.created_epoch
    updated = state.clock.real_epoch(ended if ended is not None else now)
    completed = state.clock.iso(ended) if ended is not None else None
    expires = None
    if ended is not None:
        expires = _iso(state.clock.real_epoch(ended) + _RETENTION_SECONDS)
    return {
        "created_at": _iso(created),
        "updated_at": _iso(updated),
        "completed_at": completed,
        "result_expires_at": expires,
    }


def _iso(epoch: float) -> str:
    return iso_from_epoch(epoch)


def _error_message(status: str) -> str | None:
    if status == "failed":
        return FAILURE_MESSAGE
    if status == "canceled":
        return "Canceled via public API."
    return None


# --- discovery (thought leaders) ------------------------------------------------------------
def discovery_status(state: SimState, job: Job) -> dict[str, Any]:
    status = state.status(job)
    times = _times(state, job)
    return {
        "id": job.uid,
        "job_type": "creator_discovery",
        "status": status,
        "source_status": SOURCE_STATUS[status],
        "is_terminal": status in TERMINAL,
        "progress": discovery.progress(job, status, state.now()).to_json(),
        "campaign_id": None,
        "platform": "linkedin",
        "created_list_id": None,
        **times,
        "result_retention_days": RETENTION_DAYS,
        "error_message": _error_message(status),
    }


def discovery_rows(state: SimState, job: Job, status: str) -> list[dict[str, Any]]:
    if status != "succeeded":
        return []
    ended = job.terminal_since(state.now())
    processed = state.clock.iso(ended if ended is not None else state.now())
    rows = []
    for rank, creator_id in enumerate(discovery.row_creator_ids(job), start=1):
        rows.append(
            {
                "creator_id": creator_id,
                "creator_name": fakedata.creator_name(creator_id),
                "status": "approved",
                "search_rank": rank,
                "relevance_score": round(max(0.05, 0.97 - rank * 0.004), 3),
                "relevance_reasoning": "Strong topical match.",
                "processed_at": processed,
            }
        )
    return rows


def discovery_result(state: SimState, job: Job, limit: int) -> dict[str, Any]:
    status = state.status(job)
    rows = discovery_rows(state, job, status)
    result = {
        "job_id": job.uid,
        "job_type": "creator_discovery",
        "status": status,
        "source_status": SOURCE_STATUS[status],
        "is_terminal": status in TERMINAL,
        "progress": discovery.progress(job, status, state.now()).to_json(),
        "platform": "linkedin",
        "campaign_id": None,
        "created_list_id": None,
        "result_expires_at": _times(state, job)["result_expires_at"],
        "result_retention_days": RETENTION_DAYS,
        "results_truncated": len(rows) > limit,
        "result_count": len(rows),
        "results": rows[:limit],
    }
    if status in ("failed", "canceled"):
        result["error_message"] = _error_message(status)
    return result


def discovery_bulk_entry(state: SimState, job: Job, limit: int) -> dict[str, Any]:
    status = state.status(job)
    rows = discovery_rows(state, job, status)
    entry = {
        "found": True,
        "job_id": job.uid,
        "job_type": "creator_discovery",
        "status": status,
        "progress": discovery.progress(job, status, state.now()).to_json(),
        "result_count": len(rows),
        "results": rows[:limit],
    }
    if status in ("failed", "canceled"):
        entry["error_message"] = _error_message(status)
    return entry


def cancel_view(state: SimState, job: Job, canceled: bool) -> dict[str, Any]:
    status = state.status(job)
    times = _times(state, job)
    return {
        "id": job.uid,
        "status": status,
        "source_status": SOURCE_STATUS[status],
        "canceled": canceled,
        "reason": "cancel_applied" if canceled else "already_terminal",
        "progress": discovery.progress(job, status, state.now()).to_json(),
        **times,
        "result_retention_days": RETENTION_DAYS,
        "error_message": _error_message(status),
    }


# --- enrichment ----------------------------------------------------------------------------
def enrichment_entry(creator_id: str, status: str, enriched_at: str | None) -> dict[str, Any]:
    done = status == "succeeded"
    metrics = fakedata.enrichment_metrics(creator_id)
    entry: dict[str, Any] = {
        "creator_id": creator_id,
        "name": fakedata.creator_name(creator_id),
        "profile_url": fakedata.profile_url(creator_id),
        "followers_count": metrics["followers_count"] if done else None,
        "median_posts_per_month": metrics["median_posts_per_month"] if done else None,
        "engagement_rate": metrics["engagement_rate"] if done else None,
        "enriched_at": enriched_at if done else None,
        "status": status,
    }
    if status == "failed":
        entry["error_message"] = FAILURE_MESSAGE
    return entry


def enrichment_full(entry: dict[str, Any]) -> dict[str, Any]:
    rng = fakedata.rng_for("enrich-full", entry["creator_id"])
    done = entry["status"] == "succeeded"
    return {
        **entry,
        "headline": f"{fakedata.title(entry['creator_id'])} | B2B growth" if done else None,
        "location": rng.choice(("Berlin", "London", "New York", "Lisbon")) if done else None,
        "platform": "linkedin",
    }


# --- content match -------------------------------------------------------------------------
def _content_numbers(job: Job) -> dict[str, Any]:
    rng = fakedata.rng_for("content", job.uid)
    analyzed = int(job.params.get("posts_to_analyze", 10))
    score = rng.randint(35, 95)
    matching = min(analyzed, max(0, round(analyzed * score / 100 * rng.uniform(0.5, 1.0))))
    return {"match_score": score, "matching_posts_count": matching, "total_posts_analyzed": analyzed}


def _fit_label(score: int) -> str:
    if score >= 70:
        return "Strong fit"
    return "Moderate fit" if score >= 50 else "Weak fit"


def content_entry(state: SimState, job: Job) -> dict[str, Any]:
    status = state.status(job)
    done = status == "succeeded"
    numbers = _content_numbers(job)
    times = _times(state, job)
    creator_id = job.creator_id or ""
    return {
        "job_id": job.public_id,
        "analysis_id": job.uid,
        "creator_id": creator_id,
        "creator_name": fakedata.creator_name(creator_id),
        "profile_url": fakedata.profile_url(creator_id),
        "platform": "linkedin",
        "status": status,
        "source_status": SOURCE_STATUS[status],
        "match_score": numbers["match_score"] if done else None,
        "matching_posts_count": numbers["matching_posts_count"] if done else None,
        "total_posts_analyzed": numbers["total_posts_analyzed"] if done else None,
        "content_fit_label": _fit_label(numbers["match_score"]) if done else None,
        "matched_posts_status": _posts_status(numbers) if done else None,
        "recommended_next_endpoint": "/v1/content-match/posts" if done else None,
        "error_message": _error_message(status),
        "completed_at": times["completed_at"],
        "updated_at": times["updated_at"],
    }


def _posts_status(numbers: dict[str, Any]) -> str:
    return "saved_snippets_available" if numbers["matching_posts_count"] else "no_matching_posts"


def content_full(state: SimState, job: Job) -> dict[str, Any]:
    return {
        **content_entry(state, job),
        "campaign_id": job.params.get("campaign_id"),
        "topic_keywords": list(job.params.get("topic_keywords", [])),
        "posts_to_analyze": int(job.params.get("posts_to_analyze", 10)),
    }


def content_posts(state: SimState, job: Job, source: str, limit: int) -> dict[str, Any]:
    status = state.status(job)
    done = status == "succeeded"
    numbers = _content_numbers(job)
    keywords = list(job.params.get("topic_keywords", [])) or ["campaign criteria"]
    matching = numbers["matching_posts_count"] if done else 0
    posts = [_post(job, index, keywords) for index in range(min(limit, matching))]
    return {
        "source": source,
        "job_id": job.public_id,
        "analysis_id": job.uid,
        "creator_id": job.creator_id or "",
        "creator_name": fakedata.creator_name(job.creator_id or ""),
        "status": status,
        "match_score": numbers["match_score"] if done else None,
        "matching_posts_count": numbers["matching_posts_count"] if done else None,
        "returned_posts_count": len(posts),
        "has_more_matched_posts": matching > len(posts),
        "matched_posts": posts,
    }


def _post(job: Job, index: int, keywords: list[str]) -> dict[str, Any]:
    rng = fakedata.rng_for("post", job.uid, str(index))
    slug = fakedata.creator_name(job.creator_id or "").lower().replace(" ", "-")
    keyword = keywords[index % len(keywords)]
    return {
        "title": f"Notes on {keyword}",
        "post_url": f"https://www.linkedin.com/posts/{slug}_{job.uid[:8]}-{index}",
        "posted_date": f"2026-05-{rng.randint(1, 28):02d}",
        "content_type": rng.choice(("text", "image", "video", "carousel")),
        "match_score": rng.randint(55, 98),
        "keyword_matches": [keyword],
        "match_reason": f"Directly discusses {keyword}.",
    }


# --- audience match ------------------------------------------------------------------------
def _audience_numbers(job: Job) -> dict[str, Any]:
    rng = fakedata.rng_for("audience", job.uid)
    total = DEPTH_ENGAGERS[str(job.params.get("analysis_depth", "quick_scan"))]
    matching = rng.randint(total // 10, total // 2)
    return {
        "match_score": rng.randint(30, 95),
        "matching_engagers_count": matching,
        "total_engagers_analyzed": total,
        "unique_companies": rng.randint(max(1, matching // 3), max(1, matching)),
    }


def audience_entry(state: SimState, job: Job) -> dict[str, Any]:
    status = state.status(job)
    done = status == "succeeded"
    numbers = _audience_numbers(job)
    times = _times(state, job)
    entry: dict[str, Any] = {
        "job_id": job.public_id,
        "analysis_id": job.uid,
        "creator_id": job.creator_id or "",
        "creator_name": fakedata.creator_name(job.creator_id or ""),
        "platform": "linkedin",
        "status": status,
        **{name: (value if done else None) for name, value in numbers.items()},
        "audience_summary": "Audience skews senior B2B marketing and growth leaders." if done else None,
        "recommended_next_endpoint": "/v1/audience-match/details" if done else None,
        "completed_at": times["completed_at"],
        "updated_at": times["updated_at"],
    }
    if status in ("failed", "canceled"):
        entry["error_message"] = _error_message(status)
    return entry


def audience_full(state: SimState, job: Job) -> dict[str, Any]:
    return {
        **audience_entry(state, job),
        "campaign_id": job.params.get("campaign_id"),
        "analysis_depth": str(job.params.get("analysis_depth", "quick_scan")),
    }


def audience_details(state: SimState, job: Job, engagers_limit: int) -> dict[str, Any]:
    status = state.status(job)
    done = status == "succeeded"
    numbers = _audience_numbers(job)
    matching = numbers["matching_engagers_count"]
    engagers = [_engager(job, i) for i in range(min(engagers_limit, matching))] if done else []
    companies = [
        {"name": name, "count": 12 - i, "percentage": round((12 - i) * 100 / max(matching, 1), 1)}
        for i, name in enumerate(("Acme", "Globex", "Initech"))
    ]
    titles = [{"title": title, "count": 18 - 4 * i} for i, title in enumerate(("VP Marketing", "CMO", "Founder"))]
    return {
        "job_id": job.public_id,
        "creator_id": job.creator_id or "",
        "status": status,
        "match_score": numbers["match_score"] if done else None,
        "total_engagers_analyzed": numbers["total_engagers_analyzed"] if done else None,
        "matching_engagers_count": matching if done else None,
        "unique_companies": numbers["unique_companies"] if done else None,
        "audience_summary": "Audience skews senior B2B marketing and growth leaders." if done else None,
        "top_matching_engagers": engagers,
        "top_companies": companies if done else [],
        "job_title_breakdown": titles if done else [],
    }


def _engager(job: Job, index: int) -> dict[str, Any]:
    seed = f"{job.uid}:{index}"
    name = fakedata.person(seed)
    job_title = fakedata.title(seed)
    company = fakedata.company(seed)
    slug = name.lower().replace(" ", "-").replace(".", "")
    return {
        "name": name,
        "job_title": job_title,
        "company": company,
        "headline": f"{job_title} at {company}",
        "linkedin_url": f"https://www.linkedin.com/in/{slug}-{index}/",
        "engagement_count": max(1, 6 - index // 3),
    }
