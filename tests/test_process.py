"""The server as a process: durability across kill -9, graceful SIGTERM, TLS and mutual TLS."""

from __future__ import annotations

import asyncio
import datetime as dt
import signal
import ssl
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from asgate.domain.idm import Client
from asgate.idm.passwords import hash_secret
from asgate.store import Store
from tests.live import LiveServer, live_server

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]
BASE = "/msgs-asregistration/v1/registrations"


async def _provision(database: dict[str, Any], n_ids: int) -> None:
    store = await Store.open(database["database_url"], schema=database.get("database_schema"))
    now = dt.datetime.now(dt.UTC)
    await store.write(
        lambda tx: tx.clients.add(
            Client(
                client_id="as-1",
                secret_hash=hash_secret("as-1-secret"),
                scopes=("msgs-asregistration",),
                as_svc_ids=tuple(f"AS{i}" for i in range(n_ids)),
                created_at=now,
                updated_at=now,
            )
        )
    )
    await store.close()


def _token(server: LiveServer, **kw: Any) -> str:
    response = httpx.post(
        f"{server.url}/oauth2/token",
        data={"grant_type": "client_credentials"},
        auth=("as-1", "as-1-secret"),
        **kw,
    )
    response.raise_for_status()
    return str(response.json()["access_token"])


async def _burst(url: str, token: str, acked: list[str], stop_after: float) -> None:
    """Register AS0, AS1, ... from 32 concurrent clients until the server dies."""
    counter = iter(range(10**9))
    deadline = time.monotonic() + stop_after + 10

    async def worker(http: httpx.AsyncClient) -> None:
        while time.monotonic() < deadline:
            as_svc_id = f"AS{next(counter)}"
            try:
                response = await http.post(
                    BASE, json={"asSvcId": as_svc_id, "asProf": {"appName": as_svc_id}}
                )
            except httpx.HTTPError:
                return  # the server is gone
            if response.status_code == 201:
                acked.append(response.headers["location"].rsplit("/", 1)[1])

    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(
        base_url=url, headers={"authorization": f"Bearer {token}"}, limits=limits
    ) as http:
        await asyncio.gather(*(worker(http) for _ in range(32)))


async def test_kill_9_during_a_burst_loses_no_acknowledged_registration(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    await _provision(database, 20_000)
    acked: list[str] = []
    with live_server(tmp_path / "data", database) as server:
        token = _token(server)
        burst = asyncio.create_task(_burst(server.url, token, acked, stop_after=1.5))
        while len(acked) < 300 and not burst.done():
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)
        assert server.kill(signal.SIGKILL) == -signal.SIGKILL
        await burst
    assert len(acked) >= 300, "the burst never got going"

    store = await Store.open(database["database_url"], schema=database.get("database_schema"))
    try:
        stored = []
        cursor = None
        while page := await store.registrations.scan(after=cursor, limit=1000):
            stored += page
            cursor = page[-1].registration_id
        stored_ids = {r.registration_id for r in stored}
        assert set(acked) <= stored_ids, f"{len(set(acked) - stored_ids)} acknowledged registrations lost"
        # Nothing half-written: every stored registration is whole and has its audit event.
        audited = {
            e.resource.rsplit("/", 1)[1]
            for e in await store.audit.scan(action="msgs.register", limit=1_000_000)
        }
        assert stored_ids <= audited
        assert all(r.as_prof is not None and r.as_prof.app_name == r.as_svc_id for r in stored)
        if database["database_url"].startswith("sqlite"):
            async with store.engine.connect() as conn:
                assert (await conn.exec_driver_sql("PRAGMA integrity_check")).scalar() == "ok"
    finally:
        await store.close()

    with live_server(tmp_path / "data", database) as server:  # and it starts again
        response = httpx.post(
            f"{server.url}{BASE}",
            json={"asSvcId": "AS19999"},
            headers={"authorization": f"Bearer {_token(server)}"},
        )
        assert response.status_code == 201


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_sigterm_finishes_in_flight_requests_then_exits_cleanly(
    tmp_path: Path, database: dict[str, Any]
) -> None:
    await _provision(database, 10_000)
    acked: list[str] = []
    with live_server(tmp_path / "data", database) as server:
        burst = asyncio.create_task(_burst(server.url, _token(server), acked, stop_after=1.0))
        while len(acked) < 100:
            await asyncio.sleep(0.05)
        server.proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.proc.wait, 30) == 0
        await burst
        log = server.log.read_text()
    assert "Traceback" not in log
    store = await Store.open(database["database_url"])
    try:
        assert await store.registrations.count() >= len(acked)
    finally:
        await store.close()


