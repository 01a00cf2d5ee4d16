"""The CI entry point parses and does what the guide says: start the services, then `make test`.

A broken `.ci/run` fails CI after 0 s without running a single test, so it is checked here, where
`make test` catches it before a push.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parents[1] / ".ci" / "run"


def test_ci_run_is_valid_bash() -> None:
    bash = shutil.which("bash")
    if bash is None:
        pytest.skip("bash is not installed, so .ci/run cannot be parsed here")
    result = subprocess.run([bash, "-n", str(RUN)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_ci_run_starts_the_services_then_runs_make_test() -> None:
    lines = [line.strip() for line in RUN.read_text().splitlines()]
    code = [line for line in lines if line and not line.startswith("#")]
    assert RUN.stat().st_mode & 0o111, ".ci/run must be executable"
    assert code[0] == "set -euo pipefail"
    assert any("pg_ctlcluster --skip-systemctl-redirect" in line for line in code)
    assert any(line.startswith("redis-server --daemonize yes") for line in code)
    assert any("apt-get install" in line and "chromium" in line for line in code)
    assert code[-1] == "make test"
