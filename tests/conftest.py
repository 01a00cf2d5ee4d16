"""Fixtures: settings on every backend, an in-process app, provisioned clients and their tokens.

PostgreSQL tests use database ``test`` on 127.0.0.1:5432 (``ASGATE_TEST_PG_URL`` overrides), each
test in a schema of its own that is dropped afterwards. When the server cannot be reached the
PostgreSQL variants are skipped with the reason; `.ci/run` starts it first.

The official 3GPP OpenAPI files (TS 29.538 and the TS 29.5xx files it refers to, ``rel-17/`` for the
older release) are not in the repository: the tests that validate against them find them in
``ASGATE_3GPP_DIR`` (default ``../shared/3gpp`` beside the repository). Without them those tests are
skipped, and the end of the run says how many and how to provide the files.
"""

from __future__ import annotations

import gc
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from starlette.types import ASGIApp

from asgate.domain.idm import Client
from asgate.idm.passwords import hash_secret
from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.browser import NO_CHROMIUM, browser, page_errors  # noqa: F401 - fixtures for every test package

PG_URL = os.environ.get("ASGATE_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
THREEGPP_DIR = Path(
    os.environ.get("ASGATE_3GPP_DIR") or Path(__file__).resolve().parents[2] / "shared" / "3gpp"
)
NO_3GPP = "needs the official 3GPP OpenAPI files"  # every such skip says it; the summary counts them
_pg_state: dict[str, str | None] = {}


_KEPT_ENV = ("ASGATE_TEST_PG_URL", "ASGATE_3GPP_DIR", "ASGATE_CHROMIUM")


@pytest.fixture(autouse=True)
def _hermetic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never pick up the developer's own ASGATE_* settings."""
    for key in list(os.environ):
        if key.startswith("ASGATE_") and key not in _KEPT_ENV:
            monkeypatch.delenv(key)


async def _pg_reason() -> str | None:
    if "reason" not in _pg_state:
        try:
            conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""), timeout=3)
            await conn.close()
            _pg_state["reason"] = None
        except (OSError, asyncpg.PostgresError) as exc:
            _pg_state["reason"] = f"PostgreSQL not reachable at {PG_URL}: {exc} (.ci/run starts it)"
    return _pg_state["reason"]


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def database(backend: str, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """Connection settings for a fresh, empty database on ``backend``."""
    if backend == "sqlite":
        yield {"database_url": f"sqlite+aiosqlite:///{tmp_path / 'asgate.db'}"}
        return
    reason = await _pg_reason()
    if reason:
        pytest.skip(reason)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield {"database_url": PG_URL, "database_schema": schema}
    gc.collect()  # a connection the test leaked is reported here, against this test
    conn = await asyncpg.connect(PG_URL.replace("+asyncpg", ""))
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


@pytest.fixture
def make_settings(tmp_path: Path, database: dict[str, Any]) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "data_dir": tmp_path / "data",
            "log_level": "warning",
            # In-process apps run the access server too: an ephemeral port, and no registry to pull
            # snapshots from unless a test provides one (nothing listens on port 1).
            "sas_listen": "127.0.0.1:0",
            "sas_registry_url": "http://127.0.0.1:1",
            # Test receivers and instances listen on 127.0.0.1, which the policies deny by default
            # (tests/security overrides these to test the defaults).
            "outbound_allow_loopback": True,
            "instance_allow_loopback": True,
            **database,
        }
        values.update(overrides)
        return Settings.load(None, **values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
async def rt(settings: Settings) -> AsyncIterator[Runtime]:
    async with Runtime.open(settings) as runtime:
        yield runtime


@pytest.fixture
async def app(rt: Runtime) -> AsyncIterator[ASGIApp]:
    async with control_app(rt) as application:
        yield application


@pytest.fixture
async def http(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


Provision = Callable[..., Awaitable[Client]]


@pytest.fixture
def provision(rt: Runtime) -> Provision:
    """Create a client in the store (as ``asgate clients add`` does); its secret is ``<id>-secret``."""

    async def create(
        client_id: str,
        scopes: tuple[str, ...] = ("msgs-asregistration",),
        as_svc_ids: tuple[str, ...] = (),
        **kw: Any,
    ) -> Client:
        now = datetime.now(UTC)
        client = Client(
            client_id=client_id,
            secret_hash=hash_secret(f"{client_id}-secret"),
            scopes=scopes,
            as_svc_ids=as_svc_ids,
            created_at=now,
            updated_at=now,
            **kw,
        )
        return await rt.store.write(lambda tx: tx.clients.add(client))

    return create


TokenFor = Callable[..., Awaitable[str]]


@pytest.fixture
def token_for(http: httpx.AsyncClient) -> TokenFor:
    """A token from the real token endpoint (client_secret_basic)."""

    async def get(client_id: str, scope: str | None = None) -> str:
        data = {"grant_type": "client_credentials", **({"scope": scope} if scope else {})}
        response = await http.post("/oauth2/token", data=data, auth=(client_id, f"{client_id}-secret"))
        assert response.status_code == 200, response.text
        return str(response.json()["access_token"])

    return get


Mint = Callable[..., str]


@pytest.fixture
def mint(rt: Runtime) -> Mint:
    """A token as the IdM would issue it, without a round trip (for tests about other APIs)."""
    from asgate.idm.service import TokenService

    tokens = TokenService(
        rt.store.clients,
        rt.keyring,
        issuer=rt.settings.token_issuer,
        audience=rt.settings.token_audience,
        ttl=3600,
    )

    def issue(client_id: str, *scopes: str, **claims: Any) -> str:
        return tokens.issue(
            subject=claims.pop("sub", client_id), client_id=client_id, scopes=list(scopes), extra=claims
        )[0]

    return issue


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def official_3gpp(name: str) -> Path:
    """The official 3GPP file ``name`` (relative to ``ASGATE_3GPP_DIR``); without it the test is skipped
    and counted in the summary."""
    path = THREEGPP_DIR / name
    if not path.is_file():
        pytest.skip(f"{NO_3GPP}: {path} is missing")
    return path


@pytest.fixture
def threegpp_dir() -> Path:
    """The folder of official 3GPP files (the test is skipped without TS 29.538 in it)."""
    official_3gpp("TS29538_MSGS_ASRegistration.yaml")
    return THREEGPP_DIR


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line naming the tests that did not run for want of the 3GPP files, and how to provide them."""
    skipped = {r.nodeid for r in terminalreporter.stats.get("skipped", []) if NO_3GPP in str(r.longrepr)}
    if skipped:
        tests = f"{len(skipped)} test{'s' if len(skipped) > 1 else ''}"
        terminalreporter.write_line(
            f"{tests} did not run (3GPP conformance): the official 3GPP OpenAPI files are not in "
            f"{THREEGPP_DIR}; set ASGATE_3GPP_DIR to the folder holding TS29538_MSGS_ASRegistration.yaml "
            "(README, Tests)",
            yellow=True,
            bold=True,
        )
    skipped = {r.nodeid for r in terminalreporter.stats.get("skipped", []) if NO_CHROMIUM in str(r.longrepr)}
    if skipped:
        tests = f"{len(skipped)} test{'s' if len(skipped) > 1 else ''}"
        terminalreporter.write_line(
            f"{tests} did not run (real browser): no chromium executable; `apt-get install chromium` "
            "(.ci/run does) or set ASGATE_CHROMIUM (README, Tests)",
            yellow=True,
            bold=True,
        )
