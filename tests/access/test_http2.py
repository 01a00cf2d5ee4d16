"""HTTP/2 downstream: h2c with prior knowledge (curl) and "h2" by ALPN over TLS (httpx), answered as
HTTP/1.1 is, through the same gate, limits and upstream pools."""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import httpx
import pytest
from h2.errors import ErrorCodes
from hyperframe.frame import DataFrame, GoAwayFrame, RstStreamFrame

from asgate.access.options import EngineOptions
from asgate.access.server import AccessServer
from tests.access.certs import Authority
from tests.access.conftest import FAST, Sas
from tests.access.h2client import Attacker

Answer = tuple[int, dict[str, str], bytes, str]


async def curl(port: int, target: str, *args: str, http2: bool = True) -> Answer:
    """``curl`` as a user runs it: status, headers, body and the HTTP version it spoke."""
    version = "--http2-prior-knowledge" if http2 else "--http1.1"
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "-i", version, "--max-time", "5", *args, f"http://127.0.0.1:{port}{target}",
        stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert proc.returncode == 0, (proc.returncode, out[:200])
    while out.startswith(b"HTTP/") and b" 100 " in out.split(b"\r\n", 1)[0]:
        out = out.split(b"\r\n\r\n", 1)[1]  # curl shows the interim 100 too
    head, _, body = out.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    spoken, status = lines[0].split(" ")[:2]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers, body, spoken


def same(h1: Answer, h2: Answer, *names: str) -> None:
    """The HTTP/2 answer is the HTTP/1.1 one: status, body and the named fields."""
    assert (h1[3], h2[3]) == ("HTTP/1.1", "HTTP/2")
    assert h2[0] == h1[0]
    assert h2[2] == h1[2]
    for name in names:
        assert h2[1].get(name) == h1[1].get(name), name


def echoed(answer: Answer) -> dict[str, object]:
    seen = json.loads(answer[2])
    seen["headers"].pop("x-forwarded-for", None)  # the client's port differs
    return dict(seen)


async def test_curl_prior_knowledge_get_is_forwarded_as_over_http11(sas: Sas) -> None:
    h1 = await curl(sas.port, "/1/echo/groups?id=g1", "-H", "authorization: Bearer t", http2=False)
    h2 = await curl(sas.port, "/1/echo/groups?id=g1", "-H", "authorization: Bearer t")
    assert (h1[0], h2[0]) == (200, 200) and h2[3] == "HTTP/2"
    assert echoed(h2) == echoed(h1)
    seen = json.loads(h2[2])
    assert seen["target"] == "/api/echo/groups?id=g1"
    assert seen["headers"]["x-mc-user"] == "alice@mc.example"  # the gate's fields
    assert seen["headers"]["host"] == f"127.0.0.1:{sas.port}"  # from :authority
    assert "authorization" not in seen["headers"]
    assert sas.gate.done == [200, 200]
    assert sas.gate.heads[1].path == "/1/echo/groups" and sas.gate.heads[1].query == "id=g1"


