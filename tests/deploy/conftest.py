"""Fixtures for the offline deployment tests: parsed manifests, compose file, Dockerfile, settings.

Everything here reads files of the repository; nothing starts a container or reaches a network.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from .helpers import (
    DATA,
    K8S,
    REPO,
    Manifest,
    load_yaml_documents,
    manifest_files,
    only,
    secret_env_names,
    settings_env_names,
)


@pytest.fixture(scope="session")
def env_names() -> frozenset[str]:
    return settings_env_names()


@pytest.fixture(scope="session")
def secret_names() -> frozenset[str]:
    return secret_env_names()


@pytest.fixture(scope="session")
def pyproject() -> dict[str, Any]:
    with (REPO / "pyproject.toml").open("rb") as handle:
        return tomllib.load(handle)


@pytest.fixture(scope="session")
def kustomization() -> dict[str, Any]:
    (doc,) = load_yaml_documents(K8S / "kustomization.yaml")
    return doc


@pytest.fixture(scope="session")
def manifests() -> list[Manifest]:
    return [Manifest(path, doc) for path in manifest_files() for doc in load_yaml_documents(path)]


@pytest.fixture(scope="session")
def by_kind(manifests: list[Manifest]) -> dict[str, list[Manifest]]:
    result: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        result.setdefault(manifest.kind, []).append(manifest)
    return result


@pytest.fixture(scope="session")
def deployment(by_kind: dict[str, list[Manifest]]) -> dict[str, Any]:
    return only(by_kind, "Deployment", "toksta-worker")


@pytest.fixture(scope="session")
def pod_spec(deployment: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = deployment["spec"]["template"]["spec"]
    return spec


@pytest.fixture(scope="session")
def worker_container(pod_spec: dict[str, Any]) -> dict[str, Any]:
    containers = pod_spec["containers"]
    assert len(containers) == 1, "the worker pod runs one container"
    container: dict[str, Any] = containers[0]
    return container


def _env_from(container: dict[str, Any], ref: str) -> str:
    names = [src[ref]["name"] for src in container.get("envFrom", []) if ref in src]
    assert len(names) == 1, f"the worker loads one {ref}, found {names}"
    return str(names[0])


@pytest.fixture(scope="session")
def configmap_data(worker_container: dict[str, Any], by_kind: dict[str, list[Manifest]]) -> dict[str, str]:
    """The data of the ConfigMap the worker Deployment loads through envFrom."""
    data: dict[str, str] = only(by_kind, "ConfigMap", _env_from(worker_container, "configMapRef"))["data"]
    return data


@pytest.fixture(scope="session")
def secret_doc(worker_container: dict[str, Any], by_kind: dict[str, list[Manifest]]) -> dict[str, Any]:
    return only(by_kind, "Secret", _env_from(worker_container, "secretRef"))


@pytest.fixture(scope="session")
def compose() -> dict[str, Any]:
    (doc,) = load_yaml_documents(REPO / "docker-compose.yml")
    return doc


@pytest.fixture(scope="session")
def compose_schema() -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((DATA / "compose-spec.json").read_text(encoding="utf-8"))
    return schema


@pytest.fixture(scope="session")
def dockerfile_text() -> str:
    return (REPO / "Dockerfile").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA
