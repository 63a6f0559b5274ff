"""A typed, synchronous client for the Toksta Public API v1: one attempt per method call.

It speaks the wire format (bearer auth, JSON bodies, the success/error envelopes, rate headers)
and turns every failure into one `ApiError`. It never retries: the start-call rule and the poll
rule differ, so retry policy belongs to the callers, who learn from `ApiError` whether the server
may have acted on a request. Observers see every attempt, which is where the fleet-wide rate
budget and per-request call accounting hook in.
"""

from __future__ import annotations

import json
import logging
import re
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from worker import __version__
from worker.api.errors import MALFORMED_RESPONSE, TIMEOUT, TRANSPORT_ERROR, ApiError, http_code
from worker.api.rate import RateInfo

logger = logging.getLogger("worker.api")

_PLAIN_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")  # visible ASCII: safe in a header, never splits a line
_REDACTED = "[REDACTED]"
MAX_BULK_IDS = 20

# Transport failures where the request surely never reached the server.
_NOT_SENT: tuple[type[httpx.TransportError], ...] = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
)


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful call: the unwrapped envelope plus what the headers said."""

    status: int
    data: dict[str, Any]
    meta: dict[str, Any]
    rate: RateInfo
    toksta_request_id: str | None
    route: str


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One attempt as observers see it, success or failure."""

    route: str
    http_status: int | None
    rate: RateInfo | None
    error: ApiError | None
    elapsed: float


Observer = Callable[[CallRecord], None]


def _check_plain_uuid(job_id: str) -> str:
    """Discovery routes take plain UUIDs only; a prefixed id would 404 (and waste a call)."""
    if not isinstance(job_id, str) or not _PLAIN_UUID.fullmatch(job_id):
        raise ValueError(f"not a plain job UUID: {job_id!r}")
    return job_id


def _wait_of(body: Mapping[str, Any]) -> float | None:
    """The server-side hold a results body asks for, when it is a usable number."""
    wait = body.get("wait_seconds")
    if isinstance(wait, bool) or not isinstance(wait, (int, float)) or wait < 0:
        return None
    return float(wait)


def _decode_json(response: httpx.Response) -> Any:
    """The parsed body, or None when it is not JSON at all (callers only trust a JSON object).

    orjson first (a bulk poll's answer is tens of KB); `json` for what only it reads (a UTF-16
    body, NaN), so what parses is the same as before.
    """
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(response.content)
    except (ValueError, UnicodeDecodeError):
        return None


