"""wire-contract.md (the normative prose) agrees with the models, the examples and asyncapi.yaml.

The prose is looked up at docs/wire-contract.md in the repository, else at the path in
WIRE_CONTRACT_MD, else at the shared copy /work/shared/wire-contract.md; the tests skip when none
exists (say so loudly: a skipped consistency check checks nothing).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import yaml

from worker.contract.models import OPTIONS_BY_KIND, ErrorCode, Kind, RequestOptions, Status
from worker.contract.validation import RejectReason

from ._support import API_CODES, CONTRACTS, REPO, WORKER_CODES

_CANDIDATES = [
    REPO / "docs" / "wire-contract.md",
    Path(os.environ.get("WIRE_CONTRACT_MD", "/nonexistent")),
    Path("/work/shared/wire-contract.md"),
]
_API_README = [REPO / "docs" / "toksta-api" / "README.md", Path("/work/shared/toksta-api/README.md")]


def _first_existing(paths: list[Path]) -> Path | None:
    return next((p for p in paths if p.is_file()), None)


@pytest.fixture(scope="module")
def contract_text() -> str:
    path = _first_existing(_CANDIDATES)
    if path is None:
        pytest.skip("wire-contract.md not found (docs/wire-contract.md or WIRE_CONTRACT_MD)")
    return path.read_text(encoding="utf-8")


def _code_table(text: str) -> list[tuple[list[str], list[str], str]]:
    """Rows of the error-code table: (codes, statuses, retryable)."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if re.match(r"\|\s*code\s*\|\s*status\s*\|", line))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        codes = re.findall(r"`([A-Z_]+)`", cells[0])
        statuses = [s.strip() for s in cells[1].split("/")]
        rows.append((codes, statuses, cells[-1]))
    return rows


def _backticked_after(text: str, marker: str) -> set[str]:
    """Backticked words in the parenthesis that follows `marker`."""
    index = text.index(marker)
    parenthesis = text[index : text.index(")", index)]
    return set(re.findall(r"`([a-z_A-Z]+)`", parenthesis))


def test_every_code_in_the_table_is_known(contract_text: str) -> None:
    for codes, _, _ in _code_table(contract_text):
        for code in codes:
            assert code in {c.value for c in ErrorCode} or code in API_CODES, f"{code} is in no code list"


def test_the_table_lists_every_worker_code_with_its_status_and_retryable(contract_text: str) -> None:
    documented: dict[str, tuple[str, bool]] = {}
    for codes, statuses, retryable in _code_table(contract_text):
        assert retryable in ("true", "false"), retryable
        per_code = statuses * len(codes) if len(statuses) == 1 else statuses
        assert len(per_code) == len(codes), (codes, statuses)
        for code, status in zip(codes, per_code, strict=True):
            assert status in {s.value for s in Status}
            documented[code] = (status, retryable == "true")
    assert documented == WORKER_CODES
    assert set(documented) == {c.value for c in ErrorCode}


def test_api_codes_match_the_contract_and_the_api_readme(contract_text: str) -> None:
    assert _backticked_after(contract_text, "The API's own (") == API_CODES
    readme = _first_existing(_API_README)
    if readme is not None:
        row = next(line for line in readme.read_text(encoding="utf-8").splitlines() if "| error codes |" in line)
        assert set(re.findall(r"`([A-Z_]+)`", row)) >= API_CODES


def test_reject_reasons_match(contract_text: str) -> None:
    assert _backticked_after(contract_text, "headers `x-reject-reason` (") == {r.value for r in RejectReason}
    asyncapi = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    dead = asyncapi["components"]["messages"]["deadLetter"]["headers"]["properties"]
    assert set(dead["x-reject-reason"]["enum"]) == {r.value for r in RejectReason}


def test_unroutable_reasons_match(contract_text: str) -> None:
    documented = _backticked_after(contract_text, "`x-unroutable-reason` (")
    asyncapi = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    headers = asyncapi["components"]["messages"]["unroutableReply"]["headers"]["allOf"][1]["properties"]
    assert set(headers["x-unroutable-reason"]["enum"]) == documented == {"no_route", "nacked"}


def test_kinds_statuses_and_options_match(contract_text: str) -> None:
    kind_row = next(line for line in contract_text.splitlines() if line.startswith("| `kind` |"))
    assert set(re.findall(r"`([a-z_]+)`", kind_row)) - {"kind"} == {k.value for k in Kind}
    status_row = next(line for line in contract_text.splitlines() if line.startswith("| `status` |"))
    assert set(re.findall(r"`([a-z_]+)`", status_row)) - {"status"} == {s.value for s in Status}
    documented_options = set(re.findall(r"\| `options\.([a-z_]+)` \|", contract_text))
    assert documented_options == set(RequestOptions.model_fields)
    assert set().union(*OPTIONS_BY_KIND.values()) == documented_options


def test_reply_type_and_message_ids_match(contract_text: str) -> None:
    asyncapi = yaml.safe_load((CONTRACTS / "asyncapi.yaml").read_text(encoding="utf-8"))
    properties = asyncapi["components"]["schemas"]["replyProperties"]["properties"]
    assert f"`{properties['type']['const']}`" in contract_text
    assert "`<request_id>:reply`" in contract_text
    assert "`invalid:<first 32 hex of the body's sha256>`" in contract_text
    assert "`<request_id>:conflict:<first 16 lowercase hex" in contract_text
    patterns = [branch["pattern"] for branch in properties["message_id"]["anyOf"]]
    assert any(":reply$" in p for p in patterns)
    assert any(p.startswith("^invalid:") and "{32}" in p for p in patterns)
    assert any(":conflict:" in p and "{16}" in p for p in patterns)
