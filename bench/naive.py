"""The naive baseline: what an integration without a shared registry or budget does.

One start per request, then every job on its own backoff (2, 4, 8, 16, 30, 30... simulated seconds):
discovery jobs poll `GET /v1/jobs/{id}` and fetch `POST /v1/jobs/results` once terminal; the other
kinds poll their results endpoint with just that job (or creator). `include` payloads are fetched per
request once its jobs are done. No `wait_seconds`, no batching; a 429 is obeyed (the thread sleeps its
Retry-After and sends the same call again). One thread per request, a plain TokstaClient.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from worker.api.client import ApiResponse, TokstaClient
from worker.api.errors import ApiError

TERMINAL = frozenset({"succeeded", "failed", "canceled", "expired"})
BACKOFF = (2.0, 4.0, 8.0, 16.0, 30.0)


@dataclass
class NaiveRun:
    completed: int = 0
    failed: int = 0
    finished_at: dict[str, float] = field(default_factory=dict)  # request id -> real epoch when done
    lock: threading.Lock = field(default_factory=threading.Lock)


class NaiveClient:
    def __init__(self, base_url: str, key: str, scale: float) -> None:
        self.scale = scale
        self.client = TokstaClient(base_url, key, time_scale=scale, max_connections=256, timeout=120)

    def close(self) -> None:
        self.client.close()

    def run(self, bodies: list[dict[str, Any]], timeout: float) -> NaiveRun:
        """Every request on its own thread; returns when all are done or `timeout` real seconds passed."""
        result = NaiveRun()
        threads = [threading.Thread(target=self._request, args=(b, result), daemon=True) for b in bodies]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return result

    # -- one request ------------------------------------------------------------------------------

    def _request(self, body: dict[str, Any], result: NaiveRun) -> None:
        try:
            self._serve(body)
        except Exception:  # a bench thread must not die silently: count it
            with result.lock:
                result.failed += 1
            return
        with result.lock:
            result.completed += 1
            result.finished_at[body["request_id"]] = time.time()

    def _serve(self, body: dict[str, Any]) -> None:
        kind, params = body["kind"], body["params"]
        include = (body.get("options") or {}).get("include") or []
        client = self.client
        if kind == "thought_leaders":
            job_id = self.call(lambda: client.start_thought_leaders(params)).data["job_id"]
            self.each_job([job_id], self._discovery_done)
            self.call(lambda: client.job_results(job_id))
            return
        if kind == "enrichment":
            data = self.call(lambda: client.start_enrichment(params)).data
            creators = [job["creator_id"] for job in data.get("jobs") or []]
            self.each_job(creators, self._enrichment_done)
            return
        start = client.start_content_match if kind == "content_match" else client.start_audience_match
        results = client.content_match_results if kind == "content_match" else client.audience_match_results
        job_ids = list(self.call(lambda: start(params)).data.get("job_ids") or [])
        self.each_job(job_ids, lambda job: _match_done(self.call(lambda: results({"job_ids": [job]})).data))
        if include:
            fetch = client.content_match_posts if kind == "content_match" else client.audience_match_details
            self.call(lambda: fetch({"job_ids": job_ids}))

    def each_job(self, jobs: list[str], done: Callable[[str], bool]) -> None:
        """Poll every job on its own backoff until each is terminal."""
        started = time.monotonic()
        due = dict.fromkeys(jobs, started + BACKOFF[0] * self.scale)
        step = dict.fromkeys(jobs, 0)
        while due:
            job = min(due, key=due.__getitem__)
            time.sleep(max(0.0, due[job] - time.monotonic()))
            if done(job):
                del due[job]
                continue
            step[job] += 1
            due[job] = time.monotonic() + BACKOFF[min(step[job], len(BACKOFF) - 1)] * self.scale

    def _discovery_done(self, job_id: str) -> bool:
        job = self.call(lambda: self.client.get_job(job_id)).data.get("job") or {}
        return bool(job.get("is_terminal")) or job.get("status") in TERMINAL

    def _enrichment_done(self, creator_id: str) -> bool:
        data = self.call(lambda: self.client.enrichment_results({"creator_ids": [creator_id]})).data
        entries = data.get("results_summary") or []
        return bool(entries) and all(e.get("status") in TERMINAL for e in entries)

    def call(self, fn: Callable[[], ApiResponse]) -> ApiResponse:
        """One call, re-sent after a 429's Retry-After (or a 5xx's short pause); other errors raise."""
        for attempt in range(1000):
            try:
                return fn()
            except ApiError as err:
                if err.http_status == 429:
                    time.sleep((err.retry_after if err.retry_after is not None else 1.0) * self.scale)
                elif err.retryable:
                    time.sleep(min(30.0, 2.0 * 2**attempt) * self.scale)
                else:
                    raise
        raise RuntimeError("gave up after 1000 attempts")


def _match_done(data: dict[str, Any]) -> bool:
    entries = data.get("results_summary") or []
    gone = (data.get("not_found_ids") or []) + (data.get("expired_ids") or [])
    return bool(gone) or (bool(entries) and all(e.get("status") in TERMINAL for e in entries))
