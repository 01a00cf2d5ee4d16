"""Signing keys in the store, sealed with a key-encryption key (issue 10 §2).

Every process of a deployment reads one key set from the database, so all of them publish the same
JWKS and sign with the same keys. The private keys are sealed before they reach the store:
AES-256-GCM under the key-encryption key (KEK), a random 96-bit nonce per key, the ``kid`` as
associated data (a sealed key copied onto another row does not open). The KEK comes from
``key_encryption_key`` (base64) or ``key_encryption_key_file``; without either, ``{data_dir}/kek``
is created (``0600``) on first start, which suits one machine: a cluster must give every process
the same KEK. A process whose KEK does not open the stored keys refuses to start
(:class:`KeyEncryptionError`); it never makes keys of its own instead.

Rotation without a failed request. A process reads the key set's generation every
``POLL_INTERVAL`` seconds and reloads the keys when it changed. A new key is published at once (in
every process's JWKS within ``POLL_INTERVAL`` plus a read) but signs only from ``not_before`` =
its creation + ``signing_key_publish_delay`` (5 s by default, at least ``2 x POLL_INTERVAL`` is
wise; it must also cover the clock difference between the machines): so no process signs with a
key that another process does not publish yet. Older keys stay published until an operator retires
them (``asgate keys retire``, after the tokens they signed have expired).

First start. When the store has no key set, the process creates one: the PEM files of
``{data_dir}/keys`` (where asgate kept keys before) if there are any, plus a new key for any
algorithm they lack. The key set's row has a fixed primary key, so when several processes start at
once on an empty database exactly one key set is created; the others load it.
"""

from __future__ import annotations

import base64
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from asgate.idm.keys import (
    ALGORITHMS,
    KeyRing,
    PrivateKey,
    SigningKey,
    generate,
    load_private_key,
    read_pem_directory,
    thumbprint,
)
from asgate.kernel import logs
from asgate.kernel.atrest import FILE_MODE, private_dir, write_private
from asgate.kernel.background import Background
from asgate.kernel.settings import KEK_BYTES, Settings, SettingsError, decode_kek
from asgate.store import Store
from asgate.store.signing_keys import KeySetExistsError, StoredKey
from asgate.store.tx import Tx

log = logs.get("asgate.keys")

POLL_INTERVAL = 1.0  # seconds between two reads of the key set's generation
_SEAL_VERSION = b"\x01"  # the first byte of a sealed key: AES-256-GCM, 12-byte nonce, AAD = kid
_NONCE_BYTES = 12


class KeyEncryptionError(SettingsError):
    """The stored keys cannot be opened with this process's key-encryption key (or it has none)."""


class KeyEncryption:
    """Seal and open private keys with the KEK (AES-256-GCM, AAD = kid)."""

    def __init__(self, kek: bytes) -> None:
        if len(kek) != KEK_BYTES:
            raise ValueError(f"a key-encryption key has {KEK_BYTES} bytes")
        self._aead = AESGCM(kek)

    def seal(self, kid: str, private_key: PrivateKey) -> bytes:
        der = private_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        nonce = secrets.token_bytes(_NONCE_BYTES)
        return _SEAL_VERSION + nonce + self._aead.encrypt(nonce, der, kid.encode())

    def open(self, kid: str, sealed: bytes) -> PrivateKey:
        """The private key; :class:`KeyEncryptionError` when this KEK did not seal it (for this kid)."""
        if sealed[:1] != _SEAL_VERSION or len(sealed) < 1 + _NONCE_BYTES + 16:
            raise KeyEncryptionError(f"signing key {kid}: not a sealed key this version of asgate reads")
        nonce, ciphertext = sealed[1 : 1 + _NONCE_BYTES], sealed[1 + _NONCE_BYTES :]
        try:
            der = self._aead.decrypt(nonce, ciphertext, kid.encode())
        except InvalidTag:
            raise KeyEncryptionError(_wrong_kek(kid)) from None
        private_key = load_private_key(der, f"signing key {kid}")
        if thumbprint(private_key.public_key()) != kid:
            raise KeyEncryptionError(f"signing key {kid}: the sealed key is not the key of that kid")
        return private_key


