"""Probes, API metadata, account usage, and the SaaS-only workspace routes (403 for API keys)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

from aiohttp import web

from worker.sim.core import sim_of
from worker.sim.envelope import ApiError, Reply, validation_error

SIM_VERSION = "0.1.0-sim"
_MONTH = re.compile(r"^\d{4}-\d{2}$")


async def health(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def ready(_: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def version(_: web.Request) -> web.Response:
    return web.json_response({"version": SIM_VERSION})


async def api_root(_: web.Request) -> Reply:
    return Reply(
        {
            "name": "Toksta Public API",
            "api_version": "v1",
            "spec_version": "0.1.0",
            "docs_url": "/docs/json",
            "simulator": True,
        }
    )


async def usage(request: web.Request) -> Reply:
    state = sim_of(request).state
    month = request.query.get("month")
    if month is not None and not _MONTH.match(month):
        raise validation_error("`month` must read YYYY-MM.", field="month")
    period = month or datetime.now(tz=UTC).strftime("%Y-%m")
    operations = {
        name: {"calls": entry["calls"], "credits_charged": entry["credits_charged"], "overage_amount_usd": 0}
        for name, entry in state.usage.items()
    }
    return Reply(
        {
            "period": period,
            "total_calls": state.stats.calls_total,
            "total_credits_charged": sum(entry["credits_charged"] for entry in state.usage.values()),
            "total_overage_usd": 0,
            "plan_source": "dedicated_api",
            "subscription_plan": "API_SCALE",
            "subscription_status": "active",
            "operations": operations,
        }
    )


async def workspace(_: web.Request) -> Reply:
    raise ApiError(403, "FORBIDDEN", "Workspace routes require a SaaS workspace key; dedicated API keys get 403.")
