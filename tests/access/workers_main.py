"""Run the engine as worker processes for test_server.py: ``python -m tests.access.workers_main PORT N``.

Prints the listening port, then serves until SIGTERM. Each worker's gate tells its pid in a
response header, so the test can see which process answered.
"""

from __future__ import annotations

import os
import sys

from asgate.access.options import EngineOptions
from asgate.access.server import Workers
from asgate.access.types import Admit, Reject, RequestHead
from asgate.access.upstream import Endpoint, UpstreamPool


class PidGate:
    def __init__(self, backend_port: int) -> None:
        self.pool = UpstreamPool("gm", [Endpoint("b1", "127.0.0.1", backend_port)])
        self.pid = str(os.getpid()).encode()

    def admit_nowait(self, head: RequestHead) -> Admit | Reject | None:
        rest = head.path.split("/", 2)[2] if head.path.count("/") >= 2 else ""
        target = f"/api/{rest}" + (f"?{head.query}" if head.query else "")
        return Admit(self.pool, target, set_response_headers=[(b"x-worker", self.pid)])

    async def admit(self, head: RequestHead) -> Admit | Reject:
        decision = self.admit_nowait(head)
        assert decision is not None
        return decision


def main() -> None:
    backend_port, workers = int(sys.argv[1]), int(sys.argv[2])
    runner = Workers(
        lambda: PidGate(backend_port), EngineOptions(shutdown_grace=3.0), "127.0.0.1", 0, workers
    )
    print(runner.port, flush=True)  # noqa: T201 - the test reads it
    runner.run()


if __name__ == "__main__":
    main()
