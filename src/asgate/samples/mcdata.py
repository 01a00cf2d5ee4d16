"""Sample MCData short data service (MCData, reference point MCData-cap-1, HTTP and streaming).

    POST /mcdata/sds                {"to", "payload", "contentType"?} -> 201 the message
    GET  /mcdata/sds/{messageId}    sender or recipient
    GET  /mcdata/inbox?after=N      the caller's messages, oldest first (after sequence N)
    GET  /mcdata/inbox/stream       server-sent events: one ``message`` event per new message,
                                    ``id`` = sequence; ``Last-Event-ID`` resumes after a
                                    reconnection; a comment every few seconds keeps it alive

A message records the ``Resource-Priority`` it was sent with and the sending application. The
stream is one long-lived HTTP response, so it exercises streaming through the SAS.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import count

from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from asgate.domain.registry import Resource
from asgate.kernel.web import parse_body, query_int, respond
from asgate.kernel.wire import WireModel
from asgate.samples.common import Sample, SampleSpec, Verify, build_sample, caller, forbidden, not_found

PREFIX = "/mcdata"
INBOX_LIMIT = 1000  # messages kept per user


class SdsSend(WireModel):
    to: str = Field(min_length=1, max_length=256)
    payload: str = Field(max_length=16 * 1024)
    content_type: str = Field(default="text/plain", max_length=128)


class SdsMessage(WireModel):
    message_id: str
    sequence: int
    from_: str = Field(alias="from")
    to: str
    payload: str
    content_type: str
    sent_at: datetime
    priority: str | None = None  # the Resource-Priority it was sent with
    application: str | None = None


class Inbox(WireModel):
    messages: list[SdsMessage]


@dataclass
class Mailboxes:
    """The inboxes of one MCData pool (shared by its instances) and their live streams."""

    keepalive: float = 15.0
    inboxes: dict[str, list[SdsMessage]] = field(default_factory=dict)
    by_id: dict[str, SdsMessage] = field(default_factory=dict)
    streams: dict[str, set[asyncio.Queue[SdsMessage | None]]] = field(default_factory=dict)
    _seq: count[int] = field(default_factory=lambda: count(1))

    def deliver(self, message: SdsMessage) -> None:
        inbox = self.inboxes.setdefault(message.to, [])
        inbox.append(message)
        self.by_id[message.message_id] = message
        if len(inbox) > INBOX_LIMIT:
            self.by_id.pop(inbox.pop(0).message_id, None)
        for queue in self.streams.get(message.to, ()):
            queue.put_nowait(message)

    def next_sequence(self) -> int:
        return next(self._seq)


def _event(message: SdsMessage) -> bytes:
    # WHATWG HTML 9.2 server-sent events: one JSON line as data, the sequence as the event id.
    return b"id: %d\nevent: message\ndata: %s\n\n" % (message.sequence, message.dump_json())


class _Handlers:
    """The routes of one MCData instance; ``close`` ends its open event streams."""

    def __init__(self, state: Mailboxes) -> None:
        self.state = state
        self.open_streams: set[asyncio.Queue[SdsMessage | None]] = set()

    async def send_sds(self, request: Request) -> Response:
        who = await caller(request)
        body = await parse_body(request, SdsSend, 64 * 1024)
        seq = self.state.next_sequence()
        message = SdsMessage(
            message_id=f"sds-{seq}",
            sequence=seq,
            from_=who.mc_service_id,
            to=body.to,
            payload=body.payload,
            content_type=body.content_type,
            sent_at=datetime.now(UTC),
            priority=who.priority,
            application=who.application,
        )
        self.state.deliver(message)
        return respond(message, 201, {"Location": f"{PREFIX}/sds/{message.message_id}"})

    async def get_sds(self, request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        message = self.state.by_id.get(request.path_params["message_id"])
        if message is None:
            raise not_found(f"message {request.path_params['message_id']!r}")
        if user not in (message.from_, message.to):
            raise forbidden("only the sender and the recipient may read a message")
        return respond(message)

    async def inbox(self, request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        after = query_int(request, "after", 0, 0, 2**62)
        return respond(Inbox(messages=[m for m in self.state.inboxes.get(user, []) if m.sequence > after]))

    async def stream(self, request: Request) -> Response:
        user = (await caller(request)).mc_service_id
        last = request.headers.get("last-event-id", "")
        return StreamingResponse(
            self._events(user, int(last) if last.isdigit() else None),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def _events(self, user: str, after: int | None) -> AsyncIterator[bytes]:
        queue: asyncio.Queue[SdsMessage | None] = asyncio.Queue()
        self.state.streams.setdefault(user, set()).add(queue)
        self.open_streams.add(queue)
        try:
            yield b"retry: 2000\n\n"
            sent = after or 0
            if after is not None:  # a reconnection: replay what it missed
                for missed in [m for m in self.state.inboxes.get(user, []) if m.sequence > after]:
                    sent = missed.sequence
                    yield _event(missed)
            while True:
                try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                    async with asyncio.timeout(self.state.keepalive):
                        message = await queue.get()
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                if message is None:  # the instance is stopping
                    return
                if message.sequence > sent:
                    sent = message.sequence
                    yield _event(message)
        finally:
            self.open_streams.discard(queue)
            with contextlib.suppress(KeyError):
                self.state.streams[user].discard(queue)

    def close(self) -> None:
        for queue in self.open_streams:
            queue.put_nowait(None)


def create(instance: str, state: Mailboxes, verify: Verify) -> Sample:
    """An MCData instance serving ``state``."""
    handlers = _Handlers(state)
    sample = build_sample(
        instance,
        [
            Route(f"{PREFIX}/sds", handlers.send_sds, methods=["POST"]),
            Route(f"{PREFIX}/sds/{{message_id}}", handlers.get_sds, methods=["GET"]),
            Route(f"{PREFIX}/inbox", handlers.inbox, methods=["GET"]),
            Route(f"{PREFIX}/inbox/stream", handlers.stream, methods=["GET"]),
        ],
        verify,
    )
    sample.on_close.append(handlers.close)
    return sample


SPEC = SampleSpec(
    name="mcdata",
    service_type="MCData",
    reference_point="MCData-cap-1",
    protocol="HTTP",
    api_prefix=PREFIX,
    resources=(
        Resource(resource_name="sds", comm_type="REQUEST_RESPONSE", uri="/sds", operations=["POST"]),
        Resource(
            resource_name="sds-message",
            comm_type="REQUEST_RESPONSE",
            uri="/sds/{messageId}",
            operations=["GET"],
        ),
        Resource(resource_name="inbox", comm_type="REQUEST_RESPONSE", uri="/inbox", operations=["GET"]),
        Resource(
            resource_name="inbox-stream",
            comm_type="SUBSCRIBE_NOTIFY",
            uri="/inbox/stream",
            operations=["GET"],
        ),
    ),
    new_state=Mailboxes,
    create=create,
)
