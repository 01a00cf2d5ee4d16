"""What the demo shows: every HTTP exchange its parties make, recorded by an httpx transport.

Each party (the AS, the external application, the MC user's browser, the administrator, and the
embedded servers' own outgoing client) gets a :class:`RecordingTransport` that appends an
:class:`Exchange` to the shared :class:`Journal` as the response arrives. The registry's profile
notifications go out through aiohttp; :meth:`Journal.trace_config` records those.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import aiohttp
import httpx

# Headers worth showing: they carry the procedures' information elements.
_SHOWN = ("location", "resource-priority", "x-sample-instance", "asgate-sequence", "content-type")
# Never shown whole, even by a throwaway server: secrets hidden, tokens cut short.
_SECRET_FIELDS = frozenset({"password", "client_secret", "code_verifier", "refresh_token"})
_TOKEN_FIELDS = frozenset({"access_token", "id_token", "code", "handle", "csrf"})


@dataclass
class Exchange:
    """One request and its response, as the sending party saw them."""

    actor: str
    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes
    status: int
    response_headers: dict[str, str]
    response_body: bytes

    @property
    def path(self) -> str:
        """Path and query, decoded for reading."""
        parts = urlsplit(self.url)
        return unquote(parts.path + (f"?{parts.query}" if parts.query else ""))

    @property
    def request_json(self) -> Any:
        return _json(self.request_body, self.request_headers)

    @property
    def response_json(self) -> Any:
        return _json(self.response_body, self.response_headers)

    def summary(self) -> dict[str, Any]:
        """The exchange for ``asgate demo --json``."""
        return {
            "actor": self.actor,
            "method": self.method,
            "url": self.url,
            "status": self.status,
            "request": self.request_text(),
            "response": self.response_text(),
            "headers": {k: v for k, v in self.response_headers.items() if k in _SHOWN},
        }

    def request_text(self) -> str:
        """The request body with secrets hidden (JSON compact, forms decoded)."""
        if self.request_json is not None:
            return _dumps(self.request_json)
        if "x-www-form-urlencoded" in self.request_headers.get("content-type", ""):
            fields = parse_qsl(_text(self.request_body))
            return "&".join(f"{k}={hide(k, v)}" for k, v in fields)
        return _text(self.request_body)

    def response_text(self) -> str:
        """The response body with tokens cut short (JSON compact)."""
        if self.response_json is not None:
            return _dumps(self.response_json)
        return _text(self.response_body)


def hide(key: str, value: str) -> str:
    if key in _SECRET_FIELDS:
        return "•" * 8
    if key in _TOKEN_FIELDS:
        return value[:8] + "…"
    return value


def _redact(data: Any) -> Any:
    if isinstance(data, dict):
        return {k: hide(k, v) if isinstance(v, str) else _redact(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_redact(v) for v in data]
    return data


def _dumps(data: Any) -> str:
    return json.dumps(_redact(data), separators=(",", ":"), ensure_ascii=False)


def _json(body: bytes, headers: dict[str, str]) -> Any:
    if "json" not in headers.get("content-type", "") or not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _text(body: bytes) -> str:
    return body.decode("utf-8", "replace")


@dataclass
class Journal:
    """Every exchange so far, in the order the responses arrived."""

    exchanges: list[Exchange] = field(default_factory=list)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, exchange: Exchange) -> None:
        self.exchanges.append(exchange)
        self._changed.set()

    def mark(self) -> int:
        """A position: :meth:`since` returns what was recorded after it."""
        return len(self.exchanges)

    def since(self, mark: int, method: str | None = None, path: str = "") -> list[Exchange]:
        return [
            e
            for e in self.exchanges[mark:]
            if (method is None or e.method == method) and e.path.startswith(path)
        ]

    def last(self, mark: int, method: str, path: str) -> Exchange:
        """The last ``method`` request to a path starting with ``path`` since ``mark``."""
        found = self.since(mark, method, path)
        if not found:
            raise LookupError(f"no {method} {path} was sent")
        return found[-1]

    async def wait_for(self, predicate: Callable[[Exchange], bool], timeout: float = 10.0) -> Exchange:
        """The first exchange, recorded already or to come, that ``predicate`` accepts."""
        seen = 0
        async with asyncio.timeout(timeout):
            while True:
                for exchange in self.exchanges[seen:]:
                    if predicate(exchange):
                        return exchange
                seen = len(self.exchanges)
                self._changed.clear()
                await self._changed.wait()

    def transport(
        self, actor: str | Callable[[httpx.Request], str], *, keep_alive: bool = True
    ) -> RecordingTransport:
        limits = httpx.Limits(max_keepalive_connections=None if keep_alive else 0)
        return RecordingTransport(self, actor, httpx.AsyncHTTPTransport(limits=limits))

    def trace_config(self, actor: str) -> aiohttp.TraceConfig:
        """Records what an aiohttp session sends under ``actor`` (response bodies are not shown:
        a notification's answer is a bare 2xx)."""
        trace = aiohttp.TraceConfig()

        async def chunk_sent(
            _: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestChunkSentParams
        ) -> None:
            ctx.body = getattr(ctx, "body", b"") + params.chunk

        async def ended(_: aiohttp.ClientSession, ctx: Any, params: aiohttp.TraceRequestEndParams) -> None:
            self.add(
                Exchange(
                    actor=actor,
                    method=params.method,
                    url=str(params.url),
                    request_headers={k.lower(): v for k, v in params.response.request_info.headers.items()},
                    request_body=getattr(ctx, "body", b""),
                    status=params.response.status,
                    response_headers={k.lower(): v for k, v in params.response.headers.items()},
                    response_body=b"",
                )
            )

        trace.on_request_chunk_sent.append(chunk_sent)
        trace.on_request_end.append(ended)
        return trace


class RecordingTransport(httpx.AsyncBaseTransport):
    """An HTTP transport that records each exchange in ``journal`` under ``actor`` (a name, or a
    function of the request for a client several parties share), sending through ``inner``."""

    def __init__(
        self,
        journal: Journal,
        actor: str | Callable[[httpx.Request], str],
        inner: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._journal = journal
        self._actor = actor
        self._inner = inner or httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        response = await self._inner.handle_async_request(request)
        try:
            content = await response.aread()
        finally:
            await response.aclose()
        actor = self._actor if isinstance(self._actor, str) else self._actor(request)
        self._journal.add(
            Exchange(
                actor=actor,
                method=request.method,
                url=str(request.url),
                request_headers={k.lower(): v for k, v in request.headers.items()},
                request_body=body,
                status=response.status_code,
                response_headers={k.lower(): v for k, v in response.headers.items()},
                response_body=content,
            )
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=content,
            extensions=response.extensions,
            request=request,
        )

    async def aclose(self) -> None:
        await self._inner.aclose()
