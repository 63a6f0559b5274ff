"""What goes on the wire (headers, cancel body) and what never leaves the client (the key)."""

from __future__ import annotations

import json
import logging
import pickle
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from worker.api import ApiError, CallRecord, TokstaClient
from worker.api.client import _env_proxy
from worker.sim.testing import SimAdmin, SimulatorProcess


def test_v1_calls_carry_bearer_and_json_probes_carry_no_key(
    make_client: Callable[..., TokstaClient], recording: Any, secret_key: str, keywords: list[str]
) -> None:
    client = make_client(transport=recording)
    job_id = client.start_thought_leaders({"keywords": keywords}).data["job_id"]
    client.get_job(job_id)
    client.account_usage()
    client.health()
    v1 = [r for r in recording.requests if r.url.path.startswith("/v1/")]
    probes = [r for r in recording.requests if not r.url.path.startswith("/v1/")]
    assert [r.method for r in v1] == ["POST", "GET", "GET"]
    for request in v1:
        assert request.headers["authorization"] == f"Bearer {secret_key}"
        assert request.headers["content-type"] == "application/json"
    for request in recording.requests:
        assert request.headers["user-agent"].startswith("toksta-worker/")
        assert request.headers["accept"] == "application/json"
    [probe] = probes
    assert "authorization" not in probe.headers


def test_cancel_always_sends_an_empty_json_object(
    make_client: Callable[..., TokstaClient],
    recording: Any,
    simulator: SimulatorProcess,
    admin: SimAdmin,
    keywords: list[str],
) -> None:
    client = make_client(transport=recording)
    admin.configure(job_seconds=[600, 600])
    job_id = client.start_thought_leaders({"keywords": keywords}).data["job_id"]
    # Control: the simulator, like the API, refuses a cancel without a body.
    bare = httpx.post(f"{simulator.base_url}/v1/jobs/{job_id}/cancel", headers=simulator.headers())
    assert bare.status_code == 400
    assert client.cancel_job(job_id).data["job"]["canceled"] is True
    cancel = recording.requests[-1]
    assert cancel.url.path == f"/v1/jobs/{job_id}/cancel"
    assert json.loads(cancel.content) == {}
    assert cancel.headers["content-type"] == "application/json"


def test_one_pooled_connection_is_reused(make_client: Callable[..., TokstaClient], recording: Any) -> None:
    client = make_client(transport=recording, timeout=3.0, connect_timeout=1.5)
    for _ in range(4):
        client.account_usage()
    assert len(recording.requests) == 4
    for request in recording.requests:  # explicit timeouts on every call
        assert request.extensions["timeout"] == {"connect": 1.5, "read": 3.0, "write": 3.0, "pool": 3.0}
    # Keep-alive: four sequential calls, one TCP connection (httpcore's pool, read only).
    assert len(recording._pool.connections) == 1


