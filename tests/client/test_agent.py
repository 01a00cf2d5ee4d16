"""ServiceAgent against the real service registry server (in-process): it registers, heartbeats
at the period, registers again after the registry removed the instance, stops heartbeating while
the service is unhealthy, survives the registry being down, and deregisters when it stops."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from asgate.client import AgentState, ProblemError
from asgate.client.agent import ServiceAgent
from asgate.domain.registry import ServiceRegistration
from tests.client.harness import Registry, fast_registry, fast_settings, sqlite_only  # noqa: F401


async def eventually(check: Callable[[], Awaitable[bool]], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s")
        await asyncio.sleep(0.03)


class Flag:
    """A health check the test switches."""

    def __init__(self) -> None:
        self.healthy = True

    async def __call__(self) -> bool:
        return self.healthy


async def test_registers_and_heartbeats_once_per_period(registry: Registry) -> None:
    async with registry.agent(period=1) as agent:
        instance = await agent.wait_registered(5)
        stored = (await registry.get(instance.service_instance_id)).json()
        assert stored["status"] == "REGISTERED" and stored["clientId"] == "gms"
        assert stored["serviceName"] == "sample-gm" and stored["heartbeatPeriod"] == 1
        assert stored["interfaces"][0]["port"] == 9101 and agent.state is AgentState.REGISTERED
        await asyncio.sleep(3.3)
        beats = registry.transport.times("PUT", "/heartbeat")
        assert 2 <= len(beats) <= 4 and agent.heartbeats == len(beats)
        gaps = [b - a for a, b in zip(beats, beats[1:], strict=False)]
        assert all(0.8 <= gap <= 1.6 for gap in gaps), gaps
        later = (await registry.get(instance.service_instance_id)).json()
        assert later["status"] == "REGISTERED" and later["lastHeartbeatAt"] > stored["lastHeartbeatAt"]
    assert len(registry.transport.times("POST", "/services")) == 1


async def test_registers_again_after_the_registry_removed_the_instance(registry: Registry) -> None:
    async with registry.agent(period=1) as agent:
        first = (await agent.wait_registered(5)).service_instance_id
        assert (await registry.delete(first)).status_code == 204  # as the registry's removal would

        async def replaced() -> bool:
            return agent.instance_id not in (None, first)

        await eventually(replaced, 4)
        assert agent.instance_id is not None
        assert await registry.status(agent.instance_id) == "REGISTERED"
        assert await registry.status(first) is None


async def test_no_heartbeats_while_unhealthy_so_the_registry_suspends_then_it_resumes(
    registry: Registry,
) -> None:
    health = Flag()
    async with registry.agent(period=1, health_check=health) as agent:
        instance_id = (await agent.wait_registered(5)).service_instance_id
        health.healthy = False
        await eventually(lambda: _is(registry, instance_id, "SUSPENDED"), 5)
        assert agent.state is AgentState.UNHEALTHY
        beats = len(registry.transport.times("PUT", "/heartbeat"))
        await asyncio.sleep(0.3)
        assert len(registry.transport.times("PUT", "/heartbeat")) == beats

        health.healthy = True  # within the removal grace: the same instance comes back
        await eventually(lambda: _is(registry, instance_id, "REGISTERED"), 1)
        assert (agent.instance_id, agent.state) == (instance_id, AgentState.REGISTERED)


async def test_an_update_while_unhealthy_waits_for_health_instead_of_reviving_the_instance(
    registry: Registry,
) -> None:
    health = Flag()
    async with registry.agent(period=1, health_check=health) as agent:
        instance_id = (await agent.wait_registered(5)).service_instance_id
        health.healthy = False
        await eventually(lambda: _is(registry, instance_id, "SUSPENDED"), 5)
        await agent.update(environment={"region": "south"})
        await asyncio.sleep(0.2)
        assert await registry.status(instance_id) == "SUSPENDED"
        assert not registry.transport.times("PUT", f"/services/{instance_id}")

        health.healthy = True
        await eventually(lambda: _is(registry, instance_id, "REGISTERED"), 1)
        assert len(registry.transport.times("PUT", f"/services/{instance_id}")) == 1  # sent, not a heartbeat
        assert (await registry.get(instance_id)).json()["environment"] == {"region": "south"}


async def test_an_instance_removed_while_unhealthy_is_registered_anew_when_healthy(
    registry: Registry,
) -> None:
    health = Flag()
    async with registry.agent(period=1, health_check=health) as agent:
        first = (await agent.wait_registered(5)).service_instance_id
        health.healthy = False
        await eventually(lambda: _is(registry, first, None), 12)  # suspended, then removed
        health.healthy = True

        async def registered_anew() -> bool:
            return agent.instance_id not in (None, first)

        await eventually(registered_anew, 3)
        assert registry.transport.times("PUT", f"{first}/heartbeat")  # the 404 that told it
        assert await registry.status(str(agent.instance_id)) == "REGISTERED"


async def test_a_service_unhealthy_at_start_registers_only_once_healthy(registry: Registry) -> None:
    health = Flag()
    health.healthy = False
    async with registry.agent(period=1, health_check=health) as agent:
        await asyncio.sleep(0.4)
        assert agent.state is AgentState.UNHEALTHY and agent.instance is None
        assert not registry.transport.times("POST", "/services")
        health.healthy = True
        instance = await agent.wait_registered(3)
    assert instance.status == "REGISTERED"


async def test_a_health_check_that_raises_or_hangs_counts_as_unhealthy(registry: Registry) -> None:
    async def broken() -> bool:
        raise OSError("cannot reach the service")

    async def hanging() -> bool:
        await asyncio.sleep(60)
        return True

    for check in (broken, hanging):
        async with registry.agent(period=1, health_check=check, health_timeout=0.1) as agent:
            await asyncio.sleep(0.4)
            assert agent.state is AgentState.UNHEALTHY and agent.instance is None


async def test_survives_the_registry_being_down(registry: Registry) -> None:
    registry.transport.down = True
    async with registry.agent(period=1) as agent:
        await asyncio.sleep(0.8)
        assert agent.state is AgentState.REGISTERING and agent.instance is None
        assert agent.last_error is not None and "registry is down" in agent.last_error
        attempts = len(registry.transport.sent)
        assert 3 <= attempts <= 20  # retried with backoff (0.05 s doubling to 0.2 s), not hammered

        registry.transport.down = False
        instance_id = (await agent.wait_registered(2)).service_instance_id

        registry.transport.down = True  # down long enough to be suspended, not removed
        await eventually(lambda: _is(registry, instance_id, "SUSPENDED"), 4)
        registry.transport.down = False
        await eventually(lambda: _is(registry, instance_id, "REGISTERED"), 1.5)
        # The registry commits before its answer reaches the agent: wait for the agent to see it too.
        await eventually(lambda: _no_error(agent), 1.0)
        assert agent.instance_id == instance_id


async def test_deregisters_when_leaving_the_context(registry: Registry) -> None:
    async with registry.agent(period=1) as agent:
        instance_id = (await agent.wait_registered(5)).service_instance_id
    assert await registry.status(instance_id) is None
    assert agent.state is AgentState.STOPPED and agent.instance is None


async def test_run_deregisters_when_cancelled(registry: Registry) -> None:
    agent = registry.agent(period=1)
    task = asyncio.create_task(agent.run())
    instance_id = (await agent.wait_registered(5)).service_instance_id
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await registry.status(instance_id) is None


async def test_run_returns_on_a_signal_after_deregistering(registry: Registry) -> None:
    agent = registry.agent(period=1)
    task = asyncio.create_task(agent.run(signals=(signal.SIGUSR1,)))
    instance_id = (await agent.wait_registered(5)).service_instance_id
    os.kill(os.getpid(), signal.SIGUSR1)
    await asyncio.wait_for(task, 5)
    assert await registry.status(instance_id) is None


async def test_update_replaces_the_registered_information(registry: Registry) -> None:
    async with registry.agent(period=1) as agent:
        instance_id = (await agent.wait_registered(5)).service_instance_id
        updated = await agent.update(environment={"region": "south"}, heartbeat_period=2)
        assert updated is not None and updated.service_instance_id == instance_id
        stored = (await registry.get(instance_id)).json()
        assert stored["environment"] == {"region": "south"} and stored["heartbeatPeriod"] == 2
        assert agent.registration.heartbeat_period == 2
        with pytest.raises(TypeError, match="enviroment"):
            await agent.update(enviroment={})


async def test_refused_credentials_are_retried_not_fatal(registry: Registry) -> None:
    credentials = registry.credentials(secret="wrong")
    async with registry.agent(period=1, credentials=credentials) as agent:
        await asyncio.sleep(0.5)
        assert agent.state is AgentState.REGISTERING and agent.instance is None
        assert agent.last_error is not None and "INVALID_TOKEN" in agent.last_error
        assert len(registry.transport.times("POST", "/oauth2/token")) >= 2


async def test_a_registration_the_registry_refuses_as_malformed_stops_run(registry: Registry) -> None:
    good = registry.agent().registration
    bad = ServiceRegistration.model_construct(**{**dict(good), "heartbeat_period": 0})
    agent = registry.agent()
    agent._registration = bad  # what a client skipping validation would send
    registry.transport.check = False
    with pytest.raises(ProblemError) as refused:
        await asyncio.wait_for(agent.run(), 5)
    assert refused.value.status == 400 and "/heartbeatPeriod" in str(refused.value)
    assert len(registry.transport.times("POST", "/services")) == 1  # not retried


async def _no_error(agent: ServiceAgent) -> bool:
    return agent.last_error is None


async def _is(registry: Registry, instance_id: str, status: str | None) -> bool:
    return await registry.status(instance_id) == status
