"""Signing keys in the store (issue 10 §2): every process over one database publishes the same JWKS
and signs with the same keys, rotations reach every process before they sign, the private keys are
sealed with the key-encryption key, and a process with another KEK refuses to start."""

from __future__ import annotations

import asyncio
import base64
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import select

from asgate.idm.keys import KeyRing
from asgate.idm.keystore import POLL_INTERVAL, KeyEncryption, KeyEncryptionError, StoredKeys
from asgate.idm.passwords import hash_secret
from asgate.kernel.settings import Settings, SettingsError
from asgate.store import Store
from asgate.store.signing_keys import signing_keys
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime

MakeSettings = Callable[..., Settings]


def _kek() -> str:
    return base64.b64encode(os.urandom(32)).decode()


@pytest.fixture
def kek() -> str:
    return _kek()


class Process:
    """One process: its runtime and a client of its control plane."""

    def __init__(self, rt: Runtime, http: httpx.AsyncClient) -> None:
        self.rt, self.http = rt, http

    async def jwks(self) -> dict[str, Any]:
        response = await self.http.get("/oauth2/jwks")
        assert response.status_code == 200
        return dict(response.json())


async def _process(stack: AsyncExitStack, settings: Settings) -> Process:
    rt = await stack.enter_async_context(Runtime.open(settings))
    app = await stack.enter_async_context(control_app(rt))
    http = await stack.enter_async_context(
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")
    )
    return Process(rt, http)


@pytest.fixture
async def two(
    make_settings: MakeSettings, tmp_path: Path, kek: str
) -> AsyncIterator[tuple[Process, Process]]:
    """Two processes over one database, each with its own data directory, one KEK."""
    async with AsyncExitStack() as stack:
        yield (
            await _process(stack, make_settings(data_dir=tmp_path / "one", key_encryption_key=kek)),
            await _process(stack, make_settings(data_dir=tmp_path / "two", key_encryption_key=kek)),
        )


def _kids(jwks: dict[str, Any]) -> set[str]:
    return {key["kid"] for key in jwks["keys"]}


async def test_two_processes_over_one_database_publish_the_same_jwks(two: tuple[Process, Process]) -> None:
    one, other = two
    first, second = one.rt, other.rt
    jwks = await one.jwks()
    assert jwks == await other.jwks()
    assert sorted(key["alg"] for key in jwks["keys"]) == ["ES256", "RS256"]
    assert first.keyring.active.kid == second.keyring.active.kid


async def test_a_token_issued_by_one_process_is_accepted_by_the_other(two: tuple[Process, Process]) -> None:
    from datetime import UTC, datetime

    from asgate.domain.idm import Client

    one, other = two
    first, second = one.rt, other.rt
    now = datetime.now(UTC)
    client = Client(
        client_id="as-1",
        secret_hash=hash_secret("as-1-secret"),
        scopes=("msgs-asregistration",),
        created_at=now,
        updated_at=now,
    )
    await first.store.write(lambda tx: tx.clients.add(client))
    response = await one.http.post(
        "/oauth2/token", data={"grant_type": "client_credentials"}, auth=("as-1", "as-1-secret")
    )
    assert response.status_code == 200, response.text
    principal = await second.validator.validate(response.json()["access_token"])
    assert principal.client_id == "as-1" and "msgs-asregistration" in principal.scopes


