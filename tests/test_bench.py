"""The benchmarks' set-up, without running any: their peers' configurations are in the repository and a
missing program skips a benchmark, saying which program and how to install it (``bench/run.py --check``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def test_every_peer_configuration_a_benchmark_reads_is_in_the_repository() -> None:
    read = set()
    for script in BENCH.glob("*.py"):
        read |= set(re.findall(r'PEERS / "([^"]+)"', script.read_text(encoding="utf-8")))
        assert "shared/" not in script.read_text(encoding="utf-8"), (
            f"{script.name} reads outside the repository"
        )
    assert read == {"nginx.conf"}
    for name in read:
        assert (BENCH / "peers" / name).is_file(), name


def _check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(BENCH / "run.py"), "--check"],
        env={"PATH": str(path)},
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_without_the_programs_every_benchmark_says_it_is_skipped_and_why(tmp_path: Path) -> None:
    run = _check(tmp_path)  # an empty PATH: no nginx, wrk or taskset
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines() == [
        "== asreg: skipped, wrk, taskset not found (apt-get install -y wrk util-linux)",
        "== sas: skipped, nginx, wrk, taskset not found (apt-get install -y nginx-light wrk util-linux)",
        "== registry: skipped, nginx, wrk, taskset not found (apt-get install -y nginx-light wrk util-linux)",
        "== token-flood: skipped, taskset not found (apt-get install -y util-linux)",
        "not run: asreg, sas, registry, token-flood (their programs are missing, see above)",
    ]


@pytest.mark.skipif(shutil.which("taskset") is None, reason="taskset (util-linux) is not installed")
def test_a_benchmark_whose_programs_are_there_is_ready(tmp_path: Path) -> None:
    (tmp_path / "taskset").symlink_to(shutil.which("taskset") or "taskset")  # the real one, and nothing else
    run = _check(tmp_path)
    assert "== token-flood: ready" in run.stdout.splitlines()
    assert (
        run.stdout.splitlines()[-1] == "not run: asreg, sas, registry (their programs are missing, see above)"
    )


def test_a_benchmark_run_alone_without_its_programs_stops_saying_why(tmp_path: Path) -> None:
    run = subprocess.run(
        [sys.executable, str(BENCH / "sas.py")],
        env={"PATH": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 1
    assert run.stderr.strip().splitlines()[-1] == (
        "skipped: nginx, wrk, taskset not found (apt-get install -y nginx-light wrk util-linux)"
    )
