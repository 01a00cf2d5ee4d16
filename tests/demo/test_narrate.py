"""The demo's narration: a failed check fails its step by number and ends the demo; exchanges are
recorded as the parties saw them, with secrets hidden."""

from __future__ import annotations

import io
import json

import httpx
import pytest
from rich.console import Console

from asgate.demo.narrate import DemoFailed, Narrator
from asgate.demo.record import Journal, RecordingTransport
from asgate.kernel.problem import ProblemError


def _narrator() -> tuple[Narrator, io.StringIO]:
    out = io.StringIO()
    return Narrator(Console(file=out, width=120, color_system=None)), out


async def test_a_failed_check_names_its_step_and_stops_the_demo() -> None:
    narrator, out = _narrator()
    narrator.procedure("10.X.4", "Reconfiguration", "seed figure 10.X.4-1")
    async with narrator.step(1, "The administrator edits the profile") as step:
        step.note("edited")
    with pytest.raises(DemoFailed) as failed:
        async with narrator.step(2, "The registry notifies the application") as step:
            step.check(False, "a notification within 10 s")
    report = narrator.report(failed.value)
    assert report["ok"] is False and report["failed"] == "10.X.4 step 2"
    assert report["error"] == "a notification within 10 s"
    assert [s["ok"] for s in report["procedures"][0]["steps"]] == [True, False]
    text = out.getvalue()
    assert " ✓ 1  The administrator edits the profile" in text and " ✗ 2  The registry notifies" in text
    assert "failed: a notification within 10 s" in text and "✗ 10.X.4 step 2 failed" in text


async def test_an_error_response_fails_the_step_with_its_problem() -> None:
    narrator, _ = _narrator()
    narrator.procedure("8.2.5", "AS registration", "TS 23.554")
    with pytest.raises(DemoFailed, match=r"8.2.5 step 1 failed: 403 AS_SVC_ID_NOT_ALLOWED"):
        async with narrator.step(1, "The AS registers"):
            raise ProblemError(403, "AS_SVC_ID_NOT_ALLOWED", "not provisioned")


async def test_exchanges_are_recorded_with_secrets_hidden() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "eyJhbGciOiJFUzI1NiJ9.secret.sig", "expires_in": 60})

    journal = Journal()
    transport = RecordingTransport(journal, "console-1", httpx.MockTransport(answer))
    async with httpx.AsyncClient(transport=transport) as http:
        response = await http.post(
            "http://idm.example/oauth2/token", data={"grant_type": "password", "password": "hunter2!"}
        )
    assert response.json()["expires_in"] == 60  # the party gets the response untouched
    (exchange,) = journal.exchanges
    assert (exchange.actor, exchange.method, exchange.path, exchange.status) == (
        "console-1",
        "POST",
        "/oauth2/token",
        200,
    )
    summary = exchange.summary()
    assert summary["request"] == "grant_type=password&password=••••••••"
    assert json.loads(summary["response"]) == {"access_token": "eyJhbGci…", "expires_in": 60}
    assert (await journal.wait_for(lambda e: e.status == 200)) is exchange
