"""The samples runner: instances on their own ports, pools of two, crash and health switches,
and the registration each instance's agent sends."""

from __future__ import annotations

import socket
import time

import httpx
import pytest
from websockets.asyncio.client import connect

from asgate.domain.registry import ServiceRegistration
from asgate.samples import SPECS, SamplesHandle, run_samples
from tests.live import free_port
from tests.samples.conftest import ISSUER, as_user, sas_keys


async def test_instances_listen_on_consecutive_ports_from_the_base_port() -> None:
    base = free_port()
    try:
        handle = await run_samples(None, None, ["cm"], base_port=base)
    except OSError:  # pragma: no cover - another process took the port in between
        pytest.skip("the free port was taken")
    async with handle, httpx.AsyncClient() as http:
        assert [(r.instance, r.port) for r in handle.instances] == [("cm-1", base)]
        health = await http.get(f"http://127.0.0.1:{base}/healthz")
    assert health.json() == {"status": "UP", "instance": "cm-1"}


def _free_port_before_a_taken_one() -> tuple[int, socket.socket]:
    """A free port P and a listening socket holding P + 1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        taken = socket.socket()
        try:
            taken.bind(("127.0.0.1", port + 1))
        except OSError:
            taken.close()
            continue
        taken.listen()
        return port, taken
    raise AssertionError("no two consecutive free ports")


async def test_a_taken_port_fails_the_start_and_leaves_nothing_running() -> None:
    port, taken = _free_port_before_a_taken_one()
    with taken, pytest.raises(OSError):
        await run_samples(None, None, ["gm", "cm"], base_port=port)
    async with httpx.AsyncClient() as http:
        with pytest.raises(httpx.ConnectError):  # gm-1 had started on the free port: stopped again
            await http.get(f"http://127.0.0.1:{port}/healthz")


async def test_unknown_sample_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown sample.*'?video'?"):
        await run_samples(None, None, ["gm", "video"], base_port=0)


async def test_a_killed_instance_stops_answering_while_its_pool_peer_serves(samples: SamplesHandle) -> None:
    gm1, gm2 = samples["gm-1"], samples["gm-2"]
    await samples.kill("gm-1")
    async with httpx.AsyncClient(timeout=2) as http:
        with pytest.raises(httpx.ConnectError):
            await http.get(f"{gm1.url}/healthz")
        served = await http.get(f"{gm2.url}/gm/groups", headers=as_user("alice@mc.example"))
    assert served.status_code == 200 and served.headers["x-sample-instance"] == "gm-2"


async def test_an_unhealthy_instance_says_so_on_healthz(samples: SamplesHandle) -> None:
    samples["cm-1"].healthy = False
    async with httpx.AsyncClient(timeout=2) as http:
        down = await http.get(f"{samples['cm-1'].url}/healthz")
        samples["cm-1"].healthy = True
        up = await http.get(f"{samples['cm-1'].url}/healthz")
    assert (down.status_code, down.json()["status"]) == (503, "DOWN")
    assert (up.status_code, up.json()["status"]) == (200, "UP")


async def test_stop_is_prompt_with_a_websocket_open() -> None:
    handle = await run_samples(None, None, ["mcptt"], base_port=0, sas_keys=sas_keys(), sas_issuer=ISSUER)
    url = handle["mcptt-1"].url.replace("http://", "ws://") + "/mcptt/signalling"
    async with connect(url, additional_headers=as_user("alice@mc.example")) as ws:
        started = time.monotonic()
        await handle.stop()
        await ws.wait_closed()
    assert time.monotonic() - started < 3


def test_the_instances_of_a_pool_register_one_service_name_and_their_own_port() -> None:
    one = SPECS["gm"].registration("gm-1", 9101, heartbeat_period=5)
    two = SPECS["gm"].registration("gm-2", 9102, heartbeat_period=5)
    assert isinstance(one, ServiceRegistration)
    assert (one.service_type, one.service_name) == (two.service_type, two.service_name) == ("GM", "sample-gm")
    assert one.dump()["interfaces"] == [
        {
            "referencePoint": "CSC-2",
            "protocol": "HTTP",
            "ipv4Addr": "127.0.0.1",
            "port": 9101,
            "apiPrefix": "/gm",
        }
    ]
    assert two.interfaces[0].port == 9102 and two.environment == {"tier": "sample", "instance": "gm-2"}
    assert one.heartbeat_period == 5
    ws = SPECS["mcptt"].registration("mcptt-1", 9105)
    assert (ws.interfaces[0].protocol, ws.interfaces[0].reference_point) == ("WebSocket", "MCPTT-1")
    assert ws.proxied_interface() is not None  # the registry will let the SAS carry it
    assert SPECS["mcdata"].registration("mcdata-1", 9104).interfaces[0].reference_point == "MCData-cap-1"
