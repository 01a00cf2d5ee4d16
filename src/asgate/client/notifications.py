"""Notify application profile (seed 10.X.4 steps 2-3, Tables 10.X.2.7/8) as an external application
receives it, in one of two ways:

* :class:`CallbackListener`: a small HTTP/1.1 server (loopback by default) that the registry POSTs
  the notification to (the ``notificationDestination``); it answers 204 to a valid one;
* :class:`WebSocketListener`: the registry's ``GET /mcx-registry/v1/notifications`` WebSocket, for
  an application that cannot take callbacks (behind NAT); every notification is acknowledged with
  ``{"ack": notificationId}`` and the socket is reopened with backoff when it drops.

Either hands each valid :class:`ProfileNotification` to a handler at once; fetching the profile and
reconfiguring (steps 4-6) is :class:`asgate.client.reconfigure.Reconfigurer`'s job, so a slow
application never delays the answer the registry waits for.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import Any

import httpx
from pydantic import ValidationError
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus, WebSocketException

from asgate.kernel import logs
from asgate.kernel.backoff import backoff
from asgate.kernel.problem import Cause, ProblemDetails, ProblemError, problem_body
from asgate.kernel.wire import WIRE
from asgate.registry.models import ProfileNotification

_log = logs.get("asgate.client.notifications")
Handler = Callable[[ProfileNotification], None]
_MAX_HEAD = 16 * 1024
TRANSIENT = (httpx.HTTPError, OSError, TimeoutError, WebSocketException)


def parse_notification(raw: bytes | str) -> ProfileNotification:
    """A notification body as the registry sends it; raises ``ValueError`` on anything else."""
    return ProfileNotification.model_validate_json(raw, context=WIRE)


# ---------------------------------------------------------------- HTTP callbacks


class CallbackListener:
    """Receives ``POST {path}`` with a :class:`ProfileNotification` and answers 204 (any 2xx is a
    success for the registry, Table 10.X.2.8-1); an invalid body gets 400, another path 404,
    another method 405. The path is unguessable by default, so that only the registry (which
    is told the URL) can reach the handler.

    ``public_url``: the URL to give the registry when it must differ from the listening address
    (a port forward, a reverse proxy); by default ``http://{host}:{port}{path}``.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str | None = None,
        public_url: str | None = None,
        max_body: int = 64 * 1024,
        idle_timeout: float = 30.0,
    ) -> None:
        self._handler = handler
        self.host = host
        self.port = port
        self.path = path or f"/notify/{secrets.token_urlsafe(16)}"
        if not self.path.startswith("/"):
            raise ValueError("path must start with /")
        if host in ("", "0.0.0.0", "::") and not public_url:  # noqa: S104 - refused, not bound
            raise ValueError(
                f"listening on every interface ({host!r}): give public_url, the URL the registry uses"
            )
        self._public_url = public_url
        self._max_body = max_body
        self._idle = idle_timeout
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[Any]] = set()
        self.received = 0  # valid notifications answered 204

    @property
    def destination(self) -> str:
        """The ``notificationDestination`` to authorize with."""
        if self._public_url:
            return self._public_url
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port, limit=_MAX_HEAD)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._connections):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._connections.add(task)
        try:
            keep_alive = True
            while keep_alive:
                async with asyncio.timeout(self._idle):
                    head = await reader.readuntil(b"\r\n\r\n")
                    status, keep_alive, body = await self._exchange(head, reader)
                writer.write(_response(status, keep_alive))
                await writer.drain()
                if status == 204 and body is not None:
                    self.received += 1
                    self._handler(body)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            pass
        finally:
            if task is not None:
                self._connections.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _exchange(
        self, head: bytes, reader: asyncio.StreamReader
    ) -> tuple[int, bool, ProfileNotification | None]:
        """Read one request; its status, whether the connection may stay open, the notification."""
        try:
            request_line, *lines = head.decode("latin-1").split("\r\n")
            method, target, version = request_line.split(" ", 2)
            headers = dict(_header(line) for line in lines if line)
        except ValueError:
            return 400, False, None
        keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
        if "transfer-encoding" in headers:
            return 411, False, None  # the registry sends Content-Length; nothing else is needed
        try:
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return 400, False, None
        if length > self._max_body or length < 0:
            return 413, False, None
        raw = await reader.readexactly(length)
        if target.split("?", 1)[0] != self.path:
            return 404, keep_alive, None
        if method != "POST":
            return 405, keep_alive, None
        try:
            return 204, keep_alive, parse_notification(raw)
        except ValueError:
            return 400, keep_alive, None


