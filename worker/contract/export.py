"""Write contracts/*.schema.json from the pydantic models, or check that the committed files match.

The models are the single source of the wire contract's JSON Schemas: other teams validate against
the files, the worker validates with the models, and `--check` (run by the tests) keeps the two
from drifting. Output is deterministic (sorted keys, 2-space indent, trailing newline) so a
regeneration without a model change is a no-op in git.

    python -m worker.contract.export [--out contracts]     # (re)write the files
    python -m worker.contract.export --check                # exit 1 listing the files that differ
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from worker.contract.models import ErrorObject, Reply, RequestBody

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
ID_BASE = "https://toksta-worker.local/contracts/"
DEFAULT_OUT = Path("contracts")
REGENERATE_COMMAND = "python -m worker.contract.export"


@dataclass(frozen=True, slots=True)
class SchemaFile:
    """One published schema document: which model it comes from and how it introduces itself."""

    filename: str
    model: type[BaseModel]
    title: str
    description: str


SCHEMA_FILES: tuple[SchemaFile, ...] = (
    SchemaFile(
        "request.schema.json",
        RequestBody,
        "Toksta worker request (wire contract v1)",
        "One request message body, published to the request queue (default toksta.requests) as "
        "UTF-8 JSON with content_type application/json. The reply queue comes from the body's "
        "reply_to or the AMQP reply_to property. Checks that depend on configuration or on bytes "
        "(size limit, reply queue = the request queue or one of its '<queue>.' names, 255 bytes) "
        "are made by the worker only. Generated from worker/contract/models.py: do not edit.",
    ),
    SchemaFile(
        "reply.schema.json",
        Reply,
        "Toksta worker reply (wire contract v1)",
        "One reply message body (AMQP type toksta.analysis.reply.v1, content_type "
        "application/json, message_id <request_id>:reply for valid requests). error is null "
        "exactly when status is succeeded. Generated from worker/contract/models.py: do not edit.",
    ),
    SchemaFile(
        "error.schema.json",
        ErrorObject,
        "Toksta worker reply error object (wire contract v1)",
        "The error member of a reply whose status is not succeeded: the worker's own code or the "
        "API's error code with its http_status. retryable true means: publish again with a new "
        "request_id. Generated from worker/contract/models.py: do not edit.",
    ),
)


def build_schemas() -> dict[str, dict[str, Any]]:
    """Every schema document by file name, as JSON-ready dicts."""
    return {spec.filename: _document(spec) for spec in SCHEMA_FILES}


def render(document: dict[str, Any]) -> str:
    """The exact text committed for `document`."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def rendered_schemas() -> dict[str, str]:
    return {name: render(doc) for name, doc in build_schemas().items()}


def stale_files(out_dir: Path) -> list[str]:
    """Names of the schema files in `out_dir` that are missing or differ from the models."""
    stale = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write_schemas(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in rendered_schemas().items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def _document(spec: SchemaFile) -> dict[str, Any]:
    """pydantic's schema with the document header a standalone file needs ($schema, $id)."""
    schema = spec.model.model_json_schema(mode="validation")
    schema.update(
        {
            "$schema": JSON_SCHEMA_DIALECT,
            "$id": ID_BASE + spec.filename,
            "title": spec.title,
            "description": spec.description,
        }
    )
    return schema


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m worker.contract.export", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory (default: contracts)")
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file differs")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.out)
        for name in stale:
            print(f"{args.out / name} differs from the models", file=sys.stderr)
        if stale:
            print(f"regenerate with: {REGENERATE_COMMAND} --out {args.out}", file=sys.stderr)
            return 1
        return 0
    for path in write_schemas(args.out):
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
