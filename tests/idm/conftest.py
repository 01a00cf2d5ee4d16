"""Fixtures for the OpenID Connect tests: an MC user, public and confidential applications, and a
login through the real HTML form (the SDK's ScriptedBrowser)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

from asgate.client.browser import ScriptedBrowser
from asgate.domain.idm import Client, User
from asgate.idm.oidc import s256
from asgate.idm.passwords import hash_secret
from asgate.store.ids import new_id
from asgate.system.runtime import Runtime

REDIRECT = "http://127.0.0.1:53117/cb"  # registered as http://127.0.0.1/cb: any port (RFC 8252 7.3)
VERIFIER = "v" * 20 + "-erifier._~" + "x" * 30
MC_SCOPES = ("3gpp:mc:ptt_service", "3gpp:mc:data_service", "3gpp:mc:video_service")


@pytest.fixture
async def console(rt: Runtime) -> Client:
    """A public client (a native dispatch console): no secret, PKCE only."""
    return await _client(rt, "console-1", None)


@pytest.fixture
async def portal(rt: Runtime) -> Client:
    """A confidential client: authenticates with its secret and uses PKCE too."""
    return await _client(rt, "portal", hash_secret("portal-secret"))


async def _client(rt: Runtime, client_id: str, secret_hash: str | None) -> Client:
    now = datetime.now(UTC)
    client = Client(
        client_id=client_id,
        name=f"{client_id} app",
        secret_hash=secret_hash,
        scopes=("mcx-registry", *MC_SCOPES),
        redirect_uris=("http://127.0.0.1/cb", "https://app.example/cb?x=1"),
        created_at=now,
        updated_at=now,
    )
    return await rt.store.write(lambda tx: tx.clients.add(client))


AddUser = Callable[..., Awaitable[User]]


@pytest.fixture
def add_user(rt: Runtime) -> AddUser:
    async def add(username: str = "alice", **kw: Any) -> User:
        now = datetime.now(UTC)
        values: dict[str, Any] = {
            "user_id": new_id(),
            "username": username,
            "password_hash": hash_secret(f"{username}-password"),
            "display_name": username.title(),
            "mcptt_id": f"{username}@mc.example",
            "mcdata_id": f"{username}.data@mc.example",
            "created_at": now,
            "updated_at": now,
        }
        return await rt.store.write(lambda tx: tx.users.add(User(**{**values, **kw})))

    return add


@pytest.fixture
async def alice(add_user: AddUser) -> User:
    return await add_user("alice")


def authorize_url(client_id: str | None = "console-1", **overrides: str | None) -> str:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": REDIRECT,
        "scope": "openid 3gpp:mc:ptt_service 3gpp:mc:data_service",
        "state": "st-123",
        "nonce": "n-456",
        "code_challenge": s256(VERIFIER),
        "code_challenge_method": "S256",
        **overrides,
    }
    return "/oauth2/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def query(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


@dataclass
class Login:
    """Sign a user in through the real login page; return the redirect's query (code, state, iss)."""

    http: httpx.AsyncClient

    async def __call__(
        self, username: str = "alice", password: str | None = None, **overrides: Any
    ) -> dict[str, str]:
        browser = ScriptedBrowser(username, password or f"{username}-password", http=self.http)
        location = await browser.sign_in(authorize_url(**overrides))
        assert location.startswith(overrides.get("redirect_uri") or REDIRECT), location
        return query(location)


@pytest.fixture
def login(http: httpx.AsyncClient) -> Login:
    return Login(http)


async def exchange(
    http: httpx.AsyncClient, code: str, *, verifier: str | None = VERIFIER, **form: str
) -> httpx.Response:
    data = {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT, **form}
    if verifier is not None:
        data["code_verifier"] = verifier
    if "client_secret" not in data and "auth" not in form:
        data.setdefault("client_id", "console-1")
    return await http.post("/oauth2/token", data=data)