async def test_a_rotation_is_published_by_every_process_before_any_signs_with_it(
    two: tuple[Process, Process],
) -> None:
    one, other = two
    first, second = one.rt, other.rt
    old = first.keyring.active
    delay = 4 * POLL_INTERVAL
    new = await first.signing_keys.rotate("ES256", delay=delay)
    assert new.not_before is not None and new.not_before >= new.created + delay
    assert new.kid in _kids(await one.jwks())  # published at once by the process that rotated
    assert jwt.get_unverified_header(first.keyring.sign({"sub": "x"}))["kid"] == old.kid  # not used yet
    deadline = time.monotonic() + 3 * POLL_INTERVAL
    while new.kid not in _kids(await other.jwks()):  # the other process polls the generation
        assert time.monotonic() < deadline, "the other process did not publish the new key"
        await asyncio.sleep(0.05)
    assert time.time() < new.not_before, "published too late: a token signed by the new key could fail"
    assert second.keyring.active.kid == old.kid  # published, not signing yet, in either process
    assert old.kid in _kids(await other.jwks())
    while time.time() < new.not_before:
        await asyncio.sleep(0.1)
    for rt in (first, second):
        assert rt.keyring.active.kid == new.kid
    token = first.keyring.sign(
        {
            "iss": first.settings.token_issuer,
            "aud": first.settings.token_audience,
            "sub": "as-1",
            "client_id": "as-1",
            "iat": int(time.time()),
            "exp": int(time.time()) + 60,
            "scope": "a",
        }
    )
    assert jwt.get_unverified_header(token)["kid"] == new.kid
    assert (await second.validator.validate(token)).client_id == "as-1"
    assert _kids(await other.jwks()) >= {old.kid, new.kid}  # the old key stays published


async def test_a_retired_key_leaves_every_processs_jwks(two: tuple[Process, Process]) -> None:
    one, other = two
    first, second = one.rt, other.rt
    old = first.keyring.active
    await first.signing_keys.rotate("ES256", delay=0)
    with pytest.raises(ValueError, match="active key"):
        await second.signing_keys.retire(first.keyring.active.kid)
    assert await second.signing_keys.retire(old.kid) is True
    deadline = time.monotonic() + 3 * POLL_INTERVAL
    while old.kid in _kids(await one.jwks()):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)


async def test_another_key_encryption_key_refuses_to_start_and_makes_no_keys(
    two: tuple[Process, Process], make_settings: MakeSettings, tmp_path: Path
) -> None:
    first = two[0].rt
    before = _kids(first.keyring.jwks())
    wrong = make_settings(data_dir=tmp_path / "three", key_encryption_key=_kek())
    with pytest.raises(
        KeyEncryptionError, match="cannot be decrypted with this process's key-encryption key"
    ):
        async with Runtime.open(wrong):
            pass
    # Nor without any KEK: it does not create one, nor keys.
    with pytest.raises(KeyEncryptionError, match="no key-encryption key"):
        async with Runtime.open(make_settings(data_dir=tmp_path / "four")):
            pass
    assert not (tmp_path / "four" / "kek").exists()
    _, rows = await first.store.signing_keys.load()
    assert {row.kid for row in rows} == before


