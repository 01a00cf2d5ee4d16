"""The authorization server's endpoints: token (RFC 6749), JWKS (RFC 7517), discovery (RFC 8414),
revocation (RFC 7009), introspection (RFC 7662), and OpenID Connect for MC users (TS 33.180
Annex B): authorize, userinfo."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from asgate.auth.guard import REALM, bearer_token, invalid_request
from asgate.domain.idm import Client
from asgate.idm import csrf, introspection, oidc
from asgate.idm.introspection import Introspection
from asgate.idm.keys import ALGORITHMS
from asgate.idm.models import TokenResponse
from asgate.idm.oidc import AuthorizeError
from asgate.idm.oidc_service import LoginRefusedError, OidcService, PendingLogin
from asgate.idm.pages import LoginForm, error_page, form_post_page, login_page
from asgate.idm.passwords import SecretVerifier, hash_concurrency
from asgate.idm.service import ClientThrottle, OAuthError, TokenService
from asgate.idm.throttle import FailureThrottle
from asgate.kernel.background import Background
from asgate.kernel.logs import get as get_logger
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.web import JSON, read_body
from asgate.system.runtime import Runtime

_FORM = "application/x-www-form-urlencoded"
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_MAX_FORM = 16 * 1024
# Scopes of the APIs asgate serves (RFC 8414 scopes_supported); clients may hold others too.
KNOWN_SCOPES = ("msgs-asregistration", "msgs-admin", "asgate-metrics", introspection.SCOPE)
_PURGE_INTERVAL = 300.0
_log = get_logger("asgate.idm")

Grant = Callable[[Request, dict[str, str]], Awaitable[TokenResponse]]


class IdmRole:
    name = "idm"
    apis = ("oauth2", ".well-known", "userinfo")

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        s = rt.settings
        failures = FailureThrottle(s.idm_token_window, redis_url=s.idm_redis_url, prefix="asgate:idm:client:")
        self.tokens = TokenService(
            rt.store.clients,
            rt.keyring,
            issuer=s.token_issuer,
            audience=s.token_audience,
            ttl=s.token_ttl,
            throttle=ClientThrottle(
                failures, s.idm_token_max_failures, s.idm_token_max_failures_per_source, s.idm_refusal_hold
            ),
            verifier=SecretVerifier(s.idm_hash_concurrency or hash_concurrency()),
        )
        self.oidc = OidcService(rt.store, self.tokens, rt.settings, rt.validator)
        self.introspection = Introspection(rt.store, rt.validator, s.token_issuer)
        self.grants: dict[str, Grant] = {
            "client_credentials": self._client_credentials,
            "authorization_code": self._authorization_code,
            "refresh_token": self._refresh_token,
        }
        self.background = Background()

    def routes(self) -> list[BaseRoute]:
        return [
            Route("/oauth2/authorize", self.authorize, methods=["GET"]),
            Route("/oauth2/authorize", self.login, methods=["POST"]),
            Route("/oauth2/token", self.token, methods=["POST"]),
            Route("/oauth2/revoke", self.revoke, methods=["POST"]),
            Route("/oauth2/introspect", self.introspect, methods=["POST"]),
            Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
            Route("/oauth2/jwks", self.jwks, methods=["GET"]),
            Route("/.well-known/openid-configuration", self.discovery, methods=["GET"]),
            Route("/.well-known/oauth-authorization-server", self.discovery, methods=["GET"]),
        ]

    async def start(self) -> None:
        self.background.spawn(self._purge_forever(), "idm-purger")

    async def stop(self) -> None:
        await self.background.stop()
        await self.tokens.throttle.failures.aclose()
        await self.oidc.throttle.aclose()
        self.tokens.verifier.close()

    async def _purge_forever(self) -> None:
        """Delete spent authorization requests, codes and refresh tokens now and then."""
        while await self.background.pause(_PURGE_INTERVAL):
            try:
                await self._purge()
            except Exception:  # noqa: BLE001 - the next round tries again
                _log.exception("purging expired grants failed")

    async def _purge(self) -> int:
        now = datetime.now(UTC)
        return await self.rt.store.write(lambda tx: tx.grants_oidc.purge(now))

    # RFC 6749 4.1.1 / OIDC Core 3.1.2.1: a valid request gets the login form, else 4.1.2.1.
    async def authorize(self, request: Request) -> Response:
        try:
            pending = await self.oidc.start(request.query_params.multi_items())
        except AuthorizeError as exc:
            return _authorize_error(exc, self.tokens.issuer, 302)
        return self._login_page(request, pending)

    def _login_page(
        self, request: Request, pending: PendingLogin, status: int = 200, **shown: str
    ) -> Response:
        """The form, with its token bound to this browser's key (set, or renewed, as a cookie)."""
        key = csrf.browser_key(request.cookies.get(csrf.COOKIE))
        page = login_page(_form(pending, token=csrf.form_token(key, pending.handle), **shown), status)
        secure = request.url.scheme == "https" or self.tokens.issuer.startswith("https:")
        page.set_cookie(
            csrf.COOKIE,
            key,
            max_age=self.rt.settings.idm_login_ttl,
            path="/oauth2/authorize",
            secure=secure,
            httponly=True,
            samesite="strict",
        )
        return page

    # The login form's POST: the user's credentials for one pending request (its single-use handle).
    async def login(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
        except OAuthError as exc:
            return error_page(exc.description)
        source = _source(request)
        refused = csrf.refusal(
            fetch_site=request.headers.get("sec-fetch-site"),
            origin=request.headers.get("origin"),
            referer=request.headers.get("referer"),
            own_origins=(csrf.origin_of(self.tokens.issuer), csrf.origin_of(str(request.base_url))),
            cookie=request.cookies.get(csrf.COOKIE),
            handle=form.get("handle", ""),
            token=form.get(csrf.FIELD, ""),
        )
        if refused is not None:
            await self.oidc.audit_refused_form(source, refused)
            return error_page(refused, 403, Cause.CROSS_SITE_REQUEST)
        try:
            answer = await self.oidc.login(
                form.get("handle", ""), form.get("username", ""), form.get("password", ""), source
            )
        except OAuthError as exc:
            return error_page(exc.description)
        except LoginRefusedError as exc:
            shown = {"username": form.get("username", ""), "error": exc.message}
            response = self._login_page(request, exc.pending, 429 if exc.retry_after else 200, **shown)
            if exc.retry_after:
                response.headers["Retry-After"] = str(exc.retry_after)
            return response
        except AuthorizeError as exc:
            return _authorize_error(exc, self.tokens.issuer, 303)
        return _answer(answer, 303)

    async def token(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
            grant_type = form.get("grant_type", "")
            grant = self.grants.get(grant_type)
            if grant is None:
                raise OAuthError("unsupported_grant_type", f"grant_type {grant_type!r} is not supported")
            token = await grant(request, form)
        except OAuthError as exc:
            return self._oauth_error(exc)
        self.rt.metrics.tokens_issued.labels(grant_type).inc()
        return Response(token.dump_json(), 200, headers=_NO_STORE, media_type=JSON)

    # RFC 7009 2.1: the client revokes a refresh token (and with it every token of that login).
    async def revoke(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
            await self.oidc.revoke(await self._token_client(request, form), form)
        except OAuthError as exc:
            return self._oauth_error(exc)
        return Response(b"", 200, headers=_NO_STORE)

    # RFC 7662: a resource server (a client holding token-introspection) asks about a token.
    async def introspect(self, request: Request) -> Response:
        try:
            form = await _read_form(request)
            client_id, secret, basic = client_auth(request, form)
            client = await self.tokens.authenticate_client(
                client_id, secret, basic=basic, source=_source(request)
            )
            answer = await self.introspection.introspect(client, form)
        except OAuthError as exc:
            return self._oauth_error(exc)
        return Response(json.dumps(answer), 200, headers=_NO_STORE, media_type=JSON)

    # OIDC Core 5.3: claims about the user behind an access token.
    async def userinfo(self, request: Request) -> Response:
        principal = await self.rt.authenticate.principal(await _userinfo_token(request), oidc.OPENID)
        claims = await self.oidc.userinfo(principal)
        return Response(json.dumps(claims), media_type=JSON, headers=_NO_STORE)

    def _oauth_error(self, exc: OAuthError) -> Response:
        """RFC 6749 5.2 error JSON (also RFC 7009 2.2.1)."""
        self.rt.metrics.auth_failures.labels("oauth2", exc.error).inc()
        body = {"error": exc.error, "error_description": exc.description}
        if exc.cause is not None:
            body["cause"] = exc.cause
        return Response(json.dumps(body), exc.status, headers={**exc.headers, **_NO_STORE}, media_type=JSON)

    async def _token_client(self, request: Request, form: dict[str, str]) -> Client:
        """A confidential client authenticates (RFC 6749 2.3.1); a public one names itself (2.1)."""
        if "authorization" in request.headers or "client_secret" in form:
            client_id, secret, basic = client_auth(request, form)
            return await self.tokens.authenticate_client(
                client_id, secret, basic=basic, source=_source(request)
            )
        return await self.oidc.public_client(form.get("client_id", ""))

    # RFC 6749 4.1.3 with PKCE (RFC 7636 4.5): public clients by client_id, confidential by secret.
    async def _authorization_code(self, request: Request, form: dict[str, str]) -> TokenResponse:
        return await self.oidc.exchange_code(await self._token_client(request, form), form)

    # RFC 6749 6: a new access token (and a rotated refresh token) for the same login.
    async def _refresh_token(self, request: Request, form: dict[str, str]) -> TokenResponse:
        return await self.oidc.refresh(await self._token_client(request, form), form)

    async def _client_credentials(self, request: Request, form: dict[str, str]) -> TokenResponse:
        client_id, secret, basic = client_auth(request, form)
        client = await self.tokens.authenticate_client(
            client_id, secret, basic=basic, source=_source(request)
        )
        return await self.tokens.client_credentials(client, form.get("scope"))

    async def jwks(self, request: Request) -> Response:
        return Response(
            json.dumps(self.rt.keyring.jwks()),
            media_type="application/jwk-set+json",
            headers={"Cache-Control": "public, max-age=60"},
        )

    async def discovery(self, request: Request) -> Response:
        return Response(
            json.dumps(self.metadata()), media_type=JSON, headers={"Cache-Control": "public, max-age=300"}
        )

    def metadata(self) -> dict[str, Any]:
        issuer = self.tokens.issuer
        auth_methods = ["client_secret_basic", "client_secret_post", "none"]
        return {
            "issuer": issuer,
            "authorization_endpoint": f"{issuer}/oauth2/authorize",
            "token_endpoint": f"{issuer}/oauth2/token",
            "revocation_endpoint": f"{issuer}/oauth2/revoke",
            "userinfo_endpoint": f"{issuer}/userinfo",
            "jwks_uri": f"{issuer}/oauth2/jwks",
            "grant_types_supported": sorted(self.grants),
            "token_endpoint_auth_methods_supported": auth_methods,
            "revocation_endpoint_auth_methods_supported": auth_methods,
            "introspection_endpoint": f"{issuer}/oauth2/introspect",
            "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
            "scopes_supported": [oidc.OPENID, *oidc.STANDARD_SCOPES, *oidc.MC_SCOPES, *KNOWN_SCOPES],
            "response_types_supported": ["code"],
            "response_modes_supported": list(oidc.RESPONSE_MODES),
            "code_challenge_methods_supported": ["S256"],
            "authorization_response_iss_parameter_supported": True,
            "subject_types_supported": ["public"],
            # Discovery 3: RS256 must be listed; per client (id_token_signed_response_alg).
            "id_token_signing_alg_values_supported": sorted(ALGORITHMS, reverse=True),
            "acr_values_supported": [oidc.ACR_PASSWORD],
            "claims_supported": [*oidc.ID_CLAIMS, *oidc.USERINFO_CLAIMS],
            "request_parameter_supported": False,
            "request_uri_parameter_supported": False,
        }


async def _userinfo_token(request: Request) -> str:
    """RFC 6750 2: the access token in the ``Authorization`` header (GET or POST) or, on a POST, in an
    ``application/x-www-form-urlencoded`` body's ``access_token`` (2.2); never by two methods at once,
    never in the URI (RFC 9700 2.4 and 6750 2.3 discourage it: refused)."""
    if "access_token" in request.query_params:
        raise invalid_request("send the access token in the Authorization header, not in the URI")
    header = bearer_token(request)
    posted: str | None = None
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method == "POST" and media == _FORM:
        try:
            form = await _read_form(request)
        except OAuthError as exc:
            raise invalid_request(exc.description) from None
        posted = form.get("access_token")
        if posted is not None and not posted:
            raise invalid_request("access_token is empty")
    if posted is not None and "authorization" in request.headers:
        raise invalid_request("use one method of sending the access token, not two (RFC 6750 2)")
    token = header or posted
    if token is None:
        raise ProblemError(
            401,
            Cause.INVALID_TOKEN,
            "a bearer access token is required",
            headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
        )
    return token


def _source(request: Request) -> str:
    """The peer address the throttles count per (the listener's view: behind a proxy, the
    proxy's, unless the server is told to trust its forwarded headers)."""
    return request.client.host if request.client else "unknown"


async def _read_form(request: Request) -> dict[str, str]:
    media = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media != _FORM:
        raise OAuthError("invalid_request", f"the token request must be {_FORM}")
    try:
        raw = await read_body(request, _MAX_FORM)
        pairs = parse_qsl(raw.decode("utf-8"), keep_blank_values=False, strict_parsing=False)
    except ProblemError as exc:
        raise OAuthError("invalid_request", exc.detail or exc.cause) from None
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "the form is not UTF-8") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        if "\x00" in key or "\x00" in value:  # no text column stores U+0000 (item 9: never a 500)
            raise OAuthError("invalid_request", "a parameter contains U+0000")
        if key in form:  # RFC 6749 3.1: parameters must not be repeated
            raise OAuthError("invalid_request", f"parameter {key!r} is repeated")
        form[key] = value
    return form


def client_auth(request: Request, form: dict[str, str]) -> tuple[str, str, bool]:
    """RFC 6749 2.3.1: HTTP Basic (client_secret_basic) or form fields (client_secret_post), not both."""
    header = request.headers.get("authorization")
    if header and header.lower().startswith("basic "):
        if "client_secret" in form:
            raise OAuthError("invalid_request", "use one client authentication method, not two")
        try:
            decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401) from None
        client_id, sep, secret = decoded.partition(":")
        if not sep or "\x00" in unquote_plus(decoded):
            raise OAuthError("invalid_client", "malformed Basic credentials", 401)
        return unquote_plus(client_id), unquote_plus(secret), True
    posted_id, posted_secret = form.get("client_id", ""), form.get("client_secret")
    if not posted_id or posted_secret is None:
        raise OAuthError(
            "invalid_client",
            "client authentication is required",
            401,
            {"WWW-Authenticate": 'Basic realm="asgate"'},
        )
    return posted_id, posted_secret, False


def _form(pending: PendingLogin, *, token: str, username: str = "", error: str | None = None) -> LoginForm:
    request = pending.request
    return LoginForm(
        pending.handle, pending.client_name, request.scopes, request.redirect_uri, username, error, token
    )


def _authorize_error(exc: AuthorizeError, issuer: str, status: int) -> Response:
    """RFC 6749 4.1.2.1: to the client by redirect when its redirect URI is trusted, else a page."""
    if exc.redirect_uri is None:
        return error_page(exc.description)
    params = {"error": exc.error, "error_description": exc.description, "iss": issuer}
    if exc.state is not None:
        params["state"] = exc.state
    return _answer(oidc.AuthorizationResponse(exc.redirect_uri, params, exc.response_mode), status)


def _answer(answer: oidc.AuthorizationResponse, status: int) -> Response:
    """RFC 6749 4.1.2: a redirect with the parameters in the query (303 after the login POST: the
    browser follows with a GET, RFC 9110 15.4.4, never re-posting the password), or, for
    ``response_mode=form_post``, a page whose form the browser POSTs to the redirect URI."""
    if answer.response_mode == oidc.FORM_POST:
        return form_post_page(answer.redirect_uri, answer.params)
    return RedirectResponse(answer.location(), status, headers=_NO_STORE)
