"""The SAS engine's own HTTP/1.1 path, without sockets: one ``Downstream`` fed keep-alive
``GET /healthz`` requests (parse, checks, an ``Exchange``, the answer written), in-process.

    PYTHONPATH=src .venv/bin/python bench/sas_http1_path.py [LABEL]

Prints the best of 15 runs of 20,000 requests in microseconds per request. The minimum is
what the code costs; other load on the machine only adds to it, so compare minima of runs
alternated between two trees (``PYTHONPATH=<tree>/src``). Meant for changes on the hot path
(``asgate/access/http1.py``, ``exchange.py``), where wrk's numbers on a shared machine vary more
than the change could.
"""

from __future__ import annotations

import asyncio
import sys
import timeit
from typing import Any

from asgate.access.engine import Engine
from asgate.access.options import EngineOptions
from asgate.access.types import Admit, Reject, RequestHead

REQUEST = b"GET /healthz HTTP/1.1\r\nhost: sas\r\nuser-agent: bench\r\naccept: */*\r\n\r\n"


class Sink:
    """Enough of a transport for the engine: counts what is written."""

    def __init__(self) -> None:
        self.written = 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 1) if name == "peername" else default

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def close(self) -> None:
        pass


class NoGate:
    """/healthz never reaches the gate."""

    def admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
        raise AssertionError(head.path)

    async def admit(self, head: RequestHead) -> Admit | Reject:
        raise AssertionError(head.path)


async def main(label: str) -> None:
    engine = Engine(NoGate(), EngineOptions())
    conn = engine.protocol()
    sink = Sink()
    conn.connection_made(sink)  # type: ignore[arg-type]
    feed = conn.data_received
    for _ in range(1000):
        feed(REQUEST)
    best = min(timeit.repeat(lambda: feed(REQUEST), number=20_000, repeat=15)) / 20_000
    assert sink.written > 0
    print(f"{label} {best * 1e6:.2f} us per request (best of 15 x 20,000)")
    engine.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "engine"))
