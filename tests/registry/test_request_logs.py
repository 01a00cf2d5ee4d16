"""The request log of a running registry: routine heartbeats at debug, everything else at info."""

from __future__ import annotations

import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

import httpx
import pytest
import structlog
from structlog.testing import LogCapture

from asgate.kernel import web
from tests.conftest import bearer
from tests.registry.conftest import gm_registration, register


@pytest.fixture
def requests_logged(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[MutableMapping[str, Any]]]:
    """The ``request`` lines the middleware writes, with their level (every level kept)."""
    capture = LogCapture()
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[capture],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
    )
    monkeypatch.setattr(web, "_log", logger)
    yield capture.entries


def _levels(entries: list[MutableMapping[str, Any]], method: str, suffix: str) -> list[tuple[int, str]]:
    return [
        (entry["status"], entry["log_level"])
        for entry in entries
        if entry["event"] == "request" and entry["method"] == method and entry["path"].endswith(suffix)
    ]


async def test_a_successful_heartbeat_logs_at_debug_other_requests_at_info(
    http: httpx.AsyncClient, tokens: dict[str, str], requests_logged: list[MutableMapping[str, Any]]
) -> None:
    location = (await register(http, tokens["gms-1"], gm_registration())).headers["location"]
    assert (await http.put(f"{location}/heartbeat", headers=bearer(tokens["gms-1"]))).status_code == 204
    assert (await http.get("/healthz")).status_code == 200
    assert (await http.delete(location, headers=bearer(tokens["gms-1"]))).status_code == 204
    # The instance is gone: its agent's next heartbeat is refused, which an operator wants to see.
    assert (await http.put(f"{location}/heartbeat", headers=bearer(tokens["gms-1"]))).status_code == 404

    assert _levels(requests_logged, "POST", "/services") == [(201, "info")]
    assert _levels(requests_logged, "PUT", "/heartbeat") == [(204, "debug"), (404, "info")]
    assert _levels(requests_logged, "GET", "/healthz") == [(200, "debug")]
    assert _levels(requests_logged, "DELETE", location.rsplit("/", 1)[1]) == [(204, "info")]
