"""The sample MCData short data service: send, inbox, and a server-sent event stream over a real
socket (the long-lived response the SAS must stream, not buffer)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx

from asgate.samples import SamplesHandle, run_samples
from tests.samples.conftest import ISSUER, InProcess, as_user, sas_keys

ALICE, BOB, CAROL = "alice@mc.example", "bob@mc.example", "carol@mc.example"


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """Server-sent events as dicts (``id``, ``event``, ``data``, or ``comment``), one per block."""
    event: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if event:
                yield event
            event = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            name, _, value = line.partition(":")
            event[name] = value.removeprefix(" ")


async def test_a_message_lands_in_the_recipients_inbox_with_its_priority(in_process: InProcess) -> None:
    mcdata = in_process("mcdata")
    sent = await mcdata.post(
        "/mcdata/sds",
        json={"to": BOB, "payload": "evacuate sector 4"},
        headers=as_user(ALICE, app="dispatch-1", **{"Resource-Priority": "mcpttp.9"}),
    )
    assert sent.status_code == 201
    message = sent.json()
    assert message["from"] == ALICE and message["to"] == BOB and message["priority"] == "mcpttp.9"
    assert message["application"] == "dispatch-1" and sent.headers["x-sample-resource-priority"] == "mcpttp.9"

    inbox = (await mcdata.get("/mcdata/inbox", headers=as_user(BOB))).json()["messages"]
    assert [m["payload"] for m in inbox] == ["evacuate sector 4"]
    assert (await mcdata.get("/mcdata/inbox", headers=as_user(ALICE))).json() == {"messages": []}

    assert (await mcdata.get(sent.headers["location"], headers=as_user(ALICE))).status_code == 200
    assert (await mcdata.get(sent.headers["location"], headers=as_user(BOB))).json() == message
    assert (await mcdata.get(sent.headers["location"], headers=as_user(CAROL))).status_code == 403

    await mcdata.post("/mcdata/sds", json={"to": BOB, "payload": "second"}, headers=as_user(CAROL))
    after = await mcdata.get("/mcdata/inbox", params={"after": message["sequence"]}, headers=as_user(BOB))
    assert [m["payload"] for m in after.json()["messages"]] == ["second"]
    bad = await mcdata.get("/mcdata/inbox", params={"after": "x"}, headers=as_user(BOB))
    assert bad.status_code == 400 and bad.json()["cause"] == "INVALID_QUERY_PARAM"


async def test_the_stream_delivers_new_messages_as_they_arrive(samples: SamplesHandle) -> None:
    url = samples["mcdata-1"].url
    async with httpx.AsyncClient(timeout=5) as http:
        async with http.stream("GET", f"{url}/mcdata/inbox/stream", headers=as_user(BOB)) as stream:
            assert stream.status_code == 200
            assert stream.headers["content-type"].startswith("text/event-stream")
            assert stream.headers["x-sample-instance"] == "mcdata-1"
            received = events(stream)
            assert await anext(received) == {"retry": "2000"}
            for text in ("one", "two"):
                await http.post(
                    f"{url}/mcdata/sds", json={"to": BOB, "payload": text}, headers=as_user(ALICE)
                )
                await http.post(
                    f"{url}/mcdata/sds", json={"to": CAROL, "payload": "not bob's"}, headers=as_user(ALICE)
                )
            first = await asyncio.wait_for(anext(received), 2)
            second = await asyncio.wait_for(anext(received), 2)
    assert (first["event"], json.loads(first["data"])["payload"]) == ("message", "one")
    assert json.loads(second["data"])["payload"] == "two" and int(second["id"]) > int(first["id"])


async def test_a_reconnecting_stream_replays_what_it_missed(samples: SamplesHandle) -> None:
    url = samples["mcdata-1"].url
    async with httpx.AsyncClient(timeout=5) as http:
        first = (
            await http.post(f"{url}/mcdata/sds", json={"to": BOB, "payload": "a"}, headers=as_user(ALICE))
        ).json()
        await http.post(f"{url}/mcdata/sds", json={"to": BOB, "payload": "b"}, headers=as_user(ALICE))
        headers = as_user(BOB, **{"Last-Event-ID": str(first["sequence"])})
        async with http.stream("GET", f"{url}/mcdata/inbox/stream", headers=headers) as stream:
            received = events(stream)
            await anext(received)  # retry
            replayed = await asyncio.wait_for(anext(received), 2)
    assert json.loads(replayed["data"])["payload"] == "b"


async def test_an_idle_stream_gets_keep_alive_comments_and_ends_when_the_samples_stop() -> None:
    handle = await run_samples(None, None, ["mcdata"], base_port=0, sas_keys=sas_keys(), sas_issuer=ISSUER)
    handle["mcdata-1"].state.keepalive = 0.1
    async with handle, httpx.AsyncClient(timeout=5) as http:
        url = f"{handle['mcdata-1'].url}/mcdata/inbox/stream"
        async with http.stream("GET", url, headers=as_user(BOB)) as stream:
            received = events(stream)
            assert await anext(received) == {"retry": "2000"}
            assert await asyncio.wait_for(anext(received), 2) == {"comment": "keep-alive"}
            started = time.monotonic()
            await handle.stop()
            rest = [e async for e in received]
            assert time.monotonic() - started < 3
            assert all("event" not in e for e in rest)
