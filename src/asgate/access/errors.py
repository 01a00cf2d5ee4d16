"""The engine's own answers: TS 29.571 ProblemDetails as ``application/problem+json``, and
the small JSON of ``GET /healthz``.

They name no backend: the detail texts are fixed strings chosen here, never an exception text.
Causes are TS 29.500 Table 5.2.7.2-1 values; the 504/502 ones are from its later releases.
"""

from __future__ import annotations

import json
from http import HTTPStatus
from typing import Any

from asgate.kernel.problem import PROBLEM_JSON, Cause, problem_body

Header = tuple[bytes, bytes]


class Refusal(Exception):
    """Raised inside parser callbacks: answer ``status`` with a problem and close the connection."""

    def __init__(self, status: int, cause: str, detail: str, headers: list[Header] | None = None) -> None:
        super().__init__(detail)
        self.status = status
        self.cause = cause
        self.detail = detail
        self.headers = headers or []

    def problem(self) -> dict[str, Any]:
        return problem_body(self.status, self.cause, self.detail)


def bad_request(detail: str) -> Refusal:
    return Refusal(400, Cause.INVALID_MSG_FORMAT, detail)


def status_line(status: int) -> bytes:
    line = STATUS_LINES.get(status)
    if line is None:
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = ""
        line = b"HTTP/1.1 %d %s\r\n" % (status, phrase.encode())
    return line


STATUS_LINES = {s.value: b"HTTP/1.1 %d %s\r\n" % (s.value, s.phrase.encode()) for s in HTTPStatus}


def render_problem(
    status: int,
    problem: dict[str, Any],
    headers: list[Header],
    *,
    close: bool,
    head_only: bool = False,
) -> bytes:
    """A complete HTTP/1.1 response carrying ``problem`` (built by
    :func:`asgate.kernel.problem.problem_body`); no body bytes for a HEAD request. An empty
    ``problem`` is an answer without content (RFC 9110 15.3.5: a 204 has no Content-Length)."""
    if not problem:
        return _response(status, b"", None, headers, close, head_only)
    body = json.dumps(problem, separators=(",", ":")).encode()
    return _response(status, _PROBLEM_TYPE, body, headers, close, head_only)


_PROBLEM_TYPE = b"content-type: " + PROBLEM_JSON.encode() + b"\r\n"
_JSON_TYPE = b"content-type: application/json\r\ncache-control: no-store\r\n"


def _response(
    status: int, content: bytes, body: bytes | None, headers: list[Header], close: bool, head_only: bool
) -> bytes:
    """Status line, ``content`` (the content fields) and Content-Length unless there is no ``body``,
    ``headers``, Connection, then the body unless ``head_only``."""
    parts = [status_line(status)]
    if body is not None:
        parts += [content, b"content-length: %d\r\n" % len(body)]
    for name, value in headers:
        parts += [name, b": ", value, b"\r\n"]
    if close:
        parts.append(b"connection: close\r\n")
    parts.append(b"\r\n")
    if body is not None and not head_only:
        parts.append(body)
    return b"".join(parts)


def upstream_refusal(status: int) -> Refusal:
    """The engine's answer when the backend could not produce a response."""
    if status == 504:
        return Refusal(504, Cause.TIMED_OUT_REQUEST, "the service did not answer in time")
    if status == 503:
        return Refusal(
            503, Cause.NF_CONGESTION, "no instance of the service is available", [(b"retry-after", b"1")]
        )
    return Refusal(502, Cause.TARGET_NF_NOT_REACHABLE, "the service could not be reached")


HEALTH_OK = b'{"status":"ok"}'
HEALTH_DRAINING = b'{"status":"draining"}'


def render_json(status: int, body: bytes, close: bool, head_only: bool) -> bytes:
    """A complete HTTP/1.1 response of the engine's own carrying the JSON ``body`` (never cached)."""
    return _response(status, _JSON_TYPE, body, [], close, head_only)
