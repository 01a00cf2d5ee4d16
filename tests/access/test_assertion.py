"""The SAS's assertion minter and the per-pool opt-in for forwarding the user's token (pure)."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from asgate.access.assertion import AssertionMinter, forwards_user_token
from asgate.client.assertion import TYP
from asgate.idm.keys import KeyRing

ALICE = "alice@mc.example"
POOL = ("GM", "sample-gm")


@pytest.mark.parametrize(
    ("patterns", "pool", "forwarded"),
    [
        ((), ("CM", "cm-1"), False),  # the default: nobody gets the user's token
        (("CM/*",), ("CM", "cm-1"), True),
        (("cm/*",), ("CM", "cm-1"), True),  # service types are case-insensitive
        (("CM/*",), ("GM", "cm-1"), False),
        (("GM/gm-north",), ("GM", "gm-north"), True),
        (("GM/gm-north",), ("GM", "GM-NORTH"), False),  # names are not
        (("GM/gm-*",), ("GM", "gm-south"), True),
        (("*/*",), ("MCPTT", "x"), True),
        (("GM/gm-north",), ("GM", "gm-north-2"), False),
    ],
)
def test_the_user_token_is_forwarded_only_to_pools_that_match(
    patterns: tuple[str, ...], pool: tuple[str, str], forwarded: bool
) -> None:
    assert forwards_user_token(patterns, pool) is forwarded


def test_the_minter_signs_once_per_caller_and_window_and_never_as_an_access_token(tmp_path: Path) -> None:
    ring = KeyRing(tmp_path)
    ring.ensure()
    now = [1000.0]
    minter = AssertionMinter(ring, issuer="https://sas.example", ttl=30, reuse=5, clock=lambda: now[0])
    first = minter.mint("console-1", ALICE, POOL, "", {"mcptt_id": ALICE})
    assert minter.mint("console-1", ALICE, POOL, "", {"mcptt_id": ALICE}) is first
    assert minter.mint("console-1", ALICE, POOL, "mcpttp.9", {"mcptt_id": ALICE}) != first  # per priority
    assert minter.mint("console-2", ALICE, POOL, "", {"mcptt_id": ALICE}) != first  # per application
    assert minter.mint("console-1", ALICE, ("GM", "other"), "", {"mcptt_id": ALICE}) != first  # per pool
    assert minter.signed == 4
    now[0] += 5.1
    assert minter.mint("console-1", ALICE, POOL, "", {"mcptt_id": ALICE}) != first
    header = jwt.get_unverified_header(first)
    claims = jwt.decode(first, options={"verify_signature": False})
    assert header["typ"] == TYP != "at+jwt" and header["kid"] == ring.active.kid
    assert claims["exp"] - claims["iat"] == 30 and "priority" not in claims and claims["jti"]
    with pytest.raises(ValueError, match="ttl"):
        AssertionMinter(ring, issuer="https://sas.example", ttl=120)
