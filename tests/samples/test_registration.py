"""The samples register themselves with the real service registry server (in-process) through
their agents, and leave it when stopped; a killed instance is left for the registry to suspend."""

from __future__ import annotations

import asyncio

from asgate.samples import run_samples
from tests.client.harness import Registry, fast_registry, fast_settings, sqlite_only  # noqa: F401


async def test_each_instance_registers_its_own_port_in_its_pool_and_deregisters_on_stop(
    registry: Registry,
) -> None:
    handle = await run_samples(
        registry.url,
        registry.credentials(),
        ["gm", "gm", "mcdata", "mcptt"],
        base_port=0,
        heartbeat_period=1,
        transport=registry.transport,
        agent_options={"retry_initial": 0.05, "retry_max": 0.2},
    )
    async with handle:
        ids = {}
        for running in handle.instances:
            assert running.agent is not None
            instance = await running.agent.wait_registered(5)
            stored = (await registry.get(instance.service_instance_id)).json()
            assert stored["interfaces"][0]["port"] == running.port
            assert stored["environment"]["instance"] == running.instance
            ids[running.instance] = instance.service_instance_id
        pools = {i: (await registry.get(ids[i])).json()["serviceName"] for i in ("gm-1", "gm-2")}
        assert pools == {"gm-1": "sample-gm", "gm-2": "sample-gm"}
        ws = (await registry.get(ids["mcptt-1"])).json()
        assert (ws["serviceType"], ws["interfaces"][0]["protocol"]) == ("MCPTT", "WebSocket")

        await handle.kill("gm-2")
        await asyncio.sleep(0.2)
        assert await registry.status(ids["gm-2"]) in ("REGISTERED", "SUSPENDED")  # a crash: no DELETE

    for name in ("gm-1", "mcdata-1", "mcptt-1"):
        assert await registry.status(ids[name]) is None
    assert await registry.status(ids["gm-2"]) is not None
