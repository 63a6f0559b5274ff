"""The committed JSON Schemas are exactly what the models generate, and are valid draft 2020-12."""

from __future__ import annotations

import difflib
import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from worker.contract import export

from ._support import CONTRACTS


@pytest.mark.parametrize("name", sorted(export.build_schemas()))
def test_committed_schema_matches_the_models(name: str) -> None:
    expected = export.rendered_schemas()[name]
    path = CONTRACTS / name
    committed = path.read_text(encoding="utf-8") if path.is_file() else ""
    if committed != expected:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True),
                expected.splitlines(keepends=True),
                f"committed contracts/{name}",
                "generated from worker/contract/models.py",
            )
        )
        pytest.fail(f"contracts/{name} is stale; regenerate with `{export.REGENERATE_COMMAND}` and commit it\n{diff}")


@pytest.mark.parametrize("name", sorted(export.build_schemas()))
def test_schema_document_header_and_metaschema(name: str) -> None:
    document = export.build_schemas()[name]
    assert document["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert document["$id"] == f"https://toksta-worker.local/contracts/{name}"
    assert document["title"]
    assert document["description"]
    Draft202012Validator.check_schema(document)


def test_reply_schema_embeds_the_same_error_object_as_error_schema() -> None:
    schemas = export.build_schemas()
    embedded = schemas["reply.schema.json"]["$defs"]["ErrorObject"]
    standalone = {k: v for k, v in schemas["error.schema.json"].items() if not k.startswith("$")}
    assert {k: v for k, v in embedded.items() if k not in ("title", "description")} == {
        k: v for k, v in standalone.items() if k not in ("title", "description")
    }


def test_render_is_stable_sorted_and_ends_with_a_newline() -> None:
    text = export.render({"b": 1, "a": {"d": 2, "c": "é"}})
    assert text == '{\n  "a": {\n    "c": "é",\n    "d": 2\n  },\n  "b": 1\n}\n'


def test_cli_writes_then_check_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert export.main(["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(export.build_schemas())
    assert export.main(["--check", "--out", str(tmp_path)]) == 0
    for name, text in export.rendered_schemas().items():
        assert (tmp_path / name).read_text(encoding="utf-8") == text
        json.loads(text)
    capsys.readouterr()


def test_cli_check_lists_stale_and_missing_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    export.main(["--out", str(tmp_path)])
    (tmp_path / "reply.schema.json").write_text("{}\n", encoding="utf-8")
    (tmp_path / "error.schema.json").unlink()
    capsys.readouterr()
    assert export.main(["--check", "--out", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert "reply.schema.json differs" in err
    assert "error.schema.json differs" in err
    assert "request.schema.json" not in err
    assert export.REGENERATE_COMMAND in err
