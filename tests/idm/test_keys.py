from __future__ import annotations

import stat
from pathlib import Path

import pytest

from asgate.idm.keys import KeyRing, thumbprint


def test_first_start_creates_one_private_key_readable_only_by_the_owner(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    ring.ensure()  # idempotent
    (key,) = ring.keys()
    assert stat.S_IMODE(key.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert key.kid == thumbprint(key.private_key.public_key())
    assert ring.jwks()["keys"][0] == {**key.public_jwk, "kid": key.kid}
    assert set(key.public_jwk) == {"kty", "crv", "x", "y", "kid", "use", "alg"}  # no private part


def test_rotation_publishes_old_and_new_and_signs_with_the_new(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path / "keys")
    ring.ensure()
    old = ring.active
    new = ring.rotate()
    assert ring.active == new != old
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new.kid, old.kid]
    with pytest.raises(ValueError, match="active key"):
        ring.retire(new.kid)
    assert ring.retire(old.kid) is True
    assert ring.retire(old.kid) is False
    assert [k.kid for k in ring.keys()] == [new.kid]


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
    assert {k["kid"] for k in server.jwks()["keys"]} == {first.kid, new.kid}
