"""``asgate app``: the external application's commands against a live ``asgate up`` (registry, IdM,
service access server) with sample GM and MCPTT services. The commands run in-process with click's
runner (in a worker thread: this test's event loop runs the sample services), except ``listen``
and the interactive sign-in, which run as real processes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from click.testing import CliRunner, Result

from asgate.cli import main
from asgate.client import ScriptedBrowser
from tests.live import ASGATE, free_port
from tests.mcworld import ALICE, CONSOLE, World, mc_world

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process"), pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    async with mc_world(tmp_path_factory.mktemp("world") / "data") as started:
        yield started


def env_of(world: World, **extra: str) -> dict[str, str]:
    return {
        "ASGATE_API_URL": world.url,
        "ASGATE_CLIENT_ID": CONSOLE[0],
        "ASGATE_CLIENT_SECRET": CONSOLE[1],
        **extra,
    }


async def app(world: World, *args: str, code: int = 0, **env: str) -> Result:
    def invoke() -> Result:
        return CliRunner().invoke(main, ["app", *args], env=env_of(world, **env), catch_exceptions=False)

    result = await asyncio.to_thread(invoke)
    assert result.exit_code == code, result.output
    return result


async def test_discover_authorize_profile_and_call(world: World) -> None:
    table = (await app(world, "discover", ALICE, "--type", "GM")).stdout
    assert "GM/sample-gm" in table and "CSC-2" in table and "groups group member" in table
    found = json.loads((await app(world, "discover", ALICE, "--capability", "signalling", "--json")).stdout)
    assert [(s["serviceType"], s["availableInstances"]) for s in found] == [("MCPTT", 1)]
    # Partial success: the table of profiles on stdout, what was not granted and why on stderr.
    partial = await app(world, "authorize", ALICE, "GM", "MCPTT:nope")
    assert partial.stdout.startswith("result: PARTIAL_SUCCESS") and "GM/sample-gm" in partial.stdout
    assert "not granted: MCPTT/sample-mcptt: CAPABILITY_NOT_FOUND: not offered: nope" in partial.stderr
    answer = json.loads((await app(world, "authorize", ALICE, "GM", "--json")).stdout)
    (gm,) = answer["applicationProfiles"]
    shown = (await app(world, "profile", gm["appProfileId"])).stdout
    assert f"location          {world.sas_url}/{gm['appProfileIndex']}" in shown
    assert "max priority      mcpttp.12" in shown and "groups /groups GET,POST (v1)" in shown
    # The MC user signs in through the real login page (--username/--password) for the call.
    signed = ("--username", "alice", "--password", "alice-password")
    body = '{"groupId": "cli-1"}'
    created = await app(
        world, "call", gm["appProfileId"], "post", "/groups", "--data", body, *signed, "--json"
    )
    assert json.loads(created.stdout)["status"] == 201
    called = await app(world, "call", gm["appProfileId"], "GET", "/groups", "--priority", "mcpttp.9", *signed)
    assert "200 OK  Resource-Priority: mcpttp.9" in called.stderr
    assert [g["groupId"] for g in json.loads(called.stdout)["groups"]] == ["cli-1"]


async def test_refusals_are_one_line_and_a_non_zero_exit(world: World, tmp_path: Any) -> None:
    refused = await app(world, "authorize", "bob@mc.example", "GM", code=1)
    assert refused.output.startswith("Error: 403 USER_NOT_AUTHORIZED:") and refused.output.count("\n") == 1
    gm = json.loads((await app(world, "authorize", ALICE, "GM", "--json")).stdout)["applicationProfiles"][0]
    signed = ("--username", "alice", "--password", "alice-password")
    too_high = await app(
        world, "call", gm["appProfileId"], "GET", "/groups", "--priority", "mcpttp.15", *signed, code=1
    )
    assert too_high.output.startswith("Error: 403 PRIORITY_NOT_AUTHORIZED:")
    wrong_password = await app(world, "call", gm["appProfileId"], "GET", "/groups", "--username", "alice",
                               "--password", "not-hers", code=1)  # fmt: skip
    assert "sign-in failed: Wrong user name or password" in wrong_password.output
    assert "404 CONTEXT_NOT_FOUND" in (await app(world, "profile", "nope", code=1)).output
    bad = await app(world, "call", "x", "GET", "/g", "--priority", "urgent", code=2)
    assert "mcpttp.N or mcpttq.N" in bad.output
    assert "use KEY:VALUE" in (await app(world, "discover", ALICE, "--env", "north", code=2)).output
    assert "G M" in (await app(world, "authorize", ALICE, "G M", code=2)).output
    impostor = await app(world, "discover", ALICE, code=1, ASGATE_CLIENT_SECRET="wrong")
    assert "401 INVALID_TOKEN: token request refused: invalid_client" in impostor.output
    down = await app(world, "discover", ALICE, code=1, ASGATE_API_URL=f"http://127.0.0.1:{free_port()}")
    assert down.output.startswith("Error: cannot reach http://127.0.0.1:")
    missing = CliRunner().invoke(main, ["app", "discover", ALICE], env={"ASGATE_API_URL": world.url})
    assert missing.exit_code == 2 and "--client-id" in missing.output


async def test_call_signs_the_user_in_through_a_printed_url(world: World) -> None:
    """The interactive path, as a person at a terminal without a browser does it."""
    gm = json.loads((await app(world, "authorize", ALICE, "GM", "--json")).stdout)["applicationProfiles"][0]
    proc = await asyncio.create_subprocess_exec(
        *ASGATE, "app", "call", gm["appProfileId"], "GET", "/groups", "--no-browser",
        env={**os.environ, **env_of(world)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stderr is not None
    async with asyncio.timeout(20):
        line = b""
        while not line.strip().startswith(b"http"):
            line = await proc.stderr.readline()
            assert line, "the command ended without printing a sign-in URL"
        # The user opens the URL and signs in; the browser is redirected to the command's listener.
        await ScriptedBrowser("alice", "alice-password")(line.decode().strip())
        out, err = await proc.communicate()
    assert proc.returncode == 0, err
    assert "200 OK" in err.decode() and "groups" in json.loads(out)


async def test_listen_prints_each_notification_and_the_reconfigured_profile(world: World) -> None:
    proc = await asyncio.create_subprocess_exec(
        *ASGATE, "app", "listen", ALICE, "GM", "--websocket", "--json", "--count", "1",
        env={**os.environ, **env_of(world)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    assert proc.stdout is not None
    events: list[dict[str, Any]] = []

    async def until(kind: str) -> dict[str, Any]:
        while not events or events[-1]["event"] != kind:
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the listener ended before {kind}: {(await proc.stderr.read()).decode()}"  # type: ignore[union-attr]
            events.append(json.loads(line))
        return events[-1]

    async with asyncio.timeout(25):
        assert (await until("listening"))["destination"] == "websocket"
        authorized = (await until("authorized"))["profile"]
        # The administrator narrows the profile with the CLI while the application listens.
        await asyncio.to_thread(
            world.cli,
            "profiles",
            "update",
            authorized["appProfileId"],
            "--max-priority",
            "mcpttp.7",
            "--only",
            "groups",
        )
        reconfigured = (await until("reconfigured"))["profile"]
        await proc.wait()
    assert proc.returncode == 0
    assert [e["event"] for e in events] == ["listening", "authorized", "notification", "reconfigured"]
    assert events[2]["notification"]["version"] == reconfigured["version"] == authorized["version"] + 1
    description = reconfigured["serviceInterfaceDescription"]
    assert description["maxPriority"] == "mcpttp.7"
    assert [r["resourceName"] for r in description["versions"][0]["resources"]] == ["groups"]
