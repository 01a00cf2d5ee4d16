"""From an HTTP request to a :class:`Principal`, or a 401/403 ProblemDetails (RFC 6750 3)."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from asgate.auth.tokens import Principal, TokenError, TokenValidator
from asgate.kernel import bearer as kernel_bearer
from asgate.kernel.problem import Cause, ProblemError

REALM = "asgate"


def _challenge(error: str, **params: str) -> str:
    """RFC 6750 3: ``Bearer realm="asgate", error="...", ...``."""
    extra = "".join(f', {k}="{v}"' for k, v in params.items())
    return f'Bearer realm="{REALM}", error="{error}"{extra}'


def bearer_token(conn: HTTPConnection) -> str | None:
    """The request's bearer token from its ``Authorization`` header (RFC 6750 2.1), or None."""
    return kernel_bearer.bearer_token(conn.headers.get("authorization"))


def invalid_request(detail: str) -> ProblemError:
    """RFC 6750 3.1 ``invalid_request`` (400), e.g. a token sent by two methods at once."""
    return ProblemError(
        400, Cause.INVALID_MSG_FORMAT, detail, headers={"WWW-Authenticate": _challenge("invalid_request")}
    )


def client_certificate_name(scope: Any) -> str | None:
    """The verified TLS client certificate's common name, if the listener asked for one."""
    tls = scope.get("extensions", {}).get("tls") or {}
    name = tls.get("client_cert_cn")
    return str(name) if name else None


class Authenticator:
    def __init__(self, validator: TokenValidator) -> None:
        self.validator = validator

    async def __call__(
        self, conn: HTTPConnection, scope: str | None, *, allow_mtls: bool = False
    ) -> Principal:
        """Authenticate the caller and require ``scope``; raise ProblemError 401/403 otherwise."""
        token = bearer_token(conn)
        if token is None:
            cert_name = client_certificate_name(conn.scope) if allow_mtls else None
            if cert_name is not None:
                # TS 29.538 security `{}`: mutual TLS alone authenticates the AS (TS 33.501 Y.4).
                return Principal(
                    cert_name,
                    cert_name,
                    frozenset({scope} if scope else ()),
                    "mtls",
                    float("inf"),
                    via="mtls",
                )
            raise ProblemError(
                401,
                Cause.INVALID_TOKEN,
                "a bearer access token is required",
                headers={"WWW-Authenticate": f'Bearer realm="{REALM}"'},
            )
        return await self.principal(token, scope)

    async def principal(self, token: str, scope: str | None) -> Principal:
        """A bearer token however it was sent (header, or RFC 6750 2.2 form body): 401/403 as above."""
        try:
            principal = await self.validator.validate(token)
        except TokenError as exc:
            reason = str(exc).replace('"', "'")
            raise ProblemError(
                401,
                Cause.INVALID_TOKEN,
                f"access token rejected: {reason}",
                headers={"WWW-Authenticate": _challenge("invalid_token", error_description=reason)},
            ) from None
        if scope is not None and not principal.has_scope(scope):
            raise ProblemError(
                403,
                Cause.INSUFFICIENT_SCOPE,
                f"the access token lacks scope {scope!r}",
                headers={"WWW-Authenticate": _challenge("insufficient_scope", scope=scope)},
            )
        return principal
