"""The k8s/ manifests agree with the service: settings names, drain time, probes, security, scaling.

Schemas say a manifest is well formed; these tests say it is right for toksta-worker.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from worker.settings import load_settings

from .helpers import REPO, Manifest, is_allowed_extra_env, only

RUNBOOK_ANCHORS = {
    "dead-letters",
    "unroutable-replies",
    "rate-limited",
    "budget-exhausted",
    "oldest-in-flight",
}
ALERT_METRICS = {
    "toksta_dlq_depth",
    "toksta_unroutable_depth",
    "toksta_api_calls_total",
    "toksta_rate_budget_remaining",
    "toksta_oldest_inflight_age_seconds",
}
REAL_LOOKING_KEY = re.compile(r"tk_(live|test)_[A-Za-z0-9]")
PLACEHOLDER = "REPLACE_ME"


def _named_port(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return int(number)


def _container_env(container: dict[str, Any]) -> dict[str, str]:
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def _selector_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(key) == value for key, value in selector.items())


def test_worker_runs_the_run_command(worker_container: dict[str, Any], pyproject: dict[str, Any]) -> None:
    (script,) = pyproject["project"]["scripts"]
    # Without `command` the image's ENTRYPOINT (the console script) runs; with it, the same.
    assert worker_container.get("command", [script]) == [script]
    assert worker_container["args"][0] == "run"


def test_grace_period_exceeds_drain_seconds(pod_spec: dict[str, Any], configmap_data: dict[str, str]) -> None:
    drain = float(configmap_data["DRAIN_SECONDS"])
    assert pod_spec["terminationGracePeriodSeconds"] > drain + 5, "SIGKILL would cut the drain short"


def test_probes_hit_health_endpoints_on_metrics_port(
    worker_container: dict[str, Any], configmap_data: dict[str, str]
) -> None:
    metrics_port = int(configmap_data["METRICS_PORT"])
    expected = {"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": "/healthz"}
    for probe_name, path in expected.items():
        if probe_name == "startupProbe" and probe_name not in worker_container:
            continue
        http_get = worker_container[probe_name]["httpGet"]
        assert http_get["path"] == path, probe_name
        assert _named_port(worker_container, http_get["port"]) == metrics_port, probe_name


def test_metrics_port_is_named_and_matches_config(
    worker_container: dict[str, Any], configmap_data: dict[str, str]
) -> None:
    assert _named_port(worker_container, "metrics") == int(configmap_data["METRICS_PORT"])


def test_read_only_root_with_writable_empty_dirs(pod_spec: dict[str, Any], worker_container: dict[str, Any]) -> None:
    assert worker_container["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in pod_spec["volumes"]}
    mounts = {m["mountPath"]: m["name"] for m in worker_container["volumeMounts"]}
    multiproc_dir = _container_env(worker_container)["PROMETHEUS_MULTIPROC_DIR"]
    for path in ("/tmp", multiproc_dir):
        assert path in mounts, f"{path} is not writable"
        assert "emptyDir" in volumes[mounts[path]], f"{path} is not an emptyDir"


def test_pod_is_locked_down(pod_spec: dict[str, Any], worker_container: dict[str, Any]) -> None:
    pod_security = pod_spec["securityContext"]
    security = worker_container["securityContext"]
    assert pod_security["runAsNonRoot"] is True
    assert security.get("runAsUser", pod_security.get("runAsUser")) not in (None, 0)
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert "add" not in security["capabilities"]
    seccomp = security.get("seccompProfile", pod_security.get("seccompProfile"))
    assert seccomp == {"type": "RuntimeDefault"}


def test_resources_are_bounded(worker_container: dict[str, Any]) -> None:
    resources = worker_container["resources"]
    for section in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(resources[section]), section


def test_replicas_and_pdb(deployment: dict[str, Any], by_kind: dict[str, list[Manifest]]) -> None:
    assert deployment["spec"]["replicas"] >= 2
    pdb = only(by_kind, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)


def test_env_names_are_settings(
    worker_container: dict[str, Any],
    configmap_data: dict[str, str],
    secret_doc: dict[str, Any],
    env_names: frozenset[str],
) -> None:
    configured = set(configmap_data) | set(secret_doc["stringData"]) | set(_container_env(worker_container))
    unknown = sorted(name for name in configured if name not in env_names and not is_allowed_extra_env(name))
    assert not unknown, f"not fields of worker.settings.Settings: {unknown}"


def test_configmap_holds_no_secret(configmap_data: dict[str, str], secret_names: frozenset[str]) -> None:
    leaked = sorted(set(configmap_data) & secret_names)
    assert not leaked, f"secret settings belong in the Secret: {leaked}"


def test_config_and_secret_parse_as_settings(
    configmap_data: dict[str, str],
    secret_doc: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """The ConfigMap's and Secret's values are accepted by the worker's own settings model."""
    monkeypatch.chdir(tmp_path)  # no stray .env file takes part
    for name, value in {**configmap_data, **secret_doc["stringData"]}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.request_queue == configmap_data["REQUEST_QUEUE"]
    assert settings.metrics_port == int(configmap_data["METRICS_PORT"])
    assert settings.drain_seconds == float(configmap_data["DRAIN_SECONDS"])


