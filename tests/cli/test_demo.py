"""``asgate demo`` as a user runs it: a process of its own, every seed procedure passing and every
step of every figure narrated, whatever ASGATE_* settings the user's shell has."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
# The steps of each figure: TS 23.554 8.2.5/8.2.6 and the seed's 10.X.3-10.X.5.
FIGURES = {"8.2.5": 3, "8.2.6": 4, "10.X.3": 7, "10.X.4": 6, "10.X.5": 5}


def _demo(cwd: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
    # The user's own asgate settings must not reach the demo's embedded asgate.
    env |= {
        "ASGATE_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/nothing",
        "ASGATE_LISTEN": "127.0.0.1:1",
        "ASGATE_SAS_LISTEN": "127.0.0.1:1",
        "ASGATE_DATA_DIR": str(cwd / "not-here"),
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "asgate", "demo", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=90,
    )
    return done, time.monotonic() - started


def test_the_demo_passes_and_narrates_every_step_of_every_figure(tmp_path: Path) -> None:
    done, elapsed = _demo(tmp_path)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    narrated: dict[str, set[int]] = {}
    figure = None
    for line in done.stdout.splitlines():
        if heading := re.match(r"━━ (\S+)  ", line):
            figure = heading.group(1)
        elif (step := re.match(r" ✓ (\d+)  ", line)) and figure is not None:
            narrated.setdefault(figure, set()).add(int(step.group(1)))
    assert {f: narrated.get(f) for f in FIGURES} == {f: set(range(1, n + 1)) for f, n in FIGURES.items()}
    assert "✗" not in done.stdout and "all 32 steps of 7 procedures passed" in done.stdout
    # What was sent and received, with the parts the procedures are about.
    for shown in (
        "AS (as-1) → POST /msgs-asregistration/v1/registrations",
        "AS (as-1) ← 201",
        "service registry server → POST /notify/",  # 10.X.4 step 2, to the application's listener
        "[HTML page: Sign in",  # alice at the IdM's real login page
        "password=••••••••",  # shown, never in clear
        "RESOURCE_NOT_AUTHORIZED",
        "PRIORITY_NOT_AUTHORIZED",
        "Resource-Priority: mcpttp.9  X-Sample-Instance: gm-",
        "X-Sample-Instance: gm-2",
        "outbound policy: loopback allowed for the samples",  # said, as loopback is denied by default
    ):
        assert shown in done.stdout, shown
    assert elapsed < 60 and not (tmp_path / "not-here").exists() and not (tmp_path / ".asgate").exists()
    assert done.stderr == ""


def test_the_json_report_has_every_step_and_exchange(tmp_path: Path) -> None:
    done, _ = _demo(tmp_path, "--json")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["failed"] is None
    steps = [(p["procedure"], s["step"], s["ok"]) for p in report["procedures"] for s in p["steps"]]
    assert all(ok for _, _, ok in steps) and len(steps) == 32
    exchanges = [e for p in report["procedures"] for s in p["steps"] for e in s["exchanges"]]
    login = next(e for e in exchanges if e["method"] == "POST" and e["url"].endswith("/oauth2/authorize"))
    assert "password=••••••••" in login["request"] and login["status"] == 303
    assert not any('"access_token":"eyJ' in e["response"] and len(e["response"]) > 400 for e in exchanges)
