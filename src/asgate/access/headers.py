"""Pure header rewriting between the client and a backend (RFC 9110 7.6.1, RFC 9112 6/7).

Hop-by-hop fields never cross the proxy; framing is rebuilt by the engine; the fields the gate
sets (identities, assertion, priority) are dropped from the client's request first, in any case
and spelt with ``_`` for ``-``; responses lose
everything that names or fingerprints a backend (``Server``, ``Via``, ``X-Powered-By``) and their
``Location`` is mapped from the backend's prefix to the public one.
"""

from __future__ import annotations

from collections.abc import Collection

from asgate.access.errors import STATUS_LINES, status_line
from asgate.access.types import Admit, Header

# RFC 9110 7.6.1: Connection and the fields it names are for one hop only; Keep-Alive,
# Proxy-Connection, TE, Transfer-Encoding and Upgrade are listed there as hop-by-hop too;
# Proxy-Authenticate/-Authorization (RFC 9110 11.7) are for the proxy, not the origin.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"content-length",  # re-framed by the engine
    }
)
# The client may not speak for the proxy: these are set by the engine alone, or (the other
# de-facto "who is the client" fields, RFC 7239 and its predecessors) by no one.
_REQUEST_DROP = HOP_BY_HOP | {
    b"expect",
    b"forwarded",
    b"x-forwarded-for",
    b"x-forwarded-proto",
    b"x-forwarded-host",
    b"x-forwarded-port",
    b"x-forwarded-prefix",
    b"x-real-ip",
}
# The access server alone answers for cross-origin use (asgate.kernel.cors): a service's own CORS fields
# (an "Access-Control-Allow-Origin: *" of a framework default) never reach a browser.
_RESPONSE_DROP = HOP_BY_HOP | {
    b"server",
    b"via",
    b"x-powered-by",
    b"access-control-allow-origin",
    b"access-control-allow-credentials",
    b"access-control-allow-methods",
    b"access-control-allow-headers",
    b"access-control-expose-headers",
    b"access-control-max-age",
}
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def request_head(
    method: str,
    admit: Admit,
    headers: list[Header],
    connection_names: Collection[bytes],
    *,
    client_ip: str,
    scheme: str,
    length: int | None,
    chunked: bool,
    websocket: bool = False,
    host: str | None = None,
) -> bytes:
    """The head sent to the backend: origin-form ``admit.path``, HTTP/1.1, keep-alive.

    ``host`` is added when the client sent none (HTTP/1.0).
    """
    extra = admit.set_request_headers
    skip = _REQUEST_DROP
    if extra or connection_names or admit.drop_request_headers:
        skip = skip | admit.drop_request_headers | set(connection_names) | {name for name, _ in extra}
    parts = [method.encode(), b" ", admit.path.encode("ascii"), b" HTTP/1.1\r\n"]
    for name, value in headers:
        # Many servers read "_" as "-" (CGI/WSGI environ keys, some proxies and frameworks), so
        # "Asgate_MC_Service_Id" or "Transfer_Encoding" would pass for the field the SAS controls.
        if name not in skip and (b"_" not in name or name.replace(b"_", b"-") not in skip):
            parts += [name, b": ", value, b"\r\n"]
    for name, value in extra:
        parts += [name, b": ", value, b"\r\n"]
    if host is not None:  # RFC 9112 3.2: an HTTP/1.1 request has a Host (an HTTP/1.0 client may omit it)
        parts += [b"host: ", host.encode("ascii"), b"\r\n"]
    parts += [b"x-forwarded-for: ", client_ip.encode(), b"\r\nx-forwarded-proto: ", scheme.encode(), b"\r\n"]
    if websocket:
        parts.append(b"connection: upgrade\r\nupgrade: websocket\r\n")
    elif chunked:
        parts.append(b"transfer-encoding: chunked\r\n")
    elif length is not None:
        parts.append(b"content-length: %d\r\n" % length)
    elif method in _BODY_METHODS:
        parts.append(b"content-length: 0\r\n")
    parts.append(b"\r\n")
    return b"".join(parts)


def response_head(
    status: int, headers: list[Header], admit: Admit, backend_authorities: Collection[str]
) -> tuple[list[bytes], bytes | None]:
    """The client's response head (without framing lines and the final CRLF) and the backend's
    Content-Length, if any. ``headers`` are as received (any case)."""
    extra = admit.set_response_headers
    # Vary is a list: the gate's "Vary: Origin" is one more field line, the service's stays.
    replaced = {name for name, _ in extra if name != b"vary"} if extra else ()
    parts = [STATUS_LINES.get(status) or status_line(status)]
    length = None
    named: set[bytes] | None = None
    for raw, value in headers:
        name = raw.lower()
        if name in _RESPONSE_DROP:
            if name == b"content-length":
                length = value
            elif name == b"connection" and value.lower() not in _PLAIN_CONNECTION:
                named = (named or set()) | {t.strip().lower() for t in value.split(b",")}
            continue
        if name in replaced:
            continue
        if name == b"location" or name == b"content-location":
            value = rewrite_location(value, admit.location_rewrite, backend_authorities)
        parts += [raw, b": ", value, b"\r\n"]
    if named:
        # RFC 9110 7.6.1: the fields Connection names are hop-by-hop too (rare: filter again).
        parts = [parts[0]] + [
            p for i in range(1, len(parts), 4) if parts[i].lower() not in named for p in parts[i : i + 4]
        ]
    for name, value in extra:
        parts += [name, b": ", value, b"\r\n"]
    return parts, length


_PLAIN_CONNECTION = frozenset({b"keep-alive", b"close"})


def rewrite_location(
    value: bytes, rewrite: tuple[str, str] | None, backend_authorities: Collection[str]
) -> bytes:
    """Map a backend URI reference to the public one.

    RFC 9110 10.2.2: Location is a URI-reference. An absolute URI naming a backend of the pool
    loses its scheme and authority (the client must not learn them); a path under the backend's
    prefix is moved under the public prefix. Other absolute URIs (another server) stay as they are.
    """
    text = value.decode("latin-1")
    lowered = text[:8].lower()
    if lowered.startswith(("http://", "https://")):
        rest = text.split("://", 1)[1]
        cut = min((i for i in (rest.find("/"), rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
        authority = rest[:cut].rpartition("@")[2].lower()
        if authority not in backend_authorities:
            return value
        text = rest[cut:] or "/"
        if not text.startswith("/"):
            text = "/" + text
    if rewrite is not None and text.startswith("/"):
        backend, public = rewrite
        backend = backend.rstrip("/")
        if text == backend or text.startswith((backend + "/", backend + "?", backend + "#")):
            text = public.rstrip("/") + text[len(backend) :]
            if not text.startswith("/"):
                text = "/" + text
    return text.encode("latin-1")
