"""Access tokens for the SDK: the OAuth2 client-credentials grant, refreshed before expiry."""

from __future__ import annotations

import time

import httpx

from asgate.kernel.problem import Cause, ProblemError


class ClientCredentials:
    """RFC 6749 4.4 with client_secret_basic; the token is reused until 30 s before it expires."""

    def __init__(self, token_url: str, client_id: str, client_secret: str, scope: str | None = None) -> None:
        self.token_url = token_url
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self._token: str | None = None
        self._expires = 0.0

    async def token(self, http: httpx.AsyncClient) -> str:
        if self._token is None or time.monotonic() > self._expires - 30:
            data = {"grant_type": "client_credentials"}
            if self.scope:
                data["scope"] = self.scope
            response = await http.post(self.token_url, data=data, auth=(self.client_id, self._secret))
            body = response.json() if "json" in response.headers.get("content-type", "") else {}
            if response.status_code != 200:
                error = body.get("error", response.status_code)
                raise ProblemError(
                    response.status_code,
                    Cause.INVALID_TOKEN,
                    f"token request refused: {error}: {body.get('error_description', '')}",
                )
            self._token = str(body["access_token"])
            self._expires = time.monotonic() + float(body.get("expires_in", 60))
        return self._token
