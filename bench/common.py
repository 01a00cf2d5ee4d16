"""What every benchmark shares: the machine's description, ports, ``wrk`` runs and their parsing, and
an ``asgate up`` process pinned to a core with its settings in the environment."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
PEERS = ROOT / "bench" / "peers"  # the peers' configurations (nginx, Envoy), kept in the repository

# The programs the benchmarks run, and where they come from (Debian packages).
TOOLS = {"nginx": "nginx-light", "wrk": "wrk", "taskset": "util-linux"}


def h2load_cmd(url: str, connections: int, streams: int, duration: int) -> list[str]:
    """``bench/h2load.py`` (the Python HTTP/2 load generator) pinned to core 1, as wrk is."""
    script = str(Path(__file__).parent / "h2load.py")
    return ["taskset", "-c", "1", sys.executable, script, url, "--connections", str(connections),
            "--streams", str(streams), "--duration", str(duration)]  # fmt: skip


def missing_tools(*tools: str) -> str | None:
    """Why a benchmark needing ``tools`` cannot run here (None when every one is on PATH)."""
    absent = [tool for tool in tools if shutil.which(tool) is None]
    if not absent:
        return None
    packages = " ".join(dict.fromkeys(TOOLS[tool] for tool in absent))
    return f"{', '.join(absent)} not found (apt-get install -y {packages})"


def require(*tools: str) -> None:
    """Stop the benchmark, saying what is missing and how to get it, before anything starts."""
    reason = missing_tools(*tools)
    if reason is not None:
        raise SystemExit(f"skipped: {reason}")


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d"),
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on 127.0.0.1:{port}")


def wrk(
    url: str,
    *,
    duration: float,
    connections: int,
    headers: list[str] | None = None,
    script: Path | None = None,
    env: dict[str, str] | None = None,
    cores: str = "1",
) -> dict[str, Any]:
    """One closed-loop ``wrk`` run (one thread, pinned to ``cores``); its numbers as a dict."""
    cmd = ["taskset", "-c", cores, "wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    for header in headers or []:
        cmd += ["-H", header]
    if script is not None:
        cmd += ["-s", str(script)]
    out = subprocess.run(
        [*cmd, url],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=True,
    ).stdout
    return parse_wrk(out)


def parse_wrk(out: str) -> dict[str, Any]:
    def ms(value: str) -> float:
        number, unit = re.match(r"([\d.]+)(us|ms|s)", value).groups()  # type: ignore[union-attr]
        return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    latency = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, re.M))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    total = re.search(r"(\d+) requests in", out)
    return {
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),  # type: ignore[union-attr]
        "requests": int(total.group(1)) if total else 0,
        "p50_ms": ms(latency["50"]),
        "p90_ms": ms(latency["90"]),
        "p99_ms": ms(latency["99"]),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "socket_errors": socket_errors.group(1) if socket_errors else "",
    }


def asgate_env(data_dir: Path, settings: dict[str, Any]) -> dict[str, str]:
    """The environment of an ``asgate`` process: no inherited ASGATE_*, these settings, quiet logs."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASGATE_")}
    env |= {"ASGATE_DATA_DIR": str(data_dir), "ASGATE_LOG_LEVEL": "warning"}
    env |= {f"ASGATE_{k.upper()}": str(v) for k, v in settings.items()}
    return env


def asgate(data_dir: Path, *args: str, settings: dict[str, Any] | None = None) -> Any:
    """Run an ``asgate`` CLI command against ``data_dir``; its output parsed if it is JSON."""
    out = subprocess.run(
        [sys.executable, "-m", "asgate", *args],
        env=asgate_env(data_dir, settings or {}),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    try:
        return json.loads(out)
    except ValueError:
        return out


def server_keyring(data_dir: Path, settings: dict[str, Any] | None = None) -> Any:
    """The signing keys of the server on ``data_dir`` (its database, opened with its key-encryption
    key ``data_dir/kek``), to mint tokens as its IdM does: an ``asgate.idm.keys.KeyRing``."""
    import asyncio

    from asgate.idm.keystore import StoredKeys
    from asgate.kernel.settings import Settings
    from asgate.store import Store

    async def load() -> Any:
        config = Settings.isolated(data_dir=data_dir, **(settings or {}))
        store = await Store.open(config.db_url, schema=config.database_schema, migrate_schema=False)
        try:
            return (await StoredKeys.open(config, store)).ring
        finally:
            await store.close()

    return asyncio.run(load())


def start_asgate(
    data_dir: Path, settings: dict[str, Any], *, cores: str = "0", command: tuple[str, ...] = ("up",)
) -> subprocess.Popen[bytes]:
    """``asgate up`` pinned to ``cores``; returns once its control plane answers /healthz."""
    listen = settings["listen"]
    cmd = ["taskset", "-c", cores, sys.executable, "-m", "asgate", *command]
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(cmd, env=asgate_env(data_dir, settings), stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://{listen}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError((data_dir / "server.log").read_text()[-3000:])


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def write_results(name: str, report: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"{name}-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M}.json"
    out.write_text(json.dumps(report, indent=2) + "\n")
    return out
