"""Typed client for the Toksta Public API v1 (one attempt per call; callers own retries)."""

from worker.api.client import ApiResponse, CallRecord, Observer, TokstaClient
from worker.api.errors import MALFORMED_RESPONSE, TIMEOUT, TRANSPORT_ERROR, ApiError
from worker.api.rate import RateInfo

__all__ = [
    "MALFORMED_RESPONSE",
    "TIMEOUT",
    "TRANSPORT_ERROR",
    "ApiError",
    "ApiResponse",
    "CallRecord",
    "Observer",
    "RateInfo",
    "TokstaClient",
]
