"""Pieces every API app shares: request parsing, responses, errors, observability, health.

Handlers stay thin: ``parse_body`` turns a request into a validated model or a 400/411/413/415
ProblemError, ``respond`` turns a model into JSON, and one handler renders every ProblemError.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import time
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import structlog
from pydantic import BaseModel, ValidationError
from starlette.convertors import Convertor, register_url_convertor
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route, Router
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgate.kernel import logs
from asgate.kernel.metrics import Metrics
from asgate.kernel.problem import Cause, InvalidParam, ProblemError, render
from asgate.kernel.wire import WIRE, WireModel

M = TypeVar("M", bound=BaseModel)
JSON = "application/json"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
_QUIET_PATHS = frozenset({"/healthz", "/metrics"})
_HEARTBEAT = re.compile(r"/mcx-service-registration/v1/services/[^/]+/heartbeat")
# A JSON string escape of U+0000 (RFC 8259 7: an odd number of backslashes before "u0000"); a raw
# NUL byte is not valid JSON and the parser refuses it.
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
_log = logs.get("asgate.access")


# ---------------------------------------------------------------- requests and responses


class Int64Convertor(Convertor[int]):
    """``{name:int}`` path parameters: at most 18 digits, so every match fits the store's signed 64-bit
    ids (Starlette's own matches any length, and 99999999999999999999 reached the database as a 500);
    anything longer matches no route and is the router's 404."""

    regex = "[0-9]{1,18}"

    def convert(self, value: str) -> int:
        return int(value)

    def to_string(self, value: int) -> str:
        return str(value)


register_url_convertor("int", Int64Convertor())


def require_json(request: Request) -> None:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != JSON and not (media.startswith("application/") and media.endswith("+json")):
        raise ProblemError(
            415,
            Cause.UNSUPPORTED_MEDIA_TYPE,
            f"the request body must be {JSON}",
            invalid_params=[InvalidParam(param="header Content-Type", reason=media or "missing")],
        )


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refusing a missing length (411) and anything over ``limit`` bytes (413)."""
    length = request.headers.get("content-length")
    if length is None and "chunked" not in request.headers.get("transfer-encoding", "").lower():
        raise ProblemError(411, Cause.INCORRECT_LENGTH, "Content-Length is required")
    if length is not None:
        if not (length.isascii() and length.isdigit()):
            raise ProblemError(
                400, Cause.INCORRECT_LENGTH, "Content-Length is not a number",
                invalid_params=[InvalidParam(param="header Content-Length", reason=length[:40])],
            )  # fmt: skip
        if int(length) > limit:
            raise ProblemError(413, Cause.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ProblemError(413, Cause.PAYLOAD_TOO_LARGE, f"the body exceeds {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model: type[M], limit: int) -> M:
    """Read and validate a JSON body; schema violations become 400 with JSON-pointer invalidParams."""
    require_json(request)
    raw = await read_body(request, limit)
    try:
        parsed = model.model_validate_json(raw, context=WIRE)
    except ValidationError as exc:
        raise validation_problem(exc, model) from None
    if _JSON_NUL.search(raw):  # after validation: a schema error is the better answer
        raise nul_in_body(raw)
    return parsed


def nul_in_body(raw: bytes) -> ProblemError:
    """U+0000 is refused in every string (no text column stores it; C code truncates at it)."""
    pointer = _nul_pointer(json.loads(raw), ()) or ""
    return ProblemError(
        400,
        Cause.INVALID_MSG_FORMAT,
        "a string contains U+0000",
        invalid_params=[InvalidParam(param=pointer or "/", reason="U+0000 is not allowed in a string")],
    )


def _nul_pointer(value: Any, loc: tuple[Any, ...]) -> str | None:
    """The JSON pointer of the first string (or member name) holding U+0000."""
    if isinstance(value, str):
        return json_pointer(loc) if "\x00" in value else None
    items: Iterable[tuple[Any, Any]] = ()
    if isinstance(value, dict):
        for key in value:
            if "\x00" in key:
                return json_pointer(loc) or "/"
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    for key, item in items:
        found = _nul_pointer(item, (*loc, key))
        if found is not None:
            return found
    return None


def validation_problem(exc: ValidationError, model: type[BaseModel]) -> ProblemError:
    """TS 29.500 5.2.7.2: MANDATORY_IE_MISSING / MANDATORY_IE_INCORRECT / OPTIONAL_IE_INCORRECT."""
    required = {(field.alias or name): field.is_required() for name, field in model.model_fields.items()}
    params: list[InvalidParam] = []
    missing = mandatory = False
    for error in exc.errors(include_url=False):
        if error["type"] == "json_invalid":
            return ProblemError(400, Cause.INVALID_MSG_FORMAT, f"the body is not valid JSON: {error['msg']}")
        loc = error["loc"]
        if not loc:
            return ProblemError(400, Cause.INVALID_MSG_FORMAT, "the body must be a JSON object")
        params.append(InvalidParam(param=json_pointer(loc), reason=error["msg"]))
        missing = missing or error["type"] == "missing"
        mandatory = mandatory or required.get(str(loc[0]), False)
    cause = (
        Cause.MANDATORY_IE_MISSING
        if missing
        else Cause.MANDATORY_IE_INCORRECT
        if mandatory
        else Cause.OPTIONAL_IE_INCORRECT
    )
    return ProblemError(400, cause, "the request body does not match the schema", invalid_params=params[:20])


def json_pointer(loc: Iterable[Any]) -> str:
    """RFC 6901 pointer for a pydantic error location."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in loc)


def query_problem(name: str, reason: str) -> ProblemError:
    return ProblemError(
        400,
        Cause.INVALID_QUERY_PARAM,
        reason,
        invalid_params=[InvalidParam(param=f"query {name}", reason=reason)],
    )


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    # isascii: str.isdigit() is also true of "²" (int() refuses it) and of other scripts' digits.
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise query_problem(name, f"must be an integer from {low} to {high}")
    return int(raw)


def path_string(request: Request, name: str, max_length: int) -> str:
    """A path parameter that names a resource being created: as long as the store keeps (a longer
    one used to reach PostgreSQL's VARCHAR(n) as a 500)."""
    value = str(request.path_params[name])
    if len(value) > max_length:
        raise ProblemError(
            400, Cause.MANDATORY_IE_INCORRECT, f"{name} is longer than {max_length} characters",
            invalid_params=[InvalidParam(param=f"path {name}", reason=f"at most {max_length} characters")],
        )  # fmt: skip
    return value


def respond(model: WireModel | None, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    if model is None:
        return Response(status_code=status, headers=headers)
    return Response(model.dump_json(), status_code=status, media_type=JSON, headers=headers)


# ---------------------------------------------------------------- errors


def nul_problem(scope: Scope) -> ProblemError | None:
    """U+0000 in the path, the query or a header value: refused before any route sees it (TS 29.500
    5.2.7.2: a malformed message or query parameter is a 400)."""
    if "\x00" in scope["path"]:
        return ProblemError(
            400, Cause.INVALID_MSG_FORMAT, "the path contains U+0000",
            invalid_params=[InvalidParam(param="path", reason="U+0000 is not allowed")],
        )  # fmt: skip
    query: bytes = scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:
        part = next(p for p in query.split(b"&") if b"%00" in p or b"\x00" in p)
        # The name as sent (percent-encoded): the answer never carries the NUL itself.
        return query_problem(part.split(b"=", 1)[0].decode("latin-1")[:64], "U+0000 is not allowed")
    for header, value in scope["headers"]:
        if b"\x00" in value:
            param = InvalidParam(
                param=f"header {header.decode('latin-1')[:64]}", reason="U+0000 is not allowed"
            )
            return ProblemError(
                400, Cause.INVALID_MSG_FORMAT, "a header value contains U+0000", invalid_params=[param]
            )
    return None


def problem_for(exc: Exception, method: str) -> ProblemError | None:
    """The ProblemError to answer for an exception a handler raised (None: unexpected, a 500)."""
    if isinstance(exc, ProblemError):
        return exc
    if isinstance(exc, HTTPException):
        if exc.status_code == 404:
            return ProblemError(404, Cause.RESOURCE_URI_STRUCTURE_NOT_FOUND, "no such resource")
        if exc.status_code == 405:
            return ProblemError(
                405,
                Cause.METHOD_NOT_ALLOWED,
                f"{method} is not allowed here",
                headers=dict(exc.headers or {}),
            )
        return ProblemError(exc.status_code, Cause.UNSPECIFIED_MSG_FAILURE, exc.detail)
    return None


# ---------------------------------------------------------------- observability


def routine_request(method: str, path: str, status: int) -> bool:
    """Requests logged at debug, not info: health checks, scrapes and successful heartbeats (every
    MC service instance's PUT .../heartbeat each heartbeatPeriod) say nothing an operator reads; a
    refused heartbeat (404: the instance was removed) still does."""
    if path in _QUIET_PATHS:
        return True
    return method == "PUT" and status == 204 and _HEARTBEAT.fullmatch(path) is not None


class ObservabilityMiddleware:
    """The outermost layer of every app: request id, one structured log line and Prometheus
    metrics per request, the ProblemDetails rendering of every error, and a 500 that never leaks
    internals for anything the handlers did not expect."""

    def __init__(self, app: ASGIApp, metrics: Metrics, apis: Sequence[str]) -> None:
        self.app = app
        self.metrics = metrics
        self.apis = frozenset(apis)
        # Request ids: a random per-process prefix and a counter (unique, and cheap on the hot path).
        self._id_prefix = os.urandom(8).hex()
        self._id_seq = itertools.count(1)
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._durations: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        scope["app"] = self  # Starlette's router raises HTTPException for 404/405 when an app is set
        try:
            refused = nul_problem(scope)
            if refused is not None:
                raise refused
            await self.app(scope, receive, send_wrapper)
        except Exception as exc:  # noqa: BLE001 - every error becomes a ProblemDetails
            problem = problem_for(exc, scope["method"])
            if problem is None:
                _log.exception("unhandled error", path=scope["path"])
                problem = ProblemError(500, Cause.SYSTEM_FAILURE, "internal error; see the server log")
            if status == 0:
                # The instance without any NUL the path held (never echo one back).
                instance = scope["path"].replace("\x00", "%00")
                await render(problem, instance=instance)(scope, receive, send_wrapper)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            structlog.contextvars.unbind_contextvars("request_id")

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        path, method = scope["path"], scope["method"]
        parts = path.split("/", 2)
        api = parts[1] if len(parts) > 1 and parts[1] in self.apis else "other"
        key = (api, method, status)
        counter = self._counters.get(key)
        if counter is None:  # label children resolved once, not per request
            counter = self._counters[key] = self.metrics.http_requests.labels(api, method, str(status))
        counter.inc()
        duration = self._durations.get(api)
        if duration is None:
            duration = self._durations[api] = self.metrics.http_duration.labels(api)
        duration.observe(elapsed)
        log = _log.debug if routine_request(method, path, status) else _log.info
        log("request", method=method, path=path, status=status, duration_ms=round(elapsed * 1000, 3))

    def _request_id(self, scope: Scope) -> str:
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                text = str(value.decode("latin-1"))
                if _REQUEST_ID.match(text):
                    return text
                break
        return f"{self._id_prefix}{next(self._id_seq):016x}"


# ---------------------------------------------------------------- assembly


class SegmentRouter:
    """Dispatch on the first path segment (the API name) to a Starlette router holding that API's
    routes, instead of trying every route's pattern in turn."""

    def __init__(self, routes: Sequence[BaseRoute]) -> None:
        self.routes = tuple(routes)
        groups: dict[str, list[BaseRoute]] = {}
        for route in routes:
            path = getattr(route, "path", "")
            groups.setdefault(path.split("/", 2)[1] if path.startswith("/") else "", []).append(route)
        self._routers = {segment: Router(routes=group) for segment, group in groups.items()}
        self._fallback = Router(routes=list(routes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parts = scope["path"].split("/", 2)
        router = self._routers.get(parts[1] if len(parts) > 1 else "", self._fallback)
        try:
            await router(scope, receive, send)
        except HTTPException as exc:
            if exc.status_code != 405:
                raise
            # RFC 9110 15.5.6: Allow lists every method of the resource. Starlette names only the
            # methods of the first route matching the path, and a resource has one route per method.
            raise HTTPException(405, headers={"Allow": _allowed(router, scope["path"])}) from None


def _allowed(router: Router, path: str) -> str:
    methods: set[str] = set()
    for route in router.routes:
        if isinstance(route, Route) and route.methods and route.path_regex.match(path):
            methods |= route.methods
    return ", ".join(sorted(methods))


def build_app(routes: Sequence[BaseRoute], metrics: Metrics, apis: Sequence[str]) -> ASGIApp:
    """Starlette routers behind :class:`ObservabilityMiddleware` (which renders every error);
    the Starlette application class would add two more layers to every request for nothing."""
    return ObservabilityMiddleware(SegmentRouter(routes), metrics=metrics, apis=apis)