async def test_the_database_holds_the_private_keys_only_sealed(two: tuple[Process, Process]) -> None:
    first = two[0].rt
    async with first.store.engine.connect() as conn:
        rows = (await conn.execute(select(signing_keys))).all()
    assert len(rows) == 2
    dump = b"".join(
        value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row
    )
    for key in first.keyring.keys(None):
        private = key.private_key
        for encoding, form in (
            (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8),
            (serialization.Encoding.DER, serialization.PrivateFormat.PKCS8),
            (serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL),
        ):
            assert private.private_bytes(encoding, form, serialization.NoEncryption()) not in dump
        if isinstance(private, ec.EllipticCurvePrivateKey):
            secret = private.private_numbers().private_value.to_bytes(32, "big")
        else:
            assert isinstance(private, rsa.RSAPrivateKey)
            d = private.private_numbers().d
            secret = d.to_bytes((d.bit_length() + 7) // 8, "big")
        assert secret not in dump
        assert base64.urlsafe_b64encode(secret).rstrip(b"=") not in dump  # nor as a JWK's "d"
    assert b"PRIVATE KEY" not in dump


def test_a_sealed_key_opens_only_with_its_kek_and_for_its_kid() -> None:
    ring = KeyRing()
    key = ec.generate_private_key(ec.SECP256R1())
    from asgate.idm.keys import thumbprint

    kid = thumbprint(key.public_key())
    right = KeyEncryption(os.urandom(32))
    sealed = right.seal(kid, key)
    assert right.open(kid, sealed).private_numbers() == key.private_numbers()
    assert right.seal(kid, key) != sealed  # a fresh nonce each time
    with pytest.raises(KeyEncryptionError, match="cannot be decrypted"):
        KeyEncryption(os.urandom(32)).open(kid, sealed)
    with pytest.raises(KeyEncryptionError, match="cannot be decrypted"):  # the AAD binds the kid
        right.open("another-kid", sealed)
    tampered = sealed[:-1] + bytes([sealed[-1] ^ 1])
    with pytest.raises(KeyEncryptionError):
        right.open(kid, tampered)
    with pytest.raises(RuntimeError, match="in the store"):
        ring.rotate()


async def test_without_a_configured_kek_the_first_start_creates_one_owner_only_and_reuses_it(
    settings: Settings,
) -> None:
    async with Runtime.open(settings) as rt:
        kids = _kids(rt.keyring.jwks())
    kek = settings.data_dir / "kek"
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600
    first = kek.read_bytes()
    async with Runtime.open(settings) as rt:
        assert _kids(rt.keyring.jwks()) == kids  # same keys, opened with the same KEK
    assert kek.read_bytes() == first
    assert not settings.keys_dir.exists()  # no key files any more


async def test_a_kek_file_is_read_and_a_missing_one_is_an_error(
    make_settings: MakeSettings, tmp_path: Path
) -> None:
    path = tmp_path / "secrets" / "kek"
    with pytest.raises(SettingsError, match="key_encryption_key_file .* not found"):
        async with Runtime.open(make_settings(key_encryption_key_file=path)):
            pass
    path.parent.mkdir()
    path.write_text(_kek() + "\n")
    async with Runtime.open(make_settings(key_encryption_key_file=path)) as rt:
        assert len(rt.keyring.jwks()["keys"]) == 2
    assert not (tmp_path / "data" / "kek").exists()  # the configured file only


def test_bad_kek_settings_are_refused_without_echoing_the_key() -> None:
    with pytest.raises(SettingsError, match="base64 of 32 bytes") as short:
        Settings.isolated(key_encryption_key="c2hvcnQta2V5")
    assert "c2hvcnQta2V5" not in str(short.value)
    with pytest.raises(SettingsError, match="must be base64"):
        Settings.isolated(key_encryption_key="not base64 at all!")
    with pytest.raises(SettingsError, match="not both"):
        Settings.isolated(key_encryption_key=_kek(), key_encryption_key_file="/etc/hostname")


async def test_the_key_files_of_an_older_version_are_imported_on_first_start(settings: Settings) -> None:
    legacy = KeyRing(settings.keys_dir)
    legacy.ensure()
    legacy.rotate()  # two ES256 keys, the newer one signing
    files = {key.kid: key for key in legacy.keys(None)}
    async with AsyncExitStack() as stack:
        process = await _process(stack, settings)
        rt = process.rt
        assert _kids(await process.jwks()) == set(files)
        assert rt.keyring.active.kid == legacy.active.kid
        assert rt.keyring.active_for("RS256").kid == legacy.active_for("RS256").kid
        token = rt.keyring.sign({"sub": "x"})
        assert jwt.decode(token, legacy.active.private_key.public_key(), algorithms=["ES256"]) == {"sub": "x"}
        await rt.signing_keys.rotate("ES256", delay=0)  # from now on the store is the truth
    assert {key.kid for key in KeyRing(settings.keys_dir).keys(None)} == set(files)  # files untouched
    async with Runtime.open(settings) as rt:
        assert len(rt.keyring.keys(None)) == len(files) + 1


async def test_two_processes_starting_at_once_on_an_empty_database_create_one_key_set(
    make_settings: MakeSettings, kek: str
) -> None:
    settings = make_settings(key_encryption_key=kek)
    stores = [
        await Store.open(settings.db_url, schema=settings.database_schema, pool_size=2) for _ in range(2)
    ]
    try:
        encryption = KeyEncryption(base64.b64decode(kek))
        processes = [StoredKeys(store, encryption, KeyRing()) for store in stores]
        assert [await keys.refresh() for keys in processes] == [False, False]  # both find none...
        await asyncio.gather(*(keys.create_first(settings.keys_dir) for keys in processes))  # ...and race
        one, two = (keys.ring.jwks() for keys in processes)
        assert one == two and len(one["keys"]) == 2
        _, rows = await stores[0].signing_keys.load()
        assert len(rows) == 2
    finally:
        for store in stores:
            await store.close()
