"""WebSocket: the frame scanner (pure) and real clients through the engine to a real server."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from asgate.access.upstream import Endpoint
from asgate.access.websocket import PROTOCOL_ERROR, TOO_BIG, FrameScanner
from tests.access.conftest import Sas

URL = "ws://127.0.0.1:{}/1/ws"
SUB: list[Subprotocol] = [Subprotocol("mcx.v1")]


def frame(payload_len: int, opcode: int = 2, fin: bool = True, masked: bool = True) -> bytes:
    first = (0x80 if fin else 0) | opcode
    mask = 0x80 if masked else 0
    if payload_len < 126:
        head = bytes([first, mask | payload_len])
    elif payload_len < 1 << 16:
        head = bytes([first, mask | 126]) + payload_len.to_bytes(2, "big")
    else:
        head = bytes([first, mask | 127]) + payload_len.to_bytes(8, "big")
    return head + (os.urandom(4) if masked else b"") + b"p" * payload_len


@pytest.mark.parametrize(
    ("frames", "verdict"),
    [
        ([frame(100)], None),
        ([frame(1000)], None),  # exactly the limit
        ([frame(1001)], TOO_BIG),
        ([frame(70000)], TOO_BIG),  # 16-bit length
        ([frame(1 << 17)], TOO_BIG),  # 64-bit length
        ([frame(600, fin=False), frame(400, opcode=0)], None),  # fragments add up to the limit
        ([frame(600, fin=False), frame(401, opcode=0)], TOO_BIG),
        ([frame(600, fin=False), frame(5, opcode=9), frame(401, opcode=0)], TOO_BIG),  # a ping between
        ([frame(900), frame(900)], None),  # separate messages
        ([frame(126, opcode=9)], PROTOCOL_ERROR),  # control frames carry at most 125 bytes
        ([frame(10, masked=False)], PROTOCOL_ERROR),  # RFC 6455 5.1: clients must mask
    ],
)
def test_the_scanner_counts_messages_across_fragments(frames: list[bytes], verdict: int | None) -> None:
    stream = b"".join(frames)
    whole = FrameScanner(1000, masked=True).feed(stream)
    assert (whole[1] if whole else None) == verdict
    # Split everywhere: the verdict cannot depend on how TCP cut the stream.
    for cut in range(1, len(stream), max(1, len(stream) // 97)):
        scanner = FrameScanner(1000, masked=True)
        results = [scanner.feed(stream[:cut]), scanner.feed(stream[cut:])]
        found = next((r for r in results if r is not None), None)
        assert (found[1] if found else None) == verdict, cut


def test_the_violation_offset_is_the_start_of_the_bad_frame() -> None:
    good, bad = frame(10), frame(5000)
    assert FrameScanner(1000, masked=True).feed(good + bad) == (len(good), TOO_BIG)


@pytest.fixture
async def ws_backend() -> AsyncIterator[tuple[int, list[bytes | str]]]:
    received: list[bytes | str] = []

    async def echo(ws: ServerConnection) -> None:
        try:
            async for message in ws:
                received.append(message)
                if message == "drop":  # the instance goes away without a Close: FIN...
                    ws.transport.close()
                elif message == "crash":  # ...or a reset
                    ws.transport.abort()
                elif message == "bye":
                    await ws.close(4000, "bye")
                elif message == "garbage":  # a masked frame: servers never mask (RFC 6455 5.1)
                    ws.transport.write(b"\x81\x82abcd\x00\x00")
                elif isinstance(message, str) and message.startswith("big:"):
                    await ws.send("B" * int(message[4:]))
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass

    async with serve(echo, "127.0.0.1", 0, max_size=None, subprotocols=SUB) as server:
        yield next(iter(server.sockets)).getsockname()[1], received


@pytest.fixture
async def ws_sas(make_sas: Callable[..., Awaitable[Sas]], ws_backend: tuple[int, list[bytes | str]]) -> Sas:
    sas = await make_sas(max_ws_message=1000)
    sas.pool.update([Endpoint("ws", "127.0.0.1", ws_backend[0])])
    return sas


async def test_messages_round_trip_through_the_engine(
    ws_sas: Sas, ws_backend: tuple[int, list[bytes | str]]
) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB) as ws:
        assert ws.subprotocol == "mcx.v1"
        messages: list[str | bytes] = ["hello", b"\x00\x01binary", "x" * 1000]
        for message in messages:
            await ws.send(message)
            assert await ws.recv() == message
        await ws.send(["frag", "mented"])  # a fragmented message within the limit
        assert await ws.recv() == "fragmented"
    assert ws_backend[1] == ["hello", b"\x00\x01binary", "x" * 1000, "fragmented"]
    await asyncio.sleep(0.1)
    assert ws_sas.gate.done == [101]
    assert ws_sas.gate.heads[0].upgrade is True


@pytest.mark.parametrize("message", ["y" * 1001, ["z" * 600, "z" * 600]], ids=["one frame", "fragments"])
async def test_an_oversized_message_closes_with_1009_unforwarded(
    ws_sas: Sas, ws_backend: tuple[int, list[bytes | str]], message: str | list[str]
) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB, max_size=None, compression=None) as ws:
        await ws.send("small")
        assert await ws.recv() == "small"
        await ws.send(message)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
    assert ws_backend[1] == ["small"]


async def test_an_oversized_message_from_the_backend_is_not_relayed(ws_sas: Sas) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB, max_size=None, compression=None) as ws:
        await ws.send("big:1000")
        assert await ws.recv() == "B" * 1000
        await ws.send("big:5000")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009


async def test_a_refused_upgrade_never_reaches_the_backend(
    ws_sas: Sas, ws_backend: tuple[int, list[bytes | str]]
) -> None:
    with pytest.raises(InvalidStatus) as refused:
        async with connect(f"ws://127.0.0.1:{ws_sas.port}/deny/ws", subprotocols=SUB):
            pass
    assert refused.value.response.status_code == 403
    assert ws_backend[1] == []


@pytest.mark.parametrize("how", ["drop", "crash"])
async def test_a_service_that_goes_away_closes_the_client_with_1011(
    ws_sas: Sas, ws_backend: tuple[int, list[bytes | str]], how: str
) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(how)
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
    # A Close frame from the SAS, not an abnormal closure (1006, no Close at all).
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011
    await asyncio.sleep(0.05)
    assert ws_sas.gate.done == [101]


async def test_a_service_that_closes_properly_is_not_overridden(ws_sas: Sas) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB) as ws:
        await ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
    assert closed.value.rcvd is not None
    assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4000, "bye")


async def test_invalid_frames_from_the_service_close_the_client_with_1014(ws_sas: Sas) -> None:
    async with connect(URL.format(ws_sas.port), subprotocols=SUB) as ws:
        await ws.send("garbage")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 3)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1014


async def test_an_unreachable_service_refuses_the_handshake_with_an_http_status(ws_sas: Sas) -> None:
    # Before the 101 there is no WebSocket to close: the client gets an HTTP answer it can read.
    ws_sas.pool.update([Endpoint("gone", "127.0.0.1", 9)])  # discard port: nothing listens
    with pytest.raises(InvalidStatus) as refused:
        async with connect(URL.format(ws_sas.port), subprotocols=SUB):
            pass
    assert refused.value.response.status_code in (502, 503)
    assert b"application/problem+json" in refused.value.response.headers["content-type"].encode()
