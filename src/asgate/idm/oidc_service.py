"""OpenID Connect for MC users (TS 33.180 Annex B): login, codes, refresh tokens, revocation.

The decisions are in :mod:`asgate.idm.oidc`; this module loads what they need, stores what they
produce and signs the tokens. Every write (and its audit event) is one unit of work
(``store.write``); a refused code or refresh token is returned by it, not raised, so that what the
refusal wrote (a replay's revocation) commits before the client gets ``invalid_grant``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asgate.auth import jose
from asgate.auth.jose import TokenError
from asgate.auth.tokens import Principal, TokenValidator
from asgate.domain.idm import (
    AuthorizationRequest,
    Client,
    CodeGrant,
    Family,
    GrantProblem,
    GrantRejected,
    User,
)
from asgate.idm import oidc
from asgate.idm.models import TokenResponse
from asgate.idm.oidc import AuthorizeError, ScopeError
from asgate.idm.service import OAuthError, TokenService
from asgate.idm.throttle import FailureThrottle
from asgate.kernel.problem import Cause, ProblemError
from asgate.kernel.settings import Settings
from asgate.store import Store
from asgate.store.grants_oidc import KEEP_REVOKED
from asgate.store.ids import new_id
from asgate.store.tx import Tx


@dataclass(frozen=True)
class PendingLogin:
    """A login page to show: the request it serves and the single-use handle its form carries."""

    handle: str
    request: AuthorizationRequest
    client_name: str


class LoginRefusedError(Exception):
    """Show the login page again (with a fresh handle) and ``message``; 429 when throttled."""

    def __init__(self, message: str, pending: PendingLogin, retry_after: int = 0) -> None:
        super().__init__(message)
        self.message = message
        self.pending = pending
        self.retry_after = retry_after


class OidcService:
    def __init__(
        self,
        store: Store,
        tokens: TokenService,
        settings: Settings,
        validator: TokenValidator,
        *,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._tokens = tokens
        self._validator = validator
        self._s = settings
        self._clock = clock
        self._monotonic = monotonic
        self.throttle = FailureThrottle(
            settings.idm_login_window,
            redis_url=settings.idm_redis_url,
            prefix="asgate:idm:login:",
            clock=monotonic,
        )

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self._clock(), UTC)

    # ------------------------------------------------------------ authorization endpoint

    async def start(self, items: Sequence[tuple[str, str]]) -> PendingLogin:
        """Validate an authorization request and keep it for the login form (RFC 6749 4.1.1)."""
        client_ids = [v for k, v in items if k == "client_id"]
        client = await self._store.clients.get(client_ids[0]) if len(client_ids) == 1 else None
        request = oidc.validate_authorization(items, client)
        assert client is not None
        return await self._pending(request, client.name or client.client_id)

    async def _pending(self, request: AuthorizationRequest, client_name: str) -> PendingLogin:
        handle = oidc.new_secret()
        expires = self._now() + timedelta(seconds=self._s.idm_login_ttl)
        await self._store.write(lambda tx: tx.grants_oidc.save_request(oidc.digest(handle), request, expires))
        return PendingLogin(handle, request, client_name)

    async def login(
        self, handle: str, username: str, password: str, source: str
    ) -> oidc.AuthorizationResponse:
        """Check the user's credentials for the pending request ``handle``; return the answer that
        sends the code to the client (RFC 6749 4.1.2). Raises :class:`LoginRefusedError` (show
        the form again), :class:`AuthorizeError` (error page or error redirect)."""
        handle_hash, now = oidc.digest(handle), self._now()
        request = await self._store.write(lambda tx: tx.grants_oidc.take_request(handle_hash, now))
        if request is None:
            raise AuthorizeError("invalid_request", "this sign-in page has expired or was already used")
        client = await self._store.clients.get(request.client_id)
        if client is None:
            raise AuthorizeError("invalid_client", "the application is no longer registered here")
        name = client.name or client.client_id
        keys = [
            (f"user:{username.casefold()}", self._s.idm_login_max_failures),
            (f"source:{source}", self._s.idm_login_max_failures_per_source),
        ]
        wait = await self.throttle.retry_after(keys)
        if wait > 0:
            await self._audit(username, "login", f"client/{request.client_id}", "denied", "throttled")
            message = "Too many failed sign-in attempts. Wait a minute and try again."
            raise LoginRefusedError(message, await self._pending(request, name), int(wait) + 1)
        user = await self._store.users.by_username(username)
        secret_hash = user.password_hash if user else None
        ok = await self._tokens.verifier.verify(f"user:{username}", secret_hash, password, remember=False)
        if user is None or not ok:
            await self.throttle.failed(keys)
            await self._audit(username, "login", f"client/{request.client_id}", "denied", "wrong credentials")
            raise LoginRefusedError("Wrong user name or password.", await self._pending(request, name))
        await self.throttle.succeeded(keys[0][0])
        if user.disabled:
            await self._audit(username, "login", f"client/{request.client_id}", "denied", "user disabled")
            raise AuthorizeError(
                "access_denied",
                "the user account is disabled",
                redirect_uri=request.redirect_uri,
                state=request.state,
                response_mode=request.response_mode,
            )
        code = await self._issue_code(request, user, username)
        # RFC 9207: ``iss`` tells the client which server answered (mix-up defence).
        params = {"code": code, "state": request.state, "iss": self._tokens.issuer}
        return oidc.AuthorizationResponse(request.redirect_uri, params, request.response_mode)

    async def _issue_code(self, request: AuthorizationRequest, user: User, username: str) -> str:
        now = self._now()
        family = Family(
            family_id=new_id(),
            client_id=request.client_id,
            user_id=user.user_id,
            scopes=oidc.scopes_for_user(request.scopes, user),
            auth_time=now.replace(microsecond=0),
            expires_at=now + timedelta(seconds=self._s.idm_session_ttl),
        )
        code = oidc.new_secret()
        expires = now + timedelta(seconds=self._s.idm_code_ttl)

        def issue(tx: Tx) -> None:
            tx.grants_oidc.issue_code(oidc.digest(code), family, request, expires)
            _audit(tx, username, "login", f"client/{request.client_id}", "ok")

        await self._store.write(issue)
        return code

    # ------------------------------------------------------------ token endpoint

    async def public_client(self, client_id: str) -> Client:
        """RFC 6749 2.1: a public client only names itself; a confidential one must authenticate."""
        client = await self._store.clients.get(client_id) if client_id else None
        if client is None or client.secret_hash is not None:
            raise OAuthError("invalid_client", "client authentication failed", 401)
        return client

    async def exchange_code(self, client: Client, form: dict[str, str]) -> TokenResponse:
        """RFC 6749 4.1.3 with RFC 7636 4.5-4.6: the code, once, by its client, with its verifier."""
        code = form.get("code")
        if not code:
            raise OAuthError("invalid_request", "code is required")
        code_hash, now = oidc.digest(code), self._now()
        outcome = await self._store.write(lambda tx: redeem(tx, client, code_hash, form, now))
        if isinstance(outcome, GrantRejected):
            raise self._refused(outcome, "authorization code")
        if isinstance(outcome, _Spent):
            self._forget(outcome.family.family_id, now)
            raise OAuthError("invalid_grant", outcome.reason)
        grant = outcome
        family = grant.family
        user = await self._active_user(client, family)
        return await self._tokens_for(client, user, family, family.scopes, grant.nonce, first=True)

    async def refresh(self, client: Client, form: dict[str, str]) -> TokenResponse:
        """RFC 6749 6 with rotation (RFC 9700 4.14.2): the old token is spent, a new one issued."""
        token = form.get("refresh_token")
        if not token:
            raise OAuthError("invalid_request", "refresh_token is required")
        old = oidc.digest(token)
        family = await self._store.oidc.refresh_family(old)
        if family is None:
            raise OAuthError("invalid_grant", _GRANT_WORDS[GrantProblem.UNKNOWN].format("refresh token"))
        if family.client_id != client.client_id:  # RFC 6749 6: bound to the client it was issued to
            raise OAuthError("invalid_grant", "the refresh token was issued to another client")
        try:
            scopes = oidc.narrow(family.scopes, form.get("scope"))
        except ScopeError as exc:
            raise OAuthError("invalid_scope", str(exc)) from None
        new = oidc.new_secret()
        now = self._now()
        expires = now + timedelta(seconds=self._s.idm_refresh_token_ttl)
        new_hash = oidc.digest(new)

        def rotate(tx: Tx) -> Family | GrantRejected:
            rotated = tx.grants_oidc.rotate_refresh(old, new_hash, now, expires)
            if isinstance(rotated, GrantRejected):
                _audit_rejected(tx, client, "token.refresh", rotated)
            return rotated

        rotated = await self._store.write(rotate)
        if isinstance(rotated, GrantRejected):
            raise self._refused(rotated, "refresh token")
        family = rotated
        user = await self._active_user(client, family)
        return await self._tokens_for(client, user, family, scopes, None, refresh_token=new)

    async def _active_user(self, client: Client, family: Family) -> User:
        user = await self._store.users.get(family.user_id)
        if user is None or user.disabled:
            await self._revoke_family(family.family_id)
            raise OAuthError("invalid_grant", "the user account is disabled or removed")
        return user

    async def _tokens_for(
        self,
        client: Client,
        user: User,
        family: Family,
        scopes: Sequence[str],
        nonce: str | None,
        *,
        first: bool = False,
        refresh_token: str | None = None,
    ) -> TokenResponse:
        now = self._now()
        auth_time = int(family.auth_time.timestamp())
        ttl = self._s.idm_user_token_ttl
        access, expires_in = self._tokens.issue(
            subject=user.user_id,
            client_id=client.client_id,
            scopes=list(scopes),
            extra=oidc.user_claims(user, client.client_id, auth_time, family.family_id),
            ttl=ttl,
        )
        id_token = None
        if oidc.OPENID in family.scopes:
            claims = oidc.id_token_claims(
                issuer=self._tokens.issuer,
                user=user,
                client_id=client.client_id,
                auth_time=auth_time,
                nonce=nonce,
                now=int(now.timestamp()),
                ttl=ttl,
                scopes=scopes,
            )
            claims["at_hash"] = oidc.at_hash(access)
            id_token = self._tokens.sign(claims, typ="JWT", alg=client.id_token_alg)
        # OIDC Core 11: a refresh token only for offline_access, unless the client always gets one.
        new_refresh: tuple[str, datetime] | None = None
        if first and client.gets_refresh_token(family.scopes):
            refresh_token = oidc.new_secret()
            expires = min(now + timedelta(seconds=self._s.idm_refresh_token_ttl), family.expires_at)
            new_refresh = (oidc.digest(refresh_token), expires)
        action = "token.code" if first else "token.refresh"

        def issued(tx: Tx) -> None:
            if new_refresh is not None:
                tx.grants_oidc.add_refresh(family.family_id, new_refresh[0], now, new_refresh[1])
            _audit(tx, client.client_id, action, f"user/{user.user_id}", "ok")

        await self._store.write(issued)
        return TokenResponse(
            access_token=access,
            expires_in=expires_in,
            scope=" ".join(scopes),
            refresh_token=refresh_token,
            id_token=id_token,
        )

    # ------------------------------------------------------------ revocation and userinfo

    async def revoke(self, client: Client, form: dict[str, str]) -> None:
        """RFC 7009 2.1: revoking a refresh token revokes its family (every token of that login,
        access tokens included); revoking an access token revokes it alone. An unknown, expired or
        already revoked token is not an error (RFC 7009 2.2)."""
        token = form.get("token")
        if not token:
            raise OAuthError("invalid_request", "token is required")
        family = await self._store.oidc.refresh_family(oidc.digest(token))
        if family is None:
            if _looks_like_jwt(token):
                await self._revoke_access(client, token)
            return
        if family.client_id != client.client_id:
            raise OAuthError("unauthorized_client", "the token was not issued to this client")
        await self._revoke_family(
            family.family_id, (client.client_id, "token.revoke", f"user/{family.user_id}")
        )

    async def _revoke_family(self, family_id: str, audit: tuple[str, str, str] | None = None) -> None:
        """End a login: its refresh tokens and (RFC 7009 2.1) its access tokens, which this process
        refuses at once and the others within the poll's bound (asgate.auth.revocation). ``audit``:
        the (actor, action, resource) of the event recorded with it."""
        now = self._now()

        def revoke(tx: Tx) -> None:
            tx.grants_oidc.revoke_family(family_id, now)
            if audit is not None:
                _audit(tx, *audit, "ok")

        await self._store.write(revoke)
        self._forget(family_id, now)

    def _forget(self, family_id: str, now: datetime) -> None:
        """A family revoked (and committed): this process refuses its access tokens at once."""
        self._validator.revocations.add("sid", family_id, (now + KEEP_REVOKED).timestamp())

    async def _revoke_access(self, client: Client, token: str) -> None:
        try:
            principal = await self._validator.validate(token)
        except TokenError:
            return  # invalid, expired or revoked already: nothing to do (RFC 7009 2.2)
        jti = principal.claims.get("jti")
        if not principal.own or not isinstance(jti, str):
            return  # another issuer's token is not ours to revoke
        if principal.client_id != client.client_id:
            raise OAuthError("unauthorized_client", "the token was not issued to this client")
        expires, now = datetime.fromtimestamp(principal.expires_at, UTC), self._now()

        def revoke(tx: Tx) -> None:
            tx.grants_oidc.revoke_access(jti, now, expires)
            _audit(tx, client.client_id, "token.revoke", f"token/{jti}", "ok")

        await self._store.write(revoke)
        self._validator.revocations.add("jti", jti, principal.expires_at)

    async def userinfo(self, principal: Principal) -> dict[str, Any]:
        """OIDC Core 5.3: the user behind an access token issued for an OpenID Connect login."""
        user = None
        if principal.issuer == self._tokens.issuer.rstrip("/") and principal.has_scope(oidc.OPENID):
            user = await self._store.users.get(principal.subject)
        if user is None or user.disabled:
            raise ProblemError(
                401,
                Cause.INVALID_TOKEN,
                "the access token does not stand for an active MC user",
                headers={"WWW-Authenticate": 'Bearer realm="asgate", error="invalid_token"'},
            )
        return oidc.userinfo(user, principal.scopes)

    # ------------------------------------------------------------ audit

    async def audit_refused_form(self, source: str, reason: str) -> None:
        """A sign-in POST refused before any credential was looked at (login CSRF)."""
        await self._audit(f"source/{source}", "login", "oauth2/authorize", "denied", reason)

    def _refused(self, rejected: GrantRejected, what: str) -> OAuthError:
        """After the commit of a refusal: a replay's family (revoked) is refused here at once."""
        if rejected.problem is GrantProblem.REUSED and rejected.family is not None:
            self._forget(rejected.family.family_id, self._now())
        return OAuthError("invalid_grant", _GRANT_WORDS[rejected.problem].format(what))

    async def _audit(
        self, actor: str, action: str, resource: str, outcome: str, reason: str | None = None
    ) -> None:
        """An event of its own (a refusal that changes nothing else)."""
        await self._store.write(lambda tx: _audit(tx, actor, action, resource, outcome, reason))


