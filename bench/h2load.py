"""A closed-loop HTTP/2 load generator (h2c with prior knowledge) in Python, for when ``h2load``
(nghttp2-client) is not installed: ``connections`` connections with ``streams`` requests in
flight on each, for ``duration`` seconds; prints one JSON line with wrk's keys.

    python bench/h2load.py http://127.0.0.1:9010/x --connections 10 --streams 10 --duration 5

Its own cost is higher than wrk's (pure-Python framing): compare HTTP/2 runs with each other,
not with wrk's HTTP/1.1 numbers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from urllib.parse import urlsplit

import h2.config
import h2.connection
import h2.events


async def connection(
    host: str,
    port: int,
    path: str,
    extra: list[tuple[bytes, bytes]],
    streams: int,
    until: float,
    out: list[float],
) -> int:
    """One connection kept ``streams`` requests deep; appends latencies; returns the non-2xx count."""
    reader, writer = await asyncio.open_connection(host, port)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    headers = [
        (b":method", b"GET"),
        (b":path", path.encode()),
        (b":scheme", b"http"),
        (b":authority", b"bench"),
        *extra,
    ]
    started: dict[int, float] = {}
    statuses: dict[int, bytes] = {}
    bad = 0

    def start() -> None:
        stream_id = conn.get_next_available_stream_id()
        conn.send_headers(stream_id, headers, end_stream=True)
        started[stream_id] = time.perf_counter()

    for _ in range(streams):
        start()
    writer.write(conn.data_to_send())
    while started:
        data = await reader.read(65536)
        if not data:
            break
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                statuses[event.stream_id] = dict(event.headers)[b":status"]
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded | h2.events.StreamReset):
                begun = started.pop(event.stream_id, None)
                if begun is not None:
                    out.append(time.perf_counter() - begun)
                    if not statuses.pop(event.stream_id, b"").startswith(b"2"):
                        bad += 1
                    if time.perf_counter() < until:
                        start()
        writer.write(conn.data_to_send())
    writer.close()
    return bad


async def run(
    url: str, connections: int, streams: int, duration: float, headers: list[str] | None = None
) -> dict[str, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    extra = [
        (n.strip().lower().encode(), v.strip().encode())
        for n, _, v in (h.partition(":") for h in headers or [])
    ]
    latencies: list[float] = []
    begin = time.perf_counter()
    until = begin + duration
    bad = await asyncio.gather(
        *(connection(host, port, path, extra, streams, until, latencies) for _ in range(connections))
    )
    elapsed = time.perf_counter() - begin
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
        "non_2xx": sum(bad),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--connections", type=int, default=10)
    parser.add_argument("--streams", type=int, default=10)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("-H", "--header", action="append", default=[], help="'name: value' on every request")
    args = parser.parse_args()
    import uvloop

    print(json.dumps(uvloop.run(run(args.url, args.connections, args.streams, args.duration, args.header))))


if __name__ == "__main__":
    main()
