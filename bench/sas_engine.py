"""Side-by-side benchmark: the SAS engine against nginx as keep-alive reverse proxies.

    .venv/bin/python bench/sas_engine.py                  # allow-all gate, 3 rounds of 8 s
    .venv/bin/python bench/sas_engine.py --rounds 5 --duration 10
    .venv/bin/python bench/sas_engine.py --gate mypkg.gates:make_gate -H "authorization: Bearer ..."
    .venv/bin/python bench/sas_engine.py --http2          # also the engine over h2c (bench/h2load.py)

The backend is nginx's own fixed JSON answer on 127.0.0.1:9001 (``bench/peers/nginx.conf``,
copied to a temporary folder); nginx proxies to it on :9002 and the engine on :9010. nginx and the
engine run on core 0, ``wrk`` on core 1; the candidates alternate and medians are reported.

``--gate module:function`` benchmarks another gate: ``function(backend: Endpoint)`` returns the gate
(or an awaitable of it) and runs inside the engine process. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import inspect
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PEERS, ROOT, h2load_cmd, require, wait_port, wrk  # noqa: E402

BACKEND, NGINX, ENGINE = 9001, 9002, 9010


# ---------------------------------------------------------------- the engine process


def allow_all(backend: Any) -> Any:
    """The trivial gate: every request goes to the one backend, path unchanged."""
    from asgate.access.types import Admit, Reject, RequestHead
    from asgate.access.upstream import UpstreamPool

    class AllowAll:
        def __init__(self) -> None:
            self.pool = UpstreamPool("bench", [backend])

        def admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
            return Admit(self.pool, head.path + ("?" + head.query if head.query else ""))

        async def admit(self, head: RequestHead) -> Admit | Reject:
            return Admit(self.pool, head.path + ("?" + head.query if head.query else ""))

    return AllowAll()


def serve(gate_spec: str, port: int) -> None:
    import uvloop

    from asgate.access.server import AccessServer
    from asgate.access.upstream import Endpoint

    module, _, name = gate_spec.partition(":")
    factory = allow_all if gate_spec == "allow_all" else getattr(importlib.import_module(module), name)

    async def main() -> None:
        made = factory(Endpoint("backend", "127.0.0.1", BACKEND))
        gate = await made if inspect.isawaitable(made) else made
        server = AccessServer(gate)
        await server.start("127.0.0.1", port)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await server.stop(grace=1.0)

    uvloop.run(main())


# ---------------------------------------------------------------- the harness


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=8, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--path", default="/x")
    parser.add_argument("--gate", default="allow_all", help="module:function building the gate")
    parser.add_argument("-H", "--header", action="append", default=[], help="header for every request")
    parser.add_argument(
        "--http2", action="store_true", help="also the engine over HTTP/2 (h2c; bench/h2load.py, not wrk)"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)  # internal: run the engine
    args = parser.parse_args()
    if args.serve:
        serve(args.gate, args.serve)
        return
    require("nginx", "wrk", "taskset")
    with tempfile.TemporaryDirectory(prefix="sas-bench-") as tmp:
        shutil.copy(PEERS / "nginx.conf", tmp)
        nginx = ["nginx", "-p", tmp, "-c", "nginx.conf", "-e", "error.log"]
        subprocess.run(["taskset", "-c", "0", *nginx], check=True)
        engine = subprocess.Popen(
            ["taskset", "-c", "0", sys.executable, __file__, "--serve", str(ENGINE), "--gate", args.gate],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        )
        try:
            for port in (BACKEND, NGINX, ENGINE):
                wait_port(port)
            report(args)
        finally:
            engine.send_signal(signal.SIGTERM)
            engine.wait(timeout=10)
            subprocess.run([*nginx, "-s", "stop"], check=False)


def report(args: argparse.Namespace) -> None:
    candidates = {
        "nginx": f"http://127.0.0.1:{NGINX}{args.path}",
        "sas-engine": f"http://127.0.0.1:{ENGINE}{args.path}",
    }
    options = {"duration": args.duration, "connections": args.connections, "headers": args.header}
    for url in candidates.values():  # warm up: pools, caches, CPU frequency
        wrk(url, **{**options, "duration": 2})
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in candidates}
    for round_ in range(args.rounds):
        for name, url in candidates.items():
            run = wrk(url, **options)
            runs[name].append(run)
            print(
                f"round {round_ + 1} {name:10s} {run['requests_per_s']:9.0f} req/s  p50 {run['p50_ms']:6.2f} ms"
                f"  p99 {run['p99_ms']:6.2f} ms  non-2xx {run['non_2xx']}"
            )
    medians = {name: statistics.median(r["requests_per_s"] for r in rs) for name, rs in runs.items()}
    print(f"\n{'candidate':10s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for name, rs in runs.items():
        p50 = statistics.median(r["p50_ms"] for r in rs)
        p99 = statistics.median(r["p99_ms"] for r in rs)
        print(f"{name:10s} {medians[name]:9.0f} {p50:8.2f} {p99:8.2f}")
    pairs = zip(runs["sas-engine"], runs["nginx"], strict=True)
    ratios = ", ".join(f"{e['requests_per_s'] / n['requests_per_s']:.2f}" for e, n in pairs)
    print(f"\nsas-engine / nginx: {medians['sas-engine'] / medians['nginx']:.2f} (rounds: {ratios})")
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    setup = f"medians of {args.rounds} x {args.duration} s, wrk -t1 -c{args.connections}"
    print(f"{setup}; {os.cpu_count()} cores, Python {sys.version.split()[0]}, {when}")
    if args.http2:
        http2(args, candidates["sas-engine"])


def http2(args: argparse.Namespace, url: str) -> None:
    """The engine over h2c: the same backend and gate, ``bench/h2load.py`` on core 1 (pure Python,
    so its own cost bounds the rate: compare HTTP/2 runs with each other)."""
    shapes = [(args.connections, 1), (10, 10)]  # one stream per connection; ten deep on ten
    print(f"\n{'http/2':18s} {'req/s':>9s} {'p50 ms':>8s} {'p99 ms':>8s}")
    for connections, streams in shapes:
        cmd = h2load_cmd(url, connections, streams, args.duration)
        runs = [
            json.loads(subprocess.run(cmd, capture_output=True, text=True, check=True).stdout)
            for _ in range(args.rounds)
        ]
        rate = statistics.median(r["requests_per_s"] for r in runs)
        p50 = statistics.median(r["p50_ms"] for r in runs)
        p99 = statistics.median(r["p99_ms"] for r in runs)
        bad = sum(r["non_2xx"] for r in runs)
        print(f"{f'{connections} conn x {streams}':18s} {rate:9.0f} {p50:8.2f} {p99:8.2f}  non-2xx {bad}")


if __name__ == "__main__":
    main()
