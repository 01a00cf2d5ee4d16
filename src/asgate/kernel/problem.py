"""TS 29.571 ProblemDetails, the one exception type every API raises, its one builder and renderer.

:func:`problem_body` is the one definition of a problem body (fields, ``cause``, ``invalidParams``,
RFC 9457 extension members): the APIs' renderer, the SAS's bytes renderer (access/errors.py), the
CORS middleware and the SDK's callback listener all build theirs with it.

Causes are the TS 29.500 Table 5.2.7.2-1 values where one fits, else asgate's own (documented in
docs/api.md). Every error response carries a ``cause``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from enum import StrEnum
from http import HTTPStatus
from typing import Any

from starlette.responses import Response

from asgate.kernel.wire import WireModel

PROBLEM_JSON = "application/problem+json"


class Cause(StrEnum):
    # TS 29.500 Table 5.2.7.2-1 (generic protocol errors)
    INVALID_API = "INVALID_API"
    INVALID_MSG_FORMAT = "INVALID_MSG_FORMAT"
    INVALID_QUERY_PARAM = "INVALID_QUERY_PARAM"
    MANDATORY_IE_INCORRECT = "MANDATORY_IE_INCORRECT"
    MANDATORY_IE_MISSING = "MANDATORY_IE_MISSING"
    OPTIONAL_IE_INCORRECT = "OPTIONAL_IE_INCORRECT"
    UNSPECIFIED_MSG_FAILURE = "UNSPECIFIED_MSG_FAILURE"
    MODIFICATION_NOT_ALLOWED = "MODIFICATION_NOT_ALLOWED"
    ACCESS_TOKEN_DENIED = "ACCESS_TOKEN_DENIED"  # noqa: S105
    CONTEXT_NOT_FOUND = "CONTEXT_NOT_FOUND"
    RESOURCE_URI_STRUCTURE_NOT_FOUND = "RESOURCE_URI_STRUCTURE_NOT_FOUND"
    INCORRECT_LENGTH = "INCORRECT_LENGTH"
    PAYLOAD_TOO_LARGE = "PAYLOAD_TOO_LARGE"
    UNSUPPORTED_MEDIA_TYPE = "UNSUPPORTED_MEDIA_TYPE"
    NF_CONGESTION_RISK = "NF_CONGESTION_RISK"
    SYSTEM_FAILURE = "SYSTEM_FAILURE"
    NF_CONGESTION = "NF_CONGESTION"
    TIMED_OUT_REQUEST = "TIMED_OUT_REQUEST"
    TARGET_NF_NOT_REACHABLE = "TARGET_NF_NOT_REACHABLE"
    # asgate-specific (RFC 6750 error codes for bearer tokens, object-level authorization)
    INVALID_TOKEN = "INVALID_TOKEN"  # noqa: S105
    INSUFFICIENT_SCOPE = "INSUFFICIENT_SCOPE"
    TOO_MANY_FAILED_AUTHENTICATIONS = "TOO_MANY_FAILED_AUTHENTICATIONS"  # the IdM's brute-force throttle
    CROSS_SITE_REQUEST = "CROSS_SITE_REQUEST"  # a sign-in form posted from another site (login CSRF)
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    NOT_ACCEPTABLE = "NOT_ACCEPTABLE"
    AS_SVC_ID_NOT_ALLOWED = "AS_SVC_ID_NOT_ALLOWED"
    REGISTRATION_NOT_OWNED = "REGISTRATION_NOT_OWNED"
    ADDRESS_NOT_ALLOWED = "ADDRESS_NOT_ALLOWED"  # an instance address the policy refuses
    PRECONDITION_FAILED = "PRECONDITION_FAILED"
    URI_NOT_ALLOWED = "URI_NOT_ALLOWED"


class InvalidParam(WireModel):
    param: str
    reason: str | None = None


class ProblemDetails(WireModel):
    type: str | None = None
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
    cause: str | None = None
    invalid_params: list[InvalidParam] | None = None


def problem_body(
    status: int,
    cause: str,
    detail: str | None = None,
    *,
    title: str | None = None,
    instance: str | None = None,
    invalid_params: Sequence[InvalidParam] | None = None,
    extensions: Mapping[str, int | str] | None = None,
) -> dict[str, Any]:
    """The JSON object of a TS 29.571 ProblemDetails: ``title`` (the status phrase unless given),
    ``status``, ``detail``, ``instance``, ``cause`` (always: every asgate error carries one) and
    ``invalidParams`` (only when there are some: the schema's minItems is 1); absent fields are
    left out, never null. ``extensions`` are RFC 9457 3.2 members that no standard field overrides."""
    body: dict[str, Any] = dict(extensions) if extensions else {}
    body["title"] = title or HTTPStatus(status).phrase
    body["status"] = status
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body["cause"] = str(cause)
    if invalid_params:
        body["invalidParams"] = [p.dump() for p in invalid_params]
    return body


class ProblemError(Exception):
    """Raise anywhere below a handler; the app renders it as ``application/problem+json``."""

    def __init__(
        self,
        status: int,
        cause: Cause | str,
        detail: str | None = None,
        *,
        invalid_params: Sequence[InvalidParam] | None = None,
        headers: Mapping[str, str] | None = None,
        title: str | None = None,
        extensions: Mapping[str, int | str] | None = None,
    ) -> None:
        super().__init__(detail or str(cause))
        self.status = status
        self.cause = str(cause)
        self.detail = detail
        self.invalid_params = list(invalid_params) if invalid_params else None
        self.headers = dict(headers or {})
        self.title = title or HTTPStatus(status).phrase
        # RFC 9457 3.2: extension members (e.g. the access server's currentSequence on a 409).
        self.extensions = dict(extensions or {})

    def body(self, instance: str | None = None) -> dict[str, Any]:
        """This error as a ProblemDetails JSON object (:func:`problem_body`)."""
        return problem_body(
            self.status,
            self.cause,
            self.detail,
            title=self.title,
            instance=instance,
            invalid_params=self.invalid_params,
            extensions=self.extensions,
        )

    @classmethod
    def from_problem(cls, problem: ProblemDetails) -> ProblemError:
        status = problem.status or 500
        return cls(
            status,
            problem.cause or "UNKNOWN",
            problem.detail,
            invalid_params=problem.invalid_params,
            title=problem.title,
        )

    def __str__(self) -> str:
        text = f"{self.status} {self.cause}"
        if self.detail:
            text += f": {self.detail}"
        if self.invalid_params:
            text += " (" + ", ".join(f"{p.param}: {p.reason}" for p in self.invalid_params) + ")"
        return text


def render(error: ProblemError, instance: str | None = None) -> Response:
    """The one renderer: a ProblemError as an ``application/problem+json`` response."""
    return Response(
        json.dumps(error.body(instance), separators=(",", ":")),
        status_code=error.status,
        media_type=PROBLEM_JSON,
        headers=error.headers,
    )
