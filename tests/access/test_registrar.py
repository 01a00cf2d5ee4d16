"""Access servers apart from the registry register themselves (issue 10): the registry pushes CSC-15
to every live one with no static push-URL list, drops one that stops heartbeating (its cursor kept),
resumes it when it comes back, and forgets one that stops cleanly."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

from tests.access.split import split_deployment

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]


async def test_access_servers_register_get_pushes_are_dropped_when_silent_and_resume_when_back(
    tmp_path: Path,
) -> None:
    registry = {"registry_sas_timeout": "3", "registry_sas_ack_wait": "10"}
    async with split_deployment(tmp_path, access_servers=2, registry_settings=registry) as split:
        one, two = split.access
        seen = await split.access_servers()
        assert {n: (e["live"], e["csc15Uri"], e["owner"]) for n, e in seen.items()} == {
            "access-1": (True, one.url, "asgate-access-access-1"),
            "access-2": (True, two.url, "asgate-access-access-2"),
        }
        # Nothing configured the registry with their URLs: the profile reaches both by registration.
        await split.add_app("console-1")
        await split.authorize("console-1")  # returns once both hold the profile
        cursor = (await split.access_servers())["access-2"]["ackedSequence"]

        # access-2 stops heartbeating (and answering): the registry drops it from its targets...
        two.proc.send_signal(signal.SIGSTOP)
        try:
            await split.wait_registered("access-2", live=False, timeout=20)
            await asyncio.sleep(1.5)  # the pusher reads the live set every second
            # ...so an authorization waits for access-1 only (not registry_sas_ack_wait, 10 s).
            await split.add_app("console-2")
            began = time.monotonic()
            second = await split.authorize_without_waiting("console-2")
            assert time.monotonic() - began < 7
            async with asyncio.timeout(10):
                while second["appProfileId"] not in await split.held(one):
                    await asyncio.sleep(0.05)
            dropped = (await split.access_servers())["access-2"]
            assert dropped["ackedSequence"] == cursor  # kept, not advanced, not forgotten
        finally:
            two.proc.send_signal(signal.SIGCONT)
        # It comes back: heartbeats again, and gets what it missed from its cursor on.
        await split.wait_registered("access-2", timeout=20)
        async with asyncio.timeout(15):
            while second["appProfileId"] not in await split.held(two):
                await asyncio.sleep(0.05)
        back = (await split.access_servers())["access-2"]
        assert back["ackedSequence"] > cursor and back["lag"] == 0

        # A clean stop deregisters: the registry forgets it at once.
        one.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(one.proc.wait, 20)
        assert "access-1" not in await split.access_servers()
        listed = await asyncio.to_thread(split.registry.cli, "access-servers", "list", "--json")
        assert '"sasId": "access-2"' in listed.stdout and '"sasId": "access-1"' not in listed.stdout
