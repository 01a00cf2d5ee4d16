"""Pool ownership as a pure decision (issue 8 item 1): may a client provisioned with these patterns
serve this pool?"""

from __future__ import annotations

import pytest

from asgate.registry.pools import matches, may_serve, parse_pattern


@pytest.mark.parametrize(
    ("patterns", "pool", "allowed"),
    [
        ((), ("GM", "gm-north"), False),  # nothing by default
        (("GM/gm-north",), ("GM", "gm-north"), True),
        (("GM/gm-north",), ("GM", "gm-south"), False),
        (("GM/gm-north",), ("gm", "gm-north"), True),  # service types match case-insensitively
        (("GM/gm-north",), ("GM", "GM-NORTH"), False),  # names exactly
        (("GM/*",), ("GM", "anything"), True),
        (("GM/*",), ("GMX", "a"), False),  # a whole part, never a prefix
        (("GM/*",), ("G", "a"), False),
        (("GM/*",), ("GM", "a/b"), False),  # never a path
        (("GM/a",), ("GM", "a/b"), False),
        (("*/gm-north",), ("CM", "gm-north"), True),
        (("*/*",), ("MCPTT", "x"), True),
        (("CM/*", "GM/gm-north"), ("GM", "gm-north"), True),
        (("CM/*", "GM/gm-north"), ("GM", "gm-west"), False),
        (("GM/gm-*",), ("GM", "gm-north"), False),  # no partial wildcards: a literal name
        (("GM",), ("GM", "gm-north"), False),  # a malformed row grants nothing
        (("GM/a/b",), ("GM", "a"), False),
    ],
)
def test_may_serve(patterns: tuple[str, ...], pool: tuple[str, str], allowed: bool) -> None:
    assert may_serve(patterns, *pool) is allowed


@pytest.mark.parametrize(
    ("text", "stored"),
    [("GM/gm-north", "GM/gm-north"), (" GM/* ", "GM/*"), ("*/*", "*/*"), ("MCData/sds.1", "MCData/sds.1")],
)
def test_parse_pattern_accepts(text: str, stored: str) -> None:
    assert parse_pattern(text) == stored
    assert matches(stored, "GM", "gm-north") is (stored in ("GM/gm-north", "GM/*", "*/*"))


@pytest.mark.parametrize(
    "text", ["GM", "GM/", "/gm", "GM/a/b", "G M/x", "GM/gm-*", "GM*/x", "1GM/x", "GM/-x"]
)
def test_parse_pattern_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="TYPE/NAME"):
        parse_pattern(text)