async def test_curl_prior_knowledge_post_streams_its_body(sas: Sas) -> None:
    body = bytes(range(256)) * 1000  # larger than a stream window: flow control both ways
    args = ("-X", "POST", "--data-binary", "@-")
    results = []
    for http2 in (False, True):
        proc = await asyncio.create_subprocess_exec(
            "curl", "-s", "--http2-prior-knowledge" if http2 else "--http1.1", *args,
            "-w", "\n%{http_version} %{response_code}", f"http://127.0.0.1:{sas.port}/1/echo",
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate(body)
        payload, _, tail = out.rpartition(b"\n")
        results.append((tail.decode(), json.loads(payload)))
    (v1, seen1), (v2, seen2) = results
    assert (v1, v2) == ("1.1 200", "2 200")
    assert seen2["bodyLength"] == len(body) and seen2["bodySha256"] == seen1["bodySha256"]
    assert seen2["method"] == "POST"


async def test_a_refusal_is_the_same_problem_details(sas: Sas) -> None:
    h1 = await curl(sas.port, "/deny/x", http2=False)
    h2 = await curl(sas.port, "/deny/x")
    same(h1, h2, "content-type", "www-authenticate", "content-length")
    assert h2[0] == 403 and h2[1]["content-type"] == "application/problem+json"
    assert json.loads(h2[2])["cause"] == "ACCESS_TOKEN_DENIED"


async def test_a_malformed_path_is_refused_on_its_stream(sas: Sas) -> None:
    h1 = await curl(sas.port, "/1/echo/%2e%2e/x", "--path-as-is", http2=False)
    h2 = await curl(sas.port, "/1/echo/%2e%2e/x", "--path-as-is")
    same(h1, h2, "content-type")
    assert h2[0] == 400 and json.loads(h2[2])["cause"] == "INVALID_MSG_FORMAT"
    assert sas.backends[0].connections == 0


async def test_a_body_over_the_limit_gets_413(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(max_body=1000)
    h1 = await curl(sas.port, "/1/echo", "--data-binary", "x" * 5000, http2=False)
    h2 = await curl(sas.port, "/1/echo", "--data-binary", "x" * 5000)
    same(h1, h2, "content-type")
    assert h2[0] == 413 and json.loads(h2[2])["cause"] == "PAYLOAD_TOO_LARGE"
    # Without a Content-Length (a stream of unknown length): 413 as the limit is passed.
    big = bytes(300_000)
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "--http2-prior-knowledge", "-H", "content-length:", "-H", "transfer-encoding:",
        "--data-binary", "@-", "-w", "\n%{response_code}", f"http://127.0.0.1:{sas.port}/1/echo",
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate(big)
    assert out.rpartition(b"\n")[2] == b"413"
    assert sas.backends[0].body_bytes < len(big)


async def test_head_and_healthz(sas: Sas) -> None:
    h1 = await curl(sas.port, "/1/echo", "-I", http2=False)
    h2 = await curl(sas.port, "/1/echo", "-I")
    same(h1, h2, "content-type", "content-length")
    assert h2[0] == 200 and h2[2] == b""
    h1 = await curl(sas.port, "/healthz", http2=False)
    h2 = await curl(sas.port, "/healthz")
    same(h1, h2, "content-type", "cache-control")
    assert (h2[0], json.loads(h2[2])) == (200, {"status": "ok"})
    assert sas.backends[0].connections <= 1  # the HEAD alone reached a backend


async def test_many_concurrent_streams_share_one_connection(sas: Sas) -> None:
    transport = httpx.AsyncHTTPTransport(http2=True, http1=False)  # h2c with prior knowledge
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{sas.port}") as client:
        answers = await asyncio.gather(*(client.get(f"/1/echo/{i}") for i in range(60)))
    assert {(a.status_code, a.http_version) for a in answers} == {(200, "HTTP/2")}
    assert [json.loads(a.content)["target"] for a in answers] == [f"/api/echo/{i}" for i in range(60)]
    # The connection was accepted once, as HTTP/1.1, handed over, and released once closed.
    engine = sas.server.engine
    assert engine is not None
    for _ in range(100):
        if not engine.connections:
            break
        await asyncio.sleep(0.02)
    assert engine.connections == set() and engine.per_source == {}
    assert sorted(sas.gate.done) == [200] * 60


async def test_a_large_response_arrives_whole_through_the_client_window(sas: Sas) -> None:
    transport = httpx.AsyncHTTPTransport(http2=True, http1=False)
    async with httpx.AsyncClient(transport=transport, base_url=f"http://127.0.0.1:{sas.port}") as client:
        answer = await client.get("/1/big?size=3000000")
    assert (answer.status_code, len(answer.content)) == (200, 3_000_000)
    assert answer.content[:512] == bytes(range(256)) * 2


# ---------------------------------------------------------------------------- TLS and ALPN


@pytest.fixture
async def tls_sas(tmp_path: Path, sas: Sas) -> AsyncIterator[tuple[int, ssl.SSLContext, Sas]]:
    """A second listener on the same gate and pool, with TLS offering "h2" and "http/1.1"."""
    ca = Authority(tmp_path, "sas-ca")
    issued = ca.issue("sas-server", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    context.set_alpn_protocols(["h2", "http/1.1"])
    server = AccessServer(sas.gate, FAST)
    await server.start("127.0.0.1", 0, ssl=context)
    trust = ssl.create_default_context(cafile=str(ca.path))
    yield server.port, trust, sas
    await server.stop(grace=0.5)


async def test_alpn_h2_over_tls_answers_as_http11(tls_sas: tuple[int, ssl.SSLContext, Sas]) -> None:
    port, trust, sas = tls_sas
    base = f"https://127.0.0.1:{port}"
    async with httpx.AsyncClient(http2=True, verify=trust, base_url=base) as h2c:
        async with httpx.AsyncClient(verify=trust, base_url=base) as h1c:
            for method, path, body in [
                ("GET", "/1/echo/a?x=1", None),
                ("POST", "/1/echo", b'{"a":1}' * 5000),
                ("GET", "/deny/x", None),
                ("HEAD", "/1/echo", None),
                ("GET", "/healthz", None),
            ]:
                one = await h1c.request(method, path, content=body)
                two = await h2c.request(method, path, content=body)
                assert (one.http_version, two.http_version) == ("HTTP/1.1", "HTTP/2"), path
                assert two.status_code == one.status_code, path
                assert two.headers.get("content-type") == one.headers.get("content-type"), path
                if path.startswith("/1/echo") and method != "HEAD":
                    a, b = json.loads(one.content), json.loads(two.content)
                    a["headers"].pop("x-forwarded-for")
                    b["headers"].pop("x-forwarded-for")
                    assert b == a, path
                    assert b["headers"]["x-forwarded-proto"] == "http"  # FAST: the engine's scheme
                else:
                    assert two.content == one.content, path


async def test_without_h2_offered_tls_clients_speak_http11(tmp_path: Path, sas: Sas) -> None:
    ca = Authority(tmp_path, "sas-ca")
    issued = ca.issue("sas-server", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    server = AccessServer(sas.gate, EngineOptions(http2=False))
    await server.start("127.0.0.1", 0, ssl=context)
    try:
        trust = ssl.create_default_context(cafile=str(ca.path))
        async with httpx.AsyncClient(http2=True, verify=trust) as client:
            answer = await client.get(f"https://127.0.0.1:{server.port}/1/echo")
        assert (answer.status_code, answer.http_version) == (200, "HTTP/1.1")
    finally:
        await server.stop(grace=0.5)


async def test_the_http2_setting_off_leaves_the_preface_to_http11(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(options=EngineOptions(http2=False, tick=0.05))
    proc = await asyncio.create_subprocess_exec(
        "curl", "-s", "--http2-prior-knowledge", "-o", "/dev/null", "-w", "%{http_version}",
        f"http://127.0.0.1:{sas.port}/1/echo", stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    assert out != b"2" and sas.backends[0].connections == 0


async def test_a_draining_server_finishes_the_streams_under_way_then_says_goaway(sas: Sas) -> None:
    client = await Attacker.open(sas.port)
    stream_id = client.request("/1/slow?s=0.3")
    await client.send()
    await asyncio.sleep(0.1)  # the stream is at the backend
    stopping = asyncio.create_task(sas.server.stop(grace=2.0))
    goaway = await client.until(lambda f: isinstance(f, GoAwayFrame))
    assert isinstance(goaway, GoAwayFrame) and goaway.error_code == ErrorCodes.NO_ERROR
    assert goaway.last_stream_id == stream_id  # RFC 9113 6.8: this stream will still be answered
    ended = await client.until(lambda f: f.stream_id == stream_id and "END_STREAM" in f.flags)
    assert ended is not None, [type(f).__name__ for f in client.received]
    assert client.status(stream_id) == 200
    await stopping
    client.close()


async def test_connection_specific_fields_are_refused(sas: Sas) -> None:
    """RFC 9113 8.2.2: a request carrying Connection or Transfer-Encoding is malformed."""
    for name, value in [("connection", "keep-alive"), ("transfer-encoding", "chunked"), ("te", "gzip")]:
        client = await Attacker.open(sas.port)
        client.h2.config.validate_outbound_headers = False
        client.h2.config.normalize_outbound_headers = False
        stream_id = client.h2.get_next_available_stream_id()
        fields = [(":method", "GET"), (":path", "/1/echo"), (":scheme", "http"), (":authority", "sas")]
        client.h2.send_headers(stream_id, [*fields, (name, value)], end_stream=True)
        await client.send()
        refused = await client.until(lambda f: isinstance(f, GoAwayFrame | RstStreamFrame))
        assert isinstance(refused, GoAwayFrame | RstStreamFrame), name
        assert refused.error_code == ErrorCodes.PROTOCOL_ERROR, name
        assert client.status(stream_id) is None
        client.close()
    assert sas.gate.heads == [] and sas.backends[0].connections == 0


async def test_request_trailers_are_ignored(sas: Sas) -> None:
    client = await Attacker.open(sas.port)
    stream_id = client.request("/1/echo", end=False, method="POST")
    client.h2.send_data(stream_id, b"hello")
    client.h2.send_headers(stream_id, [("x-checksum", "abc")], end_stream=True)  # trailers
    await client.send()
    ended = await client.until(lambda f: f.stream_id == stream_id and "END_STREAM" in f.flags)
    assert ended is not None and client.status(stream_id) == 200
    body = b"".join(f.data for f in client.received if isinstance(f, DataFrame) and f.stream_id == stream_id)
    seen = json.loads(body)
    assert seen["bodyLength"] == 5 and "x-checksum" not in seen["headers"]
    client.close()


async def test_connections_over_the_per_source_cap_are_refused_with_goaway(tmp_path: Path, sas: Sas) -> None:
    ca = Authority(tmp_path, "sas-ca")
    issued = ca.issue("sas-server", server=True)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(str(issued.cert), str(issued.key))
    context.set_alpn_protocols(["h2", "http/1.1"])
    server = AccessServer(sas.gate, EngineOptions(max_connections_per_source=1, tick=0.05))
    await server.start("127.0.0.1", 0, ssl=context)
    trust = ssl.create_default_context(cafile=str(ca.path))
    trust.set_alpn_protocols(["h2"])
    try:
        first = await asyncio.open_connection("127.0.0.1", server.port, ssl=trust)
        assert first[1].get_extra_info("ssl_object").selected_alpn_protocol() == "h2"
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=trust)
        second = Attacker(reader, writer)
        await second.send()
        assert await second.goaway() == ErrorCodes.REFUSED_STREAM
        assert second.status(1) is None
        second.close()
        first[1].close()
    finally:
        await server.stop(grace=0.5)
