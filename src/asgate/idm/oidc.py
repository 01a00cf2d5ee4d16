"""Pure decisions of the OpenID Connect provider for MC users (TS 33.180 Annex B, "MCX connect").

Nothing here does I/O or reads a clock: the service passes ``now`` and the records it loaded.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlencode, urlsplit, urlunsplit

from asgate.domain.idm import AuthorizationRequest, Client, User
from asgate.kernel.claims import MC_ID_CLAIM, MC_ID_CLAIMS

OPENID = "openid"
# TS 33.180 B.4.2.2 (spec-notes §7): the scopes an MC client asks for, per MC service.
MC_SCOPES = tuple(
    f"3gpp:mc:{service}_{kind}"
    for service in ("ptt", "video", "data")
    for kind in ("service", "key_management_service", "config_management_service", "group_management_service")
)
# The MC service ID a user needs for a service's scopes (TS 33.180 B.2.1: mcptt_id for MCPTT, ...).
_SCOPE_NEEDS = {service: MC_ID_CLAIM[f"mc{service}"] for service in ("ptt", "video", "data")}
# OIDC Core 5.4 and 11: the standard scopes a client may be allowed (``clients add --scope email``).
# offline_access governs refresh tokens (Core 11; a client may be registered to always get one)
# and, like openid, any client with a redirect URI may ask for it.
OFFLINE_ACCESS = "offline_access"
STANDARD_SCOPES = ("profile", "email", "phone", OFFLINE_ACCESS)
USER_ONLY_SCOPES = frozenset({OPENID, *MC_SCOPES, *STANDARD_SCOPES})
# TS 33.180 B.4 / TS 24.482: the authentication method of the login page.
ACR_PASSWORD = "3gpp:acr:password"  # noqa: S105 - a method name, not a password
ID_CLAIMS = ("iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp", "acr", "at_hash")
USERINFO_CLAIMS = (
    "name",
    "preferred_username",
    "email",
    "phone_number",
    *MC_ID_CLAIMS,
)

_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")  # base64url(SHA-256), no padding
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")  # RFC 7636 4.1
_MAX_PARAM = 512
# OAuth 2.0 Multiple Response Type Encoding Practices 2.1 and Form Post Response Mode 2.
QUERY, FORM_POST = "query", "form_post"
RESPONSE_MODES = (QUERY, FORM_POST)


class AuthorizeError(Exception):
    """RFC 6749 4.1.2.1. With ``redirect_uri`` set the client learns of it by a redirect; without,
    the user sees an error page (the redirect URI or the client could not be trusted)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        redirect_uri: str | None = None,
        state: str | None = None,
        response_mode: str = QUERY,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.redirect_uri = redirect_uri
        self.state = state
        self.response_mode = response_mode


@dataclass(frozen=True)
class AuthorizationResponse:
    """What goes back to the client's ``redirect_uri`` (RFC 6749 4.1.2 / 4.1.2.1): by a redirect
    with the parameters in the query, or (``form_post``) by a form the browser POSTs there."""

    redirect_uri: str
    params: dict[str, str]
    response_mode: str = QUERY

    def location(self) -> str:
        return redirect_to(self.redirect_uri, self.params)


