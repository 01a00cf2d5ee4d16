"""AS registration throughput and latency (issue: >= 2,000 durable registrations/s on one worker;
p99 with 1 M stored <= 1.5 x p99 with 1 k stored), on SQLite and PostgreSQL.

For each backend and stored count: a fresh database is filled with that many registrations, one
``asgate up`` process (one worker) is started pinned to core 0, and ``wrk`` pinned to core 1 posts
registrations at fixed concurrency for a fixed time, each for a random AS Service ID among 10,000
provisioned ones (so every request is a durable delete + insert + audit row, and the table size stays
put). Loopback only; every run is bounded in time.

    python bench/asreg.py                       # everything (about 4 minutes with 1 M rows)
    python bench/asreg.py --backends sqlite --stored 1000 --duration 5
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import functools
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from asgate.domain.idm import Client
from asgate.domain.msgin5g import Registration
from asgate.idm.passwords import hash_secret  # noqa: E402
from asgate.store import Store  # noqa: E402
from asgate.store.ids import new_id  # noqa: E402
from asgate.store.tx import Tx  # noqa: E402
from common import free_port, machine, require, start_asgate, stop, write_results, wrk  # noqa: E402

PG_URL = os.environ.get("ASGATE_BENCH_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
N_IDS = 10_000
LUA = """
math.randomseed(os.time())
local token = os.getenv("BENCH_TOKEN")
local n = tonumber(os.getenv("BENCH_IDS"))
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer " .. token}
request = function()
  local id = "AS" .. math.random(0, n - 1)
  local body = '{"asSvcId":"' .. id .. '","appId":"bench",'
    .. '"asProf":{"appName":"bench","appSenarios":["load"]}}'
  return wrk.format("POST", "/msgs-asregistration/v1/registrations", headers, body)
end
"""


async def prepare(database: dict[str, Any], stored: int) -> None:
    store = await Store.open(database["database_url"], schema=database.get("database_schema"))
    now = dt.datetime.now(dt.UTC)
    await store.write(
        lambda tx: tx.clients.add(
            Client(
                client_id="bench",
                secret_hash=hash_secret("bench-secret"),
                scopes=("msgs-asregistration",),
                as_svc_ids=tuple(f"AS{i}" for i in range(N_IDS)),
                created_at=now,
                updated_at=now,
            )
        )
    )
    started = time.perf_counter()
    batch = 50_000
    for start in range(0, stored, batch):
        fillers = [
            Registration(registration_id=new_id(), as_svc_id=f"F{i}", client_id="filler", registered_at=now)
            for i in range(start, min(stored, start + batch))
        ]
        await store.write(functools.partial(_put, fillers=fillers))
    print(f"  filled {stored:,} registrations in {time.perf_counter() - started:.1f} s", flush=True)
    await store.close()


def run_wrk(port: int, token: str, connections: int, duration: int, workdir: Path) -> dict[str, Any]:
    script = workdir / "asreg.lua"
    script.write_text(LUA)
    env = {"BENCH_TOKEN": token, "BENCH_IDS": str(N_IDS)}
    return wrk(f"http://127.0.0.1:{port}", duration=duration, connections=connections, script=script, env=env)


async def pg_database() -> dict[str, Any]:
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    return {"database_url": PG_URL, "database_schema": schema}


async def drop_pg(database: dict[str, Any]) -> None:
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    await conn.execute(f'DROP SCHEMA IF EXISTS "{database["database_schema"]}" CASCADE')
    await conn.close()


def _put(tx: Tx, fillers: list[Registration]) -> None:
    tx.registrations.put(*fillers)


def one(backend: str, stored: int, args: argparse.Namespace) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="asgate-bench-"))
    database = (
        {"database_url": f"sqlite+aiosqlite:///{workdir / 'asgate.db'}"}
        if backend == "sqlite"
        else asyncio.run(pg_database())
    )
    try:
        print(f"{backend}, {stored:,} stored:", flush=True)
        asyncio.run(prepare(database, stored))
        port = free_port()
        proc = start_asgate(workdir, {"listen": f"127.0.0.1:{port}", **database})
        try:
            token = httpx.post(
                f"http://127.0.0.1:{port}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=("bench", "bench-secret"),
            ).json()["access_token"]
            run_wrk(port, token, args.connections, 2, workdir)  # warm-up
            result = run_wrk(port, token, args.connections, args.duration, workdir)
        finally:
            stop(proc)
        print(
            f"  {result['requests_per_s']:,.0f} registrations/s, p50 {result['p50_ms']:.2f} ms, "
            f"p99 {result['p99_ms']:.2f} ms, non-2xx {result['non_2xx']}",
            flush=True,
        )
        return {"backend": backend, "stored": stored, "connections": args.connections, **result}
    finally:
        if backend == "postgresql":
            asyncio.run(drop_pg(database))
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backends", nargs="+", default=["sqlite", "postgresql"])
    parser.add_argument("--stored", nargs="+", type=int, default=[1_000, 1_000_000])
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    require("wrk", "taskset")
    runs = [one(backend, stored, args) for backend in args.backends for stored in args.stored]
    report: dict[str, Any] = {"benchmark": "asreg", "machine": machine(), "runs": runs}
    for backend in args.backends:
        p99 = {r["stored"]: r["p99_ms"] for r in runs if r["backend"] == backend}
        if len(p99) > 1:
            low, high = min(p99), max(p99)
            report.setdefault("p99_ratio", {})[backend] = round(p99[high] / p99[low], 2)
    out = write_results("asreg", report)
    print(json.dumps(report, indent=2))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
