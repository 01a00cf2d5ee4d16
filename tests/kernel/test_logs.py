"""Log format: human-readable on a terminal, JSON lines otherwise; routine requests at debug."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from asgate.kernel.logs import resolve_format
from asgate.kernel.web import routine_request


@pytest.mark.parametrize(
    ("setting", "terminal", "expected"),
    [
        ("auto", True, "console"),
        ("auto", False, "json"),
        ("json", True, "json"),
        ("json", False, "json"),
        ("console", False, "console"),
        ("console", True, "console"),
    ],
)
def test_log_format_follows_the_terminal_unless_forced(setting: str, terminal: bool, expected: str) -> None:
    assert resolve_format(setting, terminal) == expected


HEARTBEAT = "/mcx-service-registration/v1/services/01a2-43/heartbeat"


@pytest.mark.parametrize(
    ("method", "path", "status", "routine"),
    [
        ("PUT", HEARTBEAT, 204, True),
        ("PUT", HEARTBEAT, 404, False),  # the registry removed the instance: worth reading
        ("PUT", HEARTBEAT, 401, False),
        ("GET", HEARTBEAT, 405, False),
        ("PUT", f"/other{HEARTBEAT}", 204, False),
        ("PUT", "/mcx-service-registration/v1/services/01a2-43", 200, False),
        ("GET", "/healthz", 200, True),
        ("GET", "/healthz", 503, True),
        ("GET", "/metrics", 200, True),
        ("POST", "/oauth2/token", 200, False),
        ("POST", "/msgs-asregistration/v1/registrations", 201, False),
    ],
)
def test_routine_requests(method: str, path: str, status: int, routine: bool) -> None:
    assert routine_request(method, path, status) is routine


_LOG_ONE_LINE = (
    "from asgate.kernel import logs; logs.configure('info', sys.argv[1]); logs.get('t').info('hello', n=1)"
)


def _log_line(setting: str, *, terminal: bool) -> str:
    """What a process that logs one line writes to its standard error: a pseudo-terminal or a pipe."""
    code = f"import sys; {_LOG_ONE_LINE}"
    if not terminal:
        done = subprocess.run(
            [sys.executable, "-c", code, setting], capture_output=True, text=True, timeout=30
        )
        return done.stderr.strip()
    leader, follower = os.openpty()
    try:
        proc = subprocess.run([sys.executable, "-c", code, setting], stderr=follower, timeout=30, check=True)
        assert proc.returncode == 0
        return os.read(leader, 65536).decode().strip()
    finally:
        os.close(leader)
        os.close(follower)


def test_a_terminal_gets_readable_lines_and_a_pipe_json() -> None:
    readable = _log_line("auto", terminal=True)
    assert "[info     ] hello" in readable and "n=1" in readable
    assert not readable.startswith("{")
    assert json.loads(_log_line("auto", terminal=False))["event"] == "hello"
    assert json.loads(_log_line("json", terminal=True))["event"] == "hello"  # forced by the setting