def new_secret() -> str:
    """256 random bits, URL-safe: handles, codes, refresh tokens."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    """What the store keeps of a secret: SHA-256 (the secrets are random, so no salt or stretching)."""
    return hashlib.sha256(secret.encode()).hexdigest()


# ---------------------------------------------------------------- redirect URIs (RFC 8252, RFC 6749 3.1.2)


def _loopback(host: str | None) -> bool:
    try:
        return host is not None and ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*$")  # RFC 3986 3.1, lower case
_HOST_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*\.?$")
_MAX_REDIRECT_URI = 2000


def redirect_uri_problem(uri: str) -> str | None:
    """Why ``uri`` cannot be registered as a redirect URI, or ``None`` when it can. The three kinds
    of RFC 8252 and the web's:

    - ``https://host/path`` (a web server, or a claimed https redirect, RFC 8252 7.2);
    - ``http://127.0.0.1/path`` or ``http://[::1]/path`` (a loopback listener, 7.3; any port is
      accepted at the authorization request). ``http`` to any other host is refused (RFC 6749
      3.1.2.1, RFC 8252 8.3), ``localhost`` too: it is NOT RECOMMENDED (8.3), may resolve elsewhere,
      and is never matched on any port;
    - a private-use scheme (7.1) in reverse-domain form (``com.example.console:/oauth2redirect``):
      a scheme without a period is refused (8.4), so ``javascript:``, ``data:``, ``file:`` and the
      short names other apps squat on can never be registered.

    In every kind: no fragment (RFC 6749 3.1.2), no user-info, no white space or control character,
    a lower-case scheme, a host in ASCII (A-labels) — the URI is put, as it stands, into the login
    page's Content-Security-Policy (:func:`asgate.idm.pages.form_action_source`)."""
    if not uri or len(uri) > _MAX_REDIRECT_URI:
        return f"a redirect URI has 1 to {_MAX_REDIRECT_URI} characters"
    if any(c.isspace() or not c.isprintable() or not c.isascii() for c in uri):
        return "a redirect URI has no white space, control or non-ASCII characters (percent-encode them)"
    if "#" in uri:
        return "a redirect URI has no fragment (RFC 6749 3.1.2)"
    if not _SCHEME.match(uri.partition(":")[0]):  # urlsplit lower-cases the scheme
        return "a redirect URI is absolute, with a lower-case scheme"
    parts = urlsplit(uri)
    try:
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if "@" in parts.netloc:
        return "a redirect URI has no user name or password"
    return _kind_problem(parts)


def _kind_problem(parts: SplitResult) -> str | None:
    host = parts.hostname or ""
    if parts.scheme == "https":
        if not _HOST_NAME.match(host) or parts.netloc.lower() != parts.netloc:
            return "an https redirect URI names its host in lower-case ASCII (A-labels for IDNs)"
        return None
    if parts.scheme == "http":
        if _loopback(host):
            return None
        if host == "localhost" or host.endswith(".localhost"):
            return "use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 8.3)"
        return "http is allowed only to a loopback IP literal: 127.0.0.1 or [::1] (RFC 8252 7.3)"
    if "." not in parts.scheme:
        return (
            f"a private-use scheme is a reverse domain name, e.g. com.example.app:/oauth2redirect, "
            f"not {parts.scheme!r} (RFC 8252 7.1, 8.4)"
        )
    return None


def redirect_uri_matches(registered: Iterable[str], requested: str) -> bool:
    """Exact string match (RFC 6749 3.1.2.3, RFC 9700 2.1), except that a registered ``http``
    loopback IP literal matches any port (RFC 8252 7.3: a native app's listener gets an ephemeral
    port). ``localhost`` is not a loopback literal (RFC 8252 8.3)."""
    try:
        asked = urlsplit(requested)
        asked.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return False
    if asked.fragment or "#" in requested:  # RFC 6749 3.1.2: no fragment component
        return False
    for uri in registered:
        if uri == requested:
            return True
        want = urlsplit(uri)
        if (
            want.scheme == asked.scheme == "http"
            and _loopback(want.hostname)
            and want.hostname == asked.hostname
            and not asked.username
            and not asked.password
            and (want.path, want.query) == (asked.path, asked.query)
        ):
            return True
    return False


