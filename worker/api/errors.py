"""The one exception every failed Toksta call raises, with what callers need to decide a retry.

Callers own retry policy (a start call may only be re-sent when the API surely did not act on
it; a poll may always be repeated), so this type answers the two questions separately:
`retryable` (is another attempt worthwhile at all) and `safe_to_resend` (the start-call rule).
"""

from __future__ import annotations

from typing import Any

from worker.api.rate import RateInfo

TRANSPORT_ERROR = "TRANSPORT_ERROR"
TIMEOUT = "TIMEOUT"
MALFORMED_RESPONSE = "MALFORMED_RESPONSE"

_OWN_CODES = frozenset({TRANSPORT_ERROR, TIMEOUT, MALFORMED_RESPONSE})


def http_code(status: int) -> str:
    """Our code for an error status that came without the API's error envelope."""
    return f"HTTP_{status}"


def retryable_status(status: int) -> bool:
    """429 and 500-class are worth another attempt; 501 means "not live" and never is."""
    return status == 429 or (500 <= status <= 599 and status != 501)


class ApiError(Exception):
    """A normalized failure of one Toksta call: an error status, a transport failure or a bad body.

    Never carries the API key or request headers: only what the API said and what we observed.
    """

    def __init__(
        self,
        *,
        code: str,
        message: str,
        http_status: int | None = None,
        toksta_request_id: str | None = None,
        envelope: bool = False,
        retryable: bool | None = None,
        retry_after: float | None = None,
        rate: RateInfo | None = None,
        sent: bool = True,
        details: dict[str, Any] | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.http_status = http_status
        self.toksta_request_id = toksta_request_id
        self.envelope = envelope
        self.retryable = self._default_retryable(code, http_status) if retryable is None else retryable
        self.retry_after = retry_after
        self.rate = rate
        self.sent = sent
        self.details = details
        super().__init__(self._summary())

    @staticmethod
    def _default_retryable(code: str, http_status: int | None) -> bool:
        if code == MALFORMED_RESPONSE or http_status is None:
            return True
        return retryable_status(http_status)

    def _summary(self) -> str:
        status = f"HTTP {self.http_status}" if self.http_status is not None else "no response"
        rid = f" [request_id={self.toksta_request_id}]" if self.toksta_request_id else ""
        return f"{self.code} ({status}): {self.message}{rid}"

    @property
    def outcome_unknown(self) -> bool:
        """True when the server may have acted on the request although we saw no clear answer."""
        if not self.sent:
            return False
        if self.http_status is None or self.code == MALFORMED_RESPONSE:
            return True
        return self.http_status >= 500 and not self.envelope

    @property
    def safe_to_resend(self) -> bool:
        """The start-call rule: 429, a 5xx (not 501) the API itself answered, or never sent."""
        if not self.sent:
            return True
        status = self.http_status
        if status is None or self.code in _OWN_CODES:
            return False
        if status == 429:
            return True
        return 500 <= status <= 599 and status != 501 and self.envelope

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for replies and logs (no headers, no secrets)."""
        return {
            "code": self.code,
            "message": self.message,
            "http_status": self.http_status,
            "retryable": self.retryable,
            "toksta_request_id": self.toksta_request_id,
            "details": self.details,
        }

    def __repr__(self) -> str:
        return (
            f"ApiError(code={self.code!r}, http_status={self.http_status!r}, sent={self.sent!r}, "
            f"envelope={self.envelope!r}, toksta_request_id={self.toksta_request_id!r})"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle through their args; ours are keyword-only, so rebuild from state.
        return (_rebuild, (self.__dict__.copy(),))


def _rebuild(state: dict[str, Any]) -> ApiError:
    error = ApiError.__new__(ApiError)
    Exception.__init__(error, "")
    error.__dict__.update(state)
    error.args = (error._summary(),)
    return error
