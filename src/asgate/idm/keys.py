"""Signing keys: ES256 (P-256) and RS256 (RSA 2048) keys.

A server's keys live in the database, sealed with a key-encryption key (:mod:`asgate.idm.keystore`
fills a :class:`KeyRing` from there and keeps it current). A :class:`KeyRing` made with a directory
keeps PEM files in it instead (what asgate did before issue 10, and what the store imports from
``{data_dir}/keys`` on first start); tests and the sample services use that form.

Per algorithm, the newest key whose ``not_before`` has passed signs; every key is published in the
JWKS (including one that does not sign yet), so tokens signed before a rotation stay valid until
they expire and a new key is published before it signs. ``kid`` is the RFC 7638 JWK thumbprint.
Access tokens and the SAS's assertions are always ES256; the RSA key signs only the ID tokens of
clients registered for RS256 (OIDC Core 15.1, Discovery 3: relying parties expect it).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from asgate.kernel.atrest import FILE_MODE, private_dir, write_private

ALGORITHM = "ES256"  # access tokens, SAS assertions, and ID tokens unless a client asks for RS256
RS256 = "RS256"
ALGORITHMS = (ALGORITHM, RS256)
RSA_BITS = 2048  # RFC 7518 3.3: at least 2048
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
_RELOAD_INTERVAL = 1.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: int
    private_key: PrivateKey
    path: Path | None = None  # the PEM file of a directory's key ring
    not_before: float | None = None  # signs from then on, Unix time (None: as soon as it is the newest)

    def signs_at(self, now: float) -> bool:
        return self.not_before is None or self.not_before <= now

    @property
    def alg(self) -> str:
        return RS256 if isinstance(self.private_key, rsa.RSAPrivateKey) else ALGORITHM

    @property
    def public_jwk(self) -> dict[str, Any]:
        return {
            **_thumbprint_members(self.private_key.public_key()),
            "kid": self.kid,
            "use": "sig",
            "alg": self.alg,
        }


def _uint(value: int) -> str:
    return _b64(value.to_bytes((value.bit_length() + 7) // 8 or 1, "big"))


def _thumbprint_members(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> dict[str, str]:
    if isinstance(public_key, rsa.RSAPublicKey):  # RFC 7518 6.3.1, RFC 7638 3.2
        rsa_numbers = public_key.public_numbers()
        return {"e": _uint(rsa_numbers.e), "kty": "RSA", "n": _uint(rsa_numbers.n)}
    numbers = public_key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(public_key: ec.EllipticCurvePublicKey | rsa.RSAPublicKey) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(_thumbprint_members(public_key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


class KeyRing:
    """The keys of one process. With ``directory``: PEM files there, read again when they change.
    Without: the keys :meth:`install` is given (the store's, :class:`asgate.idm.keystore.StoredKeys`)."""

    def __init__(self, directory: Path | None = None) -> None:
        self._directory = directory
        self._keys: list[SigningKey] = []
        self._stamp: int | None = None
        self._checked = 0.0
        self._generation = 0

    @property
    def directory(self) -> Path:
        if self._directory is None:
            raise RuntimeError("this key ring is kept in the store: see asgate.idm.keystore.StoredKeys")
        return self._directory

    def install(self, keys: list[SigningKey]) -> None:
        """Replace the keys (a key ring without a directory: the store's key set, reloaded)."""
        self._keys = sorted(keys, key=lambda k: k.created)  # stable: the store's order within a second
        self._generation += 1

    def ensure(self) -> None:
        """Create the directory and a first key of each algorithm if there is none (first start;
        a data directory of an older version gets its RSA key here)."""
        private_dir(self.directory)
        for pem in self.directory.glob("*.pem"):  # keys written by an older version: owner-only
            os.chmod(pem, FILE_MODE)
        self._reload(force=True)
        for alg in ALGORITHMS:
            if not any(key.alg == alg for key in self._keys):
                self.rotate(alg)

    @property
    def generation(self) -> int:
        """Changes whenever the set of keys changes (caches of verified tokens key on it)."""
        self._reload()
        return self._generation

    def keys(self, alg: str | None = ALGORITHM) -> list[SigningKey]:
        """The keys of one algorithm (``None``: all), oldest first."""
        self._reload()
        return [key for key in self._keys if alg is None or key.alg == alg]

    @property
    def active(self) -> SigningKey:
        """The ES256 key that signs access tokens now."""
        return self.active_for(ALGORITHM)

    def active_for(self, alg: str) -> SigningKey:
        """The newest key of ``alg`` whose ``not_before`` has passed (a newer one is published only)."""
        now = time.time()
        keys = self.keys(alg)
        for key in reversed(keys):
            if key.signs_at(now):
                return key
        if keys:  # every key still waits (a clock set back): the oldest
            return keys[0]
        raise RuntimeError(f"no {alg} signing key; run `asgate keys rotate`")

    def get(self, kid: str) -> SigningKey | None:
        for key in self.keys(None):
            if key.kid == kid:
                return key
        return None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in reversed(self.keys(None))]}

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt", alg: str = ALGORITHM) -> str:
        key = self.active_for(alg)
        return jwt.encode(claims, key.private_key, algorithm=alg, headers={"kid": key.kid, "typ": typ})

    def rotate(self, alg: str = ALGORITHM) -> SigningKey:
        """Generate a new key for ``alg``; it signs from now on, older ones stay published."""
        if alg not in ALGORITHMS:
            raise ValueError(f"unknown signing algorithm {alg!r}; one of {', '.join(ALGORITHMS)}")
        private_dir(self.directory)
        self._reload(force=True)  # another process (the CLI, a server) may have added keys
        private_key = generate(alg)
        kid = thumbprint(private_key.public_key())
        created = int(time.time())
        if self._keys and created <= self._keys[-1].created:
            created = self._keys[-1].created + 1  # keep "newest signs" strict even within a second
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        path = self.directory / f"{created:010d}-{kid}.pem"
        write_private(path, pem, fsync=True)
        self._reload(force=True)
        key = self.get(kid)
        assert key is not None
        return key

    def retire(self, kid: str) -> bool:
        """Remove a key that no longer signs; tokens it signed stop validating."""
        key = self.get(kid)
        if key is None:
            return False
        if key.kid == self.active_for(key.alg).kid:
            raise ValueError("the active key cannot be retired; rotate first")
        assert key.path is not None
        key.path.unlink()
        self._reload(force=True)
        return True

    def _reload(self, force: bool = False) -> None:
        if self._directory is None:
            return  # the store's follower installs changes
        now = time.monotonic()
        if not force and now - self._checked < _RELOAD_INTERVAL:
            return
        self._checked = now
        try:
            stamp = self.directory.stat().st_mtime_ns
        except FileNotFoundError:
            self._keys, self._stamp = [], None
            self._generation += 1
            return
        if not force and stamp == self._stamp:
            return
        keys = read_pem_directory(self.directory)
        self._keys = sorted(keys, key=lambda k: k.created)
        self._stamp = stamp
        self._generation += 1


def read_pem_directory(directory: Path) -> list[SigningKey]:
    """The keys of a directory key ring (``{created}-{kid}.pem``), oldest first."""
    keys = []
    for path in sorted(directory.glob("*.pem")):
        created, _, _ = path.stem.partition("-")
        private_key = load_private_key(path.read_bytes(), str(path))
        keys.append(SigningKey(thumbprint(private_key.public_key()), int(created), private_key, path))
    return sorted(keys, key=lambda k: k.created)


def load_private_key(data: bytes, what: str) -> PrivateKey:
    """A PEM or DER (PKCS#8) private key; only EC and RSA."""
    loaded = (
        serialization.load_pem_private_key(data, password=None)
        if data.startswith(b"-----")
        else serialization.load_der_private_key(data, password=None)
    )
    if not isinstance(loaded, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(f"{what}: not an EC or RSA private key")
    return loaded


def generate(alg: str) -> PrivateKey:
    if alg not in ALGORITHMS:
        raise ValueError(f"unknown signing algorithm {alg!r}; one of {', '.join(ALGORITHMS)}")
    if alg == ALGORITHM:
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
