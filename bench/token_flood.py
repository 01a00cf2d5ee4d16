"""Token endpoint under a flood of wrong client secrets (issue 8 item 8: a flood must not slow
legitimate token requests by more than 2x; before the fix it was 4-8x, each wrong secret costing
an Argon2 verification that legitimate requests queued behind).

One ``asgate serve idm`` process pinned to core 0; this script (the clients) pinned to core 1.
A legitimate client asks for client-credentials tokens one after another; flooders posting wrong
secrets are switched on and off every few seconds, and the legitimate latencies with the flood
on are compared with those with it off (interleaved, so a shared machine's background load
weighs on both alike). Two floods:

- ``distributed``: unknown client ids from 200 loopback source addresses (127.0.1.x-127.0.2.x),
  the attacker who stays under the per-source limit as long as it can, so every request that is
  not refused costs the server an Argon2 verification;
- ``targeted``: wrong secrets for the legitimate client's own id from one address (throttled
  after ``idm_token_max_failures``: refused before any hash).

Also reported: the first authentication of new clients during the distributed flood (those do
need an Argon2 verification, so they wait behind the flood's; a client that has authenticated
once is answered from the verified-secret cache). Loopback only; every phase is bounded.

    python bench/token_flood.py                  # about two minutes
    python bench/token_flood.py --rounds 3 --window 3 --flooders 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import asgate, free_port, machine, require, start_asgate, stop, write_results  # noqa: E402

ADDRESSES = [f"127.0.{1 + i // 250}.{1 + i % 250}" for i in range(200)]
FRESH = 10
PHASE_LIMIT = 90.0  # seconds: no phase runs longer (a phase cut short reports the requests it made)


def prepare(data: Path, database_url: str) -> None:
    """The clients, added with the CLI of the asgate under test (whatever its schema)."""
    for client_id in ["legit", *(f"fresh-{i}" for i in range(FRESH))]:
        secret = f"{client_id}-secret"
        args = ("clients", "add", client_id, "--scope", "msgs-asregistration", "--secret", secret)
        asgate(data, *args, settings={"database_url": database_url})


async def token(http: httpx.AsyncClient, client_id: str, secret: str) -> tuple[int, float]:
    started = time.perf_counter()
    response = await http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=(client_id, secret)
    )
    return response.status_code, (time.perf_counter() - started) * 1000


async def flooder(
    base: str, kind: str, on: asyncio.Event, done: asyncio.Event, counts: dict[int, int], worker: int
) -> None:
    rng = random.Random(worker)
    addresses = ADDRESSES[worker::8] if kind == "distributed" else ["127.0.3.1"]
    index = 0
    clients: dict[str, httpx.AsyncClient] = {}
    try:
        while not done.is_set():
            if not on.is_set():
                await asyncio.sleep(0.05)
                continue
            address = addresses[index % len(addresses)]
            if address not in clients:
                transport = httpx.AsyncHTTPTransport(local_address=address)
                clients[address] = httpx.AsyncClient(base_url=base, transport=transport, timeout=PHASE_LIMIT)
            client_id = f"guess-{rng.randrange(10**9)}" if kind == "distributed" else "legit"
            status, _ = await token(clients[address], client_id, "wrong")
            counts[status] = counts.get(status, 0) + 1
            if status == 429:
                index += 1  # this address is throttled: the attacker moves on
    finally:
        for http in clients.values():
            await http.aclose()


def summary(latencies: list[float]) -> dict[str, float]:
    ordered = sorted(latencies) or [float("nan")]
    return {
        "n": len(latencies),
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
    }


async def flood_process(base: str, kind: str, flooders: int) -> None:
    """``--flood``: flood until SIGTERM (or PHASE_LIMIT), then print the answers' counts."""
    on, done = asyncio.Event(), asyncio.Event()
    counts: dict[int, int] = {}
    on.set()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, done.set)
    tasks = [asyncio.create_task(flooder(base, kind, on, done, counts, w)) for w in range(flooders)]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(done.wait(), PHASE_LIMIT)
    done.set()
    await asyncio.gather(*tasks)
    print(json.dumps(counts), flush=True)


