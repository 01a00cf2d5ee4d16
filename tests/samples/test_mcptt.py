"""The sample MCPTT signalling over WebSocket: SIP-like requests answered with the priority the
message (or the upgrade) carried, MESSAGE relayed to the target's connection, over real sockets."""

from __future__ import annotations

import json

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from asgate.samples import SamplesHandle
from asgate.samples.mcptt import parse_request
from tests.samples.conftest import as_user

ALICE, BOB = "alice@mc.example", "bob@mc.example"


def sip(method: str, uri: str, *headers: str, body: str = "") -> str:
    lines = [f"{method} {uri} SIP/2.0", "Call-ID: c-1@console", f"CSeq: 1 {method}", *headers]
    return "\r\n".join(lines) + "\r\n\r\n" + body


def parse_response(text: str) -> tuple[str, dict[str, str], str]:
    head, _, body = text.partition("\r\n\r\n")
    status, *lines = head.split("\r\n")
    return status, dict(line.split(": ", 1) for line in lines), body


def ws_url(samples: SamplesHandle) -> str:
    return samples["mcptt-1"].url.replace("http://", "ws://") + "/mcptt/signalling"


async def exchange(ws: ClientConnection, text: str) -> tuple[str, dict[str, str], str]:
    await ws.send(text)
    return parse_response(str(await ws.recv()))


async def test_a_response_indicates_the_message_priority_and_the_upgrade_priority(
    samples: SamplesHandle,
) -> None:
    headers = as_user(ALICE, **{"Resource-Priority": "mcpttp.7"})
    async with connect(ws_url(samples), additional_headers=headers, subprotocols=[Subprotocol("sip")]) as ws:
        assert ws.subprotocol == "sip"
        assert ws.response is not None and ws.response.headers["X-Sample-Instance"] == "mcptt-1"

        status, fields, _ = await exchange(ws, sip("INVITE", f"sip:{BOB}", "Resource-Priority: mcpttp.3"))
        assert status == "SIP/2.0 200 OK"
        assert fields["Resource-Priority"] == "mcpttp.3"
        assert fields["X-Upgrade-Resource-Priority"] == "mcpttp.7"
        assert fields["Call-ID"] == "c-1@console" and fields["CSeq"] == "1 INVITE"
        assert fields["P-Asserted-Identity"] == f"<sip:{ALICE}>" and fields["X-Sample-Instance"] == "mcptt-1"

        status, fields, _ = await exchange(ws, sip("BYE", f"sip:{BOB}"))
        assert status == "SIP/2.0 200 OK" and fields["Resource-Priority"] == "mcpttp.7"


async def test_without_any_priority_the_response_carries_none(samples: SamplesHandle) -> None:
    async with connect(ws_url(samples), additional_headers=as_user(ALICE)) as ws:
        assert ws.subprotocol is None
        status, fields, _ = await exchange(ws, sip("OPTIONS", f"sip:{BOB}"))
    assert status == "SIP/2.0 200 OK" and "INVITE" in fields["Allow"]
    assert "Resource-Priority" not in fields and "X-Upgrade-Resource-Priority" not in fields


async def test_message_is_relayed_to_the_targets_connection_from_the_asserted_caller(
    samples: SamplesHandle,
) -> None:
    url = ws_url(samples)
    async with (
        connect(url, additional_headers=as_user(BOB)) as bob,
        connect(url, additional_headers=as_user(ALICE)) as alice,
    ):
        forged = sip(
            "MESSAGE", f"sip:{BOB}", "From: <sip:chief@mc.example>", "Resource-Priority: mcpttq.2", body="hi"
        )
        status, fields, _ = await exchange(alice, forged)
        assert status == "SIP/2.0 200 OK" and fields["Resource-Priority"] == "mcpttq.2"
        relayed = parse_request(str(await bob.recv()))
        assert relayed is not None and relayed.method == "MESSAGE" and relayed.body == "hi"
        assert (
            relayed.header("From") == f"<sip:{ALICE}>" and relayed.header("Resource-Priority") == "mcpttq.2"
        )

        status, _, _ = await exchange(alice, sip("MESSAGE", "sip:nobody@mc.example", body="x"))
        assert status == "SIP/2.0 480 Temporarily Unavailable"


async def test_unknown_methods_and_garbage_get_sip_errors(samples: SamplesHandle) -> None:
    async with connect(ws_url(samples), additional_headers=as_user(ALICE)) as ws:
        status, fields, _ = await exchange(ws, sip("SUBSCRIBE", f"sip:{BOB}"))
        assert status == "SIP/2.0 501 Not Implemented" and "Allow" in fields
        status, fields, _ = await exchange(ws, "hello there")
        assert status == "SIP/2.0 400 Bad Request" and fields["X-Sample-Instance"] == "mcptt-1"
        status, _, _ = await exchange(ws, sip("INVITE", f"sip:{BOB}"))
        assert status == "SIP/2.0 200 OK"  # the connection survives bad messages


async def test_an_upgrade_without_the_sas_identity_is_refused_with_problem_details(
    samples: SamplesHandle,
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(ws_url(samples)):
            pass
    response = refused.value.response
    assert response.status_code == 401 and response.headers["X-Sample-Instance"] == "mcptt-1"
    assert json.loads(response.body or b"{}")["cause"] == "INVALID_SAS_ASSERTION"
