"""Per-family rules: the one module that knows how each kind of request maps onto the API.

For every kind: its start endpoint, the shape of the job ids it returns (plain UUID for thought
leaders, `enrichment:`, `content-fit:`, `audience-fit:` prefixes for the others), which endpoint
polls it with which selector and batch limit, how terminal state and per-item status are read,
how a request's own `result` is cut out of a response shared with other requests (filtered to
its items, counts recomputed, no field renamed), the contract's item rules, the follow-up
fetches for `include`, which requests may share one start call, and whether an unconfirmed start
may be re-sent.

Nothing else in the worker inspects API payloads: the runtime asks these rules.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Final, cast

from worker.api.client import ApiResponse, TokstaClient
from worker.contract.models import Kind

PENDING: Final = "pending"
TERMINAL_STATES: Final = ("succeeded", "failed", "expired", "canceled")
SEVERITY: Final = ("failed", "expired", "canceled")  # most severe first
_PLAIN_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
DEFAULT_RESULTS_LIMIT: Final = 50
RESULT_SET_KEYS: Final = ("result_set_id", "result_set_ids", "top_n", "ranks")  # selections besides creator_ids


def is_plain_uuid(value: str) -> bool:
    """Only plain UUIDs may be sent to /v1/jobs/*; a prefixed id there is a 404."""
    return _PLAIN_UUID.fullmatch(value) is not None


def bare_id(job_id: str) -> str:
    """`content-fit:<uuid>` -> `<uuid>`; the match endpoints accept either and may echo either."""
    return job_id.split(":", 1)[1] if ":" in job_id else job_id


def item_status(raw: object) -> str:
    """An API per-item status folded onto pending or one of the four terminal states."""
    if isinstance(raw, str) and raw in TERMINAL_STATES:
        return raw
    return PENDING


@dataclass(slots=True)
class Item:
    """One unit of a request: a job, a creator, or a start-time failure."""

    status: str = PENDING
    error_message: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"status": self.status, "error_message": self.error_message}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> Item:
        return cls(status=str(raw.get("status", PENDING)), error_message=raw.get("error_message"))


@dataclass(slots=True)
class Work:
    """What the rules need to know of one in-flight request (a view over its registry row)."""

    key: str
    kind: Kind
    params: dict[str, Any]
    options: dict[str, Any]
    job_ids: list[str]
    items: dict[str, Item]
    selector: dict[str, Any]

    @property
    def detail_level(self) -> str | None:
        value = self.options.get("detail_level")
        return str(value) if value is not None else None

    @property
    def include(self) -> list[str]:
        return list(self.options.get("include") or [])

    @property
    def results_limit(self) -> int:
        return int(self.options.get("results_limit") or DEFAULT_RESULTS_LIMIT)

    def pending(self) -> bool:
        return any(item.status == PENDING for item in self.items.values())


@dataclass(frozen=True, slots=True)
class StartOutcome:
    """What a successful start response means for the request."""

    job_ids: list[str]
    items: dict[str, Item]
    credits: float | None
    selector: dict[str, Any]
    synchronous: bool = False


@dataclass(frozen=True, slots=True)
class PollRead:
    """One request's share of a poll (or follow-up) response."""

    items: dict[str, Item]
    payload: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Summary:
    """The request's reply status and, unless succeeded, its error code, message and counts."""

    status: str
    code: str | None
    message: str | None
    counts: dict[str, int] = field(default_factory=dict)


def summarize(items: Mapping[str, Item]) -> Summary:
    """`succeeded` when every item succeeded, else the most severe present (failed > expired > canceled)."""
    counts = dict.fromkeys(TERMINAL_STATES, 0)
    for item in items.values():
        if item.status in counts:
            counts[item.status] += 1
    if items and counts["succeeded"] == len(items):
        return Summary("succeeded", None, None, counts)
    if not items:
        return Summary("failed", "JOB_FAILED", "the start call created no job and reported no failure", counts)
    status = next(state for state in SEVERITY if counts[state])
    first_bad = next(item for item in items.values() if item.status != "succeeded")
    code = {"failed": "JOB_FAILED", "expired": "JOB_EXPIRED", "canceled": "JOB_CANCELED"}[status]
    message = first_bad.error_message or f"{counts[status]} of {len(items)} item(s) {status}"
    return Summary(status, code, message, counts)


def credits_of(response: ApiResponse) -> float | None:
    """`X-Toksta-Credit-Cost`, else the start response's `credits.deducted`, else None."""
    if response.rate.credit_cost is not None:
        return response.rate.credit_cost
    credits = response.data.get("credits")
    if isinstance(credits, Mapping) and isinstance(credits.get("deducted"), (int, float)):
        return float(credits["deducted"])
    return None


def _ids(values: object, key: str = "creator_id") -> list[str]:
    """Ids from a list of strings or of objects carrying `key` (shapes the API leaves loose)."""
    out: list[str] = []
    for value in values if isinstance(values, list) else []:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, Mapping) and isinstance(value.get(key), str):
            out.append(value[key])
    return out


def _dedupe(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(values))


class FamilyRules:
    """The rules of one kind. Subclasses fill in the endpoint-specific parts."""

    kind: ClassVar[Kind]
    job_id_prefix: ClassVar[str]
    start_route: ClassVar[str]
    poll_route: ClassVar[str]
    batch_limit: ClassVar[int]
    followup_route: ClassVar[str | None] = None
    include_name: ClassVar[str | None] = None

    # Creators one shared start call may carry (0: this family never shares a start).
    start_share_limit: ClassVar[int] = 0

    def start(self, client: TokstaClient, params: Mapping[str, Any]) -> ApiResponse:
        raise NotImplementedError

    def read_start(self, response: ApiResponse, params: Mapping[str, Any]) -> StartOutcome:
        raise NotImplementedError

    def share_key(self, params: Mapping[str, Any]) -> str | None:
        """Requests with equal keys may share one start call; None: this request starts alone.

        Only a `creator_ids` selection can be shared: the bodies must be equal in every other key
        (unknown keys included), so each creator gets exactly the analysis its own request asked
        for, and the API's per-creator `jobs[]` / `failures[]` say whose each result is.
        """
        if not self.start_share_limit:
            return None
        creators = params.get("creator_ids")
        if not isinstance(creators, list) or not creators or not all(isinstance(c, str) for c in creators):
            return None
        if any(key in params for key in RESULT_SET_KEYS):
            return None
        rest = {k: v for k, v in params.items() if k != "creator_ids"}
        return json.dumps(rest, sort_keys=True, separators=(",", ":"), ensure_ascii=False)

    def start_units(self, params: Mapping[str, Any]) -> int:
        """Creators this request adds to a shared start call."""
        creators = params.get("creator_ids")
        return len(_dedupe(creators)) if isinstance(creators, list) else 1

    def shared_params(self, params_list: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """One start body for requests with equal share keys: theirs, with the union of creators."""
        creators = _dedupe(str(c) for params in params_list for c in params["creator_ids"])
        return dict(params_list[0], creator_ids=creators)

    def read_shared_start(self, response: ApiResponse, params_list: Sequence[Mapping[str, Any]]) -> list[StartOutcome]:
        """Each request's outcome of a start call shared by `params_list` (one: read as its own).

        The response is cut to each request's creators (`jobs[]`, `job_ids`, `failures[]`,
        `missing_linkedin_profiles`) and read as if that request had made the call; the call's
        credits are split over the billable jobs (not `cached`), a job two requests share counting
        half to each. A job or failure that names no creator cannot be given to anyone: the
        payload is malformed and every request's start is unconfirmed.
        """
        if len(params_list) == 1:
            return [self.read_start(response, params_list[0])]
        owners = [{_creator(c) for c in params["creator_ids"]} for params in params_list]
        shared = _SharedStart(response.data)
        outcomes = []
        for params, mine in zip(params_list, owners, strict=True):
            view = dataclasses.replace(response, data=shared.part(mine))
            outcomes.append(self.read_start(view, params))
        total = credits_of(response)
        if total is None:
            return outcomes
        shares = _credit_shares(shared.jobs, owners)
        return [dataclasses.replace(o, credits=round(total * s, 3)) for o, s in zip(outcomes, shares, strict=True)]

    def poll_group(self, work: Work) -> tuple[Any, ...]:
        """Requests with equal groups can share one poll call."""
        raise NotImplementedError

    def poll_units(self, work: Work) -> list[str]:
        """The ids this request adds to a shared poll call (its share of the batch limit)."""
        raise NotImplementedError

    def poll(self, client: TokstaClient, batch: Sequence[Work], wait_seconds: int) -> ApiResponse:
        raise NotImplementedError

    def read_poll(self, data: Mapping[str, Any], work: Work) -> PollRead:
        raise NotImplementedError

    def poll_reader(self, data: Mapping[str, Any]) -> Callable[[Work], PollRead]:
        """`read_poll` of one response, for each request of the call it answers.

        A family whose responses list the entries of every request in the call indexes them here,
        once per call (`_SharedResponse`), and each request then reads only its own.
        """
        return functools.partial(self.read_poll, data)

    def wants_followup(self, work: Work) -> bool:
        """`include` asks for an extra payload, fetched for succeeded items only."""
        return self.include_name is not None and self.include_name in work.include and bool(self.followup_units(work))

    def followup_units(self, work: Work) -> list[str]:
        return []

    def followup(self, client: TokstaClient, batch: Sequence[Work]) -> ApiResponse:
        raise NotImplementedError

    def read_followup(self, data: Mapping[str, Any], work: Work) -> dict[str, Any]:
        raise NotImplementedError

    def followup_reader(self, data: Mapping[str, Any]) -> Callable[[Work], dict[str, Any]]:
        """`read_followup` of one response, for each request of the call it answers (see `poll_reader`)."""
        return functools.partial(self.read_followup, data)

    def result(self, payload: dict[str, Any] | None, extra: dict[str, Any] | None) -> dict[str, Any] | None:
        """The reply's `result`: the filtered payload, with the `include` payload beside it."""
        if payload is None:
            return None
        result = dict(payload)
        if extra is not None and self.include_name is not None:
            result[self.include_name] = extra
        return result

    def can_cancel_at_api(self) -> bool:
        return False


class ThoughtLeadersRules(FamilyRules):
    """Discovery jobs: a plain UUID, polled in bulk (20 per call) on /v1/jobs/results:bulk."""

    kind = Kind.THOUGHT_LEADERS
    job_id_prefix = ""
    start_route = "POST /v1/creators/thought-leaders"
    poll_route = "POST /v1/jobs/results:bulk"
    batch_limit = 20

    def start(self, client: TokstaClient, params: Mapping[str, Any]) -> ApiResponse:
        return client.start_thought_leaders(params)

    def read_start(self, response: ApiResponse, params: Mapping[str, Any]) -> StartOutcome:
        job_id = response.data.get("job_id")
        if not isinstance(job_id, str) or not is_plain_uuid(job_id):
            raise MalformedPayload(f"thought-leaders start returned job_id {job_id!r}, not a plain UUID")
        return StartOutcome([job_id], {job_id: Item()}, credits_of(response), {"job_id": job_id})

    def poll_group(self, work: Work) -> tuple[Any, ...]:
        return ("jobs",)

    def poll_units(self, work: Work) -> list[str]:
        return [work.selector["job_id"]]

    def poll(self, client: TokstaClient, batch: Sequence[Work], wait_seconds: int) -> ApiResponse:
        limit = max(work.results_limit for work in batch)
        ids = _dedupe(unit for work in batch for unit in self.poll_units(work))
        if len(ids) == 1 and wait_seconds > 0:
            return client.job_results(ids[0], limit=limit, wait_seconds=wait_seconds)
        return client.job_results_bulk(ids, limit=limit)

    def read_poll(self, data: Mapping[str, Any], work: Work) -> PollRead:
        job_id = work.selector["job_id"]
        entry = self._entry(data, job_id)
        if entry is None:
            return PollRead(dict(work.items), None)
        if entry.get("found") is False:
            item = Item("failed", "the API no longer finds this job")
            return PollRead({job_id: item}, {"job": entry})
        status = item_status(entry.get("status"))
        item = Item(status, entry.get("error_message") if status != "succeeded" else None)
        return PollRead({job_id: item}, {"job": self._cut(entry, work.results_limit)})

    @staticmethod
    def _entry(data: Mapping[str, Any], job_id: str) -> dict[str, Any] | None:
        single = data.get("job")
        if isinstance(single, Mapping) and job_id in (single.get("job_id"), single.get("id")):
            return dict(single)
        for entry in data.get("jobs") or []:
            if isinstance(entry, Mapping) and entry.get("job_id") == job_id:
                return dict(entry)
        return None

    @staticmethod
    def _cut(entry: dict[str, Any], limit: int) -> dict[str, Any]:
        rows = entry.get("results")
        if isinstance(rows, list) and len(rows) > limit:
            entry = dict(entry, results=rows[:limit])
            if "results_truncated" in entry:
                entry["results_truncated"] = True
        return entry

    def can_cancel_at_api(self) -> bool:
        return True


class EnrichmentRules(FamilyRules):
    """Creators, not jobs: `enrichment:` ids are informational; poll by merged `creator_ids`."""

    kind = Kind.ENRICHMENT
    job_id_prefix = "enrichment:"
    start_route = "POST /v1/creators/enrich"
    poll_route = "POST /v1/enrichments/results"
    batch_limit = 100
    start_share_limit = 100  # one poll call's worth of creators

    def start(self, client: TokstaClient, params: Mapping[str, Any]) -> ApiResponse:
        return client.start_enrichment(params)

    def read_start(self, response: ApiResponse, params: Mapping[str, Any]) -> StartOutcome:
        data = response.data
        jobs = [job for job in data.get("jobs") or [] if isinstance(job, Mapping)]
        job_ids = [str(job["job_id"]) for job in jobs if isinstance(job.get("job_id"), str)]
        missing = set(_ids(data.get("missing_linkedin_profiles")))
        requested = params.get("creator_ids")
        if isinstance(requested, list):
            creators = _dedupe(str(c) for c in requested)
            selector: dict[str, Any] = {"creator_ids": [c for c in creators if c not in missing]}
        else:
            creators = _dedupe([*_ids(jobs), *missing])
            selector = {"selection": {k: params[k] for k in RESULT_SET_KEYS if k in params}}
        items = {c: Item("failed", "no LinkedIn profile") if c in missing else Item() for c in creators}
        synchronous = response.status == 200 and data.get("all_complete") is True
        return StartOutcome(job_ids, items, credits_of(response), selector, synchronous)

    def poll_group(self, work: Work) -> tuple[Any, ...]:
        if "creator_ids" in work.selector:
            return ("creator_ids", work.detail_level)
        return ("selection", work.key)  # a result-set selection is polled on its own

    def poll_units(self, work: Work) -> list[str]:
        return list(work.selector.get("creator_ids") or [work.key])

    def poll(self, client: TokstaClient, batch: Sequence[Work], wait_seconds: int) -> ApiResponse:
        body: dict[str, Any]
        if "creator_ids" in batch[0].selector:
            body = {"creator_ids": _dedupe(c for work in batch for c in work.selector["creator_ids"])}
        else:
            body = dict(batch[0].selector["selection"])
        if batch[0].detail_level is not None:
            body["detail_level"] = batch[0].detail_level
        if wait_seconds > 0:
            body["wait_seconds"] = wait_seconds
        return client.enrichment_results(body)

    def read_poll(self, data: Mapping[str, Any], work: Work) -> PollRead:
        return self.poll_reader(data)(work)

    def poll_reader(self, data: Mapping[str, Any]) -> Callable[[Work], PollRead]:
        response = _SharedResponse(data, _creator_entry_id, _same_id)
        by_creator = _by_key(data.get("results_summary"), "creator_id")
        not_found = set(_ids(data.get("not_found_ids")))
        expired = set(_ids(data.get("expired_ids")))

        def read(work: Work) -> PollRead:
            shared = "creator_ids" in work.selector
            creators = list(work.items) if shared else _dedupe([*work.items, *by_creator, *not_found, *expired])
            items: dict[str, Item] = {}
            for creator in creators:
                previous = work.items.get(creator, Item())
                if previous.status != PENDING:
                    items[creator] = previous
                elif creator in not_found:
                    items[creator] = Item("failed", "creator not found by the API")
                elif creator in expired:
                    items[creator] = Item("expired", "enrichment result expired")
                elif creator in by_creator:
                    items[creator] = _enrichment_item(by_creator[creator])
                else:
                    items[creator] = previous
            payload = response.part(set(work.selector["creator_ids"])) if shared else _json_copy(dict(data))
            pending = sum(1 for item in items.values() if item.status == PENDING)
            _set_if(payload, "creators_requested", len(items))
            _set_if(payload, "pending", pending)
            _set_if(payload, "completed", len(items) - pending)
            _set_selected(payload, len(items))
            return PollRead(items, payload)

        return read


def _enrichment_item(entry: Mapping[str, Any]) -> Item:
    """An entry's own `status` when present; else an `enriched_at` means done."""
    if "status" in entry:
        status = item_status(entry.get("status"))
    else:
        status = "succeeded" if entry.get("enriched_at") else PENDING
    return Item(status, entry.get("error_message") if status not in ("succeeded", PENDING) else None)


class MatchRules(FamilyRules):
    """Content and audience fit: prefixed job ids, polled by merged `job_ids` (prefixed accepted)."""

    def poll_group(self, work: Work) -> tuple[Any, ...]:
        return ("job_ids", work.detail_level)

    def poll_units(self, work: Work) -> list[str]:
        return list(work.selector["job_ids"])

    def read_start(self, response: ApiResponse, params: Mapping[str, Any]) -> StartOutcome:
        data = response.data
        job_ids = [str(j) for j in data.get("job_ids") or [] if isinstance(j, str)]
        items: dict[str, Item] = {job_id: Item() for job_id in job_ids}
        for job in data.get("jobs") or []:
            if isinstance(job, Mapping) and isinstance(job.get("job_id"), str):
                job_id = job["job_id"]
                if job_id not in items:
                    job_ids.append(job_id)
                status = item_status(job.get("status"))
                items[job_id] = Item(status, job.get("error_message") if status not in ("succeeded", PENDING) else None)
        for index, failure in enumerate(data.get("failures") or []):
            who = failure.get("creator_id") if isinstance(failure, Mapping) else failure
            message = _failure_message(failure)
            items[f"failure:{who if isinstance(who, str) else index}"] = Item("failed", message)
        return StartOutcome(job_ids, items, credits_of(response), {"job_ids": job_ids})

    def poll(self, client: TokstaClient, batch: Sequence[Work], wait_seconds: int) -> ApiResponse:
        body: dict[str, Any] = {"job_ids": _dedupe(j for work in batch for j in self.poll_units(work))}
        if batch[0].detail_level is not None:
            body["detail_level"] = batch[0].detail_level
        if wait_seconds > 0:
            body["wait_seconds"] = wait_seconds
        return self._results(client, body)

    def _results(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        raise NotImplementedError

    def read_poll(self, data: Mapping[str, Any], work: Work) -> PollRead:
        return self.poll_reader(data)(work)

    def poll_reader(self, data: Mapping[str, Any]) -> Callable[[Work], PollRead]:
        response = _SharedResponse(data, _job_entry_id, bare_id)
        by_job = {bare_id(k): v for k, v in _by_key(data.get("results_summary"), "job_id").items()}
        not_found = {bare_id(j) for j in _ids(data.get("not_found_ids"), "job_id")}
        expired = {bare_id(j) for j in _ids(data.get("expired_ids"), "job_id")}

        def read(work: Work) -> PollRead:
            mine = {bare_id(j) for j in work.selector["job_ids"]}
            items: dict[str, Item] = {}
            for key, previous in work.items.items():
                bare = bare_id(key)
                if previous.status != PENDING or bare not in mine:
                    items[key] = previous
                elif bare in not_found:
                    items[key] = Item("failed", "analysis not found by the API")
                elif bare in expired:
                    items[key] = Item("expired", "analysis result expired")
                elif bare in by_job:
                    status = item_status(by_job[bare].get("status"))
                    message = by_job[bare].get("error_message") if status not in ("succeeded", PENDING) else None
                    items[key] = Item(status, message)
                else:
                    items[key] = previous
            return PollRead(items, response.part(mine))

        return read

    def followup_units(self, work: Work) -> list[str]:
        return [j for j in work.selector["job_ids"] if work.items.get(j, Item()).status == "succeeded"]

    def followup(self, client: TokstaClient, batch: Sequence[Work]) -> ApiResponse:
        body: dict[str, Any] = {"job_ids": _dedupe(j for work in batch for j in self.followup_units(work))}
        if batch[0].detail_level is not None:
            body["detail_level"] = batch[0].detail_level
        return self._followup(client, body)

    def _followup(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        raise NotImplementedError

    def read_followup(self, data: Mapping[str, Any], work: Work) -> dict[str, Any]:
        return self.followup_reader(data)(work)

    def followup_reader(self, data: Mapping[str, Any]) -> Callable[[Work], dict[str, Any]]:
        response = _SharedResponse(data, _job_entry_id, bare_id)
        return lambda work: response.part({bare_id(j) for j in self.followup_units(work)})


class ContentMatchRules(MatchRules):
    kind = Kind.CONTENT_MATCH
    job_id_prefix = "content-fit:"
    start_route = "POST /v1/creators/content-match"
    poll_route = "POST /v1/content-match/results"
    followup_route = "POST /v1/content-match/posts"
    include_name = "posts"
    batch_limit = 50
    start_share_limit = 50  # one poll call's worth of jobs

    def start(self, client: TokstaClient, params: Mapping[str, Any]) -> ApiResponse:
        return client.start_content_match(params)

    def _results(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        return client.content_match_results(body)

    def _followup(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        return client.content_match_posts(body)


class AudienceMatchRules(MatchRules):
    kind = Kind.AUDIENCE_MATCH
    job_id_prefix = "audience-fit:"
    start_route = "POST /v1/creators/audience-match"
    poll_route = "POST /v1/audience-match/results"
    followup_route = "POST /v1/audience-match/details"
    include_name = "details"
    batch_limit = 50
    start_share_limit = 50  # one poll call's worth of jobs

    def start(self, client: TokstaClient, params: Mapping[str, Any]) -> ApiResponse:
        return client.start_audience_match(params)

    def _results(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        return client.audience_match_results(body)

    def _followup(self, client: TokstaClient, body: dict[str, Any]) -> ApiResponse:
        return client.audience_match_details(body)


class MalformedPayload(ValueError):
    """A 2xx response whose payload breaks the documented shape."""


RULES: Final[dict[Kind, FamilyRules]] = {
    Kind.THOUGHT_LEADERS: ThoughtLeadersRules(),
    Kind.ENRICHMENT: EnrichmentRules(),
    Kind.CONTENT_MATCH: ContentMatchRules(),
    Kind.AUDIENCE_MATCH: AudienceMatchRules(),
}


def rules_for(kind: Kind | str) -> FamilyRules:
    return RULES[Kind(kind)]


def may_resend_unconfirmed(kind: Kind | str, resend_kinds: frozenset[str]) -> bool:
    """The API has no idempotency key: re-sending an unconfirmed start is off unless configured."""
    return Kind(kind).value in resend_kinds


def _failure_message(failure: object) -> str:
    if isinstance(failure, Mapping):
        for key in ("message", "error_message", "error", "reason"):
            if isinstance(failure.get(key), str):
                return str(failure[key])
    return "the API could not start this item"


def _by_key(entries: object, key: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and isinstance(entry.get(key), str):
            out[entry[key]] = dict(entry)
    return out


class _SharedResponse:
    """A response shared by the requests of one call, indexed once, then cut into each one's part.

    Its entry lists (`results_summary`, `results`) and id lists (`not_found_ids`, `expired_ids`)
    are indexed by the id that says whose each value is; a request's part is then looked up by its
    own ids. Each request scanning the whole response made a call of n requests cost n times the
    response (a full enrichment batch: 50 requests, each over the 100 entries).
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        entry_id: Callable[[Mapping[str, Any]], str | None],
        normalize: Callable[[str], str],
    ) -> None:
        self.data = data
        self._lists = {
            name: _positions(data.get(name), lambda e: entry_id(e) if isinstance(e, Mapping) else None)
            for name in ("results_summary", "results")
        }
        self._lists.update(
            {
                name: _positions(data.get(name), lambda i: normalize(i) if isinstance(i, str) else None)
                for name in ("not_found_ids", "expired_ids")
            }
        )

    def part(self, mine: set[str]) -> dict[str, Any]:
        """A copy of the response with only the values of the ids in `mine`, its counts recomputed.

        The values are chosen first, in response order, and only they are copied.
        """
        payload = dict(self.data)
        for name, index in self._lists.items():
            if index is not None:
                values = self.data[name]
                payload[name] = [values[p] for p in _owned(index, mine)]
        payload = cast(dict[str, Any], _json_copy(payload))
        not_found = len(payload.get("not_found_ids") or [])
        _set_if(payload, "requested_count", len(mine))
        _set_if(payload, "found_count", len(mine) - not_found)
        _set_selected(payload, len(mine))
        return payload


def _positions(values: object, ident: Callable[[Any], str | None]) -> dict[str, list[int]] | None:
    """Where each id's values sit in a response list; None when it is not a list (left as it is)."""
    if not isinstance(values, list):
        return None
    index: dict[str, list[int]] = {}
    for position, value in enumerate(values):
        key = ident(value)
        if key is not None:
            index.setdefault(key, []).append(position)
    return index


def _owned(index: Mapping[str, list[int]], mine: set[str]) -> list[int]:
    """The positions of the ids in `mine`, in response order."""
    return sorted(p for ident in mine for p in index.get(ident, ()))


def _job_entry_id(entry: Mapping[str, Any]) -> str:
    """Whose a match entry is: its job id, bare (the API may echo either form)."""
    return bare_id(str(entry.get("job_id", "")))


def _creator_entry_id(entry: Mapping[str, Any]) -> str | None:
    """Whose an enrichment entry is: its creator id (an entry without one is nobody's)."""
    creator = entry.get("creator_id")
    return creator if isinstance(creator, str) else None


def _same_id(value: str) -> str:
    return value


def _json_copy(value: Any) -> Any:
    """A deep copy of parsed JSON (dicts, lists, scalars), so a row's payload shares nothing with the
    response or another row's; `copy.deepcopy` did the same at 2.5 times the cost (its memo and
    dispatch serve object graphs that JSON cannot hold)."""
    if isinstance(value, dict):
        return {key: _json_copy(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_copy(item) for item in value]
    return value


def _set_if(payload: dict[str, Any], name: str, value: int) -> None:
    if name in payload:
        payload[name] = value


def _set_selected(payload: dict[str, Any], count: int) -> None:
    selection = payload.get("selection")
    if isinstance(selection, dict) and "selected_count" in selection:
        payload["selection"] = dict(selection, selected_count=count)


def _creator(creator_id: object) -> str:
    """A creator UUID as the API compares it (case-insensitive): the API may echo it lower-cased."""
    return str(creator_id).lower()


def _start_jobs(data: Mapping[str, Any]) -> list[dict[str, Any]]:
    """A shared start's `jobs[]`, each naming its creator; every id in `job_ids` must be among them."""
    jobs = [dict(job) for job in data.get("jobs") or [] if isinstance(job, Mapping)]
    for job in jobs:
        if not isinstance(job.get("creator_id"), str):
            raise MalformedPayload("a shared start returned a job without its creator_id")
    known = {job.get("job_id") for job in jobs}
    for job_id in data.get("job_ids") or []:
        if job_id not in known:
            raise MalformedPayload(f"a shared start returned job id {job_id!r} without a jobs[] entry")
    return jobs


class _SharedStart:
    """A start response shared by several requests, indexed once by creator (as `_SharedResponse`),
    then cut into each request's view: the response as that request would have seen it alone.

    A job or failure that names no creator cannot be given to anyone: the payload is malformed.
    """

    def __init__(self, data: Mapping[str, Any]) -> None:
        self.data = data
        self.jobs = _start_jobs(data)
        self._jobs_at = _positions(self.jobs, lambda job: _creator(job["creator_id"])) or {}
        self._lists: dict[str, dict[str, list[int]]] = {}
        for name in ("failures", "missing_linkedin_profiles"):
            entries = data.get(name)
            if not isinstance(entries, list):
                continue
            owners = [_ids([entry]) for entry in entries]
            if any(not who for who in owners):
                raise MalformedPayload(f"a shared start returned an entry of {name} without its creator_id")
            self._lists[name] = _positions(owners, lambda who: _creator(who[0])) or {}

    def part(self, mine: set[str]) -> dict[str, Any]:
        """One request's view: its creators' entries only, copied after the cut, counts recomputed."""
        view = dict(self.data)
        own_jobs = [self.jobs[p] for p in _owned(self._jobs_at, mine)]
        view["jobs"] = own_jobs
        if isinstance(self.data.get("job_ids"), list):
            own_ids = {job.get("job_id") for job in own_jobs}
            view["job_ids"] = [j for j in self.data["job_ids"] if j in own_ids]
        for name, index in self._lists.items():
            view[name] = [self.data[name][p] for p in _owned(index, mine)]
        view = cast(dict[str, Any], _json_copy(view))
        _set_if(view, "creators_requested", len(mine))
        _set_if(view, "jobs_created", sum(1 for job in own_jobs if not job.get("cached")))
        _set_selected(view, len(mine))
        return view


def _credit_shares(jobs: list[dict[str, Any]], owners: list[set[str]]) -> list[float]:
    """Each request's share of a shared start's credits: its billable jobs, a shared job split evenly.

    With no billable job (all cached, or the API listed none) the split follows the creators.
    """
    billable = [_creator(job["creator_id"]) for job in jobs if not job.get("cached")]
    units = billable or [c for mine in owners for c in mine]
    holders_of: dict[str, list[int]] = {}
    for i, mine in enumerate(owners):
        for creator in mine:
            holders_of.setdefault(creator, []).append(i)
    shares = [0.0] * len(owners)
    for creator in units:
        holders = holders_of.get(creator, [])
        for i in holders:
            shares[i] += 1.0 / len(holders)
    total = sum(shares)
    return [s / total if total else 1.0 / len(owners) for s in shares]