def redirect_to(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` added to its query, keeping the query it had (RFC 6749 3.1.2)."""
    parts = urlsplit(uri)
    extra = urlencode({k: v for k, v in params.items() if v is not None})
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


# ---------------------------------------------------------------- PKCE (RFC 7636)


def s256(verifier: str) -> str:
    """RFC 7636 4.2: ``BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    """OIDC Core 3.1.3.6 / 3.3.2.11 for ES256 and RS256 (both SHA-256): base64url of the left
    half of SHA-256 of the token.
    It also marks every ID token as one (``looks_like_id_token``), with or without ``nonce``."""
    half = hashlib.sha256(access_token.encode("ascii")).digest()[:16]
    return base64.urlsafe_b64encode(half).rstrip(b"=").decode()


def verify_pkce(verifier: str | None, challenge: str) -> bool:
    """RFC 7636 4.6, S256 only; a missing or malformed verifier fails."""
    if not verifier or not _VERIFIER.match(verifier):
        return False
    return hmac.compare_digest(s256(verifier), challenge)


# ---------------------------------------------------------------- the authorization request


def _single(items: Sequence[tuple[str, str]]) -> tuple[dict[str, str], set[str]]:
    params: dict[str, str] = {}
    repeated: set[str] = set()
    for key, value in items:
        if key in params:
            repeated.add(key)
        params[key] = value
    return params, repeated


def validate_authorization(items: Sequence[tuple[str, str]], client: Client | None) -> AuthorizationRequest:
    """Check an authorization request (RFC 6749 4.1.1, RFC 7636 4.3, OIDC Core 3.1.2.1) against the
    client it names (``None``: unknown). Raises :class:`AuthorizeError`."""
    params, repeated = _single(items)
    client, redirect_uri = _trusted(params, repeated, client)
    try:
        _check_protocol(params, repeated, require_nonce=client.requires_nonce)
        scopes = requested_scopes(params.get("scope"), client)
    except _Refused as exc:
        state = None if "state" in repeated else params.get("state")
        asked = params.get("response_mode")
        mode = asked if asked in RESPONSE_MODES and "response_mode" not in repeated else QUERY
        raise AuthorizeError(
            exc.error, str(exc), redirect_uri=redirect_uri, state=state, response_mode=mode or QUERY
        ) from None
    return AuthorizationRequest(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=params["state"],
        nonce=params.get("nonce"),
        code_challenge=params["code_challenge"],
        response_mode=params.get("response_mode", QUERY),
    )


class _Refused(ValueError):
    error = "invalid_request"

    def __init__(self, description: str, error: str | None = None) -> None:
        super().__init__(description)
        self.error = error or self.error


def _trusted(params: dict[str, str], repeated: set[str], client: Client | None) -> tuple[Client, str]:
    """RFC 6749 4.1.2.1: without a known client and a registered redirect URI, never redirect."""
    if "client_id" in repeated or not params.get("client_id"):
        raise AuthorizeError("invalid_request", "the request names no client (client_id)")
    if client is None:
        raise AuthorizeError("invalid_client", "the application is not registered here")
    redirect_uri = params.get("redirect_uri")
    if "redirect_uri" in repeated or not redirect_uri:  # OIDC Core 3.1.2.1: REQUIRED
        raise AuthorizeError("invalid_request", "the request has no redirect_uri")
    if not redirect_uri_matches(client.redirect_uris, redirect_uri):
        raise AuthorizeError("invalid_request", "the redirect_uri is not registered for this application")
    # Registered before asgate checked registrations (``clients add`` refuses it now): never used.
    if redirect_uri_problem(redirect_uri) is not None:
        raise AuthorizeError("invalid_request", "the registered redirect_uri is not allowed any more")
    return client, redirect_uri


def _check_protocol(params: dict[str, str], repeated: set[str], *, require_nonce: bool) -> None:
    if repeated:  # RFC 6749 3.1: parameters must not be repeated
        raise _Refused(f"parameter {sorted(repeated)[0]!r} is repeated")
    if "request" in params or "request_uri" in params:  # OIDC Core 6
        name = "request" if "request" in params else "request_uri"
        raise _Refused(f"{name} is not supported", f"{name}_not_supported")
    mode = params.get("response_mode")
    if mode is not None and mode not in RESPONSE_MODES:  # never silently ignored
        raise _Refused(f"response_mode {mode[:40]!r} is not supported", "unsupported_response_mode")
    response_type = params.get("response_type")
    if response_type != "code":
        raise _Refused("response_type must be code", "unsupported_response_type" if response_type else None)
    if not params.get("state") or len(params["state"]) > _MAX_PARAM:
        raise _Refused(f"state is required (at most {_MAX_PARAM} characters)")
    # OIDC Core 3.1.2.1: nonce is OPTIONAL for the code flow (PKCE binds the code), unless the
    # client is registered to require it; when given it is echoed in the ID token.
    nonce = params.get("nonce")
    if (nonce is None and require_nonce) or (nonce is not None and not 0 < len(nonce) <= _MAX_PARAM):
        raise _Refused(f"nonce is required (at most {_MAX_PARAM} characters)")
    challenge = params.get("code_challenge")
    if not challenge:  # RFC 7636 4.4.1
        raise _Refused("code challenge required (PKCE, RFC 7636)")
    if params.get("code_challenge_method") != "S256":
        raise _Refused("transform algorithm not supported (code_challenge_method must be S256)")
    if not _CHALLENGE.match(challenge):
        raise _Refused("code_challenge is not a base64url SHA-256 digest")
    if params.get("prompt") == "none":  # OIDC Core 3.1.2.6: asgate keeps no login session
        raise _Refused("the user must log in", "login_required")


# ---------------------------------------------------------------- scopes


class ScopeError(_Refused):
    """The scopes asked for cannot be granted; the message says why."""

    error = "invalid_scope"


def requested_scopes(scope: str | None, client: Client) -> tuple[str, ...]:
    """The scopes of an authorization request (:class:`ScopeError` if refused). ``openid`` is required
    (OIDC Core 3.1.2.1); it and ``offline_access`` (Core 11: what Auth.js, Spring and MSAL ask for
    by default) any client with a redirect URI may ask for; every other scope must be one the
    client holds."""
    asked = tuple(dict.fromkeys((scope or "").split()))
    if OPENID not in asked:
        raise ScopeError("scope must include openid")
    refused = [s for s in asked if s not in (OPENID, OFFLINE_ACCESS) and s not in client.scopes]
    if refused:
        raise ScopeError(f"scope not allowed for this application: {' '.join(refused)}")
    return asked


def scopes_for_user(scopes: Iterable[str], user: User) -> tuple[str, ...]:
    """RFC 6749 3.3: the server may grant less than asked. An MC service's scopes need the user's
    ID for that service (TS 33.180 B.2.1), so a user without ``mcvideo_id`` gets no video scope."""
    granted = []
    for scope in scopes:
        if scope in MC_SCOPES:
            service = scope.removeprefix("3gpp:mc:").split("_", 1)[0]
            if not getattr(user, _SCOPE_NEEDS[service]):
                continue
        granted.append(scope)
    return tuple(granted)


def narrow(granted: Sequence[str], scope: str | None) -> tuple[str, ...]:
    """RFC 6749 6: a refresh may ask for fewer scopes, never for more."""
    if scope is None:
        return tuple(granted)
    asked = tuple(dict.fromkeys(scope.split()))
    extra = [s for s in asked if s not in granted]
    if extra or not asked:
        raise ScopeError(f"scope not granted in the original authorization: {' '.join(extra) or '(empty)'}")
    return asked


# ---------------------------------------------------------------- claims


def user_claims(user: User, client_id: str, auth_time: int, session: str) -> dict[str, Any]:
    """Claims of a user's access token besides the RFC 9068 ones: ``azp``, ``auth_time``, ``acr``,
    the MC service IDs (TS 33.180 B.2.2) and ``sid``, the login (its token family) the token
    belongs to, by which revoking the login's refresh token revokes the access token too."""
    return {
        "azp": client_id,
        "auth_time": auth_time,
        "acr": ACR_PASSWORD,
        "sid": session,
        **user.mc_claims(),
    }


def id_token_claims(
    *,
    issuer: str,
    user: User,
    client_id: str,
    auth_time: int,
    nonce: str | None,
    now: int,
    ttl: int,
    scopes: Iterable[str] = (),
) -> dict[str, Any]:
    """OIDC Core 2 and TS 33.180 B.2.1 (``mcptt_id``, ``mcvideo_id``, ``mcdata_id``). After a
    refresh there is no ``nonce`` and ``auth_time`` stays the login's (OIDC Core 12.2)."""
    claims: dict[str, Any] = {
        "iss": issuer,
        "sub": user.user_id,
        "aud": client_id,
        "azp": client_id,
        "iat": now,
        "exp": now + ttl,
        "auth_time": auth_time,
        "acr": ACR_PASSWORD,
        **user.mc_claims(),
        **user.standard_claims(scopes),
    }
    if nonce is not None:
        claims["nonce"] = nonce
    return claims


def userinfo(user: User, scopes: Iterable[str] = ()) -> dict[str, Any]:
    """OIDC Core 5.3.2: ``sub`` and the user's claims; ``name``, ``email`` and ``phone_number``
    only for the scopes granted (5.4: ``profile``, ``email``, ``phone``). ``preferred_username``
    and the MC service IDs always: an MC client needs them (TS 33.180 B.2.1)."""
    info: dict[str, Any] = {"sub": user.user_id, "preferred_username": user.username, **user.mc_claims()}
    return {**info, **user.standard_claims(scopes)}
