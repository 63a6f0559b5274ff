"""The wire contract v1 as pydantic models: the single source of contracts/*.schema.json.

Other teams code against ../shared/wire-contract.md; these models are its machine-readable form.
`python -m worker.contract.export` regenerates the JSON Schema files, and a test fails when the
committed files differ. Params of the four analysis kinds are the start endpoints' bodies and are
forwarded as given (unknown keys included); only the contract's own checks live here.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, RootModel, StringConstraints, model_validator
from pydantic.config import JsonDict, JsonValue

REQUEST_ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$"
_REQUEST_ID = re.compile(REQUEST_ID_PATTERN)


def _whole_request_id(value: str) -> str:
    """Python's `$` also matches before a final newline; a request id must match as a whole."""
    if _REQUEST_ID.fullmatch(value) is None:
        raise ValueError("must be 1-128 characters of A-Z a-z 0-9 . _ : -")
    return value


RequestId = Annotated[str, StringConstraints(pattern=REQUEST_ID_PATTERN), AfterValidator(_whole_request_id)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]

REPLY_TYPE = "toksta.analysis.reply.v1"


class Kind(StrEnum):
    THOUGHT_LEADERS = "thought_leaders"
    ENRICHMENT = "enrichment"
    CONTENT_MATCH = "content_match"
    AUDIENCE_MATCH = "audience_match"
    CANCEL = "cancel"


ANALYSIS_KINDS = (Kind.THOUGHT_LEADERS, Kind.ENRICHMENT, Kind.CONTENT_MATCH, Kind.AUDIENCE_MATCH)


class Status(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"
    EXPIRED = "expired"
    ERROR = "error"


class ErrorCode(StrEnum):
    """The worker's own codes; the API's codes (BAD_REQUEST, ...) pass through as strings."""

    INVALID_REQUEST = "INVALID_REQUEST"
    REQUEST_ID_CONFLICT = "REQUEST_ID_CONFLICT"
    JOB_FAILED = "JOB_FAILED"
    JOB_EXPIRED = "JOB_EXPIRED"
    JOB_CANCELED = "JOB_CANCELED"
    CANCELED_BY_REQUEST = "CANCELED_BY_REQUEST"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    POISON_MESSAGE = "POISON_MESSAGE"
    UPSTREAM_UNAVAILABLE = "UPSTREAM_UNAVAILABLE"
    REPLY_TOO_LARGE = "REPLY_TOO_LARGE"
    START_UNCONFIRMED = "START_UNCONFIRMED"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, regex_engine="python-re")


class _Forwarded(BaseModel):
    """A start endpoint's body: checked where the contract says, forwarded with unknown keys."""

    model_config = ConfigDict(extra="allow", strict=True)


class RequestOptions(_Strict):
    """`options`: unknown keys make a request invalid so a mistyped option is never dropped."""

    deadline_seconds: int | None = Field(None, ge=10, le=86400, description="Counted from received_at; default 3600.")
    include: list[Literal["posts", "details"]] | None = Field(
        None,
        description='"posts" (content_match) and "details" (audience_match): extra payloads '
        "fetched for succeeded items only.",
    )
    results_limit: int | None = Field(
        None, ge=1, le=200, description="thought_leaders: discovery rows kept in result; default 50."
    )
    detail_level: Literal["summary", "full"] | None = Field(
        None, description="Enrichment and match results endpoints' verbosity."
    )


def _given(name: str) -> JsonDict:
    """JSON Schema for "`name` is present and not null": the models treat an explicit null as absent."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


_SELECTION_ONE_OF: list[JsonValue] = [
    _given("creator_ids"),
    _given("result_set_id"),
    _given("result_set_ids"),
]


class _Selection(_Forwarded):
    """Exactly one creator selection, as the enrichment and match start endpoints take it."""

    creator_ids: list[NonEmptyStr] | None = Field(None, min_length=1)
    result_set_id: NonEmptyStr | None = None
    result_set_ids: list[NonEmptyStr] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _exactly_one_selection(self) -> _Selection:
        given = [n for n in ("creator_ids", "result_set_id", "result_set_ids") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError(
                "exactly one selection is required: creator_ids, result_set_id or result_set_ids"
                + (f" (got {', '.join(given)})" if given else "")
            )
        return self


class ThoughtLeadersParams(_Forwarded):
    """Body of POST /v1/creators/thought-leaders."""

    keywords: list[str] = Field(min_length=5, description="At least 5 topic keywords.")


class EnrichmentParams(_Selection):
    """Body of POST /v1/creators/enrich."""

    model_config = ConfigDict(json_schema_extra={"oneOf": _SELECTION_ONE_OF})


class ContentMatchParams(_Selection):
    """Body of POST /v1/creators/content-match."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": _SELECTION_ONE_OF,
            "anyOf": [_given("campaign_id"), _given("topic_keywords"), _given("keywords")],
        }
    )

    campaign_id: str | None = None
    topic_keywords: list[str] | None = Field(None, min_length=1)
    keywords: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _criteria(self) -> ContentMatchParams:
        if self.campaign_id is None and self.topic_keywords is None and self.keywords is None:
            raise ValueError("topic_keywords (or keywords) is required without campaign_id")
        return self


