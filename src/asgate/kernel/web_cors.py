"""CORS on the control-plane endpoints a browser application calls (issue 9 item 3): OpenID
Connect discovery and keys, the token, revocation and userinfo endpoints, and CSC-14 (discovery,
authorization, profile retrieval). Not the administrator APIs, not the sign-in page (which a browser
reaches by navigation, never by ``fetch()``), not the service or CSC-15 APIs (no browser calls them).

The origins allowed are those the administrator allowed any external application (the union: a
preflight carries no client id, and the token endpoint is where the client proves who it is). No
``Access-Control-Allow-Credentials``: these endpoints authenticate with bearer tokens, client
credentials or a PKCE code, never with cookies, so a page never needs the browser's cookies sent
along, and the IdM's sign-in cookie never rides on a response a page can read.

The layer sits outside every other, so the answers rendered for errors carry the fields too. Every
answer on these paths says ``Vary: Origin``; other paths pass through untouched.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from asgate.kernel import cors
from asgate.kernel.problem import PROBLEM_JSON, problem_body

# The endpoints of a browser application: exact paths, and CSC-14 by prefix.
PATHS = frozenset(
    {
        "/oauth2/token",
        "/oauth2/revoke",
        "/userinfo",
        "/oauth2/jwks",
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    }
)
PREFIXES = ("/mcx-registry/v1/",)
METHODS = frozenset({"GET", "HEAD", "POST"})
REFRESH_SECONDS = 5.0  # an origin the administrator allows or removes takes effect within this


def browser_path(path: str) -> bool:
    return path in PATHS or path.startswith(PREFIXES)


class AllowedOrigins:
    """The union of every external application's allowed origins, read from the store at most
    every ``refresh`` seconds (by one caller at a time), so the CLI's changes show without a restart."""

    def __init__(
        self,
        load: Callable[[], Awaitable[set[str]]],
        refresh: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._refresh = refresh
        self._clock = clock
        self._origins: frozenset[bytes] = frozenset()
        self._expires = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> frozenset[bytes]:
        if self._clock() < self._expires:
            return self._origins
        async with self._lock:
            if self._clock() >= self._expires:
                self._origins = frozenset(o.encode() for o in await self._load())
                self._expires = self._clock() + self._refresh
        return self._origins


class CorsMiddleware:
    def __init__(self, app: ASGIApp, origins: AllowedOrigins) -> None:
        self.app = app
        self.origins = origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not browser_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])  # a browser sends each of these fields once
        origin = headers.get(cors.ORIGIN)
        allowed = origin is not None and origin in await self.origins.current()
        method = headers.get(cors.REQUEST_METHOD)
        if origin is not None and scope["method"] == "OPTIONS" and method is not None:
            await self._preflight(send, origin, method, headers.get(cors.REQUEST_HEADERS), allowed)
            return
        # Every answer of these endpoints varies by Origin (discovery and keys are cacheable): RFC
        # 9111 4.1, so no cache hands one origin's answer, or a no-Origin one, to another.
        extra = cors.actual_headers(origin, credentials=False) if allowed and origin else [cors.VARY]

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                kept = [
                    (n, v)
                    for n, v in message.get("headers", [])
                    if not n.lower().startswith(b"access-control-")
                ]
                message["headers"] = [*kept, *extra]
            await send(message)

        await self.app(scope, receive, send_with_cors)

    async def _preflight(
        self, send: Send, origin: bytes, method: bytes, requested: bytes | None, allowed: bool
    ) -> None:
        granted = cors.preflight_method(method, METHODS) if allowed else None
        if granted is None:
            detail = "this origin may not call this endpoint" if not allowed else "method not allowed"
            cause = "ORIGIN_NOT_ALLOWED" if not allowed else "METHOD_NOT_ALLOWED"
            body = json.dumps(problem_body(403, cause, detail)).encode()
            head = [(b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": 403, "headers": head})
            await send({"type": "http.response.body", "body": body})
            return
        head = cors.preflight_headers(origin, granted, requested, credentials=False)
        await send({"type": "http.response.start", "status": 204, "headers": head})
        await send({"type": "http.response.body", "body": b""})
