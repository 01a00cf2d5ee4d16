"""A browser application on its own origin uses an MC service through the access server, in a real
Chromium: ``fetch()`` with an Authorization header (so a preflight) and credentials, and a
WebSocket; and a page on an origin nobody allowed is blocked by the browser itself."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import uvicorn
from playwright.async_api import Browser
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

from asgate.kernel.settings import Settings
from asgate.system.serving import _Server
from tests.access.system import System, running_system
from tests.access.test_cors import allow_origins
from tests.browser import watch
from tests.live import free_port

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]

PAGE = (
    "<!doctype html><html lang=en><link rel=icon href='data:,'><title>Dispatch console</title>"
    "<h1>Dispatch console</h1></html>"
)

# What the dispatch console does: create a group and list them (JSON, bearer token: preflighted,
# credentialed), then talk SIP over the MCPTT WebSocket.
CALL_SERVICES = """
async ([gm, mcptt, token]) => {
  const auth = {Authorization: `Bearer ${token}`};
  const created = await fetch(`${gm}/groups`, {
    method: "POST", credentials: "include",
    headers: {...auth, "Content-Type": "application/json", "Resource-Priority": "mcpttp.5"},
    body: JSON.stringify({groupId: "fire-1"}),
  });
  const listed = await fetch(`${gm}/groups`, {headers: auth, credentials: "include"});
  const refused = await fetch(`${gm}/groups`, {credentials: "include"});
  const sip = await new Promise((resolve, reject) => {
    const ws = new WebSocket(`${mcptt.replace("http", "ws")}/signalling?access_token=${token}`, ["sip"]);
    const options = "OPTIONS sip:g1@mc.example SIP/2.0\\r\\nCall-ID: b1\\r\\nCSeq: 1 OPTIONS\\r\\n\\r\\n";
    ws.onopen = () => ws.send(options);
    ws.onmessage = (event) => { resolve(event.data); ws.close(); };
    ws.onerror = () => reject(new Error("websocket failed"));
  });
  return {
    created: created.status, priority: created.headers.get("Resource-Priority"),
    groups: (await listed.json()).groups.map((g) => g.groupId),
    refused: refused.status, cause: (await refused.json()).cause,
    challenge: refused.headers.get("WWW-Authenticate"), sip,
  };
}
"""

BLOCKED = """
async ([gm, mcptt, token]) => {
  let fetched, socket;
  try {
    await fetch(`${gm}/groups`, {headers: {Authorization: `Bearer ${token}`}, credentials: "include"});
    fetched = "answered";
  } catch (error) { fetched = error.name; }
  socket = await new Promise((resolve) => {
    const ws = new WebSocket(`${mcptt.replace("http", "ws")}/signalling?access_token=${token}`, ["sip"]);
    ws.onopen = () => { resolve("open"); ws.close(); };
    ws.onerror = () => resolve("error");
  });
  return {fetched, socket};
}
"""


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_refusal_hold=0.0) as started:
        yield started


@contextlib.asynccontextmanager
async def page_server() -> AsyncIterator[str]:
    """A web server of the browser application's own: another port, so another origin."""

    async def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE)

    port = free_port()
    app = Starlette(routes=[Route("/", page)])
    server = _Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_config=None, access_log=False)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task


async def run_page(browser: Browser, origin: str, script: str, args: list[Any], errors: list[str]) -> Any:
    context = await browser.new_context()
    watch(context, errors)
    try:
        page = await context.new_page()
        await page.goto(f"{origin}/")
        return await page.evaluate(script, args)
    finally:
        await context.close()


async def test_a_page_on_an_allowed_origin_uses_the_services_through_the_access_server(
    system: System, browser: Browser, page_errors: list[str]
) -> None:
    async with page_server() as console:
        await allow_origins(system, "console-1", console)
        gm = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
        mcptt = (await system.authorize("MCPTT"))["serviceLocationInformation"]
        answers = await run_page(
            browser, console, CALL_SERVICES, [gm, mcptt, system.user_token()], page_errors
        )
    assert answers["created"] == 201 and answers["priority"] == "mcpttp.5"
    assert answers["groups"] == ["fire-1"]
    # A refusal is readable by the page too: its status, its problem and the exposed challenge.
    assert answers["refused"] == 401 and answers["cause"] == "INVALID_TOKEN"
    assert answers["challenge"].startswith("Bearer")
    assert answers["sip"].startswith("SIP/2.0 200")
    assert [e for e in page_errors if "401" not in e] == []  # the browser logs the 401 it was asked for


async def test_a_page_on_another_origin_is_blocked_by_the_browser(
    system: System, browser: Browser, page_errors: list[str]
) -> None:
    async with page_server() as console, page_server() as elsewhere:
        await allow_origins(system, "console-1", console)
        gm = (await system.authorize("GM", serviceName="sample-gm"))["serviceLocationInformation"]
        mcptt = (await system.authorize("MCPTT"))["serviceLocationInformation"]
        answers = await run_page(browser, elsewhere, BLOCKED, [gm, mcptt, system.user_token()], page_errors)
    assert answers == {"fetched": "TypeError", "socket": "error"}  # fetch() rejects; no WebSocket
    assert any("CORS policy" in e for e in page_errors)  # and Chromium says why
