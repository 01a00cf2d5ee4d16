"""Sample MCPTT signalling over WebSocket (MCPTT, reference point MCPTT-1, protocol WebSocket).

``GET /mcptt/signalling`` upgrades to a WebSocket (subprotocol ``sip`` when offered, RFC 7118).
Each text message is a SIP-like request (RFC 3261 7.1: request line, header fields, blank line,
body); each gets one SIP-like response:

- ``INVITE``, ``BYE``, ``OPTIONS``: ``200 OK``;
- ``MESSAGE`` to ``sip:<mc service id>``: relayed to that user's open connections (``From`` set
  to the caller the SAS asserted), ``200 OK``; ``480 Temporarily Unavailable`` when none is open;
- anything else ``501 Not Implemented``; unparsable text ``400 Bad Request``.

Every response copies ``Via``, ``From``, ``To``, ``Call-ID`` and ``CSeq``, names the caller in
``P-Asserted-Identity`` and the instance in ``X-Sample-Instance``, and indicates the priority:
``Resource-Priority`` is the one the message carried, else the one of the HTTP upgrade;
``X-Upgrade-Resource-Priority`` is the upgrade's (RFC 4412; the SAS admitted the upgrade with it).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from asgate.domain.registry import Resource
from asgate.kernel.problem import ProblemError, render
from asgate.samples.common import Caller, Sample, SampleSpec, Verify, build_sample, caller

PREFIX = "/mcptt"
_COPIED = ("via", "from", "to", "call-id", "cseq")
_ALLOW = "INVITE, BYE, OPTIONS, MESSAGE"


@dataclass(frozen=True)
class SipRequest:
    method: str
    uri: str
    headers: tuple[tuple[str, str], ...]
    body: str

    def header(self, name: str) -> str | None:
        name = name.lower()
        return next((value for key, value in self.headers if key.lower() == name), None)


def parse_request(text: str) -> SipRequest | None:
    """A SIP-like request, or None when ``text`` is not one."""
    head, _, body = text.replace("\r\n", "\n").partition("\n\n")
    lines = head.split("\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or parts[2] != "SIP/2.0" or not parts[0].isalpha() or not parts[0].isupper():
        return None
    headers = []
    for line in lines[1:]:
        name, colon, value = line.partition(":")
        if not colon or not name.strip():
            return None
        headers.append((name.strip(), value.strip()))
    return SipRequest(parts[0], parts[1], tuple(headers), body)


def render_response(
    request: SipRequest, status: int, reason: str, headers: list[tuple[str, str]], body: str = ""
) -> str:
    """A SIP-like response to ``request`` (CRLF line ends, Content-Length last)."""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in request.headers if name.lower() in _COPIED]
    lines += [f"{name}: {value}" for name, value in headers]
    lines.append(f"Content-Length: {len(body.encode())}")
    return "\r\n".join(lines) + "\r\n\r\n" + body


@dataclass
class Registrations:
    """Open signalling connections per MC user, shared by the instances of one pool."""

    connections: dict[str, set[WebSocket]] = field(default_factory=dict)


def _user_of(uri: str) -> str:
    return uri.removeprefix("sip:").removeprefix("<").removesuffix(">").removeprefix("sip:")


class _Session:
    def __init__(self, instance: str, state: Registrations, ws: WebSocket, who: Caller) -> None:
        self.instance = instance
        self.state = state
        self.ws = ws
        self.who = who

    async def answer(self, text: str) -> str:
        request = parse_request(text)
        if request is None:
            return (
                "SIP/2.0 400 Bad Request\r\n"
                + f"X-Sample-Instance: {self.instance}\r\nContent-Length: 0\r\n\r\n"
            )
        headers = [
            ("P-Asserted-Identity", f"<sip:{self.who.mc_service_id}>"),
            ("X-Sample-Instance", self.instance),
        ]
        priority = request.header("Resource-Priority") or self.who.priority
        if priority:
            headers.append(("Resource-Priority", priority))
        if self.who.priority:
            headers.append(("X-Upgrade-Resource-Priority", self.who.priority))
        if request.method in ("INVITE", "BYE"):
            return render_response(request, 200, "OK", headers)
        if request.method == "OPTIONS":
            return render_response(request, 200, "OK", [*headers, ("Allow", _ALLOW)])
        if request.method == "MESSAGE":
            delivered = await self.relay(request, priority)
            if not delivered:
                return render_response(request, 480, "Temporarily Unavailable", headers)
            return render_response(request, 200, "OK", headers)
        return render_response(request, 501, "Not Implemented", [*headers, ("Allow", _ALLOW)])

    async def relay(self, request: SipRequest, priority: str | None) -> int:
        """Send the MESSAGE to every open connection of its target; how many got it."""
        target = _user_of(request.uri)
        relayed = [
            f"MESSAGE {request.uri} SIP/2.0",
            f"From: <sip:{self.who.mc_service_id}>",
            f"To: <{request.uri}>",
        ]
        relayed += [
            f"{k}: {v}" for k, v in request.headers if k.lower() in ("call-id", "cseq", "content-type")
        ]
        if priority:
            relayed.append(f"Resource-Priority: {priority}")
        text = (
            "\r\n".join([*relayed, f"Content-Length: {len(request.body.encode())}"])
            + "\r\n\r\n"
            + request.body
        )
        delivered = 0
        for peer in list(self.state.connections.get(target, ())):
            with contextlib.suppress(RuntimeError, OSError, WebSocketDisconnect):  # a peer that just left
                await peer.send_text(text)
                delivered += 1
        return delivered


def create(instance: str, state: Registrations, verify: Verify) -> Sample:
    """An MCPTT signalling instance serving ``state``."""

    async def signalling(ws: WebSocket) -> None:
        try:
            who = await caller(ws)
        except ProblemError as exc:
            await ws.send_denial_response(render(exc, instance=ws.url.path))
            return
        offered = ws.scope.get("subprotocols") or []
        await ws.accept(subprotocol="sip" if "sip" in offered else None)
        session = _Session(instance, state, ws, who)
        mine = state.connections.setdefault(who.mc_service_id, set())
        mine.add(ws)
        try:
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                if message.get("text") is None:  # RFC 7118 allows binary frames; this sample does not
                    await ws.close(1003, "text messages only")
                    return
                await ws.send_text(await session.answer(message["text"]))
        finally:
            mine.discard(ws)

    return build_sample(instance, [WebSocketRoute(f"{PREFIX}/signalling", signalling)], verify)


SPEC = SampleSpec(
    name="mcptt",
    service_type="MCPTT",
    reference_point="MCPTT-1",
    protocol="WebSocket",
    api_prefix=PREFIX,
    resources=(
        Resource(
            resource_name="signalling",
            comm_type="SUBSCRIBE_NOTIFY",
            uri="/signalling",
            operations=["GET"],
            description="WebSocket (subprotocol sip): SIP-like INVITE, MESSAGE, BYE, OPTIONS",
        ),
    ),
    new_state=Registrations,
    create=create,
)
