"""Signing keys: ES256 (P-256) keys kept as PEM files in ``{data_dir}/keys``.

The newest key signs; every key in the directory is published in the JWKS, so tokens signed
before a rotation stay valid until they expire. ``kid`` is the RFC 7638 JWK thumbprint. A running
server notices keys added or removed by ``asgate keys rotate|retire`` within a second.
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
from cryptography.hazmat.primitives.asymmetric import ec

from asgate.atrest import FILE_MODE, private_dir, write_private

ALGORITHM = "ES256"
_RELOAD_INTERVAL = 1.0


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: int
    private_key: ec.EllipticCurvePrivateKey
    path: Path

    @property
    def public_jwk(self) -> dict[str, Any]:
        return {
            **_thumbprint_members(self.private_key.public_key()),
            "kid": self.kid,
            "use": "sig",
            "alg": ALGORITHM,
        }


def _thumbprint_members(public_key: ec.EllipticCurvePublicKey) -> dict[str, str]:
    numbers = public_key.public_numbers()
    return {
        "crv": "P-256",
        "kty": "EC",
        "x": _b64(numbers.x.to_bytes(32, "big")),
        "y": _b64(numbers.y.to_bytes(32, "big")),
    }


def thumbprint(public_key: ec.EllipticCurvePublicKey) -> str:
    """RFC 7638: SHA-256 over the required members in lexicographic order, no whitespace."""
    canonical = json.dumps(_thumbprint_members(public_key), separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


class KeyRing:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._keys: list[SigningKey] = []
        self._stamp: int | None = None
        self._checked = 0.0
        self._generation = 0

    def ensure(self) -> None:
        """Create the directory and a first key if there is none (first start)."""
        private_dir(self.directory)
        for pem in self.directory.glob("*.pem"):  # keys written by an older version: owner-only
            os.chmod(pem, FILE_MODE)
        self._reload(force=True)
        if not self._keys:
            self.rotate()

    @property
    def generation(self) -> int:
        """Changes whenever the set of keys changes (caches of verified tokens key on it)."""
        self._reload()
        return self._generation

    def keys(self) -> list[SigningKey]:
        self._reload()
        return list(self._keys)

    @property
    def active(self) -> SigningKey:
        keys = self.keys()
        if not keys:
            raise RuntimeError(f"no signing key in {self.directory}; run `asgate keys rotate`")
        return keys[-1]

    def get(self, kid: str) -> SigningKey | None:
        for key in self.keys():
            if key.kid == kid:
                return key
        return None

    def jwks(self) -> dict[str, Any]:
        return {"keys": [key.public_jwk for key in reversed(self.keys())]}

    def sign(self, claims: dict[str, Any], *, typ: str = "at+jwt") -> str:
        key = self.active
        return jwt.encode(claims, key.private_key, algorithm=ALGORITHM, headers={"kid": key.kid, "typ": typ})

    def rotate(self) -> SigningKey:
        """Generate a new key; it signs from now on, older ones stay published."""
        private_dir(self.directory)
        self._reload(force=True)  # another process (the CLI, a server) may have added keys
        private_key = ec.generate_private_key(ec.SECP256R1())
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
        if key.kid == self.active.kid:
            raise ValueError("the active key cannot be retired; rotate first")
        key.path.unlink()
        self._reload(force=True)
        return True

    def _reload(self, force: bool = False) -> None:
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
        keys = []
        for path in sorted(self.directory.glob("*.pem")):
            created, _, _ = path.stem.partition("-")
            private_key = serialization.load_pem_private_key(path.read_bytes(), password=None)
            if not isinstance(private_key, ec.EllipticCurvePrivateKey):
                raise ValueError(f"{path}: not an EC private key")
            keys.append(SigningKey(thumbprint(private_key.public_key()), int(created), private_key, path))
        self._keys = sorted(keys, key=lambda k: k.created)
        self._stamp = stamp
        self._generation += 1