def _certificate(
    name: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None = None,
    ca: bool = False,
) -> x509.Certificate:
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_name, issuer_key = issuer or (subject, key)
    now = dt.datetime.now(dt.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if not ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(__import__("ipaddress").ip_address("127.0.0.1"))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> tuple[Path, Path]:
    cert_path, key_path = path.with_suffix(".crt"), path.with_suffix(".key")
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _certificate("asgate test CA", ca_key, ca=True)
    ca_path, _ = _write(tmp_path / "ca", ca, ca_key)
    server_key, client_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    server_cert, server_key_path = _write(
        tmp_path / "server", _certificate("127.0.0.1", server_key, (ca.subject, ca_key)), server_key
    )
    client_cert, client_key_path = _write(
        tmp_path / "client", _certificate("as-1", client_key, (ca.subject, ca_key)), client_key
    )
    return {
        "ca": ca_path,
        "server_cert": server_cert,
        "server_key": server_key_path,
        "client_cert": client_cert,
        "client_key": client_key_path,
    }


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_tls_listener_with_tokens(
    tmp_path: Path, database: dict[str, Any], pki: dict[str, Path]
) -> None:
    await _provision(database, 10)
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    with live_server(
        tmp_path / "data",
        database,
        scheme="https",
        verify=context,
        tls_cert=str(pki["server_cert"]),
        tls_key=str(pki["server_key"]),
    ) as server:
        token = _token(server, verify=context)
        response = httpx.post(
            f"{server.url}{BASE}",
            json={"asSvcId": "AS1"},
            headers={"authorization": f"Bearer {token}"},
            verify=context,
        )
        assert response.status_code == 201
        assert response.headers["location"].startswith(f"{server.url}/msgs-asregistration/v1/registrations/")
        with pytest.raises(httpx.HTTPError):
            httpx.get(f"http://{server.url.split('://')[1]}/healthz", timeout=2)


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_the_sas_offers_http2_by_alpn_on_its_tls_listener(
    tmp_path: Path, database: dict[str, Any], pki: dict[str, Path]
) -> None:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    tls = {"tls_cert": str(pki["server_cert"]), "tls_key": str(pki["server_key"])}
    with live_server(tmp_path / "data", database, scheme="https", verify=context, **tls) as server:
        sas = "https://" + server.env["ASGATE_SAS_LISTEN"]
        with httpx.Client(http2=True, verify=context) as h2c:
            health = h2c.get(f"{sas}/healthz")
            refused = h2c.get(f"{sas}/1/anything")
        assert (health.status_code, health.http_version, health.json()) == (200, "HTTP/2", {"status": "ok"})
        assert refused.http_version == "HTTP/2" and refused.status_code == 401
        assert refused.headers["content-type"] == "application/problem+json"
        with httpx.Client(verify=context) as h1c:
            assert h1c.get(f"{sas}/healthz").http_version == "HTTP/1.1"


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
async def test_mutual_tls_alone_can_authenticate_an_as(
    tmp_path: Path, database: dict[str, Any], pki: dict[str, Path]
) -> None:
    """TS 29.538 security option `{}`: the AS is authenticated by its certificate (CN = client id)."""
    await _provision(database, 10)
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(str(pki["client_cert"]), str(pki["client_key"]))
    tls = {
        "tls_cert": str(pki["server_cert"]),
        "tls_key": str(pki["server_key"]),
        "tls_client_ca": str(pki["ca"]),
        "msgs_mtls_only": "true",
    }
    with live_server(tmp_path / "data", database, scheme="https", verify=context, **tls) as server:
        response = httpx.post(f"{server.url}{BASE}", json={"asSvcId": "AS1"}, verify=context)
        assert response.status_code == 201, response.text
        refused = httpx.post(f"{server.url}{BASE}", json={"asSvcId": "AS9999"}, verify=context)
        assert (refused.status_code, refused.json()["cause"]) == (403, "AS_SVC_ID_NOT_ALLOWED")
        anonymous = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises(httpx.HTTPError):
            httpx.post(f"{server.url}{BASE}", json={"asSvcId": "AS1"}, verify=anonymous)


def test_a_bad_setting_stops_start_up_naming_it(tmp_path: Path) -> None:
    from tests.live import ASGATE, server_env

    env = server_env(tmp_path, listen="not-an-address")
    result = subprocess.run([*ASGATE, "up"], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "ASGATE_LISTEN" in result.stderr
