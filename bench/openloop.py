"""An open-loop HTTP/1.1 load generator: requests at a fixed rate whatever the server does, latency
measured from when each request was *due* (no coordinated omission). Raw asyncio sockets and
pre-encoded requests, so one core sends several thousand requests a second.

    python bench/openloop.py URL --rate 2000 --duration 10 -H "Authorization: Bearer ..."
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Result:
    latencies: list[float] = field(default_factory=list)  # seconds, of 2xx responses
    statuses: Counter[int] = field(default_factory=Counter)
    errors: int = 0
    unsent: int = 0  # due, but the connection was still busy when the run ended (counts as failed)

    @property
    def sent(self) -> int:
        return sum(self.statuses.values()) + self.errors

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000

    def summary(self) -> dict[str, object]:
        ok = sum(n for status, n in self.statuses.items() if 200 <= status < 300)
        return {
            "sent": self.sent,
            "ok": ok,
            "success": ok / (self.sent + self.unsent) if self.sent + self.unsent else 0.0,
            "unsent": self.unsent,
            "p50_ms": round(self.percentile(50), 3),
            "p90_ms": round(self.percentile(90), 3),
            "p99_ms": round(self.percentile(99), 3),
            "max_ms": round(max(self.latencies) * 1000, 3) if self.latencies else None,
            "statuses": dict(self.statuses),
            "errors": self.errors,
            "mean_ms": round(statistics.fmean(self.latencies) * 1000, 3) if self.latencies else None,
        }


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return status


async def _connection(
    host: str, port: int, request: bytes, due: list[float], result: Result, source: str | None, end: float
) -> None:
    """Sends the requests whose due times it is given, one at a time, on one keep-alive connection."""
    local = (source, 0) if source else None
    reader, writer = await asyncio.open_connection(host, port, local_addr=local)
    clock = time.perf_counter  # not the loop's time(): uvloop's ticks in milliseconds
    try:
        for n, when in enumerate(due):
            if clock() > end:
                result.unsent += len(due) - n
                break
            delay = when - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                writer.write(request)
                status = await asyncio.wait_for(_read_response(reader), 10)
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                result.errors += 1
                writer.close()
                reader, writer = await asyncio.open_connection(host, port, local_addr=local)
                continue
            result.statuses[status] += 1
            if 200 <= status < 300:
                result.latencies.append(clock() - when)
    finally:
        writer.close()


async def run(
    url: str,
    rate: float,
    duration: float,
    headers: list[str],
    connections: int = 64,
    source: str | None = None,
) -> Result:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    lines = [
        f"GET {parts.path or '/'}{'?' + parts.query if parts.query else ''} HTTP/1.1",
        f"Host: {parts.netloc}",
    ]
    request = ("\r\n".join(lines + headers) + "\r\n\r\n").encode()
    result = Result()
    start = time.perf_counter() + 0.2
    total = int(rate * duration)
    schedule: list[list[float]] = [[] for _ in range(connections)]
    for i in range(total):
        schedule[i % connections].append(start + i / rate)
    end = start + duration + 2.0  # what is not sent by then is not sent
    await asyncio.gather(
        *(_connection(host, port, request, due, result, source, end) for due in schedule if due)
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("-H", "--header", action="append", default=[])
    parser.add_argument("--source", help="local address to send from (e.g. 127.0.0.2: another client host)")
    args = parser.parse_args()
    started = time.monotonic()
    runner: Callable[[Coroutine[Any, Any, Result]], Result]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:  # pragma: no cover - uvloop is a dependency of asgate
        runner = asyncio.run
    result = runner(run(args.url, args.rate, args.duration, args.header, args.connections, args.source))
    print(json.dumps({**result.summary(), "elapsed_s": round(time.monotonic() - started, 2)}))


if __name__ == "__main__":
    main()
