"""The client-facing side: forwarding, framing, keep-alive, pipelining, header hygiene."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable

import pytest

from asgate.access.options import EngineOptions, PoolOptions
from asgate.access.upstream import Endpoint
from tests.access.conftest import Raw, Sas, request


async def test_get_is_forwarded_under_the_mapped_path_with_the_gates_headers(sas: Sas) -> None:
    status, headers, body = await request(
        sas.port, "/1/echo/groups?id=g1", headers="authorization: Bearer t\r\nx-app: a\r\n"
    )
    assert status == 200
    seen = json.loads(body)
    assert seen["target"] == "/api/echo/groups?id=g1"
    assert seen["headers"]["x-mc-user"] == "alice@mc.example"
    assert seen["headers"]["x-app"] == "a"
    assert "authorization" not in seen["headers"]  # dropped by the gate
    assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"
    assert sas.gate.done == [200]
    assert sas.gate.heads[0].path == "/1/echo/groups" and sas.gate.heads[0].query == "id=g1"


async def test_hop_by_hop_request_headers_never_reach_the_backend(sas: Sas) -> None:
    spoofed = (
        "connection: keep-alive, x-hop\r\nx-hop: 1\r\nkeep-alive: timeout=5\r\nte: trailers\r\n"
        "proxy-authorization: Basic eA==\r\nproxy-connection: keep-alive\r\nupgrade: h2c\r\n"
        "x-forwarded-for: 6.6.6.6\r\n"
    )
    status, _, body = await request(sas.port, "/1/echo", headers=spoofed)
    assert status == 200
    received = json.loads(body)["headers"]
    for name in ("x-hop", "keep-alive", "te", "proxy-authorization", "proxy-connection", "upgrade"):
        assert name not in received, name
    assert received["x-forwarded-for"] == "127.0.0.1"  # the client cannot claim another address


async def test_two_authorization_headers_are_refused_before_the_gate_or_a_backend(sas: Sas) -> None:
    status, headers, body = await request(
        sas.port, "/1/echo", headers="authorization: Bearer a\r\nAuthorization: Bearer b\r\n"
    )
    assert status == 400 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["cause"] == "INVALID_MSG_FORMAT" and "Authorization" in json.loads(body)["detail"]
    assert sas.gate.heads == [] and sas.backends[0].connections == 0


async def test_fields_the_gate_sets_are_dropped_in_any_spelling(sas: Sas) -> None:
    spoofed = "X_MC_User: mallory\r\nx_mc_user: mallory\r\nX-MC-USER: mallory\r\nX_Forwarded_Proto: https\r\n"
    status, _, body = await request(sas.port, "/1/echo", headers=spoofed)
    assert status == 200
    received = json.loads(body)["headers"]
    assert received["x-mc-user"] == "alice@mc.example"
    assert "x_mc_user" not in received and "x_forwarded_proto" not in received
    assert received["x-forwarded-proto"] == "http"


@pytest.mark.parametrize("segment", ["%c0%ae%c0%ae", "..;", "%252e%252e", "%ef%bc%8e%ef%bc%8e", "a%c0%afb"])
async def test_non_canonical_dot_segments_never_reach_the_gate(sas: Sas, segment: str) -> None:
    status, _, body = await request(sas.port, f"/1/echo/{segment}/x")
    assert (status, json.loads(body)["cause"]) == (400, "INVALID_MSG_FORMAT")
    assert sas.gate.heads == [] and sas.backends[0].connections == 0


async def test_responses_name_no_backend(sas: Sas) -> None:
    status, headers, body = await request(sas.port, "/1/leaky")
    assert (status, body) == (200, b"ok")
    for name in ("server", "via", "x-powered-by", "x-internal"):
        assert name not in headers, name
    assert headers["x-kept"] == "yes"


async def test_location_is_rewritten_to_the_public_prefix(sas: Sas) -> None:
    status, headers, _ = await request(sas.port, "/1/redirect")
    assert status == 302
    assert headers["location"] == "/1/next?x=1"
    assert str(sas.backends[0].port) not in headers["location"]


async def test_the_gate_can_set_response_headers(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(response_headers=[(b"resource-priority", b"mcpttp.9")])
    _, headers, _ = await request(sas.port, "/1/echo", headers="resource-priority: mcpttp.12\r\n")
    assert headers["resource-priority"] == "mcpttp.9"


async def test_a_rejected_request_is_answered_by_the_gate_and_never_forwarded(sas: Sas) -> None:
    status, headers, body = await request(sas.port, "/deny/x")
    assert status == 403
    assert headers["content-type"] == "application/problem+json"
    assert headers["www-authenticate"].startswith("Bearer")
    assert json.loads(body) == {
        "status": 403,
        "title": "Forbidden",
        "cause": "ACCESS_TOKEN_DENIED",
        "detail": "not in the profile",
    }
    assert sas.backends[0].connections == 0


async def test_a_rejected_request_with_a_body_closes_without_forwarding_it(
    raw: Callable[[], Awaitable[Raw]], sas: Sas
) -> None:
    client = await raw()
    await client.send(b"POST /deny/x HTTP/1.1\r\nhost: s\r\ncontent-length: 100000\r\n\r\n" + b"a" * 1000)
    status, headers, _ = await client.response()
    assert status == 403 and headers["connection"] == "close"
    assert await client.closed()
    assert sas.backends[0].connections == 0


async def test_the_asynchronous_gate_path_gives_the_same_answers(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(asynchronous=True)
    assert (await request(sas.port, "/1/echo"))[0] == 200
    assert (await request(sas.port, "/deny/x"))[0] == 403


@pytest.mark.parametrize("chunked", [False, True])
async def test_request_bodies_arrive_intact(
    sas: Sas, raw: Callable[[], Awaitable[Raw]], chunked: bool
) -> None:
    payload = bytes(range(256)) * 2000  # 512 kB, several reads
    client = await raw()
    if chunked:
        framed = b"".join(
            b"%x\r\n%s\r\n" % (len(payload[i : i + 7000]), payload[i : i + 7000])
            for i in range(0, len(payload), 7000)
        )
        await client.send(
            b"PUT /1/echo HTTP/1.1\r\nhost: s\r\ntransfer-encoding: chunked\r\n\r\n" + framed + b"0\r\n\r\n"
        )
    else:
        await client.send(
            b"PUT /1/echo HTTP/1.1\r\nhost: s\r\ncontent-length: %d\r\n\r\n" % len(payload) + payload
        )
    status, _, body = await client.response()
    seen = json.loads(body)
    assert status == 200
    assert seen["bodyLength"] == len(payload)
    assert seen["bodySha256"] == hashlib.sha256(payload).hexdigest()


async def test_responses_of_any_framing_arrive_intact(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    client = await raw()
    await client.send(b"GET /1/big?size=3000000 HTTP/1.1\r\nhost: s\r\n\r\n")
    status, headers, body = await client.response()
    assert status == 200 and headers["content-length"] == "3000000" and len(body) == 3_000_000
    await client.send(b"GET /1/chunked?n=7&size=5000 HTTP/1.1\r\nhost: s\r\n\r\n")
    status, headers, body = await client.response()
    assert headers["transfer-encoding"] == "chunked" and body == b"x" * 35000
    # A backend that ends its body by closing: re-framed as chunked for an HTTP/1.1 client.
    await client.send(b"GET /1/eof HTTP/1.1\r\nhost: s\r\n\r\n")
    status, headers, body = await client.response()
    assert (status, body) == (200, b"until-close-body")
    await client.send(b"GET /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
    assert (await client.response())[0] == 200  # and the client connection lives on


async def test_a_slow_reader_throttles_the_backend_instead_of_filling_memory(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"GET /1/flood?size=268435456 HTTP/1.1\r\nhost: s\r\n\r\n")
    await asyncio.sleep(1.0)  # the client reads nothing
    written = sas.backends[0].flood_written
    await asyncio.sleep(0.5)
    assert written < 32 << 20, "the proxy kept reading from the backend"
    assert sas.backends[0].flood_written - written < 1 << 20  # the backend is stalled, not trickling


async def test_keep_alive_reuses_both_connections(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    client = await raw()
    for _ in range(5):
        await client.send(b"GET /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
        assert (await client.response())[0] == 200
    assert sas.backends[0].connections == 1
    assert sas.gate.done == [200] * 5


async def test_pipelined_requests_are_answered_in_order(sas: Sas, raw: Callable[[], Awaitable[Raw]]) -> None:
    client = await raw()
    # The first is slow: the later ones must still come after it.
    await client.send(
        b"GET /1/slow?s=0.2 HTTP/1.1\r\nhost: s\r\n\r\n"
        b"GET /1/echo/two HTTP/1.1\r\nhost: s\r\n\r\n"
        b"POST /1/echo/three HTTP/1.1\r\nhost: s\r\ncontent-length: 3\r\n\r\nabc"
        b"GET /deny/four HTTP/1.1\r\nhost: s\r\n\r\n"
    )
    targets = []
    for _ in range(3):
        status, _, body = await client.response()
        assert status == 200
        targets.append(json.loads(body)["target"])
    assert targets == ["/api/slow?s=0.2", "/api/echo/two", "/api/echo/three"]
    assert (await client.response())[0] == 403


async def test_head_has_no_body_and_keeps_the_connection_usable(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"HEAD /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
    head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)
    assert head.startswith(b"HTTP/1.1 200") and b"content-length: " in head.lower()
    await client.send(b"GET /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
    status, _, body = await client.response()
    assert status == 200 and json.loads(body)["method"] == "GET"


async def test_a_chunked_answer_to_head_ends_at_its_head_on_both_connections(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    # RFC 9112 6.3 (1): the backend's Transfer-Encoding announces a body that never comes.
    client = await raw()
    for _ in range(2):
        await client.send(b"HEAD /1/chunked?n=3&size=10 HTTP/1.1\r\nhost: s\r\n\r\n")
        status, headers, body = await client.response(timeout=2, head_only=True)
        assert status == 200 and headers["content-type"] == "text/plain"
        await client.send(b"GET /1/chunked?n=3&size=10 HTTP/1.1\r\nhost: s\r\n\r\n")
        status, _, body = await client.response(timeout=2)
        assert (status, body) == (200, b"x" * 30)
    assert sas.backends[0].connections == 1  # and the backend connection was reused


async def test_content_a_backend_sends_after_a_head_answer_never_reaches_the_client(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"HEAD /1/head-body HTTP/1.1\r\nhost: s\r\n\r\n")
    status, headers, _ = await client.response(timeout=2, head_only=True)
    assert (status, headers["content-length"]) == (200, "5")
    await client.send(b"GET /1/echo HTTP/1.1\r\nhost: s\r\n\r\n")
    assert await asyncio.wait_for(client.reader.readexactly(9), 2) == b"HTTP/1.1 "  # not "hello"
    assert (await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 2)).startswith(b"200 ")


async def test_http10_clients_get_a_closed_connection_or_keep_alive_when_asked(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"GET /1/chunked?n=2&size=10 HTTP/1.0\r\n\r\n")
    status, headers, body = await client.response()
    assert (status, body) == (200, b"x" * 20) and "transfer-encoding" not in headers
    assert await client.closed()
    client = await raw()
    await client.send(b"GET /1/echo HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    status, headers, _ = await client.response()
    assert headers["connection"] == "keep-alive"
    await client.send(b"GET /1/echo HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    assert (await client.response())[0] == 200


async def test_expect_100_continue_is_answered_before_the_body(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"PUT /1/echo HTTP/1.1\r\nhost: s\r\ncontent-length: 5\r\nexpect: 100-continue\r\n\r\n")
    assert (await client.response())[0] == 100
    await client.send(b"hello")
    status, _, body = await client.response()
    assert status == 200 and json.loads(body)["bodyLength"] == 5
    assert "expect" not in json.loads(body)["headers"]


async def test_a_backend_answering_before_the_body_ends_closes_the_client_connection(
    sas: Sas, raw: Callable[[], Awaitable[Raw]]
) -> None:
    client = await raw()
    await client.send(b"POST /1/early HTTP/1.1\r\nhost: s\r\ncontent-length: 1000000\r\n\r\n" + b"a" * 10)
    status, headers, body = await client.response()
    assert (status, body) == (401, b"nope") and headers["connection"] == "close"
    assert await client.closed()


async def test_on_done_reports_zero_when_the_client_vanishes(sas: Sas) -> None:
    client = await Raw.open(sas.port)
    await client.send(b"GET /1/slow?s=0.3 HTTP/1.1\r\nhost: s\r\n\r\n")
    await asyncio.sleep(0.1)
    await client.close()
    await asyncio.sleep(0.5)
    assert sas.gate.done == [0]


async def test_a_slow_backend_throttles_an_upload_instead_of_filling_memory(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(pool_options=PoolOptions(read_timeout=5.0), options=EngineOptions(idle_timeout=0.3))
    stalled: list[asyncio.StreamWriter] = []

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)

    backend = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    sas.pool.update([Endpoint("stalled", "127.0.0.1", backend.sockets[0].getsockname()[1])])
    sas.gate.max_body = 1 << 40
    client = await Raw.open(sas.port)
    sent = 0
    try:
        await client.send(b"PUT /1/echo HTTP/1.1\r\nhost: s\r\ncontent-length: 1000000000\r\n\r\n")
        block = b"u" * 65536
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(1.5):
                while True:
                    await client.send(block)
                    sent += len(block)
        assert sent < 48 << 20, f"the proxy accepted {sent} bytes for a backend that reads nothing"
    finally:
        client.abort()
        for writer in stalled:
            writer.close()
        backend.close()


async def test_a_backend_that_stops_reading_an_upload_times_out(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(pool_options=PoolOptions(read_timeout=0.5))
    stalled: list[asyncio.StreamWriter] = []

    async def never_reads(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stalled.append(writer)

    backend = await asyncio.start_server(never_reads, "127.0.0.1", 0)
    sas.pool.update([Endpoint("stalled", "127.0.0.1", backend.sockets[0].getsockname()[1])])
    sas.gate.max_body = 1 << 40
    client = await Raw.open(sas.port)
    try:
        await client.send(b"PUT /1/echo HTTP/1.1\r\nhost: s\r\ncontent-length: 1000000000\r\n\r\n")
        answer = asyncio.create_task(client.response(timeout=3))
        with contextlib.suppress(ConnectionError):
            while not answer.done():  # like curl: upload until the server answers
                await asyncio.wait_for(client.send(b"u" * 65536), 3)
        status, _, body = await answer
        assert status == 504 and json.loads(body)["cause"] == "TIMED_OUT_REQUEST"
    finally:
        client.abort()
        for writer in stalled:
            writer.close()
        backend.close()


async def test_healthz_is_answered_by_the_sas_itself_on_a_kept_alive_connection(sas: Sas) -> None:
    client = await Raw.open(sas.port)
    try:
        await client.send(
            b"GET /healthz HTTP/1.1\r\nhost: sas\r\n\r\nHEAD /healthz?probe=1 HTTP/1.1\r\nhost: sas\r\n\r\n"
        )
        status, headers, body = await client.response()
        assert status == 200 and json.loads(body) == {"status": "ok"}
        assert headers["content-type"] == "application/json" and headers["cache-control"] == "no-store"
        assert "connection" not in headers  # the connection stays usable
        head = await asyncio.wait_for(client.reader.readuntil(b"\r\n\r\n"), 3)
        assert head.startswith(b"HTTP/1.1 200 ") and b"content-length: 15\r\n" in head
        await client.send(b"GET /1/echo HTTP/1.1\r\nhost: sas\r\n\r\n")  # no HEAD body came before it
        status, _, body = await client.response()
        assert status == 200 and json.loads(body)["target"] == "/api/echo"
    finally:
        await client.close()
    assert [h.path for h in sas.gate.heads] == ["/1/echo"]  # the gate never saw /healthz
    assert len(sas.backends[0].requests) == 1


async def test_healthz_refuses_other_methods_and_reaches_no_backend(sas: Sas) -> None:
    status, headers, body = await request(sas.port, "/healthz", method="POST", body=b"{}")
    assert status == 405 and headers["allow"] == "GET, HEAD"
    assert json.loads(body)["cause"] == "METHOD_NOT_ALLOWED"
    status, _, _ = await request(sas.port, "/healthzz")  # only the exact path
    assert status == 200 and sas.backends[0].requests[-1].target == "/api/"
    assert sas.gate.heads[-1].path == "/healthzz" and len(sas.gate.heads) == 1
