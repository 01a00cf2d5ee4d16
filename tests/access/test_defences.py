"""Attacks and abuse: each is refused by the engine itself, and nothing reaches the backend."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable

import pytest

from asgate.access.options import EngineOptions
from tests.access.conftest import FAST, Raw, Sas

H = b"host: sas\r\n"


async def refused(
    sas: Sas, raw: Callable[[], Awaitable[Raw]], data: bytes
) -> tuple[int, dict[str, str], dict[str, object]]:
    client = await raw()
    await client.send(data)
    status, headers, body = await client.response()
    assert await client.closed(), "the connection must be closed after a refusal"
    assert sas.backends[0].connections == 0, "something reached the backend"
    assert headers["content-type"] == "application/problem+json"
    problem = json.loads(body)
    assert problem["status"] == status and problem["cause"]
    assert str(sas.backends[0].port) not in body.decode()
    return status, headers, problem


SMUGGLING = [
    (
        "CL and TE",
        b"POST /1/echo HTTP/1.1\r\n"
        + H
        + b"content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    (
        "TE and CL",
        b"POST /1/echo HTTP/1.1\r\n"
        + H
        + b"transfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n0\r\n\r\n",
    ),
    ("duplicate CL", b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: 3\r\ncontent-length: 3\r\n\r\nabc"),
    (
        "conflicting CL",
        b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: 3\r\ncontent-length: 30\r\n\r\nabc",
    ),
    ("CL list", b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: 3, 3\r\n\r\nabc"),
    ("signed CL", b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: +3\r\n\r\nabc"),
    (
        "TE gzip, chunked",
        b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: gzip, chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
    ),
    (
        "TE chunked, chunked",
        b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked, chunked\r\n\r\n0\r\n\r\n",
    ),
    ("TE xchunked", b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: xchunked\r\n\r\n0\r\n\r\n"),
    (
        "two TE",
        b"POST /1/echo HTTP/1.1\r\n"
        + H
        + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
    ),
    ("TE in HTTP/1.0", b"POST /1/echo HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n"),
    ("obs-fold", b"GET /1/echo HTTP/1.1\r\n" + H + b"x-a: b\r\n c\r\n\r\n"),
    ("space before colon", b"GET /1/echo HTTP/1.1\r\n" + H + b"content-length : 0\r\n\r\n"),
    ("bare LF", b"GET /1/echo HTTP/1.1\n" + H + b"\n"),
    ("no Host", b"GET /1/echo HTTP/1.1\r\n\r\n"),
    ("two Hosts", b"GET /1/echo HTTP/1.1\r\n" + H + H + b"\r\n"),
]


@pytest.mark.parametrize("data", [d for _, d in SMUGGLING], ids=[n for n, _ in SMUGGLING])
async def test_ambiguous_framing_is_refused_with_400(
    sas: Sas, raw: Callable[[], Awaitable[Raw]], data: bytes
) -> None:
    status, _, problem = await refused(sas, raw, data)
    assert status == 400 and problem["cause"] == "INVALID_MSG_FORMAT"


async def test_a_malformed_chunk_is_refused_and_no_request_is_completed(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(
        b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked\r\n\r\n3\r\nabc\r\nzz\r\nabc\r\n"
    )
    status, _, _ = await client.response()
    assert status == 400
    assert await client.closed()
    await asyncio.sleep(0.1)
    assert sas.backends[0].requests == []


TRAVERSAL = [
    b"/1/../admin",
    b"/1/./echo",
    b"/1/a/..",
    b"/1/%2e%2e/admin",
    b"/1/%2E%2e/admin",
    b"/1/.%2e/admin",
    b"/1/%2e/echo",
    b"/1/a%2fb",
    b"/1/a%2Fb",
    b"/1/a%5cb",
    b"/1/a\\b",
    b"/1/a%00b",
    b"/1/a%0d%0ab",
    b"/1//echo",
    b"/1/a%zzb",
    b"/1/a%2",
    b"http://evil.example/1/echo",
    b"//evil.example/1/echo",
    b"*",
    b"/1/echo#frag",
]


@pytest.mark.parametrize("target", TRAVERSAL, ids=[t.decode() for t in TRAVERSAL])
async def test_path_tricks_are_refused_with_400(
    sas: Sas, raw: Callable[[], Awaitable[Raw]], target: bytes
) -> None:
    status, _, _ = await refused(sas, raw, b"GET " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert status == 400
    assert sas.gate.heads == []  # refused before the gate was asked


async def test_raw_nul_in_the_path_is_refused(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    status, _, _ = await refused(sas, raw, b"GET /1/a\x00b HTTP/1.1\r\n" + H + b"\r\n")
    assert status == 400


async def test_absolute_form_naming_this_server_is_accepted(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(options=EngineOptions(authorities=frozenset({"sas.example:7481"})))
    client = await Raw.open(sas.port)
    await client.send(b"GET http://SAS.example:7481/1/echo?q=1 HTTP/1.1\r\nhost: sas.example:7481\r\n\r\n")
    status, _, body = await client.response()
    await client.close()
    assert status == 200 and json.loads(body)["target"] == "/api/echo?q=1"


@pytest.mark.parametrize("method", [b"CONNECT", b"TRACE", b"PROPFIND"])
async def test_methods_that_make_no_sense_here_are_refused(
    sas: Sas, raw: Callable[[], Awaitable[Raw]], method: bytes
) -> None:
    target = b"sas:443" if method == b"CONNECT" else b"/1/echo"
    status, _, problem = await refused(sas, raw, method + b" " + target + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert status == 405 and problem["cause"] == "METHOD_NOT_ALLOWED"


async def test_an_overlong_target_gets_414(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    status, _, _ = await refused(sas, raw, b"GET /1/" + b"a" * 9000 + b" HTTP/1.1\r\n" + H + b"\r\n")
    assert status == 414


@pytest.mark.parametrize(
    "headers",
    [
        b"x-big: " + b"a" * 20000 + b"\r\n",  # one huge field
        b"".join(b"x-h%d: v\r\n" % i for i in range(150)),  # too many fields
        b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 200) for i in range(90)),  # too many bytes in all
    ],
    ids=["one huge field", "too many fields", "too many bytes"],
)
async def test_oversized_heads_get_431(sas: Sas, raw: Callable[[], Awaitable[Raw]], headers: bytes) -> None:
    status, _, _ = await refused(sas, raw, b"GET /1/echo HTTP/1.1\r\n" + H + headers + b"\r\n")
    assert status == 431


async def test_a_never_ending_header_line_gets_431(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    client = await raw()
    await client.send(b"GET /1/echo HTTP/1.1\r\n" + H + b"x-endless: ")
    for _ in range(10):
        await client.send(b"a" * 4096)
    status, _, _ = await client.response()
    assert status == 431
    assert await client.closed()
    assert sas.backends[0].connections == 0


async def test_a_body_over_the_limit_by_content_length_gets_413_unforwarded(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(max_body=1000)
    client = await Raw.open(sas.port)
    await client.send(b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: 1001\r\n\r\n" + b"a" * 1001)
    status, _, body = await client.response()
    assert status == 413 and json.loads(body)["cause"] == "PAYLOAD_TOO_LARGE"
    assert await client.closed()
    await client.close()
    assert sas.backends[0].connections == 0
    assert sas.gate.done == [413]


async def test_a_chunked_body_over_the_limit_gets_413_unforwarded(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(max_body=1000)
    client = await Raw.open(sas.port)
    chunks = b"".join(b"100\r\n" + b"a" * 256 + b"\r\n" for _ in range(5))  # 1280 bytes, one read
    await client.send(b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked\r\n\r\n" + chunks)
    status, _, _ = await client.response()
    assert status == 413
    await client.close()
    assert sas.backends[0].connections == 0


async def test_a_streamed_chunked_body_is_cut_at_the_limit(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(max_body=100_000)
    client = await Raw.open(sas.port)
    await client.send(b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked\r\n\r\n")
    for _ in range(30):  # 30 x 8 kB, slowly: the first ones are already on their way upstream
        await client.send(b"2000\r\n" + b"a" * 0x2000 + b"\r\n")
        await asyncio.sleep(0.01)
    status, _, _ = await client.response()
    await client.close()
    assert status == 413
    await asyncio.sleep(0.1)
    assert sas.backends[0].requests == []  # the backend never got a complete request
    assert sas.backends[0].body_bytes <= 100_000


async def test_slow_headers_get_408_and_the_connection_closes(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    started = asyncio.get_running_loop().time()
    # slowloris: a byte every 50 ms never completes the head within header_timeout (0.6 s)
    for byte in b"GET /1/echo HTTP/1.1\r\nhost: sas\r\nx-a: b":
        try:
            await client.send(bytes([byte]))
        except ConnectionError:
            break
        await asyncio.sleep(0.05)
        if client.reader.at_eof() or client.reader._buffer:  # type: ignore[attr-defined]  # noqa: SLF001 - answered already
            break
    status, headers, _ = await client.response()
    assert status == 408 and headers["connection"] == "close"
    assert asyncio.get_running_loop().time() - started < FAST.header_timeout + 0.5
    assert await client.closed()
    assert sas.backends[0].connections == 0


async def test_a_silent_connection_is_closed_after_the_header_timeout(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    assert await client.closed(timeout=FAST.header_timeout + 0.5)


async def test_an_idle_keep_alive_connection_is_closed(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    client = await raw()
    await client.send(b"GET /1/echo HTTP/1.1\r\n" + H + b"\r\n")
    assert (await client.response())[0] == 200
    assert not await client.closed(timeout=FAST.idle_timeout / 2)
    assert await client.closed(timeout=FAST.idle_timeout)


async def test_connections_per_source_are_capped(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(options=EngineOptions(max_connections_per_source=3, tick=0.05))
    kept = [await Raw.open(sas.port) for _ in range(3)]
    extra = await Raw.open(sas.port)
    status, headers, body = await extra.response()
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["cause"] == "NF_CONGESTION"
    assert await extra.closed()
    await extra.close()
    await kept[0].close()
    await asyncio.sleep(0.1)
    again = await Raw.open(sas.port)  # a slot came free
    await again.send(b"GET /1/echo HTTP/1.1\r\n" + H + b"\r\n")
    assert (await again.response())[0] == 200
    for client in [again, *kept[1:]]:
        await client.close()


async def test_the_global_connection_cap_protects_the_engine(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(options=EngineOptions(max_connections=2, tick=0.05))
    kept = [await Raw.open(sas.port) for _ in range(2)]
    extra = await Raw.open(sas.port)
    assert (await extra.response())[0] == 503
    for client in [extra, *kept]:
        await client.close()


async def test_a_pipelined_request_with_oversized_headers_gets_431(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    big = b"".join(b"x-h%d: %s\r\n" % (i, b"v" * 400) for i in range(60))  # 24 kB in 60 fields
    await client.send(b"GET /1/echo HTTP/1.1\r\n" + H + b"\r\nGET /1/echo HTTP/1.1\r\n" + H + big + b"\r\n")
    assert (await client.response())[0] == 200
    assert (await client.response())[0] == 431
    assert await client.closed()


def send_all_then_read(port: int, head: bytes, pieces: list[bytes]) -> tuple[int, dict[str, object], bytes]:
    """A blocking client that sends its whole request before reading anything (as simple clients
    do), then reads the response and what follows it until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        for piece in pieces:
            sock.sendall(piece)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    response, _, rest = received.partition(b"\r\n\r\n")
    status = int(response.split(b" ")[1])
    return status, json.loads(rest), rest


