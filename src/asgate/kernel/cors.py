"""Cross-origin resource sharing (Fetch Standard, "CORS protocol") for browser applications: the
origins an administrator allows an external application, and the headers both the service access
server and the control plane answer with. Pure.

An allowed origin is stored as a browser serializes it (Fetch / HTML "serialization of an origin"):
``scheme://host[:port]``, scheme and host in lower case, an internationalised name in its ASCII
(punycode) form, no default port, no path, query, fragment or user-info. A request's ``Origin`` is
then compared byte for byte with that set: a browser always sends that exact form, so there is no
second parser on the request path to disagree with the first (``HTTPS://Console.Example``,
``https://console.example:443``, ``https://console.example.evil.test`` or ``null`` never match).

``*`` is refused: answers are for credentialed requests (a bearer token, maybe cookies), and the
Fetch Standard forbids a wildcard with credentials anyway.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

SCHEMES = {"http": 80, "https": 443}
MAX_ORIGINS = 32
MAX_ORIGIN_LENGTH = 300
ORIGIN = b"origin"
REQUEST_METHOD = b"access-control-request-method"
REQUEST_HEADERS = b"access-control-request-headers"
# Methods a preflight may be granted (the gate still decides the actual request, which then gets
# its 403 with CORS headers, so the application can read why).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
# Request headers a browser application may send (lower case). The identity headers the SAS sets
# itself (asgate-mc-service-id, asgate-application, the assertion) are never among them.
ALLOWED_HEADERS = frozenset(
    {
        "authorization",
        "content-type",
        "accept",
        "accept-language",
        "content-language",
        "if-match",
        "if-none-match",
        "if-modified-since",
        "if-unmodified-since",
        "resource-priority",  # RFC 8101: the MC communication priority
        "x-request-id",
    }
)
# Response headers a browser application may read beyond the CORS-safelisted ones.
EXPOSED = b"Location, Retry-After, WWW-Authenticate, ETag, Resource-Priority, X-Request-Id"
VARY = (b"vary", b"Origin")
MAX_AGE = b"600"  # seconds a browser may cache a preflight (Chromium caps it at 7200)


def normalise_origin(text: str) -> str:
    """The serialized origin of ``text`` or ValueError saying what is wrong with it."""
    if not isinstance(text, str) or not text or len(text) > MAX_ORIGIN_LENGTH:
        raise ValueError(f"an origin is 1 to {MAX_ORIGIN_LENGTH} characters")
    if text.strip() == "*":
        raise ValueError("'*' is not allowed: list each origin (credentialed requests)")
    if text.strip().lower() == "null":
        raise ValueError("the 'null' origin (sandboxed frames, file: pages) cannot be allowed")
    if not text.isprintable() or any(c.isspace() for c in text):
        raise ValueError("an origin has no spaces or control characters")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise ValueError("not a valid origin, e.g. https://console.example") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError("an origin's scheme is http or https")
    if parts.path or parts.query or parts.fragment or text.endswith(("?", "#")):
        raise ValueError("an origin has no path, query or fragment: scheme://host[:port]")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("an origin has no user-info")
    host = _host(parts.hostname or "")
    if port == 0:
        raise ValueError("port 0 is not a port")
    if port is None or port == SCHEMES[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _host(host: str) -> str:
    if not host:
        raise ValueError("an origin has a host")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    try:
        ascii_host = host.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValueError(f"{host!r} is not a valid host name") from None
    labels = ascii_host.rstrip(".").split(".")
    if not all(label and len(label) <= 63 for label in labels) or len(ascii_host) > 253:
        raise ValueError(f"{host!r} is not a valid host name")
    if not all(c.isalnum() or c == "-" for label in labels for c in label):
        raise ValueError(f"{host!r} is not a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"{host!r}: a numeric host is a dotted-quad IPv4 address")
    return ".".join(labels)


def normalise_origins(values: Iterable[str]) -> list[str]:
    """Each origin normalised once, in the order given (duplicates dropped)."""
    seen: dict[str, None] = {}
    for value in values:
        seen.setdefault(normalise_origin(value))
    return list(seen)


def actual_headers(origin: bytes, *, credentials: bool = True) -> list[tuple[bytes, bytes]]:
    """What an answer to an allowed ``origin`` carries (success, upstream answer or refusal)."""
    return [
        (b"access-control-allow-origin", origin),
        *([(b"access-control-allow-credentials", b"true")] if credentials else []),
        (b"access-control-expose-headers", EXPOSED),
        VARY,
    ]


def preflight_headers(
    origin: bytes, method: bytes, requested: bytes | None, *, credentials: bool = True
) -> list[tuple[bytes, bytes]]:
    """What a successful preflight answer carries: the method and the requested headers that are
    allowed (a header left out makes the browser stop, as it should)."""
    allowed = allowed_headers(requested)
    return [
        (b"access-control-allow-origin", origin),
        *([(b"access-control-allow-credentials", b"true")] if credentials else []),
        (b"access-control-allow-methods", method),
        *([(b"access-control-allow-headers", allowed)] if allowed else []),
        (b"access-control-max-age", MAX_AGE),
        (b"vary", b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"),
    ]


def allowed_headers(requested: bytes | None) -> bytes:
    if not requested:
        return b""
    names = (n.strip().lower() for n in requested.decode("latin-1").split(","))
    return ", ".join(n for n in names if n in ALLOWED_HEADERS).encode()


def preflight_method(method: bytes, methods: frozenset[str] = METHODS) -> bytes | None:
    """The requested method if a preflight may grant it (methods are case-sensitive tokens)."""
    text = method.decode("latin-1").strip()
    return text.encode() if text in methods else None