class AudienceMatchParams(_Selection):
    """Body of POST /v1/creators/audience-match."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": _SELECTION_ONE_OF,
            "anyOf": [
                _given("campaign_id"),
                _given("campaign_brief"),
                _given("target_audience"),
                _given("audience_keywords"),
                _given("target_audience_criteria"),
            ],
        }
    )

    campaign_id: str | None = None
    campaign_brief: str | None = None
    target_audience: str | None = None
    audience_keywords: list[str] | None = Field(None, min_length=1)
    target_audience_criteria: list[str] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _criteria(self) -> AudienceMatchParams:
        criteria = (
            self.campaign_brief,
            self.target_audience,
            self.audience_keywords,
            self.target_audience_criteria,
        )
        if self.campaign_id is None and all(c is None for c in criteria):
            raise ValueError(
                "one of campaign_brief, target_audience, audience_keywords or "
                "target_audience_criteria is required without campaign_id"
            )
        return self


class CancelParams(_Strict):
    """Names an earlier request of the same user."""

    request_id: RequestId


PARAMS_MODELS: dict[Kind, type[BaseModel]] = {
    Kind.THOUGHT_LEADERS: ThoughtLeadersParams,
    Kind.ENRICHMENT: EnrichmentParams,
    Kind.CONTENT_MATCH: ContentMatchParams,
    Kind.AUDIENCE_MATCH: AudienceMatchParams,
    Kind.CANCEL: CancelParams,
}

# Which options apply to which kind: an option that a kind would ignore is a mistake, not a no-op.
OPTIONS_BY_KIND: dict[Kind, frozenset[str]] = {
    Kind.THOUGHT_LEADERS: frozenset({"deadline_seconds", "results_limit"}),
    Kind.ENRICHMENT: frozenset({"deadline_seconds", "detail_level"}),
    Kind.CONTENT_MATCH: frozenset({"deadline_seconds", "detail_level", "include"}),
    Kind.AUDIENCE_MATCH: frozenset({"deadline_seconds", "detail_level", "include"}),
    Kind.CANCEL: frozenset(),
}
INCLUDE_BY_KIND: dict[Kind, frozenset[str]] = {
    Kind.CONTENT_MATCH: frozenset({"posts"}),
    Kind.AUDIENCE_MATCH: frozenset({"details"}),
}

ReplyQueueName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=255, pattern=r"^(?!amq\.)"),
    Field(description="1-255 bytes; not amq.*; not the request queue nor any '<request queue>.' name."),
]


def _options_that_apply(kind: Kind) -> JsonDict:
    """JSON Schema for OPTIONS_BY_KIND / INCLUDE_BY_KIND, so schema users reject what the worker rejects."""
    allowed = sorted(OPTIONS_BY_KIND[kind])
    allowed_names: list[JsonValue] = [*allowed]
    options: JsonDict = {"propertyNames": {"enum": allowed_names}} if allowed else {"maxProperties": 0}
    include: list[JsonValue] = [*sorted(INCLUDE_BY_KIND.get(kind, ()))]
    if include:
        options["properties"] = {"include": {"items": {"enum": include}}}
    return {"allOf": [{"properties": {"options": options}}]}


class _RequestBase(_Strict):
    request_id: RequestId = Field(description="The idempotency key, namespaced by the AMQP user_id.")
    reply_to: ReplyQueueName | None = Field(None, description="Wins over the AMQP reply_to property.")
    options: RequestOptions | None = Field(
        None, description="Unknown keys, and keys that do not apply to the request's kind, are invalid."
    )


class ThoughtLeadersRequest(_RequestBase):
    """Starts one discovery job (POST /v1/creators/thought-leaders)."""

    model_config = ConfigDict(json_schema_extra=_options_that_apply(Kind.THOUGHT_LEADERS))

    kind: Literal["thought_leaders"]
    params: ThoughtLeadersParams


class EnrichmentRequest(_RequestBase):
    """Enriches the selected creators (POST /v1/creators/enrich)."""

    model_config = ConfigDict(json_schema_extra=_options_that_apply(Kind.ENRICHMENT))

    kind: Literal["enrichment"]
    params: EnrichmentParams


class ContentMatchRequest(_RequestBase):
    """Content-match analyses of the selected creators (POST /v1/creators/content-match)."""

    model_config = ConfigDict(json_schema_extra=_options_that_apply(Kind.CONTENT_MATCH))

    kind: Literal["content_match"]
    params: ContentMatchParams


class AudienceMatchRequest(_RequestBase):
    """Audience-match analyses of the selected creators (POST /v1/creators/audience-match)."""

    model_config = ConfigDict(json_schema_extra=_options_that_apply(Kind.AUDIENCE_MATCH))

    kind: Literal["audience_match"]
    params: AudienceMatchParams


class CancelRequest(_RequestBase):
    """Cancels an earlier request of the same user; answered with its own reply."""

    model_config = ConfigDict(json_schema_extra=_options_that_apply(Kind.CANCEL))

    kind: Literal["cancel"]
    params: CancelParams


AnyRequest = Annotated[
    ThoughtLeadersRequest | EnrichmentRequest | ContentMatchRequest | AudienceMatchRequest | CancelRequest,
    Field(discriminator="kind"),
]


class RequestBody(RootModel[AnyRequest]):
    """One request message body (JSON object, UTF-8, content_type application/json)."""


class ErrorObject(_Strict):
    """`error` of a reply: the API's own code with its status, or the worker's own code."""

    code: str = Field(min_length=1, description="The worker's own code (ErrorCode) or the API's error.code as given.")
    message: str = Field(description="Human-readable; for JOB_* the first non-succeeded item's error_message.")
    http_status: int | None = Field(description="The API's HTTP status when the API answered, else null.")
    retryable: bool = Field(description="true: publish again with a new request_id.")
    toksta_request_id: str | None = Field(description="The API's meta.request_id when known.")
    details: dict[str, Any] | None = Field(
        description="Code-specific: errors (INVALID_REQUEST), item counts (JOB_*), api_job_continues, "
        "may_have_started, or the API's error.details."
    )


_ERROR_NULL_EXACTLY_WHEN_SUCCEEDED: JsonDict = {
    "if": {"properties": {"status": {"const": "succeeded"}}},
    "then": {"properties": {"error": {"type": "null"}}},
    "else": {"properties": {"error": {"type": "object"}}},
}


class Reply(_Strict):
    """One reply body. `error` is null exactly when `status` is succeeded."""

    model_config = ConfigDict(json_schema_extra={"allOf": [_ERROR_NULL_EXACTLY_WHEN_SUCCEEDED]})

    request_id: RequestId | None = Field(description="null only for an invalid message without a readable id.")
    # strict=False: parsed JSON holds the enum's values, not its members (strict wants members).
    kind: Kind | None = Field(strict=False, description="null only for an invalid message without a readable kind.")
    status: Status = Field(strict=False, description="The API's terminal state, or error; header x-status repeats it.")
    job_ids: list[str] = Field(description="Ids exactly as the start endpoint returned them.")
    result: dict[str, Any] | None = Field(
        description="The family's results payload restricted to this request, or a cancel's "
        "{canceled, reason}; null when none was fetched."
    )
    error: ErrorObject | None = Field(description="null exactly when status is succeeded.")
    api_calls: float = Field(ge=0, description="Toksta calls spent on this request; shared calls count 1/k.")
    credits: float | None = Field(
        description="Credits the API reported for the start call (this request's share of a shared one), else null."
    )
    received_at: str = Field(
        description="When the worker first received the request (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    finished_at: str = Field(
        description="When the reply was built (RFC 3339).", json_schema_extra={"format": "date-time"}
    )

    @model_validator(mode="after")
    def _error_iff_not_succeeded(self) -> Reply:
        if (self.error is None) != (self.status is Status.SUCCEEDED):
            raise ValueError("error must be null exactly when status is succeeded")
        return self
