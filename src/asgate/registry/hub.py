"""Notifications over WebSocket, for applications that cannot take callbacks (behind NAT).

An application holds ``GET /mcx-registry/v1/notifications`` (WebSocket) open; the notifier sends it
the same notification body it would POST, and the application acknowledges with
``{"ack": <notificationId>}``. Only an acknowledged notification counts as delivered, and only the
application it was sent to can acknowledge it: any other ``ack`` is answered with an error frame
(``{"problem": ProblemDetails}``) and changes nothing; one naming another application's
notification is reported to ``on_refused`` (the audit log).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from asgate.kernel import logs
from asgate.kernel.problem import Cause, InvalidParam, ProblemError

_log = logs.get("asgate.registry.hub")
# An application that keeps sending acknowledgements the hub refuses is probing: close after this many.
MAX_REFUSED_ACKS = 20
_INT64 = 2**63


class AckRefusal:
    """Why an acknowledgement was refused, for the audit log."""

    FOREIGN = "the notification was sent to another application"
    UNKNOWN = "no notification with that id awaits this application's acknowledgement"


# The application a notification (by id) was queued for, or None: from the outbox.
OwnerLookup = Callable[[int], Awaitable[str | None]]
# (acknowledging application, notification id, reason): the audit log.
Refused = Callable[[str, int, str], Awaitable[None]]


def ack_problem(value: Any) -> ProblemError:
    """The one answer to an acknowledgement that does not count, whatever the reason (it does not
    tell an application whether another application's notification exists)."""
    return ProblemError(
        404,
        Cause.CONTEXT_NOT_FOUND,
        AckRefusal.UNKNOWN,
        invalid_params=[InvalidParam(param="/ack", reason=str(value)[:40])],
    )


def ack_id(message: Any) -> tuple[bool, int | None]:
    """(is an ack message, the notification id if it is a valid one)."""
    if not isinstance(message, dict) or "ack" not in message:
        return False, None
    ack = message["ack"]
    if isinstance(ack, bool) or not isinstance(ack, int) or not 0 < ack < _INT64:
        return True, None
    return True, ack


class NotificationHub:
    def __init__(self, owner: OwnerLookup | None = None, on_refused: Refused | None = None) -> None:
        self._sockets: dict[str, list[WebSocket]] = {}
        # notification id -> (the application it was sent to, its acknowledgement)
        self._acks: dict[int, tuple[str, asyncio.Future[None]]] = {}
        self._owner = owner
        self._on_refused = on_refused

    def connected(self) -> list[str]:
        return [app for app, sockets in self._sockets.items() if sockets]

    async def serve(self, websocket: WebSocket, app_id: str, on_connect: Callable[[], None]) -> None:
        """Hold one application's socket until it closes, resolving the acknowledgements it sends."""
        await websocket.accept()
        self._sockets.setdefault(app_id, []).append(websocket)
        on_connect()
        refused = 0
        try:
            while refused < MAX_REFUSED_ACKS:
                message = await websocket.receive_json()
                is_ack, ack = ack_id(message)
                if not is_ack:
                    continue
                if ack is not None and self._acknowledge(app_id, ack):
                    continue
                if await self._refuse(websocket, app_id, ack, message["ack"]):
                    refused += 1
            await websocket.close(code=1008)  # RFC 6455 7.4.1: policy violation
        except (WebSocketDisconnect, ValueError, KeyError, RuntimeError):
            pass
        finally:
            self._sockets[app_id].remove(websocket)
            with contextlib.suppress(Exception):
                await websocket.close()

    def _acknowledge(self, app_id: str, notification_id: int) -> bool:
        """Resolve the pending acknowledgement if it was sent to ``app_id``; whether it was."""
        pending = self._acks.get(notification_id)
        if pending is None or pending[0] != app_id:
            return False
        if not pending[1].done():
            pending[1].set_result(None)
        return True

    async def _refuse(self, websocket: WebSocket, app_id: str, ack: int | None, raw: Any) -> bool:
        """Answer an acknowledgement that does not count; False when it is a late or repeated ack of
        the application's own notification (harmless: ignored without an answer)."""
        if ack is not None:
            pending = self._acks.get(ack)
            owner = pending[0] if pending is not None else None
            if owner is None and self._owner is not None:
                owner = await self._owner(ack)
            if owner == app_id:
                return False
            if owner is not None:
                _log.warning("acknowledgement of another application's notification", app=app_id, id=ack)
                if self._on_refused is not None:
                    await self._on_refused(app_id, ack, AckRefusal.FOREIGN)
        await websocket.send_json({"problem": ack_problem(raw).body()})
        return True

    async def deliver(
        self, app_id: str, notification_id: int, body: dict[str, Any], timeout: float
    ) -> str | None:
        """Send to the application's newest socket and wait for its ack; the error, or None."""
        sockets = self._sockets.get(app_id)
        if not sockets:
            return "no WebSocket connected"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[notification_id] = (app_id, future)
        try:
            await sockets[-1].send_json(body)
            async with asyncio.timeout(timeout):
                await future
        except TimeoutError:
            return "no acknowledgement on the WebSocket"
        except (RuntimeError, WebSocketDisconnect) as exc:
            return f"WebSocket closed: {exc}"
        finally:
            self._acks.pop(notification_id, None)
        return None