async def alternating(base: str, kind: str, flooders: int, rounds: int, window: float) -> dict[str, Any]:
    """Legitimate requests one after another while a flooding process (its own, so that its
    work does not delay this one's event loop) is started and stopped every ``window`` seconds,
    so that both sides see the same background load on a shared machine; a request counts for
    the state it started in, except in the second after a switch."""
    quiet: list[float] = []
    flooded: list[float] = []
    counts: dict[str, int] = {}
    async with httpx.AsyncClient(base_url=base, timeout=PHASE_LIMIT) as http:
        for phase in range(2 * rounds):
            flooding = phase % 2 == 1
            child = None
            if flooding:
                child = await asyncio.create_subprocess_exec(
                    sys.executable,
                    __file__,
                    "--flood",
                    kind,
                    base,
                    str(flooders),
                    stdout=asyncio.subprocess.PIPE,
                )
            switched = time.monotonic()
            try:
                while time.monotonic() - switched < window:
                    started = time.monotonic()
                    status, ms = await token(http, "legit", "legit-secret")
                    assert status == 200, status
                    if started - switched >= 1.0:
                        (flooded if flooding else quiet).append(ms)
            finally:
                if child is not None:
                    child.terminate()
                    out, _ = await child.communicate()
                    for answer, n in json.loads(out or b"{}").items():
                        counts[answer] = counts.get(answer, 0) + n
    baseline, stats = summary(quiet), summary(flooded)
    return {
        "without_flood": baseline,
        "with_flood": stats,
        "p50_ratio": round(stats["p50_ms"] / baseline["p50_ms"], 2),
        "p99_ratio": round(stats["p99_ms"] / baseline["p99_ms"], 2),
        "flood_answers": dict(sorted(counts.items())),
    }


async def fresh_clients(base: str, flooders: int) -> dict[str, Any]:
    """New clients' first authentication (an Argon2 verification each) during the flood."""
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--flood",
        "distributed",
        base,
        str(flooders),
        stdout=asyncio.subprocess.PIPE,
    )
    latencies = []
    deadline = time.monotonic() + PHASE_LIMIT
    try:
        await asyncio.sleep(2.0)
        async with httpx.AsyncClient(base_url=base, timeout=PHASE_LIMIT) as http:
            for i in range(FRESH):
                if time.monotonic() > deadline:
                    break
                status, ms = await token(http, f"fresh-{i}", f"fresh-{i}-secret")
                assert status == 200, status
                latencies.append(ms)
    finally:
        child.terminate()
        await child.communicate()
    return summary(latencies)


async def run(base: str, flooders: int, rounds: int, window: float) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base, timeout=PHASE_LIMIT) as http:
        await token(http, "legit", "legit-secret")  # the first request verifies the secret once
    report: dict[str, Any] = {}
    for kind in ("distributed", "targeted"):
        stats = await alternating(base, kind, flooders, rounds, window)
        report[kind] = stats
        quiet, loud = stats["without_flood"], stats["with_flood"]
        print(
            f"  {kind:12} without p50 {quiet['p50_ms']:7.2f} p99 {quiet['p99_ms']:7.2f} ms | "
            f"with p50 {loud['p50_ms']:7.2f} p99 {loud['p99_ms']:7.2f} ms | "
            f"{stats['p50_ratio']}x / {stats['p99_ratio']}x  flood answers {stats['flood_answers']}",
            flush=True,
        )
    report["first_authentication_under_flood"] = fresh = await fresh_clients(base, flooders)
    print(
        f"  first authentication of a new client during the flood: p50 {fresh['p50_ms']:.0f} ms", flush=True
    )
    return report


def main() -> int:
    if sys.argv[1:2] == ["--flood"]:  # the flooding child process
        kind, base, flooders = sys.argv[2], sys.argv[3], int(sys.argv[4])
        asyncio.run(flood_process(base, kind, flooders))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flooders", type=int, default=16, help="concurrent flooding connections")
    parser.add_argument("--rounds", type=int, default=5, help="flood off/on cycles per kind of flood")
    parser.add_argument("--window", type=float, default=4.0, help="seconds of each off or on phase")
    args = parser.parse_args()
    require("taskset")
    os.sched_setaffinity(0, {1})  # the clients on core 1, the server on core 0
    with tempfile.TemporaryDirectory(prefix="asgate-bench-") as tmp:
        data = Path(tmp)
        database_url = f"sqlite+aiosqlite:///{data / 'asgate.db'}"
        prepare(data, database_url)
        port = free_port()
        settings = {"listen": f"127.0.0.1:{port}", "database_url": database_url}
        server = start_asgate(data, settings, cores="0", command=("serve", "idm"))
        try:
            report = asyncio.run(run(f"http://127.0.0.1:{port}", args.flooders, args.rounds, args.window))
        finally:
            stop(server)
    settings_used = {"flooders": args.flooders, "rounds": args.rounds, "window_s": args.window}
    report = {"machine": machine(), **settings_used, **report}
    print(f"  results: {write_results('token_flood', report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
