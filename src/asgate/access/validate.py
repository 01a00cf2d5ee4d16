"""Pure checks on a request head: the target (traversal) and the framing (smuggling).

Everything here raises :class:`~asgate.access.errors.Refusal`; the protocol answers it and closes.
The parser (llhttp) already refuses obs-fold, bare CR/LF, invalid tokens, both Content-Length and
Transfer-Encoding, and duplicate Content-Length; these checks repeat the last two (cheaply) so the
engine does not depend on the parser's leniency settings.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

import httptools

from asgate.access.errors import Refusal, bad_request
from asgate.kernel.problem import Cause

# RFC 9110 9.3: the methods a REST service can be called with. CONNECT (RFC 9110 9.3.6) would turn
# the SAS into a tunnel to anywhere; TRACE (9.3.8) echoes credentials back (cross-site tracing).
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
METHOD_NAMES = {m.encode(): m for m in METHODS}  # the parser's bytes -> one shared str
_FORBIDDEN_BYTES = frozenset(b"/\\") | frozenset(range(0x20)) | {0x7F}


def method_refusal(method: bytes) -> Refusal:
    return Refusal(405, Cause.METHOD_NOT_ALLOWED, f"method {method[:16].decode('latin-1')} is not allowed")


def split_target(url: bytes, authorities: frozenset[str]) -> tuple[str, str]:
    """(path, query) of a request target; only origin-form or absolute-form naming us."""
    try:
        text = url.decode("ascii")
    except UnicodeDecodeError:
        raise bad_request("the request target is not ASCII") from None
    if "#" in text:  # RFC 9112 3.2: a request target never carries a fragment
        raise bad_request("the request target has a fragment")
    if text[:1] == "/":
        path, _, query = text.partition("?")
        if "%" in path or "\\" in path or "/." in path or "//" in path or "/;" in path:
            check_path(path)
        return path, query
    # RFC 9112 3.2.2: absolute-form; we are no forward proxy, so it must name this server.
    if not text[:8].lower().startswith(("http://", "https://")):
        raise bad_request("the request target must be a path")
    try:
        parsed = httptools.parse_url(url)
    except httptools.HttpParserInvalidURLError:
        raise bad_request("the request target is not a valid URL") from None
    host = (parsed.host or b"").decode("ascii").lower()
    authority = f"{host}:{parsed.port}" if parsed.port else host
    if authority not in authorities:
        raise bad_request("the request target names another server")
    path = (parsed.path or b"/").decode("ascii")
    query = (parsed.query or b"").decode("ascii")
    check_path(path)
    return path, query


def check_path(path: str) -> None:
    """Refuse any path whose meaning a backend could read differently from ours.

    RFC 3986 5.2.4: dot-segments ("." / "..", also percent-encoded) would climb out of the prefix
    the gate maps to; encoded "/" or "\\" (RFC 3986 2.2: reserved) and backslashes are split by
    some servers and not by others; NUL and other controls truncate paths in C backends. The same
    holds for every other spelling a backend may turn into those: overlong UTF-8 (``%c0%ae``,
    ``%e0%80%ae``, ``%c0%af``: RFC 3629 3 forbids them, lenient decoders still read "." and "/"),
    any other invalid UTF-8, compatibility forms (``%ef%bc%8e`` FULLWIDTH FULL STOP, NFKC "."),
    encodings decoded twice (``%252e``), path parameters on a dot segment (``..;``, ``.;x``: Tomcat
    and Jetty drop them and then see ".."), and segments made of dots only (``...``).
    """
    if "%" not in path and "\\" not in path and "/." not in path and "//" not in path and "/;" not in path:
        return
    segments = path.split("/")
    last = len(segments) - 1
    for index, segment in enumerate(segments[1:], start=1):
        if not segment:
            if index != last:
                raise bad_request("the path has an empty segment")
            continue
        if "\\" in segment:
            raise bad_request("the path contains a backslash")
        _check_segment(segment)


# A backend (or a framework behind it) decoding a segment more than this many times is not one
# we can protect; three covers double and triple encoding.
_DECODINGS = 3


def _check_segment(segment: str) -> None:
    raw = _decode(segment) if "%" in segment else segment.encode("ascii")
    for depth in range(_DECODINGS):
        _check_decoded(raw)
        if depth == _DECODINGS - 1 or b"%" not in raw:
            return
        again = unquote_to_bytes(raw)  # what a second decoding makes of it (bad escapes stay)
        if again == raw:
            return
        raw = again


def _check_decoded(raw: bytes) -> None:
    if not _FORBIDDEN_BYTES.isdisjoint(raw):
        raise bad_request("the path contains an encoded slash, backslash or control character")
    try:
        text = raw.decode("utf-8")  # strict: overlong forms and surrogates are errors (RFC 3629 3)
    except UnicodeDecodeError:
        raise bad_request("the path has a percent-encoding that is not valid UTF-8") from None
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
        if "/" in text or "\\" in text:
            raise bad_request("the path contains a character that normalizes to a slash or backslash")
    name, parameters, _ = text.partition(";")  # RFC 3986 3.3: "a;v" path parameters
    name = name.rstrip(" ")  # some file systems and servers drop trailing spaces (and dots)
    if name and not name.strip("."):
        raise bad_request("the path contains a dot-segment (or dots with path parameters)")
    if not name and parameters:
        raise bad_request("the path has an empty segment with path parameters")


def _decode(segment: str) -> bytes:
    # RFC 3986 2.1: "%" must be followed by two hex digits.
    parts = segment.split("%")
    for part in parts[1:]:
        if len(part) < 2 or not all(c in "0123456789abcdefABCDEF" for c in part[:2]):
            raise bad_request("the path has an invalid percent-encoding")
    return unquote_to_bytes(segment)


@dataclass(slots=True)
class Framing:
    """What a request head says about its body and its connection."""

    http11: bool = True
    length: int | None = None
    chunked: bool = False
    close: bool = False
    keep_alive: bool = False
    expect_continue: bool = False
    websocket: bool = False
    connection_names: frozenset[bytes] = frozenset()
    # Seen while scanning.
    transfer: bytes | None = None
    hosts: int = 0
    upgrade: bool = False


# The framing of a request without body, connection or upgrade fields (the common GET).
_PLAIN_11 = Framing(http11=True, hosts=1)
_PLAIN_10 = Framing(http11=False, hosts=0)
_PLAIN_10_HOST = Framing(http11=False, hosts=1)

_CONTENT_LENGTH, _TRANSFER_ENCODING, _HOST, _CONNECTION, _EXPECT, _UPGRADE, _AUTHORIZATION = range(7)
_FRAMING_FIELDS = {
    b"authorization": _AUTHORIZATION,
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"host": _HOST,
    b"connection": _CONNECTION,
    b"expect": _EXPECT,
    b"upgrade": _UPGRADE,
}


def scan_headers(headers: list[tuple[bytes, bytes]], http11: bool) -> Framing:
    """Framing of a request; refuses every ambiguity a smuggling attack relies on.

    The result is shared between requests when it is the plain one: never change it.
    """
    fields = _FRAMING_FIELDS
    hosts = 0
    authorizations = 0
    framing: Framing | None = None
    for name, value in headers:
        kind = fields.get(name)
        if kind is None:
            continue
        if kind == _HOST:
            hosts += 1
            continue
        if kind == _AUTHORIZATION:
            authorizations += 1
            continue
        if framing is None:
            framing = Framing(http11=http11)
        _field(framing, kind, value)
    # RFC 9110 5.3: Authorization is a singleton field; with two, the SAS and the service could
    # each believe a different one (the gate reads the first, some servers the last).
    if authorizations > 1:
        raise bad_request("more than one Authorization header")
    # RFC 9112 3.2: exactly one Host in an HTTP/1.1 request.
    if hosts != 1 and (http11 or hosts > 1):
        raise bad_request("an HTTP/1.1 request needs exactly one Host header")
    if framing is None:
        return _PLAIN_11 if http11 else (_PLAIN_10_HOST if hosts else _PLAIN_10)
    framing.hosts = hosts
    if framing.transfer is not None:
        _check_transfer(framing, framing.transfer)
    names = framing.connection_names
    if names:
        framing.close = b"close" in names
        framing.keep_alive = b"keep-alive" in names
        # RFC 6455 4.1: an opening handshake has Upgrade: websocket and Connection: Upgrade.
        framing.websocket = framing.upgrade and b"upgrade" in names
    return framing


def _field(framing: Framing, kind: int, value: bytes) -> None:
    if kind == _CONTENT_LENGTH:
        # RFC 9112 6.3 (5): several or invalid Content-Length values are unrecoverable.
        if framing.length is not None or not value.isdigit() or len(value) > 18:
            raise bad_request("invalid or repeated Content-Length")
        framing.length = int(value)
    elif kind == _TRANSFER_ENCODING:
        if framing.transfer is not None:
            raise bad_request("repeated Transfer-Encoding")
        framing.transfer = value
    elif kind == _CONNECTION:
        framing.connection_names |= {t.strip().lower() for t in value.split(b",")}
    elif kind == _EXPECT:
        # RFC 9110 10.1.1: the only expectation defined; anything else is a 417.
        if value.strip().lower() != b"100-continue":
            raise Refusal(417, Cause.INVALID_MSG_FORMAT, "only 100-continue can be expected")
        framing.expect_continue = True
    else:
        framing.upgrade = b"websocket" in value.lower()


def _check_transfer(framing: Framing, transfer: bytes) -> None:
    # RFC 9112 6.1: chunked must be the final coding; we accept no other coding at all, and
    # RFC 9112 6.3 (3): with Content-Length too the message is a smuggling attempt.
    if transfer.strip().lower() != b"chunked":
        raise bad_request("Transfer-Encoding other than chunked")
    if framing.length is not None:
        raise bad_request("both Content-Length and Transfer-Encoding")
    if not framing.http11:
        raise bad_request("Transfer-Encoding in an HTTP/1.0 request")
    framing.chunked = True