def test_api_key_never_in_repr_errors_or_logs(
    make_client: Callable[..., TokstaClient],
    admin: SimAdmin,
    secret_key: str,
    closed_port: int,
    keywords: list[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, httpx and httpcore included
    client = make_client(api_key=secret_key)
    wrong_key = f"tk_live_{uuid.uuid4().hex}WRONG"
    errors: list[ApiError] = []

    def attempt(call: Callable[[], object]) -> None:
        try:
            call()
        except ApiError as error:
            errors.append(error)

    admin.add_faults(
        {"kind": "error", "route": "GET /v1/account/usage", "status": 500, "message": f"echo {secret_key}"},
        {"kind": "plain_5xx", "route": "GET /v1/account/usage"},
        {"kind": "reset_after_read", "route": "GET /v1/account/usage"},
        {"kind": "malformed", "route": "GET /v1/account/usage"},
    )
    for _ in range(4):
        attempt(client.account_usage)
    attempt(lambda: client.start_thought_leaders({"keywords": keywords}))
    attempt(lambda: client.get_job(str(uuid.uuid4())))
    attempt(make_client(api_key=wrong_key).account_usage)
    attempt(make_client(base_url=f"http://127.0.0.1:{closed_port}").account_usage)

    assert [e.code for e in errors] == [
        "INTERNAL_ERROR",
        "HTTP_502",
        "TRANSPORT_ERROR",
        "MALFORMED_RESPONSE",
        "NOT_FOUND",
        "UNAUTHORIZED",
        "TRANSPORT_ERROR",
    ]
    assert errors[0].message == "echo [REDACTED]"  # an echoed key is scrubbed
    texts = [repr(client), str(client)]
    for error in errors:
        texts += [str(error), repr(error), json.dumps(error.to_dict()), repr(pickle.loads(pickle.dumps(error)))]
    texts += [caplog.text, *(record.getMessage() for record in caplog.records)]
    for text in texts:
        assert secret_key not in text
        assert wrong_key not in text
    assert "worker.api" in {record.name for record in caplog.records}


def test_malformed_key_is_rejected_without_echo() -> None:
    with pytest.raises(ValueError) as info:
        TokstaClient("http://127.0.0.1:1", "tk_live_abc\r\nX-Evil: 1")
    assert "tk_live_abc" not in str(info.value)
    with pytest.raises(ValueError):
        TokstaClient("http://127.0.0.1:1", SecretStr(""))


def test_observers_see_every_attempt_and_a_failing_one_is_contained(
    make_client: Callable[..., TokstaClient],
    admin: SimAdmin,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[CallRecord] = []

    def broken(_: CallRecord) -> None:
        raise RuntimeError("observer bug")

    client = make_client(observers=[broken, seen.append])
    admin.configure(rate_limit=5)
    admin.add_faults({"kind": "error", "route": "GET /v1/account/usage", "status": 503})
    caplog.set_level(logging.ERROR, logger="worker.api")
    with pytest.raises(ApiError):
        client.account_usage()
    assert client.account_usage().status == 200
    assert [(r.route, r.http_status) for r in seen] == [
        ("GET /v1/account/usage", 503),
        ("GET /v1/account/usage", 200),
    ]
    failed, ok = seen
    assert failed.error is not None and failed.error.code == "INTERNAL_ERROR"
    assert failed.rate is not None and failed.rate.limit == 5
    assert ok.error is None and ok.rate is not None and ok.rate.remaining is not None
    assert all(r.elapsed > 0 for r in seen)
    observer_logs = [r for r in caplog.records if "observer" in r.getMessage()]
    assert len(observer_logs) == 2
    assert all(r.exc_info for r in observer_logs)


def test_debug_log_line_per_call(client: TokstaClient, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="worker.api")
    response = client.account_usage()
    with pytest.raises(ApiError) as info:
        client.get_job(str(uuid.uuid4()))
    lines = [r.getMessage() for r in caplog.records if r.name == "worker.api" and r.levelno == logging.DEBUG]
    assert len(lines) == 2
    assert "GET /v1/account/usage -> 200" in lines[0]
    assert f"request_id={response.toksta_request_id}" in lines[0]
    assert "GET /v1/jobs/{id} -> 404" in lines[1]
    assert f"request_id={info.value.toksta_request_id}" in lines[1]
    assert "error=NOT_FOUND" in lines[1]


def test_the_proxy_environment_is_honoured_as_httpx_client_would(monkeypatch: pytest.MonkeyPatch) -> None:
    # The client sends through its own transport, not httpx.Client, so it reads the proxy variables itself.
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    assert _env_proxy("https://api.toksta.com") is None
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert _env_proxy("https://api.toksta.com") == "http://proxy.example:3128"
    assert _env_proxy("https://internal.example/api") is None
    assert _env_proxy("http://127.0.0.1:8080") is None  # no HTTP_PROXY
    monkeypatch.setenv("ALL_PROXY", "http://all.example:8080")
    assert _env_proxy("http://127.0.0.1:8080") == "http://all.example:8080"