def test_secret_is_a_placeholder_template(secret_doc: dict[str, Any], secret_names: frozenset[str]) -> None:
    values: dict[str, str] = secret_doc["stringData"]
    assert "data" not in secret_doc, "use stringData so the placeholders stay readable"
    assert values["TOKSTA_API_KEY"] == PLACEHOLDER
    for name, value in values.items():
        assert not REAL_LOOKING_KEY.search(value), f"{name} looks like a real API key"
        assert value == "" or PLACEHOLDER in value, f"{name} is not a placeholder"
    password = urlsplit(values["AMQP_URL"]).password
    assert password in (None, PLACEHOLDER)
    assert set(values) <= secret_names, "non-secret settings belong in the ConfigMap"


def test_state_url_points_at_redis_service(configmap_data: dict[str, str], by_kind: dict[str, list[Manifest]]) -> None:
    url = urlsplit(configmap_data["STATE_URL"])
    assert url.scheme in ("redis", "rediss")
    service = only(by_kind, "Service", url.hostname)
    assert url.port in [p["port"] for p in service["spec"]["ports"]]
    statefulset = only(by_kind, "StatefulSet", service["metadata"]["name"])
    assert statefulset["spec"]["serviceName"] == service["metadata"]["name"]
    pod_labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert _selector_matches(service["spec"]["selector"], pod_labels)


def test_redis_persists_and_never_evicts(by_kind: dict[str, list[Manifest]]) -> None:
    statefulset = only(by_kind, "StatefulSet")
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    args = [str(a) for a in container.get("command", []) + container.get("args", [])]
    flags = dict(zip(args[1::2], args[2::2], strict=False))
    assert flags["--appendonly"] == "yes"
    assert flags["--appendfsync"] == "everysec"
    assert flags["--maxmemory-policy"] == "noeviction"
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == flags.get("--dir", "/data")


def test_metrics_service_and_monitor_line_up(
    deployment: dict[str, Any], by_kind: dict[str, list[Manifest]], worker_container: dict[str, Any]
) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    services = [m.doc for m in by_kind["Service"] if _selector_matches(m.doc["spec"]["selector"], pod_labels)]
    assert len(services) == 1, "one Service selects the worker pods"
    (service,) = services
    (port,) = service["spec"]["ports"]
    assert _named_port(worker_container, port["targetPort"]) == _named_port(worker_container, "metrics")
    monitor = only(by_kind, "ServiceMonitor")
    assert _selector_matches(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == port["name"]
    assert endpoint.get("path", "/metrics") == "/metrics"


def test_keda_scales_the_deployment_on_the_request_queue(
    deployment: dict[str, Any],
    configmap_data: dict[str, str],
    secret_doc: dict[str, Any],
    by_kind: dict[str, list[Manifest]],
) -> None:
    scaled = only(by_kind, "ScaledObject")["spec"]
    assert scaled["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert scaled["scaleTargetRef"].get("kind", "Deployment") == "Deployment"
    assert scaled["minReplicaCount"] >= 2
    assert scaled["maxReplicaCount"] >= scaled["minReplicaCount"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == configmap_data["REQUEST_QUEUE"]
    assert trigger["metadata"]["mode"] == "QueueLength"
    auth = only(by_kind, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    refs = {ref["parameter"]: ref for ref in auth["spec"]["secretTargetRef"]}
    assert refs["host"]["name"] == secret_doc["metadata"]["name"]
    assert refs["host"]["key"] in secret_doc["stringData"]


def _alerts(by_kind: dict[str, list[Manifest]]) -> list[dict[str, Any]]:
    rule = only(by_kind, "PrometheusRule")
    return [r for group in rule["spec"]["groups"] for r in group["rules"] if "alert" in r]


def test_every_alert_has_a_runbook(by_kind: dict[str, list[Manifest]]) -> None:
    anchors = set()
    for alert in _alerts(by_kind):
        url = alert["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert page.endswith("docs/operations.md"), alert["alert"]
        anchors.add(anchor)
    assert anchors == RUNBOOK_ANCHORS


def test_alerts_cover_the_service_metrics(by_kind: dict[str, list[Manifest]]) -> None:
    exprs = " ".join(str(alert["expr"]) for alert in _alerts(by_kind))
    used = set(re.findall(r"\btoksta_[a-z_]+", exprs))
    assert used == ALERT_METRICS


def _heading_anchors(markdown: str) -> set[str]:
    """GitHub-style anchors of the markdown headings, plus explicit <a id=...> / {#...} anchors."""
    anchors = set(re.findall(r"""<a\s+(?:id|name)=["']([^"']+)["']""", markdown))
    anchors |= set(re.findall(r"\{#([A-Za-z0-9_-]+)\}", markdown))
    for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE):
        text = re.sub(r"\{#[^}]*\}", "", heading).strip().lower()
        anchors.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return anchors


def test_runbook_anchors_exist_in_operations_doc() -> None:
    doc = REPO / "docs" / "operations.md"
    if not doc.is_file():
        pytest.skip("docs/operations.md is not written yet; the alerts link its sections")
    missing = RUNBOOK_ANCHORS - _heading_anchors(doc.read_text(encoding="utf-8"))
    assert not missing, f"docs/operations.md lacks sections for {sorted(missing)}"