def _wrong_kek(kid: str) -> str:
    return (
        f"the signing keys in the database (first: {kid}) cannot be decrypted with this process's "
        "key-encryption key: every process of a deployment must use the same key_encryption_key "
        "(or key_encryption_key_file); asgate does not create new keys in its place"
    )


Announce = Callable[[str], None]  # where first-start notices go (the log; the CLI: standard error)


def _log_warning(message: str) -> None:
    log.warning(message)


def load_kek(settings: Settings, *, create: bool, announce: Announce = _log_warning) -> bytes | None:
    """The KEK from the settings, else from ``settings.kek_file``; a missing ``{data_dir}/kek`` is
    created when ``create`` (never a configured ``key_encryption_key_file``). ``None``: no KEK."""
    if settings.key_encryption_key is not None:
        return decode_kek(settings.key_encryption_key.get_secret_value())
    path = settings.kek_file
    try:
        text = path.read_text(encoding="ascii")
    except FileNotFoundError:
        if settings.key_encryption_key_file is not None:
            raise SettingsError(f"key_encryption_key_file {path} not found") from None
        if not create:
            return None
        return _create_kek(path, announce)
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read the key-encryption key {path}: {exc}") from None
    try:
        kek = decode_kek(text)
    except ValueError as exc:
        raise SettingsError(f"key-encryption key {path}: {exc}") from None
    if settings.key_encryption_key_file is None:
        os.chmod(path, FILE_MODE)  # asgate's own file: owner-only, as everything in data_dir
    return kek


def _create_kek(path: Path, announce: Announce) -> bytes:
    private_dir(path.parent)
    kek = secrets.token_bytes(KEK_BYTES)
    tmp = path.with_name(f"{path.name}.{secrets.token_hex(4)}.tmp")
    write_private(tmp, base64.b64encode(kek) + b"\n", fsync=True)
    try:
        os.link(tmp, path)  # atomic and exclusive: of two processes starting at once, the first wins
    except FileExistsError:
        return decode_kek(path.read_text(encoding="ascii"))
    finally:
        tmp.unlink()
    announce(
        f"created the key-encryption key {path} for the signing keys: every process sharing this "
        "database needs the same one (key_encryption_key or key_encryption_key_file)"
    )
    return kek


def _epoch(value: datetime) -> int:
    return int(value.timestamp())


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


