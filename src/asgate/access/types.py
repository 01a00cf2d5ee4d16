"""The interface between the SAS engine and the policy that decides about each request.

The engine parses and validates a request head, asks the :class:`Gate` once, and then either
answers the :class:`Reject` itself (no backend is contacted, the request body is never forwarded)
or forwards the request as the :class:`Admit` says.

Calling convention (no Task per request for fast gates): if the gate object has a method
``admit_nowait(head) -> Admit | Reject | None``, the engine calls it first, synchronously; a
non-``None`` answer is used as is. ``None`` (or no such method) makes the engine run
``await gate.admit(head)`` in a Task. A gate whose decisions are usually in memory (cached token
checks, in-memory profiles) should implement ``admit_nowait`` and return ``None`` only when it
must wait for I/O (a JWKS fetch, a Redis round trip, an admission queue); a ``None`` must leave
no trace (no token taken, no slot held), since ``admit`` then decides from scratch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from asgate.access.upstream import UpstreamPool

Header = tuple[bytes, bytes]


@dataclass(slots=True)
class RequestHead:
    method: str
    # Validated origin-form path without the query, still percent-encoded as received; decoding it
    # (once or several times, leniently or after NFKC) can never produce "/", "\\", NUL or a
    # dot-segment, with or without ";" parameters (validate.check_path guarantees this).
    path: str
    query: str
    headers: list[Header]
    client: tuple[str, int]
    upgrade: bool

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


@dataclass(slots=True)
class Admit:
    pool: UpstreamPool
    path: str
    set_request_headers: list[Header] = field(default_factory=list)
    drop_request_headers: frozenset[bytes] = frozenset()
    set_response_headers: list[Header] = field(default_factory=list)
    location_rewrite: tuple[str, str] | None = None
    max_body: int = 1 << 20
    max_ws_message: int = 1 << 20
    # Added to the engine's own refusals of this request (413, 502, 503, 504): CORS headers.
    refusal_headers: list[Header] = field(default_factory=list)
    # Called exactly once: with the status sent to the client (101 when a WebSocket tunnel ends),
    # or 0 when the client went away before the response was complete.
    on_done: Callable[[int], None] | None = None


@dataclass(slots=True)
class Reject:
    """A refusal answered with ``problem``; or, with status 204 and no problem, the gate's own empty
    answer (a CORS preflight). Either way nothing reaches an instance."""

    status: int
    problem: dict[str, Any]
    headers: list[Header] = field(default_factory=list)
    # Seconds before the next request on this connection is read. A client told to come back later
    # (429, 503 with Retry-After) that does not wait is slowed down rather than answered faster, so
    # a flood costs the server one cheap refusal per connection and hold, not one per request.
    hold: float = 0.0


class Gate(Protocol):
    async def admit(self, head: RequestHead) -> Admit | Reject: ...