def _header(line: str) -> tuple[str, str]:
    name, sep, value = line.partition(":")
    if not sep:
        raise ValueError("malformed header")
    return name.strip().lower(), value.strip()


def _response(status: int, keep_alive: bool) -> bytes:
    phrase = HTTPStatus(status).phrase
    head = f"HTTP/1.1 {status} {phrase}\r\n"
    if status == 204:
        body = b""
    else:
        cause = Cause.INVALID_MSG_FORMAT if status == 400 else Cause.UNSPECIFIED_MSG_FAILURE
        body = json.dumps(problem_body(status, cause)).encode()
        head += f"Content-Type: application/problem+json\r\nContent-Length: {len(body)}\r\n"
    head += "Connection: keep-alive\r\n" if keep_alive else "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


# ---------------------------------------------------------------- WebSocket


class WebSocketListener:
    """Holds the registry's notification WebSocket open with the application's token.

    ``start()`` opens it once and raises if that fails (a wrong URL or refused credentials show at
    once); afterwards it is reopened after any drop, with exponential backoff and jitter, and the
    registry sends again whatever was not acknowledged."""

    destination = "websocket"

    def __init__(
        self,
        url: str,
        token: Callable[[], Awaitable[str]],
        handler: Handler,
        *,
        retry_initial: float = 0.5,
        retry_max: float = 30.0,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self._token = token
        self._handler = handler
        self._retry = (retry_initial, retry_max)
        self._open_timeout = open_timeout
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.connections = 0  # sockets opened so far (1 + reconnections)
        self.received = 0  # notifications acknowledged

    async def start(self) -> None:
        socket = await self._connect()
        self._task = asyncio.create_task(self._run(socket), name="asgate-notification-socket")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected.clear()

    async def _connect(self) -> ClientConnection:
        headers = {"Authorization": f"Bearer {await self._token()}"}
        try:
            socket = await connect(self.url, additional_headers=headers, open_timeout=self._open_timeout)
        except InvalidStatus as exc:
            raise problem_of_handshake(exc) from None
        self.connections += 1
        self.connected.set()
        return socket

    async def _run(self, socket: ClientConnection | None) -> None:
        failures = 0
        while True:
            if socket is None:
                try:
                    socket = await self._connect()
                except (ProblemError, *TRANSIENT) as exc:
                    failures += 1
                    await self._back_off(failures, exc)
                    continue
            try:
                failures = 0
                await self._serve(socket)
            except TRANSIENT as exc:
                _log.info("notification socket dropped", error=str(exc) or type(exc).__name__)
            finally:
                self.connected.clear()
                with contextlib.suppress(*TRANSIENT):
                    await socket.close()
                socket = None
            failures += 1
            await self._back_off(failures, None)

    async def _serve(self, socket: ClientConnection) -> None:
        async for raw in socket:
            try:
                note = parse_notification(raw)
            except ValueError as exc:
                _log.warning("not a notification; ignored", error=str(exc)[:200])
                continue
            if note.notification_id is not None:
                # seed 10.X.4 step 3: the application answers the notification (here: its ack).
                await socket.send(json.dumps({"ack": note.notification_id}))
            self.received += 1
            self._handler(note)

    async def _back_off(self, attempt: int, error: BaseException | None) -> None:
        delay = backoff(attempt, *self._retry)
        if error is not None:
            _log.warning(
                "notification socket unavailable; retrying",
                error=str(error) or type(error).__name__,
                retry_in=round(delay, 2),
            )
        await asyncio.sleep(delay)


def problem_of_handshake(exc: InvalidStatus) -> ProblemError:
    """A refused WebSocket handshake as the server's own :class:`ProblemError`."""
    response = exc.response
    try:
        problem = ProblemDetails.model_validate_json(response.body or b"")
    except (ValidationError, ValueError):
        problem = ProblemDetails()
    if problem.status is None:
        detail = (response.body or b"").decode("utf-8", "replace")[:200] or response.reason_phrase
        cause = Cause.INVALID_TOKEN if response.status_code in (401, 403) else Cause.UNSPECIFIED_MSG_FAILURE
        return ProblemError(response.status_code, cause, f"WebSocket refused: {detail}")
    return ProblemError.from_problem(problem)
