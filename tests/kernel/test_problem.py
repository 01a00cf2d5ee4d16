"""The one ProblemDetails builder: every producer's body validates against the ProblemDetails
schema (TS 29.571 5.2.4.1, as asgate's common.yaml requires it: ``status`` and ``cause`` always)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import jsonschema
import pytest
import yaml

from asgate.access.errors import Refusal, bad_request, render_problem, upstream_refusal
from asgate.client.notifications import _response as callback_response
from asgate.kernel.problem import InvalidParam, ProblemError, problem_body, render
from asgate.kernel.web_cors import AllowedOrigins, CorsMiddleware
from asgate.registry.hub import ack_problem

COMMON = Path(__file__).resolve().parents[2] / "src/asgate/registry/openapi/common.yaml"


def _schema() -> dict[str, Any]:
    schema: dict[str, Any] = yaml.safe_load(COMMON.read_text())["components"]["schemas"]["ProblemDetails"]
    return schema


def _valid(body: dict[str, Any], status: int) -> dict[str, Any]:
    jsonschema.validate(body, _schema())
    assert body["status"] == status and body["title"] and body["cause"]
    assert None not in body.values()  # absent, never null
    return body


def _http1_body(raw: bytes) -> dict[str, Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"content-type: application/problem+json" in head.lower()
    return dict(json.loads(body))


def test_the_builder_names_every_field_once() -> None:
    body = problem_body(
        400,
        "INVALID_MSG_FORMAT",
        "bad",
        instance="/x",
        invalid_params=[InvalidParam(param="/a", reason="missing")],
        extensions={"currentSequence": 7, "title": "ignored"},
    )
    assert body == {
        "currentSequence": 7,
        "title": "Bad Request",
        "status": 400,
        "detail": "bad",
        "instance": "/x",
        "cause": "INVALID_MSG_FORMAT",
        "invalidParams": [{"param": "/a", "reason": "missing"}],
    }
    assert problem_body(404, "CONTEXT_NOT_FOUND") == {
        "title": "Not Found",
        "status": 404,
        "cause": "CONTEXT_NOT_FOUND",
    }
    assert "invalidParams" not in problem_body(400, "X", invalid_params=[])  # minItems 1


@pytest.mark.parametrize(
    "error",
    [
        ProblemError(404, "CONTEXT_NOT_FOUND", "no such thing"),
        ProblemError(400, "INVALID_MSG_FORMAT", invalid_params=[InvalidParam(param="/a")]),
        ProblemError(409, "PRECONDITION_FAILED", "stale", extensions={"currentSequence": 3}),
    ],
)
def test_the_apis_renderer(error: ProblemError) -> None:
    response = render(error, instance="/mcx-registry/v1/x")
    assert response.media_type == "application/problem+json"
    body = _valid(json.loads(bytes(response.body)), error.status)
    assert body["instance"] == "/mcx-registry/v1/x"


@pytest.mark.parametrize(
    "refusal",
    [bad_request("no host"), upstream_refusal(502), upstream_refusal(503), upstream_refusal(504)],
)
def test_the_sas_bytes_renderer(refusal: Refusal) -> None:
    raw = render_problem(refusal.status, refusal.problem(), refusal.headers, close=True)
    assert _valid(_http1_body(raw), refusal.status) == refusal.problem()


@pytest.mark.parametrize("status", [400, 500])
def test_the_sdk_callback_listener(status: int) -> None:
    _valid(_http1_body(callback_response(status, keep_alive=False)), status)


async def test_the_cors_middleware_refusing_a_preflight() -> None:
    async def nothing() -> set[str]:
        return set()

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("a refused preflight goes no further")

    transport = httpx.ASGITransport(app=CorsMiddleware(app, AllowedOrigins(nothing)))
    async with httpx.AsyncClient(transport=transport, base_url="http://asgate") as http:
        response = await http.options(
            "/oauth2/token",
            headers={"origin": "https://console.example", "access-control-request-method": "POST"},
        )
    assert response.headers["content-type"] == "application/problem+json"
    _valid(response.json(), 403)


@pytest.mark.parametrize("ack", ["not-a-number", -1, None])
def test_the_notification_socket_refusing_an_acknowledgement(ack: object) -> None:
    error = ack_problem(ack)
    _valid(error.body(), error.status)
