"""Notifications over WebSocket, for applications that cannot take callbacks (behind NAT).

An application holds ``GET /mcx-registry/v1/notifications`` (WebSocket) open; the notifier sends it
the same notification body it would POST, and the application acknowledges with
``{"ack": <notificationId>}``. Only an acknowledged notification counts as delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect

from asgate import logs

_log = logs.get("asgate.registry.hub")


class NotificationHub:
    def __init__(self) -> None:
        self._sockets: dict[str, list[WebSocket]] = {}
        self._acks: dict[int, asyncio.Future[None]] = {}

    def connected(self) -> list[str]:
        return [app for app, sockets in self._sockets.items() if sockets]

    async def serve(self, websocket: WebSocket, app_id: str, on_connect: Callable[[], None]) -> None:
        """Hold one application's socket until it closes, resolving the acknowledgements it sends."""
        await websocket.accept()
        self._sockets.setdefault(app_id, []).append(websocket)
        on_connect()
        try:
            while True:
                message = await websocket.receive_json()
                ack = message.get("ack") if isinstance(message, dict) else None
                future = self._acks.get(ack) if isinstance(ack, int) else None
                if future is not None and not future.done():
                    future.set_result(None)
        except (WebSocketDisconnect, ValueError, KeyError):
            pass
        finally:
            self._sockets[app_id].remove(websocket)
            with contextlib.suppress(Exception):
                await websocket.close()

    async def deliver(
        self, app_id: str, notification_id: int, body: dict[str, Any], timeout: float
    ) -> str | None:
        """Send to the application's newest socket and wait for its ack; the error, or None."""
        sockets = self._sockets.get(app_id)
        if not sockets:
            return "no WebSocket connected"
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._acks[notification_id] = future
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
