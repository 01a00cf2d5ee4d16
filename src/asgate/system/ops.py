"""Operational endpoints every server has: ``/healthz`` (open) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import json

from prometheus_client import CONTENT_TYPE_LATEST
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from asgate.system.runtime import Runtime

METRICS_SCOPE = "asgate-metrics"


class OpsRole:
    name = "ops"
    apis = ("healthz", "metrics")

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/metrics", self.metrics, methods=["GET"]),
        ]

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def healthz(self, request: Request) -> Response:
        """IETF health-check format: 200 "pass", or 503 "fail" when the database does not answer."""
        database = await self.rt.store.ping()
        body = {
            "status": "pass" if database else "fail",
            "checks": {"database": [{"status": "pass" if database else "fail"}]},
        }
        return Response(
            json.dumps(body),
            status_code=200 if database else 503,
            media_type="application/health+json",
            headers={"Cache-Control": "no-store"},
        )

    async def metrics(self, request: Request) -> Response:
        # Prometheus authenticates with its `oauth2` scrape option (client credentials, this scope).
        if not self.rt.settings.metrics_public:
            await self.rt.authenticate(request, METRICS_SCOPE)
        return Response(await self.rt.metrics.scrape(), media_type=CONTENT_TYPE_LATEST)
