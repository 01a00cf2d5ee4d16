"""Backend pools: balancing, ejection, live updates, retries, failover, timeouts."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable

import pytest

from asgate.access.options import PoolOptions
from asgate.access.upstream import Endpoint, Instance, UpstreamPool
from tests.access.backend import Backend
from tests.access.conftest import Raw, Sas, request

A, B, C = Endpoint("a", "10.0.0.1", 1), Endpoint("b", "10.0.0.2", 1), Endpoint("c", "10.0.0.3", 1)


def pool_of(*outstanding: int) -> tuple[UpstreamPool, list[Instance]]:
    pool = UpstreamPool("gm", [A, B, C][: len(outstanding)])
    instances = list(pool.instances.values())
    for instance, count in zip(instances, outstanding, strict=True):
        instance.outstanding = count
    return pool, instances


@pytest.mark.parametrize(
    ("outstanding", "expected"),
    [
        ((3, 1, 2), "b"),  # fewest outstanding requests wins
        ((0, 5, 5), "a"),
        ((4, 4, 0), "c"),
    ],
)
def test_least_outstanding_requests_wins(outstanding: tuple[int, ...], expected: str) -> None:
    pool, _ = pool_of(*outstanding)
    assert pool.pick(now=0.0) is pool.instances[expected]
    assert pool.instances[expected].outstanding == outstanding["abc".index(expected)] + 1


def test_ties_are_broken_round_robin() -> None:
    pool, instances = pool_of(0, 0, 0)
    picked = []
    for _ in range(6):
        instance = pool.pick(now=0.0)
        assert instance is not None
        picked.append(instance.endpoint.id)
        pool.done(instance, None, False, now=0.0)
    assert Counter(picked) == {"a": 2, "b": 2, "c": 2}


def test_consecutive_failures_eject_an_instance_for_a_while() -> None:
    pool, (a, b) = pool_of(0, 5)
    options = pool.options
    for _ in range(options.eject_after - 1):
        pool.report(a, False, now=10.0)
    assert pool.pick(now=10.0) is a  # not yet
    pool.done(a, None, False, now=10.0)
    pool.report(a, False, now=10.0)
    assert pool.pick(now=10.0) is b  # ejected, though it has fewer outstanding requests
    assert pool.pick(now=10.0 + options.eject_seconds + 0.1) is a  # the cool-down is over


def test_a_success_resets_the_failure_count() -> None:
    pool, (a, b) = pool_of(0, 5)
    for _ in range(pool.options.eject_after - 1):
        pool.report(a, False, now=0.0)
    pool.report(a, True, now=0.0)
    pool.report(a, False, now=0.0)
    assert pool.pick(now=0.0) is a


def test_when_every_instance_is_ejected_they_are_used_anyway() -> None:
    pool, (a,) = pool_of(0)
    for _ in range(pool.options.eject_after):
        pool.report(a, False, now=0.0)
    assert pool.pick(now=0.0) is a


def test_suspended_and_removed_instances_get_no_new_requests() -> None:
    pool, (a, b, c) = pool_of(0, 0, 0)
    pool.suspend("a")
    pool.update([B, C, Endpoint("d", "10.0.0.4", 1)])
    assert "b" in pool.instances and "a" not in pool.instances and b.removed is False
    picks = {pool.pick(now=0.0).endpoint.id for _ in range(9)}  # type: ignore[union-attr]
    assert picks == {"b", "c", "d"}
    pool.suspend("c")
    assert {pool.pick(now=0.0).endpoint.id for _ in range(4)} == {"b", "d"}  # type: ignore[union-attr]
    pool.suspend("c", False)
    assert "c" in {pool.pick(now=0.0).endpoint.id for _ in range(9)}  # type: ignore[union-attr]


def test_an_empty_pool_picks_nothing() -> None:
    assert UpstreamPool("gm").pick(now=0.0) is None


# ---------------------------------------------------------------- over the network


async def test_requests_spread_over_the_instances(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(backends=2)
    answers = await asyncio.gather(*(request(sas.port, "/1/slow?s=0.1") for _ in range(10)))
    names = Counter(json.loads(body)["backend"] for _, _, body in answers)
    assert names == {"b1": 5, "b2": 5}


async def test_no_instance_reachable_is_a_502_that_names_none(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(backends=2)
    ports = [b.port for b in sas.backends]
    for backend in sas.backends:
        await backend.stop()
    status, headers, body = await request(sas.port, "/1/echo")
    assert status == 502 and headers["content-type"] == "application/problem+json"
    assert json.loads(body)["cause"] == "TARGET_NF_NOT_REACHABLE"
    assert not any(str(port) in body.decode() for port in ports) and b"127.0.0.1" not in body
    assert sas.gate.done == [502]


async def test_an_empty_pool_is_a_503(sas: Sas) -> None:
    sas.pool.update([])
    status, headers, body = await request(sas.port, "/1/echo")
    assert status == 503 and headers["retry-after"] == "1"
    assert json.loads(body)["cause"] == "NF_CONGESTION"


async def test_connect_failure_goes_to_another_instance_for_any_method(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(backends=2)
    await sas.backends[0].stop()
    for _ in range(4):
        status, _, body = await request(sas.port, "/1/echo", method="POST", body=b"{}")
        assert status == 200 and json.loads(body)["backend"] == "b2"


async def test_no_idempotent_request_fails_when_an_instance_dies_mid_run(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(backends=2)
    statuses: list[int] = []

    async def client(n: int) -> None:
        conn = await Raw.open(sas.port)
        try:
            for i in range(25):
                method = ("GET", "PUT", "DELETE", "HEAD")[(n + i) % 4]
                length = "content-length: 2\r\n" if method == "PUT" else ""
                body = b"{}" if method == "PUT" else b""
                await conn.send(
                    f"{method} /1/slow?s=0.02 HTTP/1.1\r\nhost: s\r\n{length}\r\n".encode() + body
                )
                if method == "HEAD":
                    head = await asyncio.wait_for(conn.reader.readuntil(b"\r\n\r\n"), 5)
                    statuses.append(int(head.split(b" ")[1]))
                else:
                    statuses.append((await conn.response(timeout=5))[0])
        finally:
            await conn.close()

    async def kill() -> None:
        await asyncio.sleep(0.15)
        await sas.backends[0].stop()  # in-flight requests on it are cut

    await asyncio.gather(kill(), *(client(n) for n in range(8)))
    assert statuses == [200] * 200
    assert sas.backends[0].requests and sas.backends[1].requests  # both served before the crash


async def test_a_stale_keep_alive_connection_is_retried_transparently_for_get(sas: Sas) -> None:
    for _ in range(3):
        status, _, body = await request(sas.port, "/1/drop-reused")
        assert status == 200
    backend = sas.backends[0]
    assert len(backend.requests) == 3
    assert backend.connections >= 3  # each reuse found the connection dropped and made a new one
    assert sas.gate.done == [200, 200, 200]


async def test_a_stale_keep_alive_connection_is_not_retried_for_post(sas: Sas) -> None:
    assert (await request(sas.port, "/1/drop-reused", method="POST", body=b"{}"))[0] == 200
    status, _, body = await request(sas.port, "/1/drop-reused", method="POST", body=b"{}")
    # RFC 9110 9.2.2: a POST that may have arrived is not sent again.
    assert status == 502 and json.loads(body)["cause"] == "TARGET_NF_NOT_REACHABLE"
    assert len(sas.backends[0].requests) == 1


async def test_a_backend_that_does_not_answer_in_time_is_a_504(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(pool_options=PoolOptions(response_timeout=0.3, read_timeout=0.3))
    started = asyncio.get_running_loop().time()
    status, _, body = await request(sas.port, "/1/slow?s=2")
    assert status == 504 and json.loads(body)["cause"] == "TIMED_OUT_REQUEST"
    assert asyncio.get_running_loop().time() - started < 1.0
    assert (await request(sas.port, "/1/echo"))[0] == 200  # the next one is fine


async def test_a_removed_instance_finishes_its_requests(make_sas: Callable[..., Awaitable[Sas]]) -> None:
    sas = await make_sas(backends=2)
    b1, b2 = sas.backends
    slow = asyncio.create_task(request(sas.port, "/1/slow?s=0.3"))
    await asyncio.sleep(0.1)
    busy = next(i for i in sas.pool.instances.values() if i.outstanding)
    remaining = [Endpoint(b.name, "127.0.0.1", b.port) for b in (b1, b2) if b.name != busy.endpoint.id]
    sas.pool.update(remaining)  # the registry removes the busy instance
    status, _, body = await slow
    assert status == 200 and json.loads(body)["backend"] == busy.endpoint.id
    for _ in range(3):
        _, _, body = await request(sas.port, "/1/echo")
        assert json.loads(body)["backend"] == remaining[0].id


async def test_pooled_connections_are_dropped_after_their_idle_timeout(
    make_sas: Callable[..., Awaitable[Sas]],
) -> None:
    sas = await make_sas(pool_options=PoolOptions(idle_timeout=0.2))
    await request(sas.port, "/1/echo")
    instance = next(iter(sas.pool.instances.values()))
    assert len(instance.idle) == 1
    await asyncio.sleep(0.6)
    assert instance.idle == []
    assert (await request(sas.port, "/1/echo"))[0] == 200
    assert sas.backends[0].connections == 2


async def test_instances_can_be_added_while_running(sas: Sas) -> None:
    extra = await Backend(name="b2").start()
    try:
        sas.pool.update(
            [*(i.endpoint for i in sas.pool.instances.values()), Endpoint("b2", "127.0.0.1", extra.port)]
        )
        answers = await asyncio.gather(*(request(sas.port, "/1/slow?s=0.1") for _ in range(4)))
        assert {json.loads(body)["backend"] for _, _, body in answers} == {"b1", "b2"}
    finally:
        await extra.stop()
