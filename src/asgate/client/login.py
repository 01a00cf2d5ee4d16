"""MC user login for native applications (RFC 8252): authorization code + PKCE through the system
browser and a loopback redirect, with the ID token verified and the tokens refreshed.

    login = UserLogin("http://127.0.0.1:7480", "console-1", scope="openid 3gpp:mc:ptt_service")
    await login.login(http)                        # opens the browser; the user signs in there
    api = SomeApi(sas_url, tokens=login)           # login.token(http) refreshes as needed

:class:`asgate.client.browser.ScriptedBrowser` plays the user's browser against the real login
page (tests, demos).
"""

from __future__ import annotations

import asyncio
import hmac
import inspect
import secrets
import sys
import time
import webbrowser
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import anyio.to_thread
import httpx
import jwt

from asgate.idm.oidc import s256
from asgate.kernel.problem import Cause, ProblemError

Browser = Callable[[str], Awaitable[object] | object]
_ALGORITHMS = ["ES256", "ES384", "ES512", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"]
_MAX_HEAD = 16 * 1024
_PAGE = (
    "<!doctype html><html lang=en><meta charset=utf-8><title>{0}</title>"
    "<body style='font:16px system-ui;margin:3rem'><h1>{0}</h1><p>{1}</p></body></html>"
)

__all__ = ["UserLogin", "UserTokens", "open_system_browser", "print_url"]


def _with_offline_access(scope: str) -> str:
    """OIDC Core 11: a refresh token comes with ``offline_access``; the SDK refreshes, so it asks."""
    scopes = scope.split()
    return scope if "offline_access" in scopes else " ".join([*scopes, "offline_access"])


@dataclass(frozen=True)
class UserTokens:
    """The tokens of one login: an access token for the APIs, a refresh token, the ID token."""

    access_token: str
    expires_at: float  # time.monotonic() deadline
    scope: str
    refresh_token: str | None
    id_token: str
    id_claims: dict[str, Any] = field(repr=False)


def open_system_browser(url: str) -> bool:
    """The default browser: RFC 8252 4 (an external user-agent, never an embedded one)."""
    return webbrowser.open(url)


def print_url(url: str) -> None:
    """For a terminal without a browser: the user opens the URL on the same machine."""
    sys.stderr.write(f"Open this URL in a browser on this machine to sign in:\n\n  {url}\n\n")
    sys.stderr.flush()


def _refused(what: str, response: httpx.Response) -> ProblemError:
    body = response.json() if "json" in response.headers.get("content-type", "") else {}
    error = body.get("error", response.status_code)
    return ProblemError(
        response.status_code if response.status_code >= 400 else 502,
        Cause.INVALID_TOKEN,
        f"{what} refused: {error}: {body.get('error_description', '')}".rstrip(": "),
    )


class UserLogin:
    """An MC user's login at asgate's IdM (or any OIDC provider with PKCE S256), for an external
    application registered with the redirect URI ``http://127.0.0.1{redirect_path}`` (any port:
    RFC 8252 7.3). ``token(http)`` makes it a token source for the SDK's API clients."""

    def __init__(
        self,
        issuer: str,
        client_id: str,
        *,
        scope: str = "openid 3gpp:mc:ptt_service",
        client_secret: str | None = None,
        redirect_path: str = "/callback",
        timeout: float = 300.0,
        refresh_margin: float = 30.0,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.client_id = client_id
        self.scope = scope
        self._secret = client_secret
        self.redirect_path = redirect_path
        self.timeout = timeout
        self.refresh_margin = refresh_margin
        self.tokens: UserTokens | None = None
        self._metadata: dict[str, Any] | None = None
        self._refreshing = asyncio.Lock()

    @property
    def claims(self) -> dict[str, Any]:
        """The verified ID token's claims (``sub``, ``mcptt_id``, ...)."""
        if self.tokens is None:
            raise RuntimeError("not logged in")
        return self.tokens.id_claims

    async def login(self, http: httpx.AsyncClient, browser: Browser = open_system_browser) -> UserTokens:
        """Run the whole flow: listener, browser, code, tokens, ID token verification."""
        metadata = await self._discover(http)
        verifier = secrets.token_urlsafe(48)  # RFC 7636 4.1: 64 characters, 384 bits
        state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        async with _Loopback(self.redirect_path, state) as listener:
            redirect_uri = f"http://127.0.0.1:{listener.port}{self.redirect_path}"
            params = {
                "response_type": "code",
                "client_id": self.client_id,
                "redirect_uri": redirect_uri,
                "scope": _with_offline_access(self.scope),
                "state": state,
                "nonce": nonce,
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            }
            url = f"{metadata['authorization_endpoint']}?{urlencode(params)}"
            if _is_async(browser):
                await browser(url)  # type: ignore[misc]
            else:  # webbrowser.open may block for a moment
                await anyio.to_thread.run_sync(browser, url)
            answer = await asyncio.wait_for(listener.answer, self.timeout)
        if "error" in answer:
            raise ProblemError(
                403,
                Cause.ACCESS_TOKEN_DENIED,
                f"login refused: {answer['error']}: {answer.get('error_description', '')}",
            )
        # RFC 9207 2.4: when the server names itself, it must be the one we asked.
        if "iss" in answer and answer["iss"].rstrip("/") != self.issuer:
            raise ProblemError(
                502, Cause.INVALID_TOKEN, "the authorization response came from another issuer"
            )
        form = {
            "grant_type": "authorization_code",
            "code": answer.get("code", ""),
            "redirect_uri": redirect_uri,
        }
        form["code_verifier"] = verifier
        self.tokens = await self._token_request(http, form, "code exchange", nonce=nonce)
        return self.tokens

    async def token(self, http: httpx.AsyncClient) -> str:
        """The access token, refreshed (rotating the refresh token) shortly before it expires."""
        if self._stale():
            # One refresh at a time: a second one would present the rotated refresh token, which
            # the server takes for a replay and answers by ending the login.
            async with self._refreshing:
                if self._stale():
                    await self.refresh(http)
        assert self.tokens is not None
        return self.tokens.access_token

    def _stale(self) -> bool:
        if self.tokens is None:
            raise ProblemError(401, Cause.INVALID_TOKEN, "not logged in: call login() first")
        return time.monotonic() > self.tokens.expires_at - self.refresh_margin

    async def refresh(self, http: httpx.AsyncClient) -> UserTokens:
        if self.tokens is None or not self.tokens.refresh_token:
            raise ProblemError(401, Cause.INVALID_TOKEN, "no refresh token: log in again")
        form = {"grant_type": "refresh_token", "refresh_token": self.tokens.refresh_token}
        self.tokens = await self._token_request(http, form, "token refresh", previous=self.tokens)
        return self.tokens

    async def logout(self, http: httpx.AsyncClient) -> None:
        """Revoke the refresh token (RFC 7009), ending the login everywhere; forget the tokens."""
        if self.tokens is None or not self.tokens.refresh_token:
            return
        metadata = await self._discover(http)
        data = {"token": self.tokens.refresh_token, "token_type_hint": "refresh_token"}
        response = await http.post(
            metadata["revocation_endpoint"], data=self._client_form(data), **self._auth()
        )
        if response.status_code != 200:
            raise _refused("revocation", response)
        self.tokens = None

    # ------------------------------------------------------------ internals

    async def _discover(self, http: httpx.AsyncClient) -> dict[str, Any]:
        if self._metadata is None:
            response = await http.get(f"{self.issuer}/.well-known/openid-configuration")
            if response.status_code != 200:
                raise ProblemError(502, Cause.TARGET_NF_NOT_REACHABLE, "cannot read the issuer's metadata")
            metadata = dict(response.json())
            if "S256" not in metadata.get("code_challenge_methods_supported", []):
                raise ProblemError(
                    502, Cause.UNSPECIFIED_MSG_FAILURE, "the issuer does not support PKCE S256"
                )
            self._metadata = metadata
        return self._metadata

    def _auth(self) -> dict[str, Any]:
        """client_secret_basic for a confidential client; a public one sends only its client_id."""
        return {"auth": (self.client_id, self._secret)} if self._secret is not None else {}

    def _client_form(self, data: dict[str, str]) -> dict[str, str]:
        return data if self._secret is not None else {**data, "client_id": self.client_id}

    async def _token_request(
        self,
        http: httpx.AsyncClient,
        form: dict[str, str],
        what: str,
        *,
        nonce: str | None = None,
        previous: UserTokens | None = None,
    ) -> UserTokens:
        metadata = await self._discover(http)
        response = await http.post(metadata["token_endpoint"], data=self._client_form(form), **self._auth())
        if response.status_code != 200:
            raise _refused(what, response)
        body = response.json()
        id_token = body.get("id_token") or (previous.id_token if previous else None)
        if not id_token:
            raise ProblemError(502, Cause.INVALID_TOKEN, f"{what}: no ID token in the answer")
        claims = await self._verify_id_token(http, id_token, nonce)
        if previous is not None and claims["sub"] != previous.id_claims["sub"]:  # OIDC Core 12.2
            raise ProblemError(502, Cause.INVALID_TOKEN, f"{what}: the ID token names another user")
        return UserTokens(
            access_token=str(body["access_token"]),
            expires_at=time.monotonic() + float(body.get("expires_in", 60)),
            scope=str(body.get("scope", self.scope)),
            refresh_token=body.get("refresh_token") or (previous.refresh_token if previous else None),
            id_token=id_token,
            id_claims=claims,
        )

    async def _verify_id_token(
        self, http: httpx.AsyncClient, id_token: str, nonce: str | None
    ) -> dict[str, Any]:
        """OIDC Core 3.1.3.7: signature by the issuer's key, ``iss``, ``aud``, ``azp``, ``exp``, ``nonce``."""
        metadata = await self._discover(http)
        response = await http.get(metadata["jwks_uri"])
        try:
            keys = jwt.PyJWKSet.from_dict(response.json())
            kid = jwt.get_unverified_header(id_token).get("kid")
            key = next(k for k in keys.keys if k.key_id == kid)
            claims: dict[str, Any] = jwt.decode(
                id_token,
                key.key,
                algorithms=_ALGORITHMS,
                audience=self.client_id,
                issuer=metadata["issuer"],
                leeway=30,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except (jwt.PyJWTError, StopIteration, ValueError) as exc:
            raise ProblemError(
                502, Cause.INVALID_TOKEN, f"ID token rejected: {exc or type(exc).__name__}"
            ) from None
        if claims.get("azp", self.client_id) != self.client_id:
            raise ProblemError(502, Cause.INVALID_TOKEN, "ID token rejected: azp is another client")
        if nonce is not None and not hmac.compare_digest(str(claims.get("nonce", "")), nonce):
            raise ProblemError(502, Cause.INVALID_TOKEN, "ID token rejected: nonce does not match")
        return claims


def _is_async(function: object) -> bool:
    return inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 - an object with an async __call__
    )


class _Loopback:
    """RFC 8252 7.3: a one-shot HTTP listener on 127.0.0.1 (ephemeral port) for the redirect."""

    def __init__(self, path: str, state: str) -> None:
        self.path = path
        self.state = state
        self.port = 0
        self.answer: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> _Loopback:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
            status, title, text = self._receive(head[:_MAX_HEAD].decode("latin-1"))
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            status, title, text = 400, "Bad request", "This is not a sign-in answer."
        body = _PAGE.format(title, text).encode()
        writer.write(
            f"HTTP/1.1 {status} {title}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        try:
            await writer.drain()
        finally:
            writer.close()

    def _receive(self, head: str) -> tuple[int, str, str]:
        method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
        parts = urlsplit(target)
        if method != "GET" or parts.path != self.path:
            return 404, "Not found", "Nothing here."
        query = dict(parse_qsl(parts.query))
        # RFC 6749 10.12: only the answer to our own request (its state) counts; others are ignored.
        if not hmac.compare_digest(query.get("state", ""), self.state) or self.answer.done():
            return 400, "Unexpected answer", "This answer does not belong to the sign-in in progress."
        self.answer.set_result(query)
        if "error" in query:
            return 200, "Sign-in failed", "Return to the application for details. You can close this window."
        return 200, "Signed in", "You can close this window and return to the application."
