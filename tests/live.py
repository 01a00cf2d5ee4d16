"""Start real ``asgate`` server processes for tests that need a socket, a signal or a crash."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

ASGATE = [sys.executable, "-m", "asgate"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def server_env(data_dir: Path, database: dict[str, Any] | None = None, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
    env["ASGATE_DATA_DIR"] = str(data_dir)
    env["ASGATE_LOG_LEVEL"] = "warning"
    # Test receivers and instances listen on 127.0.0.1, which the policies deny by default.
    env["ASGATE_OUTBOUND_ALLOW_LOOPBACK"] = "true"
    env["ASGATE_INSTANCE_ALLOW_LOOPBACK"] = "true"
    for key, value in (database or {}).items():
        env[f"ASGATE_{key.upper()}"] = str(value)
    for key, value in settings.items():
        env[f"ASGATE_{key.upper()}"] = value
    return env


@dataclass
class LiveServer:
    url: str
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path
    argv: tuple[str, ...] = (*ASGATE, "up")

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*ASGATE, *args], env=self.env, capture_output=True, text=True, check=check, timeout=60
        )

    def kill(self, sig: int = signal.SIGKILL) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)

    def start_again(self, timeout: float = 20.0) -> None:
        """Start the (stopped) server again: same command, port, settings and data."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        wait_healthy(self.url, self.proc, self.log, timeout)


def wait_healthy(
    url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 20.0, **kw: Any
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0, **kw).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server did not become healthy:\n{log.read_text()[-3000:]}")


@contextmanager
def live_server(
    data_dir: Path,
    database: dict[str, Any] | None = None,
    *,
    scheme: str = "http",
    verify: Any = True,
    args: Sequence[str] = (),
    **settings: str,
) -> Iterator[LiveServer]:
    """``asgate up ARGS`` on a free port with ``settings`` (``ASGATE_*``), until the block ends."""
    port = free_port()
    # Every server its own data-plane port too: tests run in parallel (pytest-xdist).
    settings.setdefault("sas_listen", f"127.0.0.1:{free_port()}")
    env = server_env(data_dir, database, listen=f"127.0.0.1:{port}", **settings)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / f"server-{port}.log"
    argv = (*ASGATE, "up", *args)
    with log.open("wb") as out:
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
    server = LiveServer(f"{scheme}://127.0.0.1:{port}", env, proc, log, argv)
    try:
        wait_healthy(server.url, proc, log, verify=verify)
        yield server
    finally:
        proc = server.proc  # the last one started (start_again)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
