"""Helpers shared by the deployment tests: YAML loading, settings names, compose interpolation."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import SecretStr

from worker.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
K8S = REPO / "k8s"

# Environment variables a deployment may set that are not worker settings: prometheus-client's
# multiprocess directory and the simulator's own knobs.
EXTRA_ENV_PREFIXES = ("SIM_",)
EXTRA_ENV_NAMES = frozenset({"PROMETHEUS_MULTIPROC_DIR"})


@dataclass(frozen=True)
class Manifest:
    """One YAML document of k8s/, with the file it came from (for error messages)."""

    path: Path
    doc: dict[str, Any]

    @property
    def kind(self) -> str:
        return str(self.doc["kind"])

    @property
    def name(self) -> str:
        return str(self.doc["metadata"]["name"])


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """All non-empty documents of a YAML file; a non-mapping document is an error, not skipped."""
    docs: list[dict[str, Any]] = []
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")):
        if doc is None:
            continue
        if not isinstance(doc, dict):
            raise TypeError(f"{path}: a document is {type(doc).__name__}, not a mapping")
        docs.append(doc)
    return docs


def manifest_files() -> list[Path]:
    """Every manifest of k8s/ (the kustomization itself is not a resource)."""
    return [p for p in sorted(K8S.glob("*.y*ml")) if p.name != "kustomization.yaml"]


def _env_name(field_name: str, alias: str | None) -> str:
    return (alias or field_name).upper()


def settings_env_names() -> frozenset[str]:
    """Environment names the worker reads, taken from the model so new fields count at once."""
    return frozenset(_env_name(name, field.alias) for name, field in Settings.model_fields.items())


def secret_env_names() -> frozenset[str]:
    """Settings that hold secrets: SecretStr fields, plus AMQP_URL whose URL carries a password."""
    names = {
        _env_name(name, field.alias)
        for name, field in Settings.model_fields.items()
        if field.annotation is SecretStr or "SecretStr" in repr(field.annotation)
    }
    return frozenset(names | {"AMQP_URL"})


def is_allowed_extra_env(name: str) -> bool:
    return name in EXTRA_ENV_NAMES or name.startswith(EXTRA_ENV_PREFIXES)


def only(by_kind: dict[str, list[Manifest]], kind: str, name: str | None = None) -> dict[str, Any]:
    """The single manifest of `kind` (named `name` if given); fails clearly otherwise."""
    found = [m for m in by_kind.get(kind, []) if name is None or m.name == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {[m.name for m in found]}"
    return found[0].doc


_INTERPOLATION = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?-)(?P<default>[^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's `${VAR}`, `${VAR:-default}` and `${VAR-default}` (all our file uses)."""

    def replace(match: re.Match[str]) -> str:
        name, op, default = match.group("name"), match.group("op"), match.group("default") or ""
        if op == ":-":
            return env.get(name) or default
        if op == "-":
            return env.get(name, default)
        return env.get(name, "")

    return _INTERPOLATION.sub(replace, value)
