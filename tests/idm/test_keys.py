from __future__ import annotations

import stat
from pathlib import Path

import pytest

from asgate.idm.keys import KeyRing, thumbprint


def test_first_start_creates_one_private_key_per_algorithm_readable_only_by_the_owner(
    tmp_path: Path,
) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    ring.ensure()  # idempotent
    (key,) = ring.keys()
    (rsa_key,) = ring.keys("RS256")
    assert [k.alg for k in ring.keys(None)] == ["ES256", "RS256"]
    for each in (key, rsa_key):
        assert each.path is not None and stat.S_IMODE(each.path.stat().st_mode) == 0o600
        assert each.kid == thumbprint(each.private_key.public_key())
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert ring.jwks()["keys"] == [rsa_key.public_jwk, key.public_jwk]
    assert set(key.public_jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # no private part
    assert set(rsa_key.public_jwk) == {"kty", "n", "e", "kid", "use", "alg"}
    assert (key.public_jwk["alg"], rsa_key.public_jwk["alg"]) == ("ES256", "RS256")


def test_rsa_thumbprint_is_rfc_7638s_example() -> None:
    # RFC 7638 3.1: the example RSA key and its thumbprint.
    from cryptography.hazmat.primitives.asymmetric import rsa

    n = (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMs"
        "tn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91"
        "CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    )
    numbers = rsa.RSAPublicNumbers(65537, int.from_bytes(_unb64(n), "big"))
    assert thumbprint(numbers.public_key()) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


def _unb64(text: str) -> bytes:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rotation_publishes_old_and_new_and_signs_with_the_new(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    old, rsa_old = ring.active, ring.active_for("RS256")
    new = ring.rotate()
    assert ring.active == new != old
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, rsa_old.kid, old.kid]
    rsa_new = ring.rotate("RS256")
    assert ring.active_for("RS256").kid == rsa_new.kid and ring.active.kid == new.kid  # one at a time
    with pytest.raises(ValueError, match="active key"):
        ring.retire(new.kid)
    with pytest.raises(ValueError, match="active key"):
        ring.retire(rsa_new.kid)
    assert ring.retire(old.kid) is True
    assert ring.retire(old.kid) is False
    assert ring.retire(rsa_old.kid) is True
    assert [k.kid for k in ring.keys(None)] == [new.kid, rsa_new.kid]


def test_a_second_process_sees_keys_rotated_by_another(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, cli = KeyRing(tmp_path / "keys"), KeyRing(tmp_path / "keys")
    server.ensure()
    first = server.active
    new = cli.rotate()  # within the same second as the first key
    assert new.created > first.created
    monkeypatch.setattr("asgate.idm.keys._RELOAD_INTERVAL", 0.0)
    assert server.active.kid == new.kid
    rsa_kid = server.active_for("RS256").kid
    assert {k["kid"] for k in server.jwks()["keys"]} == {first.kid, new.kid, rsa_kid}