@dataclass(frozen=True)
class _Spent:
    """A code redeemed by the wrong client, redirect URI or verifier: spent, its family revoked."""

    family: Family
    reason: str


def redeem(
    tx: Tx, client: Client, code_hash: str, form: dict[str, str], now: datetime
) -> CodeGrant | GrantRejected | _Spent:
    """RFC 6749 4.1.3 with RFC 7636 4.6, in one unit of work: use the code, then check it was
    presented by its client with its redirect URI and verifier. A refusal is audited; once used, a
    code is spent, so a refusal after that revokes its family (nothing may ever be issued with it)."""
    grant = tx.grants_oidc.redeem_code(code_hash, now)
    if isinstance(grant, GrantRejected):
        _audit_rejected(tx, client, "token.code", grant)
        return grant
    family = grant.family
    reason = None
    if family.client_id != client.client_id:
        reason = "the code was issued to another client"
    elif form.get("redirect_uri") != grant.redirect_uri:  # RFC 6749 4.1.3
        reason = "redirect_uri does not match the authorization request"
    elif not oidc.verify_pkce(form.get("code_verifier"), grant.code_challenge):  # RFC 7636 4.6
        reason = "code_verifier does not match the code challenge"
    if reason is None:
        return grant
    tx.grants_oidc.revoke_family(family.family_id, now)
    _audit(tx, client.client_id, "token.code", f"user/{family.user_id}", "denied", reason)
    return _Spent(family, reason)


def _audit_rejected(tx: Tx, client: Client, action: str, rejected: GrantRejected) -> None:
    resource = f"user/{rejected.family.user_id}" if rejected.family else f"client/{client.client_id}"
    reason = rejected.problem.value
    if rejected.problem is GrantProblem.REUSED:  # a replay: the whole family has been revoked
        reason = "replayed; every token of this login revoked"
    _audit(tx, client.client_id, action, resource, "denied", reason)


def _audit(tx: Tx, actor: str, action: str, resource: str, outcome: str, reason: str | None = None) -> None:
    tx.audit.append(actor, f"oidc.{action}", resource, outcome, reason=reason)


def _looks_like_jwt(token: str) -> bool:
    try:
        jose.parse(token)  # fixed-phrase errors for any input, never a library's
    except TokenError:
        return False
    return True


_GRANT_WORDS = {
    GrantProblem.UNKNOWN: "unknown {}",
    GrantProblem.EXPIRED: "the {} has expired",
    GrantProblem.REUSED: "the {} was already used; every token issued with it is revoked",
    GrantProblem.REVOKED: "the {} has been revoked",
}
