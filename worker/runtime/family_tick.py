"""What one tick of one family does, in priority order.

1. Deliver finished work: follow-up fetches for `include` (coalesced), then replies.
2. Cancels of running requests (thought leaders are canceled at the API).
3. Starts of admitted requests, oldest first, as the rate budget allows, compatible ones sharing a
   call (start_batches); deadlines of waiting ones.
4. One coalesced poll round over every due request of the family, fleet-wide: as few calls as the
   endpoints' batch limits allow, split by `detail_level`; deadlines of running ones.
Then the tick says how long until it is next needed. Every API call is taken from the shared rate
budget first; when the budget says wait, the tick stops and re-arms for then.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from worker.api.client import ApiResponse
from worker.api.errors import ApiError
from worker.contract.models import ErrorCode, Status
from worker.families import (
    FamilyRules,
    Item,
    MalformedPayload,
    PollRead,
    StartOutcome,
    Work,
    may_resend_unconfirmed,
    rules_for,
    summarize,
)
from worker.runtime import deliver as delivery
from worker.runtime.budget import Grant, Priority
from worker.runtime.context import CALL_CONCURRENCY, Runtime
from worker.runtime.poll_grid import nearest_round
from worker.runtime.registry import DONE, FINISHING, RUNNING, STARTING, WAITING, index_name
from worker.runtime.replies import error_object
from worker.runtime.rows import next_interval, to_finishing, work_of
from worker.runtime.start_batches import start_groups
from worker.runtime.ticks import tick_clock
from worker.state.base import Versioned

T = TypeVar("T")
log = logging.getLogger(__name__)

ROW_ERROR_LIMIT = 5
SCAN_LIMIT = 500
# Due rows one poll round takes (the rest go in the next tick, at once): bounds the rows a tick holds
# in memory, whatever the number in flight. Larger than every endpoint's batch limit.
POLL_SCAN = 100
FILL_SCAN = 100  # next-due rows looked at to fill a poll round's last calls
START_WAVE = 4 * CALL_CONCURRENCY  # start calls claimed, sent and recorded together
REPLIES_PER_CONNECTION = 8  # fewer finished rows than this per connection are not worth a pool thread


class Superseded(RuntimeError):
    """The tick lost its lease; another tick owns the family now."""


class BudgetWait(RuntimeError):
    """The rate budget said wait; the tick ends and re-arms for then."""

    def __init__(self, wait: float) -> None:
        super().__init__(f"budget: wait {wait:.3f}s")
        self.wait = wait


class FamilyTick:
    """One run of one family's tick."""

    def __init__(self, rt: Runtime, kind: str, renew: Callable[[], bool], token: str) -> None:
        self.rt = rt
        self.kind = kind
        self.rules: FamilyRules = rules_for(kind)
        self._renew_lease = renew
        self._renewed_at: float | None = None
        self.token = token
        self.settings = rt.settings
        self.registry = rt.registry
        self.budget_wait: float | None = None
        # Index -> real seconds the budget asked its work to wait; `stopped` when a refusal ended the tick.
        self.refused: dict[str, float] = {}
        self.stopped = False
        self._cadence: float | None = None

    # -- entry ----------------------------------------------------------------------------------

    def run(self) -> float:
        """Do the due work; return the real seconds until this family next needs a tick.

        A budget refusal ends the tick, except for starts: polls may still be owed their share
        of the budget (see budget.py), so the poll round is tried after refused starts.
        """
        for index, phase in (
            ("finishing", self.finish_phase),
            ("cancels", self.cancel_phase),
            ("waiting", self.start_phase),
            ("running", self.poll_phase),
            ("finishing", self.finish_phase),
        ):
            try:
                phase()
            except BudgetWait as wait:
                self.refused[index] = min(wait.wait, self.refused.get(index, wait.wait))
                self.budget_wait = min(self.refused.values())
                if index != "waiting":
                    self.stopped = True
                    break
        return self.next_delay()

    def next_delay(self) -> float:
        """The tick's next due time: the earliest due row, or the budget's word for refused work."""
        now = time.time()
        candidates = [self.settings.tick_max_idle_seconds, *self.refused.values()]
        if not self.stopped:
            for index in ("waiting", "running", "finishing"):
                if index in self.refused:
                    continue
                due = self.registry.next_due(index, self.kind)
                if due is not None:
                    candidates.append(due - now)
        return max(0.0, min(candidates))

    def renew(self) -> bool:
        """Renew the lease before a call, unless it was renewed so recently that it cannot lapse.

        The lease covers a call's whole timeout plus a slack (ticks.tick_clock); within the first half
        of that slack after a renewal, a call that starts now still ends inside the lease, so the
        write is skipped (one store write less per call on a busy family).
        """
        now = time.monotonic()
        clock = tick_clock(self.rt)
        slack = clock.lease - self.settings.http_timeout_seconds - self.settings.scaled(self.settings.poll_wait_seconds)
        if self._renewed_at is not None and now - self._renewed_at < slack / 2:
            return True
        if not self._renew_lease():
            return False
        self._renewed_at = now
        return True

    @property
    def cadence(self) -> float:
        """Real seconds between two polls of a running row, as the key's limit affords (per tick)."""
        if self._cadence is None:
            self._cadence = self.settings.scaled(self.rt.budget.poll_cadence())
        return self._cadence

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self, priority: Priority, keys: Sequence[str], fn: Callable[[], ApiResponse], *, book: bool = True
    ) -> ApiResponse:
        """Make one API call for `keys` under the budget; its cost is shared 1/k among them.

        Raises BudgetWait when the budget refuses, Superseded when the lease is gone, ApiError
        when the call fails (its cost is still booked). With `book=False` the caller adds the
        share in its own row update (the poll path, where every row is rewritten anyway).
        """
        self._check_draining()
        grant: Grant = self.rt.budget.acquire(priority)
        if not grant.granted:
            raise BudgetWait(grant.wait)
        if not self.renew():
            raise Superseded(self.kind)
        try:
            response = fn()
        except ApiError as err:
            if book and (err.sent or err.http_status is not None):
                self.book(keys)
            raise
        if book:
            self.book(keys)
        return response

    def book(self, keys: Sequence[str]) -> None:
        """Add this call's share to each request's `api_calls`."""
        share = 1.0 / len(keys)

        def add(row: dict[str, Any]) -> dict[str, Any] | None:
            if row["state"] == DONE:
                log.warning("call share for an already answered request", extra={"request_id": row["request_id"]})
                return None
            row["api_calls"] = float(row.get("api_calls") or 0.0) + share
            return row

        for key in keys:
            self.registry.update(key, add)

    # -- 1. finished work -----------------------------------------------------------------------

    def finish_phase(self) -> None:
        keys = self.registry.due("finishing", self.kind, until=time.time(), limit=SCAN_LIMIT)
        if not keys:
            return
        rows = self._read(keys)
        needing = [(k, c.value) for k, c in rows.items() if c.value.get("needs_followup")]
        if needing:
            self._followups(needing)
            rows = self._read(keys)
        for current in rows.values():
            if current.value.get("needs_followup"):
                self._answer_cancel_of(current.value)  # not delivered yet; delivering answers the others' (deliver.py)
        ready = [(k, c) for k, c in rows.items() if not c.value.get("needs_followup")]
        # Each confirm waits for the broker to store the reply: publish from several connections
        # at once (one per pool thread) so those waits overlap.
        self._overlapped(self._deliver, _chunks(ready, CALL_CONCURRENCY, at_least=REPLIES_PER_CONNECTION))

    def _deliver(self, rows: list[tuple[str, Versioned]]) -> None:
        keys = [key for key, _ in rows]
        delivery.deliver_many(self.registry, self.rt.publisher(), keys, self.settings.max_reply_bytes, known=dict(rows))

    def _followups(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        groups: dict[tuple[Any, ...], list[Work]] = defaultdict(list)
        for key, row in rows:
            work = work_of(key, row)
            groups[(work.detail_level,)].append(work)
        for batch in self._batches(groups):
            keys = [w.key for w in batch]
            try:
                response = self.call(Priority.FINISH, keys, lambda b=batch: self.rules.followup(self.rt.client, b))  # type: ignore[misc]
            except ApiError as err:
                self._followup_failed(batch, err)
                continue
            read_of = self.rules.followup_reader(response.data)
            for work in batch:
                extra = read_of(work)
                self.registry.update(work.key, lambda row, e=extra: dict(row, extra=e, needs_followup=False))  # type: ignore[misc]

    def _followup_failed(self, batch: list[Work], err: ApiError) -> None:
        """A follow-up that cannot succeed ends with the reply it has; a transient one is retried."""
        log.warning("follow-up fetch failed: %s", err)
        if err.retryable:
            return
        for work in batch:
            self.registry.update(work.key, lambda row: dict(row, needs_followup=False))

    # -- 2. cancels -----------------------------------------------------------------------------

    def cancel_phase(self) -> None:
        for key, row in self._load(self.registry.due("cancels", self.kind, until=float("inf"), limit=SCAN_LIMIT)):
            if row["state"] != RUNNING or not row.get("cancel"):
                continue
            if self.rules.can_cancel_at_api():
                self._cancel_at_api(key, row)
            else:
                self._stop_polling(key, row)

    def _stop_polling(self, key: str, row: dict[str, Any]) -> None:
        """The API cannot cancel these jobs: the request ends here, its API job runs on.

        The row keeps `cancel` until it is done, so the cancel request is answered even if this
        process dies right after the write (delivering the row answers it; see deliver.py).
        """
        cancel_key = row["cancel"]

        def stop(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["state"] != RUNNING:
                return None
            error = error_object(
                ErrorCode.CANCELED_BY_REQUEST,
                "canceled by a cancel request; the API job continues",
                details={"api_job_continues": True, "canceled_by": _request_id_of(cancel_key)},
            )
            r["cancel_result"] = {"canceled": True, "reason": "polling_stopped"}
            return to_finishing(r, Status.CANCELED, error, time.time())

        self._answer_cancel_of(self.registry.update(key, stop))

    def _cancel_at_api(self, key: str, row: dict[str, Any]) -> None:
        cancel_key = row["cancel"]
        job_id = row["job_ids"][0]
        try:
            response = self.call(Priority.FINISH, [key], lambda: self.rt.client.cancel_job(job_id))
        except ApiError as err:
            if err.retryable:
                if err.sent:
                    # The API may have canceled the job although no answer came back: remember it, so a
                    # `canceled` job (seen by the retry or by a poll) is read as this cancel's doing.
                    self.registry.update(
                        key, lambda r: dict(r, cancel_sent=True) if r.get("cancel") == cancel_key else None
                    )
                return
            # Answered before the row lets go of it: a crash in between costs a second cancel call.
            self._resolve_cancel_request(cancel_key, None, error=_api_error(err))
            self.registry.update(key, lambda r: dict(r, cancel=None))
            return
        job = _job_of(response)
        if job.get("canceled") is True or (row.get("cancel_sent") and job.get("status") == "canceled"):
            # The API's reason, unless this answers a re-sent cancel (then the API says already_terminal).
            reason = str(job.get("reason") or "cancel_applied") if job.get("canceled") is True else "cancel_applied"

            def canceled(r: dict[str, Any]) -> dict[str, Any] | None:
                if r["state"] == DONE:
                    return None
                r["items"] = {k: {"status": "canceled", "error_message": job.get("error_message")} for k in r["items"]}
                error = error_object(
                    ErrorCode.CANCELED_BY_REQUEST,
                    "canceled by a cancel request",
                    details={"canceled_by": _request_id_of(cancel_key)},
                )
                r["cancel_result"] = {"canceled": True, "reason": reason}
                return to_finishing(r, Status.CANCELED, error, time.time())

            self._answer_cancel_of(self.registry.update(key, canceled))
        else:
            # Already terminal at the API: the request ends in that state at its next poll. The cancel
            # is answered before the row lets go of it: a crash in between costs a second cancel call.
            self._resolve_cancel_request(
                cancel_key, {"canceled": False, "reason": str(job.get("reason") or "already_terminal")}
            )
            self.registry.update(key, lambda r: dict(r, cancel=None, next_poll_at=time.time()))

    def _resolve_cancel_request(
        self, cancel_key: str, result: dict[str, Any] | None, *, error: dict[str, Any] | None = None
    ) -> None:
        delivery.answer_cancel(
            self.registry, self.rt.publisher(), cancel_key, self.settings.max_reply_bytes, result=result, error=error
        )

    def _answer_cancel_of(self, row: dict[str, Any] | None) -> None:
        """Answer the cancel request of a row that just ended (or ended earlier), if it has one."""
        if row is not None:
            delivery.answer_cancel_of(self.registry, self.rt.publisher(), row, self.settings.max_reply_bytes)

    # -- 3. starts ------------------------------------------------------------------------------

    def start_phase(self) -> None:
        now = time.time()
        ready: list[tuple[str, dict[str, Any]]] = []
        loaded = self._read(self.registry.due("waiting", self.kind, until=now, limit=SCAN_LIMIT))
        for key, current in loaded.items():
            row = current.value
            if row["state"] != WAITING:
                continue
            if now >= row["deadline_at"]:
                self._expire_waiting(key)
                continue
            if row.get("next_start_at", 0.0) > now:
                continue
            ready.append((key, row))
        groups = start_groups(self.rules, ready)
        sent = 0
        while sent < len(groups):
            # Asked before every wave: a cold fleet's first call teaches the budget the key's limit,
            # and on a roomy key the rest of the round overlaps instead of going one at a time.
            size = START_WAVE if len(groups) - sent > 1 and self.rt.budget.roomy() else 1
            self._start_wave(groups[sent : sent + size], loaded)
            sent += size

    def _overlapped(self, fn: Callable[[Any], Any], items: list[Any]) -> list[Any]:
        """`fn` over `items` at once on the runtime's call pool, results in order. Every call is
        awaited before the tick goes on (its lease covers them); then the first error is raised."""
        if len(items) <= 1:
            return [fn(item) for item in items]
        futures = [self.rt.call_pool.submit(fn, item) for item in items]
        errors = [error for future in futures if (error := future.exception()) is not None]
        if errors:
            raise errors[0]
        return [future.result() for future in futures]

    def _expire_waiting(self, key: str) -> None:
        def expire(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["state"] != WAITING:
                return None
            last = r.get("last_start_error")
            if last:
                error = _upstream_unavailable(last, {"start_attempts": r.get("start_attempts", 0)})
            else:
                error = error_object(ErrorCode.DEADLINE_EXCEEDED, "not started before the deadline", retryable=True)
            return to_finishing(r, Status.ERROR, error, time.time(), result=None)

        self.registry.update(key, expire)

    def _start_wave(self, groups: list[list[str]], loaded: Mapping[str, Versioned]) -> None:
        """Up to START_WAVE start calls (see start_batches): each takes its budget grant, then one
        batched write claims every row, the calls go out at once on the call pool (they wait on
        the network, not the CPU), and one batched write records them. A budget refusal stops the
        wave at that call; the calls granted before it still go out. The claim starts from the
        rows as the phase `loaded` them, and the record from the rows as the claim wrote them."""
        self._check_draining()
        granted: list[list[str]] = []
        refused: BudgetWait | None = None
        for group in groups:
            grant = self.rt.budget.acquire(Priority.START)
            if not grant.granted:
                refused = BudgetWait(grant.wait)
                break
            granted.append(group)
        if granted:
            if not self.renew():
                raise Superseded(self.kind)
            keys = [key for group in granted for key in group]
            claims = self.registry.update_many_versioned(dict.fromkeys(keys, self._claim), known=loaded)
            calls: list[list[tuple[str, dict[str, Any]]]] = []
            for group in granted:
                call = [(k, c.value) for k in group if (c := claims.get(k)) is not None and self._owns(c.value)]
                if call:
                    calls.append(call)
            results = self._overlapped(self._call_start, calls)
            running: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}
            for call, result in zip(calls, results, strict=True):
                if isinstance(result, BudgetWait):
                    refused = result if refused is None or result.wait < refused.wait else refused
                    running.update(dict.fromkeys([key for key, _ in call], self._unclaim))
                    continue
                running.update(self._record_start(call, result))
            if running:
                self.registry.update_many(running, known={k: c for k in running if (c := claims.get(k)) is not None})
        if refused is not None:
            raise refused

    def _claim(self, r: dict[str, Any]) -> dict[str, Any] | None:
        """A waiting row becomes this tick's `starting` row, before its start call is sent."""
        if r["state"] != WAITING:
            return None
        r["state"] = STARTING
        r["start_token"] = self.token
        r["start_attempts"] = int(r.get("start_attempts") or 0) + 1
        r["next_poll_at"] = 0.0
        return r

    def _owns(self, row: dict[str, Any]) -> bool:
        return bool(row["state"] == STARTING and row.get("start_token") == self.token)

    def _unclaim(self, r: dict[str, Any]) -> dict[str, Any] | None:
        """A claimed row whose call was not sent goes back to waiting, as if never claimed."""
        if not self._owns(r):
            return None
        r["start_attempts"] = max(0, int(r.get("start_attempts") or 1) - 1)
        return dict(r, state=WAITING, start_token=None, next_poll_at=None)

    def _call_start(self, call: list[tuple[str, dict[str, Any]]]) -> ApiResponse | ApiError | BudgetWait:
        """One start call for the claimed rows of `call` (their shared body when several).

        The calls of a wave go out together: one that another call's 429 overtook (a Retry-After
        now pending) is not sent, so no call reaches the API while a Retry-After runs."""
        blocked = self.rt.budget.blocked_until() - time.time()
        if blocked > 0:
            return BudgetWait(blocked)
        params_list = [row["params"] for _, row in call]
        body = params_list[0] if len(call) == 1 else self.rules.shared_params(params_list)
        try:
            return self.rules.start(self.rt.client, body)
        except ApiError as err:
            return err

    def _record_start(
        self, call: list[tuple[str, dict[str, Any]]], result: ApiResponse | ApiError
    ) -> dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]]:
        """The row updates of a confirmed start (returned, to be written in one batch); a failed or
        unreadable one is written here, row by row. Each request's row books 1/k of the call."""
        keys = [key for key, _ in call]
        share = 1.0 / len(keys)
        if isinstance(result, ApiError):
            alone = len(keys) > 1 and _refused_outright(result)
            for key in keys:
                if alone:
                    self._start_alone(key, share)
                else:
                    self._start_failed(key, result, share)
            return {}
        params_list = [row["params"] for _, row in call]
        try:
            outcomes = self.rules.read_shared_start(result, params_list)
        except MalformedPayload as exc:
            for key in keys:
                self._start_unreadable(key, result, exc, share)
            return {}
        now = time.time()
        first_poll = self._first_poll_at(now)
        return {
            key: self._running(key, outcome, share, now if outcome.synchronous else first_poll)
            for key, outcome in zip(keys, outcomes, strict=True)
        }

    def _start_unreadable(self, key: str, response: ApiResponse, exc: MalformedPayload, share: float) -> None:
        error = error_object(
            ErrorCode.START_UNCONFIRMED,
            f"the start response was unreadable: {exc}",
            toksta_request_id=response.toksta_request_id,
            details={"may_have_started": True},
        )

        def unreadable(r: dict[str, Any]) -> dict[str, Any] | None:
            if not self._owns(r):
                return None
            r["api_calls"] = float(r.get("api_calls") or 0.0) + share
            return to_finishing(r, Status.ERROR, error, time.time())

        self.registry.update(key, unreadable)

    def _running(
        self, key: str, outcome: StartOutcome, share: float, first_poll: float
    ) -> Callable[[dict[str, Any]], dict[str, Any] | None]:
        """The row update that records a confirmed start: running, or finishing when nothing is pending."""
        now = time.time()

        def running(r: dict[str, Any]) -> dict[str, Any] | None:
            if not self._owns(r):
                log.warning("start of %s finished after its row moved on", key)
                return None
            r["api_calls"] = float(r.get("api_calls") or 0.0) + share
            r["job_ids"] = outcome.job_ids
            r["items"] = {k: v.as_dict() for k, v in outcome.items.items()}
            r["selector"] = outcome.selector
            r["credits"] = outcome.credits
            r["state"] = RUNNING
            r["poll_interval"] = None
            needs_poll = any(i.status == "pending" for i in outcome.items.values()) or outcome.synchronous
            r["next_poll_at"] = first_poll
            if not needs_poll:
                return self._terminal(r, now)
            return r

        return running

    def _start_alone(self, key: str, share: float) -> None:
        """The API refused a shared start outright (nothing started): each request tries again on
        its own call, so one request's bad params cannot fail the others, and its own refusal
        becomes its reply."""

        def alone(r: dict[str, Any]) -> dict[str, Any] | None:
            if not self._owns(r):
                return None
            r["api_calls"] = float(r.get("api_calls") or 0.0) + share
            if r.get("cancel"):
                return _canceled_before_start(r)
            return dict(r, state=WAITING, start_alone=True, next_start_at=time.time())

        self._answer_cancel_of(self.registry.update(key, alone))

    def _start_failed(self, key: str, err: ApiError, share: float) -> None:
        now = time.time()
        resend = err.safe_to_resend or (
            err.outcome_unknown and may_resend_unconfirmed(self.kind, self.settings.resend_unconfirmed_start)
        )

        def failed(r: dict[str, Any]) -> dict[str, Any] | None:
            if not self._owns(r):
                return None
            if err.sent or err.http_status is not None:
                r["api_calls"] = float(r.get("api_calls") or 0.0) + share
            if resend and r.get("cancel"):
                # A cancel arrived during the call: the request is back to waiting, so it ends before_start.
                return _canceled_before_start(r)
            if resend:
                r["state"] = WAITING
                r["last_start_error"] = err.to_dict()
                wait = err.retry_after if err.retry_after is not None else _backoff(int(r["start_attempts"]))
                r["next_start_at"] = now + self.settings.scaled(wait)
                return r
            if err.outcome_unknown:
                error = error_object(
                    ErrorCode.START_UNCONFIRMED,
                    f"the start call's outcome is unknown ({err.code}); not re-sent: the API has no idempotency key",
                    toksta_request_id=err.toksta_request_id,
                    http_status=err.http_status,
                    details={"may_have_started": True, "cause": err.code},
                )
            else:
                error = _api_error(err)
            return to_finishing(r, Status.ERROR, error, now, result=None)

        self._answer_cancel_of(self.registry.update(key, failed))

    # -- 4. polls -------------------------------------------------------------------------------

    def poll_phase(self) -> None:
        """One round: every due row, in as few calls as the batch limits allow, each call filled up.

        Only due rows (and those due within POLL_COALESCE_SECONDS) decide how many calls the round
        makes; room left in the last call of a group is filled with the family's next-due rows, so
        a call never goes out half empty while other rows of the family would soon need their own.
        """
        now = time.time()
        horizon = now + self.settings.scaled(self.settings.poll_coalesce_seconds)
        keys = self.registry.due("running", self.kind, until=horizon, limit=POLL_SCAN)
        groups: dict[tuple[Any, ...], list[Work]] = defaultdict(list)
        loaded = self._read(keys)
        for key, current in loaded.items():
            row = current.value
            if row["state"] == STARTING:
                if row.get("start_token") != self.token:
                    self._recover_unconfirmed(key, row)
                continue
            if row["state"] != RUNNING:
                continue
            # A row never polled (no poll_interval yet) gets one poll before its deadline verdict: what
            # that poll finds (a terminal job, a payload, or an outage) decides the outcome and its code.
            if now >= row["deadline_at"] and not row.get("deadline_checked") and row.get("poll_interval") is not None:
                self._deadline(key, row)
                continue
            work = work_of(key, row)
            group = ("solo", key) if row.get("poll_alone") else self.rules.poll_group(work)
            groups[group].append(work)
        batches: list[list[Work]] = []
        last_of_group: dict[tuple[Any, ...], list[Work]] = {}
        for group, works in groups.items():
            split = self._batches({group: works})
            batches.extend(split)
            if group[0] != "solo":
                last_of_group[group] = split[-1]
        self._fill(last_of_group, set(keys), horizon, now, loaded)
        # The family's next round on its grid, from this round's start: the rows of this round stay
        # together, and those polled off the grid (a round cut by the budget, a slow call) join the
        # others (see poll_grid).
        next_round = nearest_round(now + self.cadence, self.cadence, self.kind)
        for batch in batches:
            self._poll_batch(batch, next_round, loaded)

    def _fill(
        self,
        last_of_group: dict[tuple[Any, ...], list[Work]],
        taken: set[str],
        after: float,
        now: float,
        loaded: dict[str, Versioned],
    ) -> None:
        """Top up each group's last batch with the family's next-due rows of that group (adding
        the rows it reads to `loaded`)."""
        room = {group: self.rules.batch_limit - self._units(batch) for group, batch in last_of_group.items()}
        if not any(r > 0 for r in room.values()):
            return
        index = index_name("running", self.kind)
        upcoming = self.rt.store.index_range(index, min_score=after, max_score=float("inf"), limit=FILL_SCAN)
        keys = [k for k, score in upcoming if k not in taken and score > after]
        more = self._read(keys)
        loaded.update(more)
        for key, current in more.items():
            row = current.value
            if row["state"] != RUNNING or row.get("poll_alone") or now >= row["deadline_at"]:
                continue
            work = work_of(key, row)
            group = self.rules.poll_group(work)
            size = max(1, len(self.rules.poll_units(work)))
            if group not in last_of_group or room[group] < size:
                continue
            last_of_group[group].append(work)
            room[group] -= size

    def _units(self, batch: list[Work]) -> int:
        return sum(max(1, len(self.rules.poll_units(w))) for w in batch)

    def _first_poll_at(self, now: float) -> float:
        """A started row joins the family's next poll round (within one cadence) instead of opening
        one; with none in flight, its first poll is the family's grid instant a cadence or so away."""
        index = index_name("running", self.kind)
        cadence = self.cadence
        nxt = self.rt.store.index_range(index, min_score=now - cadence, max_score=now + cadence, limit=1)
        return max(now, nxt[0][1]) if nxt else nearest_round(now + cadence, cadence, self.kind)

    def _poll_batch(self, batch: list[Work], next_round: float, loaded: Mapping[str, Versioned]) -> None:
        """One call of a round; its rows still running are next polled at `next_round`, the round's,
        not a cadence after this call's end, so the calls of one round (however long it takes) stay
        one round. The rows are written from what the round `loaded` (each batch's rows are its own)."""
        keys = [w.key for w in batch]
        wait = self.settings.poll_wait_seconds if len(batch) == 1 else 0
        try:
            response = self.call(Priority.POLL, keys, lambda: self.rules.poll(self.rt.client, batch, wait), book=False)
        except ApiError as err:
            self._poll_failed(batch, err)
            return
        now = time.time()
        share = 1.0 / len(batch)
        updates: dict[str, Callable[[dict[str, Any]], dict[str, Any] | None]] = {}
        read_of: Callable[[Work], PollRead] | None = None
        for work in batch:
            try:
                # Built once, inside the try: a response the reader cannot even index counts against
                # each of its rows (and ends them as poison in time), as a row it cannot read does.
                read_of = read_of or self.rules.poll_reader(response.data)
                read = read_of(work)
            except Exception:
                log.exception("could not read a poll response", extra={"request_id": work.key})
                self._row_error(work.key, share)
                continue
            updates[work.key] = lambda r, rd=read: self._apply_poll(r, rd, now, share, next_round)  # type: ignore[misc]
        self.registry.update_many(updates, known=loaded)

    def _apply_poll(
        self, row: dict[str, Any], read: Any, now: float, share: float, next_round: float
    ) -> dict[str, Any] | None:
        if row["state"] != RUNNING:
            if row["state"] != DONE:
                row["api_calls"] = float(row.get("api_calls") or 0.0) + share
                return row
            return None
        row["api_calls"] = float(row.get("api_calls") or 0.0) + share
        row["items"] = {k: v.as_dict() for k, v in read.items.items()}
        row["last_poll_error"] = None
        if read.payload is not None:
            row["payload"] = read.payload
        if not any(v.status == "pending" for v in read.items.values()):
            return self._terminal(row, now)
        row["poll_interval"] = next_interval(row.get("poll_interval"))  # polled once at least; the backoff if one fails
        if now >= row["deadline_at"]:
            if row.get("deadline_checked") or not self.rules.can_cancel_at_api():
                return self._deadline_row(row, now)
            row["next_poll_at"] = now  # the next round cancels the job at the API first (`_deadline`)
            return row
        row["next_poll_at"] = next_round
        return row

    def _terminal(self, row: dict[str, Any], now: float) -> dict[str, Any]:
        items = {k: Item.from_dict(v) for k, v in row["items"].items()}
        summary = summarize(items)
        error = None
        if summary.status != Status.SUCCEEDED:
            error = error_object(str(summary.code), str(summary.message), details=summary.counts)
        if summary.status == Status.CANCELED and row.get("cancel") and row.get("cancel_sent"):
            # Our cancel call reached the API but its answer was lost (see _cancel_at_api).
            error = error_object(
                ErrorCode.CANCELED_BY_REQUEST,
                "canceled by a cancel request",
                details={"canceled_by": _request_id_of(row["cancel"])},
            )
        work = work_of("", row)
        row["needs_followup"] = self.rules.wants_followup(work)
        row = to_finishing(row, summary.status, error, now)
        # The reply is fixed in this same write unless a follow-up still adds to it: delivering then
        # costs one write (done), not two (fix the reply, then done).
        return row if row["needs_followup"] else delivery.fix_reply(row, now)

    def _poll_failed(self, batch: list[Work], err: ApiError) -> None:
        log.warning("poll failed: %s", err)
        now = time.time()
        share = 1.0 / len(batch) if (err.sent or err.http_status is not None) else 0.0
        for work in batch:

            def backoff(r: dict[str, Any]) -> dict[str, Any] | None:
                if r["state"] == DONE:
                    return None
                r["api_calls"] = float(r.get("api_calls") or 0.0) + share
                if r["state"] != RUNNING:
                    return r
                if not err.retryable and len(batch) == 1:
                    return to_finishing(r, Status.ERROR, _api_error(err), now)
                if not err.retryable:
                    r["poll_alone"] = True  # find the request the API objects to
                else:
                    r["last_poll_error"] = err.to_dict()  # an outage at the deadline is UPSTREAM_UNAVAILABLE
                interval = next_interval(r.get("poll_interval"))
                r["poll_interval"] = interval
                r["next_poll_at"] = now + self.settings.scaled(err.retry_after or interval)
                return r

            self.registry.update(work.key, backoff)

    def _deadline(self, key: str, row: dict[str, Any]) -> None:
        if self.rules.can_cancel_at_api() and row.get("job_ids"):
            try:
                response = self.call(Priority.FINISH, [key], lambda: self.rt.client.cancel_job(row["job_ids"][0]))
            except ApiError as err:
                log.warning("deadline cancel failed: %s", err)
            else:
                job = _job_of(response)
                if job.get("canceled") is False:
                    # Already terminal at the API: one more poll tells the final state.
                    self.registry.update(key, lambda r: dict(r, deadline_checked=True, next_poll_at=time.time()))
                    return
        self.registry.update(key, lambda r: self._deadline_row(r, time.time()) if r["state"] == RUNNING else None)

    def _deadline_row(self, row: dict[str, Any], now: float) -> dict[str, Any]:
        """DEADLINE_EXCEEDED; UPSTREAM_UNAVAILABLE when the polls were failing (429/5xx/transport) until then."""
        last = row.get("last_poll_error")
        if last:
            error = _upstream_unavailable(last, {"deadline_at": row["deadline_at"]})
            return to_finishing(row, Status.ERROR, error, now)
        error = error_object(
            ErrorCode.DEADLINE_EXCEEDED,
            "the request did not reach a terminal state by its deadline",
            retryable=True,
            details={"deadline_at": row["deadline_at"]},
        )
        return to_finishing(row, Status.ERROR, error, now)

    def _recover_unconfirmed(self, key: str, row: dict[str, Any]) -> None:
        """A start that a dead (or superseded) tick began: its outcome is unknown.

        With the family's opt-in the start is re-sent (back to waiting), unless a cancel arrived
        meanwhile: then the request ends canceled, as a waiting one would.
        """
        resend = may_resend_unconfirmed(self.kind, self.settings.resend_unconfirmed_start)

        def recover(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["state"] != STARTING:
                return None
            if resend and r.get("cancel"):
                return _canceled_before_start(r)
            if resend:
                return dict(r, state=WAITING, next_start_at=time.time())
            error = error_object(
                ErrorCode.START_UNCONFIRMED,
                "the worker stopped during the start call; its outcome is unknown",
                details={"may_have_started": True, "cause": "WORKER_INTERRUPTED"},
            )
            return to_finishing(r, Status.ERROR, error, time.time(), result=None)

        self._answer_cancel_of(self.registry.update(key, recover))

    def _row_error(self, key: str, share: float) -> None:
        def bump(r: dict[str, Any]) -> dict[str, Any] | None:
            if r["state"] != RUNNING:
                return None
            r["api_calls"] = float(r.get("api_calls") or 0.0) + share
            r["row_errors"] = int(r.get("row_errors") or 0) + 1
            if r["row_errors"] >= ROW_ERROR_LIMIT:
                error = error_object(
                    ErrorCode.POISON_MESSAGE, "the worker failed on this request's API data repeatedly"
                )
                return to_finishing(r, Status.ERROR, error, time.time())
            r["next_poll_at"] = time.time() + self.settings.scaled(next_interval(r.get("poll_interval")))
            return r

        self.registry.update(key, bump)

    # -- helpers --------------------------------------------------------------------------------

    def _check_draining(self) -> None:
        """Graceful shutdown: end the tick before its next call; it re-arms at once for another process.

        Without this a tick with many calls to make (a backlog of starts, a slow API) would outlive
        DRAIN_SECONDS and be cut off mid-call, leaving a start unconfirmed.
        """
        if self.rt.draining.is_set():
            raise BudgetWait(0.0)

    def _load(self, keys: list[str]) -> list[tuple[str, dict[str, Any]]]:
        return [(k, v.value) for k, v in self._read(keys).items()]

    def _read(self, keys: list[str]) -> dict[str, Versioned]:
        """The rows of `keys` that exist, in order, with their versions."""
        return {k: v for k, v in zip(keys, self.registry.get_many(keys), strict=True) if v is not None}

    def _batches(self, groups: dict[tuple[Any, ...], list[Work]]) -> list[list[Work]]:
        """Split each group so no call carries more ids than the endpoint takes."""
        batches: list[list[Work]] = []
        for works in groups.values():
            batch: list[Work] = []
            units = 0
            for work in works:
                size = max(1, len(self.rules.poll_units(work)))
                if batch and units + size > self.rules.batch_limit:
                    batches.append(batch)
                    batch, units = [], 0
                batch.append(work)
                units += size
            if batch:
                batches.append(batch)
        return batches


def _api_error(err: ApiError) -> dict[str, Any]:
    """The API's own error as the reply's error object: its code, status and meta.request_id."""
    return error_object(
        err.code,
        err.message,
        retryable=False,
        http_status=err.http_status,
        toksta_request_id=err.toksta_request_id,
        details=err.details,
    )


def _upstream_unavailable(last: dict[str, Any], details: dict[str, Any]) -> dict[str, Any]:
    """UPSTREAM_UNAVAILABLE after 429/5xx/transport failures outlasted the deadline; `last` is the last ApiError."""
    return error_object(
        ErrorCode.UPSTREAM_UNAVAILABLE,
        f"the API stayed unavailable until the deadline (last: {last.get('code')} {last.get('message')})",
        retryable=True,
        http_status=last.get("http_status"),
        toksta_request_id=last.get("toksta_request_id"),
        details=details,
    )


def _chunks(items: list[T], most: int, *, at_least: int) -> list[list[T]]:
    """`items` in at most `most` contiguous chunks of at least `at_least` (the last may be shorter)."""
    if not items:
        return []
    count = max(1, min(most, len(items) // at_least))
    size = -(-len(items) // count)
    return [items[i : i + size] for i in range(0, len(items), size)]


def _canceled_before_start(row: dict[str, Any]) -> dict[str, Any]:
    """A cancel arrived while the request was back to waiting: it ends before its start."""
    error = error_object(
        ErrorCode.CANCELED_BY_REQUEST,
        "canceled before its start call went through",
        details={"canceled_by": _request_id_of(row["cancel"])},
    )
    row["cancel_result"] = {"canceled": True, "reason": "before_start"}
    return to_finishing(row, Status.CANCELED, error, time.time(), result=None)


def _refused_outright(err: ApiError) -> bool:
    """A 4xx that concerns the request, not the key: nothing started, and re-sending is safe.

    401/403 (the key) and 429 (the rate) would refuse every request alike.
    """
    status = err.http_status
    return status is not None and 400 <= status < 500 and status not in (401, 403, 429) and not err.outcome_unknown


def _backoff(attempts: int) -> float:
    return float(min(2.0 * 2 ** max(attempts - 1, 0), 30.0))


def _job_of(response: ApiResponse) -> dict[str, Any]:
    """`data.job` of a cancel response (an empty dict when the API left it out)."""
    job = response.data.get("job")
    return dict(job) if isinstance(job, dict) else {}


def _request_id_of(key: str) -> str:
    return key.split(":", 2)[2] if key.count(":") >= 2 else key


__all__ = ["FINISHING", "FamilyTick", "Superseded"]
