"""docker-compose.yml is a valid Compose file and wires the stack the way the worker expects."""

from __future__ import annotations

import copy
import re
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest

from .helpers import interpolate, is_allowed_extra_env

WORKER_DEPENDENCIES = {"rabbitmq", "redis", "simulator"}
REDIS_FLAGS = {"--appendonly": "yes", "--appendfsync": "everysec", "--maxmemory-policy": "noeviction"}
NO_ENV: dict[str, str] = {}


def _command(service: dict[str, Any]) -> list[str]:
    command = service.get("command", [])
    return command.split() if isinstance(command, str) else [str(part) for part in command]


def _services_running(compose: dict[str, Any], subcommand: str) -> dict[str, dict[str, Any]]:
    return {name: svc for name, svc in compose["services"].items() if _command(svc)[:1] == [subcommand]}


def _workers(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    workers = _services_running(compose, "run")
    assert len(workers) >= 2, f"two worker services expected, found {sorted(workers)}"
    return workers


def _simulator(compose: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    ((name, service),) = _services_running(compose, "sim").items()
    return name, service


def _flag(command: list[str], flag: str) -> str:
    return command[command.index(flag) + 1]


def _duration_seconds(text: str) -> float:
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", text)
    assert parts and "".join(n + u for n, u in parts) == text, f"not a compose duration: {text}"
    return sum(float(number) * units[unit] for number, unit in parts)


def _compose_validator(schema: dict[str, Any]) -> jsonschema.Draft201909Validator:
    # The schema names its draft with an http:// URI that jsonschema no longer maps; it is 2019-09.
    assert "draft/2019-09" in schema["$schema"]
    return jsonschema.Draft201909Validator(schema)


def test_compose_file_matches_the_compose_spec(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    validator = _compose_validator(compose_schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


@pytest.mark.parametrize(
    "edit",
    ["typo-in-healthcheck", "bad-condition", "restart-as-list", "unknown-service-key"],
)
def test_compose_schema_rejects_broken_files(
    compose: dict[str, Any], compose_schema: dict[str, Any], edit: str
) -> None:
    """The schema check would catch a real mistake: a broken copy of the file fails."""
    broken = copy.deepcopy(compose)
    worker = broken["services"][next(iter(_workers(broken)))]
    if edit == "typo-in-healthcheck":
        worker["healthcheck"]["intervall"] = "5s"
    elif edit == "bad-condition":
        next(iter(worker["depends_on"].values()))["condition"] = "service_ready"
    elif edit == "restart-as-list":
        worker["restart"] = ["unless-stopped"]
    else:
        worker["restart_policy"] = "always"
    validator = _compose_validator(compose_schema)
    assert list(validator.iter_errors(broken)), edit


def test_worker_environment_names_are_settings(compose: dict[str, Any], env_names: frozenset[str]) -> None:
    app_services = _services_running(compose, "run") | _services_running(compose, "demo")
    for name, service in app_services.items():
        environment = service.get("environment", {})
        assert isinstance(environment, dict), f"{name}: use the mapping form of environment"
        unknown = sorted(k for k in environment if k not in env_names and not is_allowed_extra_env(k))
        assert not unknown, f"{name}: not fields of worker.settings.Settings: {unknown}"


def test_workers_point_at_the_compose_services(compose: dict[str, Any]) -> None:
    services = compose["services"]
    sim_name, simulator = _simulator(compose)
    sim_port = int(_flag(_command(simulator), "--port"))
    for name, worker in _workers(compose).items():
        env = {key: interpolate(str(value), NO_ENV) for key, value in worker["environment"].items()}
        amqp, state, base = (
            urlsplit(env["AMQP_URL"]),
            urlsplit(env["STATE_URL"]),
            urlsplit(env["TOKSTA_BASE_URL"]),
        )
        assert (amqp.scheme, amqp.hostname, amqp.port) == ("amqp", "rabbitmq", 5672), name
        assert (state.scheme, state.hostname, state.port) == ("redis", "redis", 6379), name
        assert (base.scheme, base.hostname, base.port) == ("http", sim_name, sim_port), name
        assert base.path in ("", "/"), f"{name}: TOKSTA_BASE_URL is the API root, without /v1"
        assert {amqp.hostname, state.hostname, base.hostname} <= set(services)


def test_all_app_services_share_one_environment(compose: dict[str, Any]) -> None:
    environments = [worker["environment"] for worker in _workers(compose).values()]
    assert all(env == environments[0] for env in environments)


def test_simulator_key_equals_worker_key(compose: dict[str, Any]) -> None:
    _, simulator = _simulator(compose)
    sim_key = _flag(_command(simulator), "--key")
    for name, worker in _workers(compose).items():
        worker_key = str(worker["environment"]["TOKSTA_API_KEY"])
        # Same expression, so they agree whatever TOKSTA_API_KEY the operator exports ...
        assert worker_key == sim_key, name
        # ... and the default is the simulator's demo key, never a live one.
        assert interpolate(worker_key, NO_ENV) == "tk_test_simulator"
        assert interpolate(worker_key, {"TOKSTA_API_KEY": "tk_test_other"}) == "tk_test_other"


def test_simulator_listens_where_workers_and_healthcheck_look(compose: dict[str, Any]) -> None:
    _, simulator = _simulator(compose)
    command = _command(simulator)
    assert _flag(command, "--host") == "0.0.0.0"
    port = _flag(command, "--port")
    probe = " ".join(simulator["healthcheck"]["test"])
    assert f":{port}/health'" in probe or f':{port}/health"' in probe


def test_every_long_running_service_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if service.get("restart") == "no":
            continue
        check = service.get("healthcheck", {})
        assert check.get("test") and not check.get("disable"), f"{name} has no healthcheck"


def test_worker_healthcheck_hits_healthz_on_metrics_port(compose: dict[str, Any]) -> None:
    for name, worker in _workers(compose).items():
        port = interpolate(str(worker["environment"]["METRICS_PORT"]), NO_ENV)
        probe = " ".join(worker["healthcheck"]["test"])
        assert f":{port}/healthz" in probe, name


def test_workers_wait_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, worker in _workers(compose).items():
        depends = worker["depends_on"]
        assert set(depends) >= WORKER_DEPENDENCIES, name
        assert all(depends[dep]["condition"] == "service_healthy" for dep in WORKER_DEPENDENCIES), name


def test_workers_restart_and_drain(compose: dict[str, Any]) -> None:
    for name, worker in _workers(compose).items():
        assert worker["restart"] in ("unless-stopped", "always", "on-failure"), name
        drain = float(interpolate(str(worker["environment"].get("DRAIN_SECONDS", "30")), NO_ENV))
        grace = _duration_seconds(str(worker.get("stop_grace_period", "10s")))
        assert grace > drain, f"{name}: compose would SIGKILL before DRAIN_SECONDS ends"


def test_demo_publisher_runs_once_after_the_workers(compose: dict[str, Any]) -> None:
    (demo,) = _services_running(compose, "demo").values()
    assert demo["restart"] == "no"
    assert set(demo["depends_on"]) >= set(_workers(compose))
    assert all(dep["condition"] == "service_healthy" for dep in demo["depends_on"].values())
    assert {"AMQP_URL", "REQUEST_QUEUE"} <= set(demo["environment"])
    worker_queue = next(iter(_workers(compose).values()))["environment"]["REQUEST_QUEUE"]
    assert demo["environment"]["REQUEST_QUEUE"] == worker_queue


def test_redis_persists_to_a_volume(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = _command(redis)
    assert command[0] == "redis-server"
    for flag, value in REDIS_FLAGS.items():
        assert _flag(command, flag) == value, flag
    volume = redis["volumes"][0].split(":")
    assert volume[1] == "/data" and volume[0] in compose["volumes"]
    assert "redis-cli" in redis["healthcheck"]["test"]


def test_rabbitmq_image_and_healthcheck(compose: dict[str, Any]) -> None:
    rabbitmq = compose["services"]["rabbitmq"]
    assert rabbitmq["image"].startswith("rabbitmq:3.10")
    assert rabbitmq["healthcheck"]["test"] == ["CMD", "rabbitmq-diagnostics", "-q", "ping"]


def test_shared_settings_come_from_an_extension_anchor(compose: dict[str, Any]) -> None:
    extensions = [key for key in compose if key.startswith("x-")]
    assert extensions, "shared environment belongs in an x- extension"
    worker_env = next(iter(_workers(compose).values()))["environment"]
    assert any(compose[key] == worker_env for key in extensions)