@dataclass
class StoredKeys:
    """The store's key set for one process: fills ``ring`` and keeps it current."""

    store: Store
    encryption: KeyEncryption
    ring: KeyRing
    publish_delay: float = 5.0
    announce: Announce = _log_warning
    _generation: int | None = None

    @classmethod
    async def open(cls, settings: Settings, store: Store, *, announce: Announce = _log_warning) -> StoredKeys:
        """Load the key set (creating the first one when the store has none; see the module's
        docstring). Raises :class:`KeyEncryptionError` when the KEK cannot open the stored keys."""
        kek = load_kek(settings, create=False)
        if kek is None:
            if await store.signing_keys.generation() is not None:
                raise KeyEncryptionError(
                    f"the database holds signing keys but this process has no key-encryption key "
                    f"(key_encryption_key, key_encryption_key_file or {settings.kek_file}): give it "
                    "the deployment's; asgate does not create new keys in their place"
                )
            kek = load_kek(settings, create=True, announce=announce)
            assert kek is not None
        keys = cls(
            store,
            KeyEncryption(kek),
            KeyRing(),
            publish_delay=settings.signing_key_publish_delay,
            announce=announce,
        )
        if not await keys.refresh(strict=True):
            await keys.create_first(settings.keys_dir)
        return keys

    async def create_first(self, legacy_dir: Path) -> None:
        """The store has no key set: create one (the PEM files in ``legacy_dir`` and a new key for any
        algorithm they lack), or load the one another process created at the same time."""
        now = time.time()
        imported = read_pem_directory(legacy_dir) if legacy_dir.is_dir() else []
        # An imported key was signing already: never later than now (an older version stamped a key
        # rotated twice within a second a second or two ahead, to keep "newest signs" strict).
        rows = [self._row(key.private_key, key.created, min(key.created, now)) for key in imported]
        for alg in ALGORITHMS:
            if not any(key.alg == alg for key in imported):  # a data directory of an older version
                now += 0.001  # ES256 then RS256: the store lists keys by creation
                rows.append(self._row(generate(alg), now, now))

        def work(tx: Tx) -> None:
            tx.signing_keys.create_set(rows)

        try:
            await self.store.write(work)
        except KeySetExistsError:
            log.info("another process created the signing keys first; using them")
        else:
            if imported:
                self.announce(
                    f"imported the {len(imported)} signing keys of {legacy_dir} into the database; the "
                    "files are no longer read: remove them once the database is backed up"
                )
        if not await self.refresh(strict=True):
            raise RuntimeError("no signing key set in the store after creating one")

    def _row(self, private_key: PrivateKey, created: float, not_before: float) -> StoredKey:
        kid = thumbprint(private_key.public_key())
        probe = SigningKey(kid, int(created), private_key)
        return StoredKey(
            kid=kid,
            alg=probe.alg,
            created_at=_at(created),
            not_before=_at(not_before),
            public_jwk=probe.public_jwk,
            sealed_key=self.encryption.seal(kid, private_key),
        )

    @property
    def generation(self) -> int | None:
        return self._generation

    async def refresh(self, *, strict: bool = False) -> bool:
        """Reload the keys if the store's generation changed. ``False``: the store has no key set.
        A key that does not open raises when ``strict`` (at start); later it keeps the current keys."""
        generation = await self.store.signing_keys.generation()
        if generation is None:
            return False
        if generation == self._generation:
            return True
        generation, rows = await self.store.signing_keys.load()
        try:
            keys = [self._open(row) for row in rows]
        except KeyEncryptionError:
            if strict:
                raise
            log.error("a signing key in the database does not open; keeping the current keys")
            return True
        self.ring.install(keys)
        self._generation = generation
        return True

    def _open(self, row: StoredKey) -> SigningKey:
        private_key = self.encryption.open(row.kid, row.sealed_key)
        return SigningKey(row.kid, _epoch(row.created_at), private_key, not_before=row.not_before.timestamp())

    async def follow(self, background: Background, interval: float = POLL_INTERVAL) -> None:
        """Poll the generation until the process stops."""
        await background.every(interval, self.refresh, "reading the signing keys")

    async def rotate(self, alg: str, *, delay: float | None = None) -> SigningKey:
        """Add a new key for ``alg``: published at once, signing from ``delay`` seconds on
        (``signing_key_publish_delay`` by default)."""
        private_key = generate(alg)
        await self.refresh()  # another process may have rotated since
        created = time.time()  # the store orders keys by it (microseconds): the newest last
        row = self._row(private_key, created, created + (self.publish_delay if delay is None else delay))

        def work(tx: Tx) -> None:
            tx.signing_keys.add(row)

        await self.store.write(work)
        await self.refresh()
        key = self.ring.get(row.kid)
        assert key is not None
        return key

    async def retire(self, kid: str) -> bool:
        """Remove a key that no longer signs; tokens it signed stop validating everywhere."""
        await self.refresh()
        key = self.ring.get(kid)
        if key is None:
            return False
        if key.kid == self.ring.active_for(key.alg).kid:
            raise ValueError("the active key cannot be retired; rotate first")

        def work(tx: Tx) -> bool:
            return tx.signing_keys.remove(kid)

        removed = await self.store.write(work)
        await self.refresh()
        return removed
