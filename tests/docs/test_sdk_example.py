"""docs/sdk.md's complete application, executed as written against a live ``asgate up``.

Needs real sockets and processes: ``asgate up`` (registry, IdM and the service access server), the
sample GM service registered through its agent (both started here), and a ``BROWSER`` command
standing in for the user at the system browser (it signs alice in through the real login page).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mcworld import CONSOLE, World, mc_world

DOC = Path(__file__).resolve().parents[2] / "docs" / "sdk.md"
MARKER = "<!-- executed by tests/docs/test_sdk_example.py"
BROWSER = f"""#!{sys.executable}
import asyncio, sys
from asgate.client import ScriptedBrowser
asyncio.run(ScriptedBrowser("alice", "alice-password")(sys.argv[1]))
"""


def example() -> str:
    """The python block right after the marker in docs/sdk.md."""
    text = DOC.read_text()
    found = re.search(r"```python\n(.*?)```", text[text.index(MARKER) :], re.DOTALL)
    assert found is not None, "docs/sdk.md lost its complete example"
    return found.group(1)


def test_the_example_is_a_complete_application_in_under_40_lines() -> None:
    code = example()
    assert len(code.splitlines()) < 40
    compile(code, "console.py", "exec")


@pytest.mark.slow
@pytest.mark.xdist_group("process")
async def test_the_documented_application_runs_against_a_live_server(tmp_path: Path) -> None:
    script = tmp_path / "console.py"
    script.write_text(example())
    browser = tmp_path / "browser"
    browser.write_text(BROWSER)
    browser.chmod(0o755)
    async with mc_world(tmp_path / "data", samples=("gm",)) as world:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
        env |= {
            "ASGATE_API_URL": world.url,
            "ASGATE_CLIENT_ID": CONSOLE[0],
            "ASGATE_CLIENT_SECRET": CONSOLE[1],
        }
        env |= {"BROWSER": str(browser), "PYTHONUNBUFFERED": "1"}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(script), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            await _converse(world, proc)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()


async def _converse(world: World, proc: asyncio.subprocess.Process) -> None:
    assert proc.stdout is not None and proc.stderr is not None
    lines: list[str] = []

    async def until(prefix: str) -> str:
        while not lines or not lines[-1].startswith(prefix):
            line = await proc.stdout.readline()  # type: ignore[union-attr]
            assert line, f"the example ended early:\n{(await proc.stderr.read()).decode()[-3000:]}"  # type: ignore[union-attr]
            lines.append(line.decode().rstrip("\n"))
        return lines[-1]

    async with asyncio.timeout(30):
        assert await until("found") == "found GM sample-gm"
        # Through the SAS as alice, at the priority asked for, indicated back by the SAS.
        assert await until("200") == "200 mcpttp.9 {'groups': []}"
        # The administrator edits the profile; the example is notified and reconfigures.
        listed = await asyncio.to_thread(world.cli, "profiles", "list", "--app", CONSOLE[0], "--json")
        (profile,) = json.loads(listed.stdout)
        await asyncio.to_thread(
            world.cli, "profiles", "update", profile["appProfileId"], "--max-priority", "mcpttp.11"
        )
        assert await until("reconfigured") == "reconfigured: GM version 2, max priority mcpttp.11"
        proc.send_signal(signal.SIGINT)  # Ctrl-C: the example leaves cleanly
        assert await proc.wait() == 0