def _env_proxy(base_url: str) -> str | None:
    """The proxy `HTTP(S)_PROXY`/`ALL_PROXY` name for the API's host, unless `NO_PROXY` exempts it:
    what `httpx.Client` would honour (its `trust_env`), kept now that calls go to the transport."""
    url = httpx.URL(base_url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(url.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(url.host):
        return None
    return proxy


def _request_id(meta: Mapping[str, Any] | None, headers: httpx.Headers) -> str | None:
    """meta.request_id when the body has it, else the x-request-id header."""
    if meta is not None:
        rid = meta.get("request_id")
        if isinstance(rid, str) and rid:
            return rid
    return headers.get("x-request-id") or None


class TokstaClient:
    """One pooled HTTP client for one API key. Thread-safe (httpx's transport is); close() when done.

    Calls go straight to an `httpx.HTTPTransport` (its connection pool), not through `httpx.Client`:
    the client's layers (URL merging, cookies, auth and redirect flows, event hooks) cost about a
    quarter of a call's CPU here and do nothing for us (no cookies, bearer auth in our headers, no
    redirects followed). A process's start calls all share one GIL, so that CPU bounded how many
    calls a second one tick could send (bench/RESULTS.md, pipeline notes).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | SecretStr,
        *,
        timeout: float = 30.0,
        connect_timeout: float = 5.0,
        time_scale: float = 1.0,
        observers: Sequence[Observer] = (),
        transport: httpx.BaseTransport | None = None,
        max_connections: int = 20,
    ) -> None:
        secret = api_key if isinstance(api_key, SecretStr) else SecretStr(api_key)
        if not _KEY_CHARS.fullmatch(secret.get_secret_value()):
            # Say nothing about the value: it is a secret even when it is malformed.
            raise ValueError("api_key must be non-empty visible ASCII without spaces")
        if timeout <= 0 or connect_timeout <= 0 or time_scale <= 0:
            raise ValueError("timeout, connect_timeout and time_scale must be positive")
        self._key = secret
        self._base_url = base_url.rstrip("/")
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._time_scale = time_scale
        self._observers = tuple(observers)
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._transport = transport or httpx.HTTPTransport(limits=limits, proxy=_env_proxy(self._base_url))
        self._headers = {
            "Accept": "application/json",
            "Accept-Encoding": "gzip, deflate",
            "User-Agent": f"toksta-worker/{__version__}",
        }
        self._urls: dict[str, httpx.URL] = {}  # fixed routes only: a path with an id is built per call

    def __repr__(self) -> str:
        return f"TokstaClient(base_url={self._base_url!r}, api_key='**********')"

    def __enter__(self) -> TokstaClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    # ---- starts -------------------------------------------------------------------------------

    def start_thought_leaders(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/creators/thought-leaders", body=body)

    def start_enrichment(self, body: Mapping[str, Any]) -> ApiResponse:
        """200 (every creator already enriched, no jobs) and 202 are both success."""
        return self._call("POST", "/v1/creators/enrich", body=body)

    def start_content_match(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/creators/content-match", body=body)

    def start_audience_match(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/creators/audience-match", body=body)

    # ---- discovery jobs (plain UUIDs only) ----------------------------------------------------

    def get_job(self, job_id: str) -> ApiResponse:
        path = f"/v1/jobs/{_check_plain_uuid(job_id)}"
        return self._call("GET", path, route="GET /v1/jobs/{id}")

    def job_results(self, job_id: str, *, limit: int | None = None, wait_seconds: int | None = None) -> ApiResponse:
        body: dict[str, Any] = {"job_id": _check_plain_uuid(job_id)}
        if limit is not None:
            body["limit"] = limit
        if wait_seconds is not None:
            body["wait_seconds"] = wait_seconds
        return self._call("POST", "/v1/jobs/results", body=body)

    def job_results_bulk(self, job_ids: Sequence[str], *, limit: int | None = None) -> ApiResponse:
        if isinstance(job_ids, str) or not 1 <= len(job_ids) <= MAX_BULK_IDS:
            raise ValueError(f"job_results_bulk takes 1-{MAX_BULK_IDS} job ids")
        body: dict[str, Any] = {"job_ids": [_check_plain_uuid(job_id) for job_id in job_ids]}
        if limit is not None:
            body["limit"] = limit
        return self._call("POST", "/v1/jobs/results:bulk", body=body)

    def cancel_job(self, job_id: str) -> ApiResponse:
        """Always sends `{}`: the route answers 400 to a missing body."""
        path = f"/v1/jobs/{_check_plain_uuid(job_id)}/cancel"
        return self._call("POST", path, body={}, route="POST /v1/jobs/{id}/cancel")

    # ---- results ------------------------------------------------------------------------------

    def enrichment_results(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/enrichments/results", body=body)

    def content_match_results(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/content-match/results", body=body)

    def content_match_posts(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/content-match/posts", body=body)

    def audience_match_results(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/audience-match/results", body=body)

    def audience_match_details(self, body: Mapping[str, Any]) -> ApiResponse:
        return self._call("POST", "/v1/audience-match/details", body=body)

    def account_usage(self, month: str | None = None) -> ApiResponse:
        params = {"month": month} if month is not None else None
        return self._call("GET", "/v1/account/usage", params=params)

    # ---- probes (no auth, no envelope) --------------------------------------------------------

    def health(self) -> ApiResponse:
        return self._call("GET", "/health", probe=True)

    def ready(self) -> ApiResponse:
        return self._call("GET", "/ready", probe=True)

    def version(self) -> ApiResponse:
        return self._call("GET", "/version", probe=True)

    # ---- one attempt --------------------------------------------------------------------------

    def _timeouts(self, wait_seconds: float | None) -> dict[str, float]:
        """Read timeout covers the server-side hold, so a held call is never cut short."""
        read = self._timeout + (wait_seconds * self._time_scale if wait_seconds else 0.0)
        return {"connect": self._connect_timeout, "read": read, "write": self._timeout, "pool": self._timeout}

    def _url(self, path: str, *, fixed: bool) -> httpx.URL:
        """The absolute URL of `path`, parsed once per fixed route."""
        url = self._urls.get(path) if fixed else None
        if url is None:
            url = httpx.URL(self._base_url + path)
            if fixed:
                self._urls[path] = url
        return url

    def _send(self, request: httpx.Request) -> httpx.Response:
        """One request through the transport, its body read in full and the connection handed back."""
        response = self._transport.handle_request(request)
        response.request = request
        try:
            response.read()
        finally:
            response.close()
        return response

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
        route: str | None = None,
        probe: bool = False,
    ) -> ApiResponse:
        # A caller names the route only when its path carries an id (`route` is the path's template).
        url = self._url(path, fixed=route is None)
        route = route or f"{method} {path}"
        content = None if body is None else json.dumps(dict(body), allow_nan=False).encode()
        headers = self._headers if probe else {**self._headers, **self._auth_headers()}
        timeout = self._timeouts(_wait_of(body) if body is not None else None)
        started = time.monotonic()
        response: httpx.Response | None = None
        try:
            try:
                request = httpx.Request(
                    method, url, params=params, headers=headers, content=content, extensions={"timeout": timeout}
                )
                response = self._send(request)
            except httpx.TransportError as exc:
                raise self._transport_error(exc) from None
            result = self._interpret(response, route, probe)
        except ApiError as error:
            self._finish(route, started, response, error.rate, error)
            raise
        self._finish(route, started, response, result.rate, None)
        return result

    def _auth_headers(self) -> dict[str, str]:
        return {
            "Authorization": f"Bearer {self._key.get_secret_value()}",
            "Content-Type": "application/json",
        }

    def _finish(
        self,
        route: str,
        started: float,
        response: httpx.Response | None,
        rate: RateInfo | None,
        error: ApiError | None,
    ) -> None:
        elapsed = time.monotonic() - started
        status = response.status_code if response is not None else None
        rid = error.toksta_request_id if error is not None else None
        if response is not None and rid is None:
            rid = response.headers.get("x-request-id")
        logger.debug(
            "toksta %s -> %s in %.3fs request_id=%s%s",
            route,
            status if status is not None else "no response",
            elapsed,
            rid,
            f" error={error.code}" if error is not None else "",
        )
        record = CallRecord(route=route, http_status=status, rate=rate, error=error, elapsed=elapsed)
        for observer in self._observers:
            try:
                observer(record)
            except Exception:
                logger.exception("call observer %r failed; the call itself is unaffected", observer)

    def _transport_error(self, exc: httpx.TransportError) -> ApiError:
        sent = not isinstance(exc, _NOT_SENT)
        is_timeout = isinstance(exc, httpx.TimeoutException)
        return ApiError(
            code=TIMEOUT if is_timeout else TRANSPORT_ERROR,
            message=self._redact(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__),
            sent=sent,
            retryable=True,
        )

    def _interpret(self, response: httpx.Response, route: str, probe: bool) -> ApiResponse:
        rate = RateInfo.from_headers(response.headers)
        payload = _decode_json(response)
        if not response.is_success:
            raise self._status_error(response, payload, rate)
        if probe:
            if not isinstance(payload, dict):
                raise self._malformed(response, rate, "probe body is not a JSON object")
            return ApiResponse(
                status=response.status_code,
                data=payload,
                meta={},
                rate=rate,
                toksta_request_id=_request_id(None, response.headers),
                route=route,
            )
        envelope = payload if isinstance(payload, dict) else {}
        data, meta = envelope.get("data"), envelope.get("meta")
        if envelope.get("success") is not True or not isinstance(data, dict) or not isinstance(meta, dict):
            raise self._malformed(response, rate, "2xx response without the success envelope")
        return ApiResponse(
            status=response.status_code,
            data=data,
            meta=meta,
            rate=rate,
            toksta_request_id=_request_id(meta, response.headers),
            route=route,
        )

    def _malformed(self, response: httpx.Response, rate: RateInfo, why: str) -> ApiError:
        return ApiError(
            code=MALFORMED_RESPONSE,
            message=f"{why} (HTTP {response.status_code})",
            http_status=response.status_code,
            toksta_request_id=_request_id(None, response.headers),
            rate=rate,
            retry_after=rate.retry_after,
        )

    def _status_error(self, response: httpx.Response, payload: Any, rate: RateInfo) -> ApiError:
        status = response.status_code
        error = payload.get("error") if isinstance(payload, dict) else None
        has_envelope = (
            isinstance(payload, dict)
            and payload.get("success") is False
            and isinstance(error, dict)
            and isinstance(error.get("code"), str)
        )
        if not has_envelope or not isinstance(error, dict):
            return ApiError(
                code=http_code(status),
                message=f"HTTP {status} without the API's error envelope",
                http_status=status,
                toksta_request_id=_request_id(None, response.headers),
                rate=rate,
                retry_after=rate.retry_after,
            )
        meta = payload.get("meta") if isinstance(payload, dict) else None
        message = error.get("message")
        details = error.get("details")
        return ApiError(
            code=error["code"],
            message=self._redact(message if isinstance(message, str) else ""),
            http_status=status,
            toksta_request_id=_request_id(meta if isinstance(meta, dict) else None, response.headers),
            envelope=True,
            rate=rate,
            retry_after=rate.retry_after,
            details=self._redact_details(details) if isinstance(details, dict) else None,
        )

    def _redact(self, text: str) -> str:
        """Belt and braces: should anything echo the key back, it does not travel further."""
        return text.replace(self._key.get_secret_value(), _REDACTED)

    def _redact_details(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redact(value)
        if isinstance(value, dict):
            return {self._redact(str(k)): self._redact_details(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self._redact_details(item) for item in value]
        return value