async def test_a_client_sending_a_whole_oversized_body_still_reads_its_413(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(max_body=4 << 20)
    size = 15 << 19  # 7.5 MiB, all sent before reading: lingering drains up to twice the limit
    head = b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: %d\r\n\r\n" % size
    pieces = [b"a" * 65536] * (size // 65536)
    status, problem, _ = await asyncio.to_thread(send_all_then_read, sas.port, head, pieces)
    assert (status, problem["cause"]) == (413, "PAYLOAD_TOO_LARGE")
    assert sas.backends[0].connections == 0 and sas.gate.done == [413]


async def test_a_client_sending_an_oversized_chunked_body_still_reads_its_413(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(max_body=4 << 20)
    chunk = b"%x\r\n%b\r\n" % (65536, b"a" * 65536)
    head = b"POST /1/echo HTTP/1.1\r\n" + H + b"transfer-encoding: chunked\r\n\r\n"
    # Over the limit mid-way, after 4 MiB went upstream; then 6 MiB more, all before reading.
    pieces = [chunk] * 160 + [b"0\r\n\r\n"]
    status, problem, _ = await asyncio.to_thread(send_all_then_read, sas.port, head, pieces)
    assert (status, problem["cause"]) == (413, "PAYLOAD_TOO_LARGE")
    await asyncio.sleep(0.1)
    assert sas.backends[0].requests == [] and sas.gate.done == [413]


def send_until_cut_off(port: int, head: bytes, most: int) -> int:
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        try:
            while sent < most:
                sock.sendall(b"a" * 65536)
                sent += 65536
        except OSError:
            pass
    return sent


async def test_lingering_after_a_413_is_bounded(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(max_body=100_000)
    head = b"POST /1/echo HTTP/1.1\r\n" + H + b"content-length: %d\r\n\r\n" % (1 << 30)
    # A client that never stops is cut off (here after the 4 MiB bound), not drained forever.
    sent = await asyncio.to_thread(send_until_cut_off, sas.port, head, 256 << 20)
    assert sent < 64 << 20
