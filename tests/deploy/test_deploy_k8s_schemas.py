"""Every manifest of k8s/ validates against its schema, offline.

Built-in kinds use the Kubernetes schemas that `kubernetes-validate` ships (strict: unknown fields
fail). KEDA and Prometheus Operator kinds use the CRD schemas vendored in data/crd/ (see
data/README.md), closed so that a misspelt field fails as `kubectl apply --validate=strict` would.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate  # type: ignore[import-untyped]
import pytest
from referencing import Registry, Resource

from .helpers import DATA, K8S, Manifest, load_yaml_documents, manifest_files

K8S_VERSION = "1.30"
K8S_DEFINITIONS_URI = "https://kubernetes.io/api/_definitions.json"

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_ScaledObject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_TriggerAuthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_ServiceMonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_PrometheusRule.json",
}

ALL_MANIFESTS = [Manifest(path, doc) for path in manifest_files() for doc in load_yaml_documents(path)]


def _manifest_id(manifest: Manifest) -> str:
    return f"{manifest.path.name}:{manifest.kind}/{manifest.name}"


def _k8s_definitions() -> dict[str, Any]:
    """The shared definitions (ObjectMeta and friends) of the strict schemas for K8S_VERSION."""
    folder = resources.files("kubernetes_validate") / "kubernetes-json-schema" / f"v{K8S_VERSION}.0-local-strict"
    defs: dict[str, Any] = json.loads((folder / "_definitions.json").read_text(encoding="utf-8"))
    return defs


def closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to other properties."""
    if isinstance(schema, list):
        return [closed(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: closed(value) for key, value in schema.items()}
    open_by_design = result.get("x-kubernetes-preserve-unknown-fields") is True
    if "properties" in result and "additionalProperties" not in result and not open_by_design:
        result["additionalProperties"] = False
    return result


def _crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator:
    name = CRD_SCHEMAS[(api_version, kind)]
    schema = closed(json.loads((DATA / "crd" / name).read_text(encoding="utf-8")))
    registry: Registry[Any] = Registry().with_resource(K8S_DEFINITIONS_URI, Resource.from_contents(_k8s_definitions()))
    validator: jsonschema.protocols.Validator = jsonschema.Draft202012Validator(schema, registry=registry)
    return validator


def validate_manifest(doc: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError (or kubernetes-validate's errors) when `doc` is invalid."""
    key = (doc["apiVersion"], doc["kind"])
    if key in CRD_SCHEMAS:
        _crd_validator(*key).validate(doc)
    else:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


@pytest.mark.parametrize("manifest", ALL_MANIFESTS, ids=_manifest_id)
def test_manifest_matches_its_schema(manifest: Manifest) -> None:
    try:
        validate_manifest(manifest.doc)
    except kubernetes_validate.SchemaNotFoundError as exc:
        pytest.fail(f"{_manifest_id(manifest)}: no schema: {exc.message}")
    except jsonschema.ValidationError as exc:
        path = ".".join(str(part) for part in exc.absolute_path)
        pytest.fail(f"{_manifest_id(manifest)}: {path}: {exc.message}")


def test_manifests_exist() -> None:
    assert len(ALL_MANIFESTS) >= 10, [_manifest_id(m) for m in ALL_MANIFESTS]


def _mutated(kind: str, edit: str) -> dict[str, Any]:
    """A deep copy of the one manifest of `kind` with `edit` applied (see the cases below)."""
    (doc,) = [copy.deepcopy(m.doc) for m in ALL_MANIFESTS if m.kind == kind]
    if edit == "typo-in-probe":
        probe = doc["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]
        probe["httpGet"]["paht"] = probe["httpGet"].pop("path")
    elif edit == "port-as-text":
        doc["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = "metrics"
    elif edit == "replicas-as-text":
        doc["spec"]["minReplicaCount"] = "two"
    elif edit == "unknown-field":
        doc["spec"]["minReplicas"] = 2
    elif edit == "trigger-value-as-number":
        doc["spec"]["triggers"][0]["metadata"]["value"] = 50
    elif edit == "annotation-as-number":
        doc["spec"]["groups"][0]["rules"][0]["annotations"]["runbook_url"] = 7
    elif edit == "metadata-typo":
        doc["metadata"]["lables"] = {"a": "b"}
    else:
        raise AssertionError(edit)
    return doc


@pytest.mark.parametrize(
    ("kind", "edit"),
    [
        ("Deployment", "typo-in-probe"),
        ("Deployment", "port-as-text"),
        ("ScaledObject", "replicas-as-text"),
        ("ScaledObject", "unknown-field"),
        ("ScaledObject", "trigger-value-as-number"),
        ("ScaledObject", "metadata-typo"),
        ("PrometheusRule", "annotation-as-number"),
        ("ServiceMonitor", "metadata-typo"),
    ],
)
def test_validation_rejects_broken_manifests(kind: str, edit: str) -> None:
    """The validators above would catch a real mistake: a broken copy of a manifest fails."""
    with pytest.raises(jsonschema.ValidationError):
        validate_manifest(_mutated(kind, edit))


def _listed_resources(kustomization: dict[str, Any]) -> list[str]:
    listed: list[str] = kustomization.get("resources", [])
    return listed


def test_kustomization_lists_exactly_the_manifests(kustomization: dict[str, Any]) -> None:
    listed = _listed_resources(kustomization)
    assert len(listed) == len(set(listed)), f"duplicates in kustomization.yaml: {listed}"
    missing = [name for name in listed if not (K8S / name).is_file()]
    assert not missing, f"kustomization.yaml lists files that do not exist: {missing}"
    unlisted = sorted({p.name for p in manifest_files()} - set(listed))
    assert not unlisted, f"manifests not listed in kustomization.yaml: {unlisted}"


def test_kustomization_is_a_kustomization(kustomization: dict[str, Any]) -> None:
    assert kustomization["apiVersion"] == "kustomize.config.k8s.io/v1beta1"
    assert kustomization["kind"] == "Kustomization"


def test_one_namespace_everywhere(kustomization: dict[str, Any], manifests: list[Manifest]) -> None:
    namespace = kustomization["namespace"]
    namespaces = [m for m in manifests if m.kind == "Namespace"]
    assert [m.name for m in namespaces] in ([], [namespace])
    wrong = [
        _manifest_id(m)
        for m in manifests
        if m.kind != "Namespace" and m.doc["metadata"].get("namespace", namespace) != namespace
    ]
    assert not wrong, f"manifests outside namespace {namespace}: {wrong}"


def test_names_are_unique_per_kind(manifests: list[Manifest]) -> None:
    keys = [(m.kind, m.name) for m in manifests]
    assert len(keys) == len(set(keys)), keys


def test_vendored_data_stays_small(data_dir: Path) -> None:
    total = sum(p.stat().st_size for p in data_dir.rglob("*") if p.is_file())
    assert total < 300_000, f"tests/deploy/data holds {total} bytes"
