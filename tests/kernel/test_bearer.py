"""The one bearer-token reader (RFC 6750 2.1), for text and for raw header bytes alike."""

from __future__ import annotations

import pytest

from asgate.kernel.bearer import bearer_token, bearer_token_bytes

JWT = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhcHAifQ.c2lnbmF0dXJl"


@pytest.mark.parametrize(
    ("value", "token"),
    [
        (f"Bearer {JWT}", JWT),
        (f"bearer {JWT}", JWT),  # the scheme is case-insensitive (RFC 9110 11.1)
        (f"BEARER {JWT}", JWT),
        (f"Bearer  {JWT}", JWT),  # 1*SP
        (f"Bearer {JWT} ", JWT),  # trailing whitespace is not part of the field value
        ("Bearer abc-._~+/==", "abc-._~+/=="),  # the whole b64token alphabet, padding last
        (None, None),
        ("", None),
        ("Bearer", None),  # no token
        ("Bearer ", None),
        ("Bearer    ", None),
        (f"Basic {JWT}", None),  # another scheme
        (f"Bearertoken{JWT}", None),  # no space after the scheme
        (f"Bearer\t{JWT}", None),  # SP, not HTAB
        (f"Bearer {JWT} extra", None),  # one token, nothing after it
        (f"Bearer {JWT},Bearer {JWT}", None),  # one credential only
        ("Bearer a=b", None),  # "=" only as trailing padding
        ('Bearer "quoted"', None),
        ("Bearer tok\u00e9n", None),  # ASCII only
    ],
)
def test_the_authorization_header_carries_one_bearer_token_or_none(
    value: str | None, token: str | None
) -> None:
    assert bearer_token(value) == token
    raw = None if value is None else value.encode("utf-8")
    assert bearer_token_bytes(raw) == token
