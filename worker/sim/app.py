"""The aiohttp application: routes, and the middleware that plays the API gateway.

For every /v1 call the middleware counts it, applies an injected fault if one matches,
checks the bearer key (401, no rate headers), applies the rate limit (429 + Retry-After),
answers 501 for a switched-off route, runs the handler, and wraps its answer in the
envelope with the rate-limit and request-id headers.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
from collections.abc import Awaitable, Callable

from aiohttp import web

from worker.sim import admin, routes_jobs, routes_misc, routes_results, routes_start
from worker.sim.clock import SimClock
from worker.sim.config import SimConfig
from worker.sim.core import SIM, Simulator, sim_of
from worker.sim.envelope import ApiError, Reply, RequestIds, error_response, success_response
from worker.sim.faults import Fault

log = logging.getLogger("worker.sim")

Endpoint = Callable[[web.Request], Awaitable[Reply]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

V1_ROUTES: list[tuple[str, str, Endpoint]] = [
    ("GET", "/v1/", routes_misc.api_root),
    ("POST", "/v1/creators/thought-leaders", routes_start.thought_leaders),
    ("POST", "/v1/creators/enrich", routes_start.enrich),
    ("POST", "/v1/creators/content-match", routes_start.content_match),
    ("POST", "/v1/creators/audience-match", routes_start.audience_match),
    ("POST", "/v1/jobs/results", routes_jobs.job_results),
    ("POST", "/v1/jobs/results:bulk", routes_jobs.bulk_results),
    ("GET", "/v1/jobs/{id}", routes_jobs.job_status),
    ("POST", "/v1/jobs/{id}/cancel", routes_jobs.cancel),
    ("POST", "/v1/enrichments/results", routes_results.enrichment_results),
    ("POST", "/v1/content-match/results", routes_results.content_results),
    ("POST", "/v1/content-match/posts", routes_results.content_posts),
    ("POST", "/v1/audience-match/results", routes_results.audience_results),
    ("POST", "/v1/audience-match/details", routes_results.audience_details),
    ("GET", "/v1/account/usage", routes_misc.usage),
    ("GET", "/v1/campaigns", routes_misc.workspace),
    ("POST", "/v1/campaigns", routes_misc.workspace),
    ("GET", "/v1/campaigns/{id}", routes_misc.workspace),
    ("GET", "/v1/creator-lists", routes_misc.workspace),
    ("POST", "/v1/creator-lists", routes_misc.workspace),
    ("POST", "/v1/creator-lists/{id}/creators", routes_misc.workspace),
]
ROUTE_KEYS = frozenset(f"{method} {path}" for method, path, _ in V1_ROUTES)
_GATEWAY_HTML = "<html><head><title>{status} Bad Gateway</title></head><body><h1>{status}</h1></body></html>"


def route_key(request: web.Request) -> str:
    """`METHOD /templated/path` of the matched route, or of the raw path when none matched."""
    resource = request.match_info.route.resource
    path = resource.canonical if resource is not None else request.path
    return f"{request.method} {path}"


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _endpoint(fn: Endpoint) -> Handler:
    async def handler(request: web.Request) -> web.StreamResponse:
        return success_response(request["ids"], await fn(request))

    return handler


def _reset_connection(request: web.Request) -> None:
    """Drops the connection with a TCP RST (SO_LINGER 0, then abort)."""
    transport = request.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


def _plain_gateway(fault: Fault) -> web.Response:
    return web.Response(text=_GATEWAY_HTML.format(status=fault.status), status=fault.status, content_type="text/html")


def _malformed(response: web.Response) -> web.Response:
    body = response.body if isinstance(response.body, bytes) else b'{"success": true, "data": {'
    keep = {k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")}
    return web.Response(body=body[: max(1, len(body) // 2)], status=200, content_type="application/json", headers=keep)


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    ids = RequestIds.new()
    request["ids"] = ids
    if not request.path.startswith("/v1"):
        plain = await handler(request)
        plain.headers.update(ids.headers())
        return plain
    sim = sim_of(request)
    sim.state.settle_due()
    key = route_key(request)
    sim.state.stats.record_call(key)
    bearer = _bearer(request)
    valid_key = bearer if bearer is not None and bearer in sim.state.config.keys else None
    if valid_key is not None and sim.limiter.in_retry_after(valid_key):
        sim.state.stats.calls_during_retry_after += 1
    fault = sim.faults.take(key)
    if sim.state.config.latency_ms:
        await asyncio.sleep(sim.state.config.latency_ms / 1000)
    response = await _answer(sim, request, handler, fault, valid_key)
    sim.state.stats.record_status(response.status if response is not None else "reset")
    if response is None:
        return web.Response(status=499)  # never written: the connection is already reset
    return response


async def _answer(
    sim: Simulator, request: web.Request, handler: Handler, fault: Fault | None, key: str | None
) -> web.Response | None:
    """The response to send, or None when the connection was reset instead."""
    if fault is not None and fault.kind == "reset_before_read":
        _reset_connection(request)
        return None
    if fault is not None and fault.kind == "error":
        return _injected_error(sim, request, fault, key)
    if fault is not None and fault.kind == "plain_5xx" and not fault.processed:
        return _plain_gateway(fault)
    response = await _serve(sim, request, handler, key)
    if fault is None:
        return response
    if fault.kind == "plain_5xx":
        return _plain_gateway(fault)
    if fault.kind == "reset_after_read":
        _reset_connection(request)
        return None
    if fault.kind == "malformed":
        return _malformed(response)
    await sim.clock.sleep(fault.delay_seconds)  # "slow"
    return response


def _injected_error(sim: Simulator, request: web.Request, fault: Fault, key: str | None) -> web.Response:
    headers: dict[str, str] = {}
    if key is not None:
        headers = sim.limiter.headers(sim.limiter.peek(key, sim.state.config.rate_limit))
        if fault.status == 429:
            retry_after = fault.retry_after or 1
            headers["Retry-After"] = str(retry_after)
            sim.limiter.note_retry_after(key, retry_after)
    return error_response(request["ids"], ApiError(fault.status, fault.code, fault.message, headers=headers))


async def _serve(sim: Simulator, request: web.Request, handler: Handler, key: str | None) -> web.Response:
    ids: RequestIds = request["ids"]
    if key is None:
        return error_response(ids, ApiError(401, "UNAUTHORIZED", "Missing or invalid API key."))
    decision = sim.limiter.check(key, sim.state.config.rate_limit)
    rate_headers = sim.limiter.headers(decision)
    if not decision.allowed:
        error = ApiError(
            429,
            "RATE_LIMITED",
            "Rate limit exceeded. Retry after the number of seconds in Retry-After.",
            {"limit": decision.limit, "retry_after": decision.retry_after},
        )
        response = error_response(ids, error)
    else:
        response = await _run_handler(sim, request, handler, ids)
    response.headers.update(rate_headers)
    return response


async def _run_handler(sim: Simulator, request: web.Request, handler: Handler, ids: RequestIds) -> web.Response:
    if route_key(request) in sim.state.config.disabled_routes:
        return error_response(ids, ApiError(501, "NOT_IMPLEMENTED", "This endpoint is not implemented yet."))
    try:
        response = await handler(request)
    except ApiError as error:
        return error_response(ids, error)
    except web.HTTPNotFound:
        return error_response(ids, ApiError(404, "NOT_FOUND", "Route not found."))
    except web.HTTPMethodNotAllowed:
        return error_response(ids, ApiError(404, "NOT_FOUND", "Route not found for this method."))
    except Exception:
        log.exception("simulator handler failed for %s", route_key(request))
        return error_response(ids, ApiError(500, "INTERNAL_ERROR", "Unexpected server error."))
    if not isinstance(response, web.Response):
        raise TypeError("simulator endpoints return web.Response")
    return response


def build_app(config: SimConfig, clock: SimClock, seed: int | None = None) -> web.Application:
    """The simulator application; `config` is also what `POST /_sim/reset` restores."""
    app = web.Application(middlewares=[gateway])
    app[SIM] = Simulator(config, clock, seed)
    app.router.add_get("/health", routes_misc.health)
    app.router.add_get("/ready", routes_misc.ready)
    app.router.add_get("/version", routes_misc.version)
    for method, path, endpoint in V1_ROUTES:
        app.router.add_route(method, path, _endpoint(endpoint))
    admin.add_routes(app)
    return app
