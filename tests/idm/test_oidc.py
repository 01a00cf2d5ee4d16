"""The pure decisions of the OpenID Connect provider, table-driven: redirect URIs (RFC 8252 7.3),
PKCE (RFC 7636), the authorization request, scopes (TS 33.180 B.4), ID token claims."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import urlencode

import pytest

from asgate.domain.idm import Client, User
from asgate.idm import oidc
from asgate.idm.oidc import AuthorizeError, ScopeError

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CLIENT = Client(
    client_id="console-1",
    scopes=("mcx-registry", "3gpp:mc:ptt_service", "3gpp:mc:video_service"),
    redirect_uris=("http://127.0.0.1/cb", "http://[::1]:8000/cb", "https://app.example/cb?x=1"),
    created_at=NOW,
    updated_at=NOW,
)
ALICE = User(
    user_id="u-1",
    username="alice",
    password_hash="h",
    mcptt_id="alice@mc.example",
    created_at=NOW,
    updated_at=NOW,
)


@pytest.mark.parametrize(
    ("requested", "ok"),
    [
        ("http://127.0.0.1/cb", True),  # exact
        ("http://127.0.0.1:53117/cb", True),  # RFC 8252 7.3: any port for a loopback IP literal
        ("http://127.0.0.1:1/cb", True),
        ("http://[::1]:40000/cb", True),  # registered with a port: still any port
        ("http://[::1]/cb", True),
        ("http://[::1]:40000/cb?x=1", False),  # query must match
        ("http://127.0.0.1:53117/cb/", False),  # path must match exactly
        ("http://127.0.0.1:53117/CB", False),
        ("http://127.0.0.2:53117/cb", False),  # another loopback address is another URI
        ("http://[::1]:53117/other", False),
        ("http://localhost:53117/cb", False),  # RFC 8252 8.3: names are not loopback literals
        ("https://127.0.0.1:53117/cb", False),  # the registration is http
        ("http://127.0.0.1:53117/cb#frag", False),  # RFC 6749 3.1.2: no fragment
        ("http://user@127.0.0.1:53117/cb", False),
        ("http://127.0.0.1:99999/cb", False),  # not a port
        ("https://app.example/cb?x=1", True),  # not loopback: exact only
        ("https://app.example:8443/cb?x=1", False),
        ("https://app.example/cb", False),
        ("https://app.example/cb?x=1&y=2", False),
        ("", False),
    ],
)
def test_redirect_uri_matching(requested: str, ok: bool) -> None:
    assert oidc.redirect_uri_matches(CLIENT.redirect_uris, requested) is ok


@pytest.mark.parametrize(
    ("uri", "params", "expected"),
    [
        ("http://127.0.0.1:5/cb", {"code": "c", "state": "s"}, "http://127.0.0.1:5/cb?code=c&state=s"),
        ("https://app.example/cb?x=1", {"code": "c"}, "https://app.example/cb?x=1&code=c"),
        ("http://h/cb", {"error": "a b", "state": None}, "http://h/cb?error=a+b"),
        ("http://h/cb", {"state": "&=#"}, "http://h/cb?state=%26%3D%23"),
    ],
)
def test_redirect_keeps_the_query_and_encodes(uri: str, params: dict[str, str | None], expected: str) -> None:
    assert oidc.redirect_to(uri, params) == expected


# RFC 7636 Appendix B
RFC_VERIFIER = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
RFC_CHALLENGE = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_s256_matches_the_rfc_7636_example() -> None:
    assert oidc.s256(RFC_VERIFIER) == RFC_CHALLENGE


@pytest.mark.parametrize(
    ("verifier", "ok"),
    [
        (RFC_VERIFIER, True),
        (RFC_VERIFIER[:-1] + "l", False),  # one character off
        (RFC_CHALLENGE, False),  # the challenge itself ("plain") is not accepted
        (None, False),
        ("", False),
        ("a" * 42, False),  # RFC 7636 4.1: at least 43 characters
        ("a" * 129, False),  # and at most 128
        (RFC_VERIFIER + " ", False),  # outside the unreserved set
        (RFC_VERIFIER + "+", False),
    ],
)
def test_pkce_verification(verifier: str | None, ok: bool) -> None:
    assert oidc.verify_pkce(verifier, RFC_CHALLENGE) is ok


def test_pkce_accepts_every_unreserved_character() -> None:
    verifier = "AZaz09-._~" * 5
    assert oidc.verify_pkce(verifier, oidc.s256(verifier))


GOOD = {
    "response_type": "code",
    "client_id": "console-1",
    "redirect_uri": "http://127.0.0.1:4000/cb",
    "scope": "openid 3gpp:mc:ptt_service",
    "state": "s1",
    "nonce": "n1",
    "code_challenge": RFC_CHALLENGE,
    "code_challenge_method": "S256",
}


def _items(**changes: str | None) -> list[tuple[str, str]]:
    params = {**GOOD, **changes}
    return [(k, v) for k, v in params.items() if v is not None]


def test_a_valid_request_is_kept_whole() -> None:
    request = oidc.validate_authorization(_items(), CLIENT)
    assert request.client_id == "console-1" and request.redirect_uri == "http://127.0.0.1:4000/cb"
    assert request.scopes == ("openid", "3gpp:mc:ptt_service")
    assert (request.state, request.nonce, request.code_challenge) == ("s1", "n1", RFC_CHALLENGE)


@pytest.mark.parametrize(
    ("items", "client", "error"),
    [
        (_items(client_id=None), CLIENT, "invalid_request"),
        (_items(), None, "invalid_client"),
        (_items(redirect_uri=None), CLIENT, "invalid_request"),
        (_items(redirect_uri="http://evil.example/cb"), CLIENT, "invalid_request"),
        (_items(redirect_uri="http://localhost:4000/cb"), CLIENT, "invalid_request"),
        ([*_items(), ("redirect_uri", "http://127.0.0.1:4000/cb")], CLIENT, "invalid_request"),
    ],
    ids=["no-client", "unknown-client", "no-redirect", "foreign-redirect", "localhost", "two-redirects"],
)
def test_untrusted_requests_are_never_redirected(
    items: list[tuple[str, str]], client: Client | None, error: str
) -> None:
    # RFC 6749 4.1.2.1: the user is told; the (unverified) redirect URI is not used.
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(items, client)
    assert caught.value.error == error and caught.value.redirect_uri is None


@pytest.mark.parametrize(
    ("changes", "error", "state"),
    [
        ({"response_type": "token"}, "unsupported_response_type", "s1"),
        ({"response_type": None}, "invalid_request", "s1"),
        ({"scope": "3gpp:mc:ptt_service"}, "invalid_scope", "s1"),  # no openid
        ({"scope": None}, "invalid_scope", "s1"),
        ({"scope": "openid 3gpp:mc:data_service"}, "invalid_scope", "s1"),  # not held by the client
        ({"state": None}, "invalid_request", None),
        ({"nonce": ""}, "invalid_request", "s1"),
        ({"nonce": "n" * 513}, "invalid_request", "s1"),
        ({"code_challenge": None}, "invalid_request", "s1"),  # RFC 7636 4.4.1
        ({"code_challenge_method": None}, "invalid_request", "s1"),  # "plain" by default: refused
        ({"code_challenge_method": "plain"}, "invalid_request", "s1"),
        ({"code_challenge": "short"}, "invalid_request", "s1"),
        ({"code_challenge": RFC_CHALLENGE[:-1] + "="}, "invalid_request", "s1"),
        ({"prompt": "none"}, "login_required", "s1"),
        ({"response_mode": "fragment"}, "unsupported_response_mode", "s1"),
        ({"request": "eyJ..."}, "request_not_supported", "s1"),
        ({"request_uri": "https://x/r"}, "request_uri_not_supported", "s1"),
    ],
)
def test_invalid_requests_are_redirected_with_the_error(
    changes: dict[str, str | None], error: str, state: str | None
) -> None:
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(_items(**changes), CLIENT)
    assert caught.value.error == error
    assert caught.value.redirect_uri == "http://127.0.0.1:4000/cb"
    assert caught.value.state == state


def test_nonce_is_optional_unless_the_client_is_registered_to_require_it() -> None:
    # OIDC Core 3.1.2.1: nonce is OPTIONAL for the code flow; PKCE stays required.
    assert oidc.validate_authorization(_items(nonce=None), CLIENT).nonce is None
    strict = CLIENT.model_copy(update={"attributes": {"require_nonce": True}})
    assert strict.requires_nonce and not CLIENT.requires_nonce
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(_items(nonce=None), strict)
    assert caught.value.error == "invalid_request" and "nonce is required" in caught.value.description
    assert oidc.validate_authorization(_items(), strict).nonce == "n1"
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(_items(nonce=None, code_challenge=None), CLIENT)
    assert "PKCE" in caught.value.description


def test_the_response_mode_is_kept_and_used_for_errors() -> None:
    assert oidc.validate_authorization(_items(), CLIENT).response_mode == "query"
    assert oidc.validate_authorization(_items(response_mode="form_post"), CLIENT).response_mode == "form_post"
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(_items(response_mode="form_post", scope="openid msgs-admin"), CLIENT)
    assert caught.value.error == "invalid_scope" and caught.value.response_mode == "form_post"
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization(_items(response_mode="fragment"), CLIENT)
    assert caught.value.response_mode == "query"


def test_a_repeated_parameter_is_an_error_and_a_repeated_state_is_not_echoed() -> None:
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization([*_items(), ("state", "s2")], CLIENT)
    assert caught.value.error == "invalid_request" and caught.value.state is None
    with pytest.raises(AuthorizeError) as caught:
        oidc.validate_authorization([*_items(), ("nonce", "n2")], CLIENT)
    assert "'nonce' is repeated" in caught.value.description and caught.value.state == "s1"


def test_the_authorization_url_built_like_a_client_does_is_accepted() -> None:
    from urllib.parse import parse_qsl

    items = parse_qsl(urlencode(GOOD))
    assert oidc.validate_authorization(items, CLIENT).state == "s1"


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ("openid", ("openid",)),
        ("openid openid 3gpp:mc:ptt_service", ("openid", "3gpp:mc:ptt_service")),
        ("mcx-registry openid", ("mcx-registry", "openid")),
        ("openid 3gpp:mc:data_service", ScopeError),
        ("openid msgs-admin", ScopeError),
        ("3gpp:mc:ptt_service", ScopeError),
        ("", ScopeError),
        (None, ScopeError),
    ],
)
def test_requested_scopes(scope: str | None, expected: tuple[str, ...] | type[Exception]) -> None:
    if isinstance(expected, tuple):
        assert oidc.requested_scopes(scope, CLIENT) == expected
    else:
        with pytest.raises(expected):
            oidc.requested_scopes(scope, CLIENT)


@pytest.mark.parametrize(
    ("ids", "asked", "granted"),
    [
        ({"mcptt_id": "a@mc"}, MC := oidc.MC_SCOPES, tuple(s for s in MC if ":ptt_" in s)),
        ({"mcvideo_id": "a@mc"}, ("openid", "3gpp:mc:video_service"), ("openid", "3gpp:mc:video_service")),
        ({}, ("openid", "3gpp:mc:data_service", "mcx-registry"), ("openid", "mcx-registry")),
        (
            {"mcptt_id": "a", "mcdata_id": "b"},
            ("3gpp:mc:data_group_management_service", "3gpp:mc:video_service"),
            ("3gpp:mc:data_group_management_service",),
        ),
    ],
)
def test_mc_scopes_need_the_users_mc_service_id(
    ids: dict[str, str], asked: tuple[str, ...], granted: tuple[str, ...]
) -> None:
    user = ALICE.model_copy(update={"mcptt_id": None, **ids})
    assert oidc.scopes_for_user(asked, user) == granted


def test_the_twelve_ts_33180_scopes() -> None:
    assert len(oidc.MC_SCOPES) == 12
    assert "3gpp:mc:ptt_key_management_service" in oidc.MC_SCOPES
    assert "3gpp:mc:video_config_management_service" in oidc.MC_SCOPES
    assert "3gpp:mc:data_group_management_service" in oidc.MC_SCOPES


@pytest.mark.parametrize(
    ("granted", "scope", "expected"),
    [
        (("openid", "a", "b"), None, ("openid", "a", "b")),
        (("openid", "a", "b"), "a", ("a",)),
        (("openid", "a", "b"), "b openid", ("b", "openid")),
        (("openid", "a"), "a c", ScopeError),  # RFC 6749 6: never more than granted
        (("openid", "a"), "", ScopeError),
    ],
)
def test_a_refresh_may_narrow_the_scope(
    granted: tuple[str, ...], scope: str | None, expected: tuple[str, ...] | type[Exception]
) -> None:
    if isinstance(expected, tuple):
        assert oidc.narrow(granted, scope) == expected
    else:
        with pytest.raises(expected):
            oidc.narrow(granted, scope)


def test_id_token_claims_carry_the_mc_ids_and_the_nonce_only_at_login() -> None:
    user = ALICE.model_copy(update={"mcdata_id": "alice.d@mc.example"})
    claims = oidc.id_token_claims(
        issuer="https://idm", user=user, client_id="console-1", auth_time=90, nonce="n", now=100, ttl=900
    )
    assert claims == {
        "iss": "https://idm",
        "sub": "u-1",
        "aud": "console-1",
        "azp": "console-1",
        "iat": 100,
        "exp": 1000,
        "auth_time": 90,
        "acr": oidc.ACR_PASSWORD,
        "mcptt_id": "alice@mc.example",
        "mcdata_id": "alice.d@mc.example",
        "nonce": "n",
    }
    refreshed = oidc.id_token_claims(
        issuer="https://idm", user=user, client_id="console-1", auth_time=90, nonce=None, now=500, ttl=900
    )
    assert "nonce" not in refreshed and refreshed["auth_time"] == 90  # OIDC Core 12.2


def test_secrets_are_stored_as_digests() -> None:
    secret = oidc.new_secret()
    assert len(secret) == 43 and oidc.digest(secret) != secret and len(oidc.digest(secret)) == 64
    assert oidc.new_secret() != secret


def test_at_hash_matches_the_oidc_core_example() -> None:
    # OIDC Core A.3 (the example's access token and at_hash).
    assert oidc.at_hash("jHkWEdUXMU1BwAsC4vtUsZwnNvTIxEl0z9K3vx5KF0Y") == "77QmUPtjPfzWtF2AnpK9RQ"


@pytest.mark.parametrize(
    ("uri", "problem"),
    [
        ("com.example.console:/oauth2redirect", None),  # RFC 8252 7.1
        ("com.example.console://callback", None),  # the authority form some SDKs use
        ("https://console.example/oauth2redirect", None),  # RFC 8252 7.2 (claimed https)
        ("https://app.example/cb?x=1", None),
        ("http://127.0.0.1/cb", None),  # RFC 8252 7.3
        ("http://127.0.0.1:8400/cb", None),
        ("http://[::1]/cb", None),
        ("myapp:/cb", "reverse domain name"),  # RFC 8252 8.4: no period, refused
        ("javascript:alert(1)", "reverse domain name"),
        ("data:text/html,hi", "reverse domain name"),
        ("file:///etc/passwd", "reverse domain name"),
        ("Com.Example.App:/cb", "lower-case scheme"),
        ("http://localhost:4000/cb", "instead of localhost"),  # RFC 8252 8.3
        ("http://app.localhost/cb", "instead of localhost"),
        ("http://console.example/cb", "only to a loopback IP literal"),
        ("http://10.0.0.1/cb", "only to a loopback IP literal"),
        ("https://console.example/cb#x", "no fragment"),
        ("com.example.app:/cb#x", "no fragment"),
        ("https://user@console.example/cb", "no user name"),
        ("http://u:p@127.0.0.1/cb", "no user name"),
        ("https://console.example:99999/cb", "port"),
        ("https://Console.Example/cb", "lower-case ASCII"),
        ("https://bücher.example/cb", "non-ASCII"),
        ("https://console.example/c b", "white space"),
        ("com.example.app:/cb;\tx", "white space"),
        ("https:///cb", "lower-case ASCII"),
        ("/oauth2redirect", "absolute"),
        ("", "1 to 2000"),
        ("https://console.example/" + "a" * 2000, "1 to 2000"),
    ],
)
def test_which_redirect_uris_can_be_registered(uri: str, problem: str | None) -> None:
    found = oidc.redirect_uri_problem(uri)
    assert found is None if problem is None else problem in (found or "")


NATIVE = Client(
    client_id="native",
    redirect_uris=("com.example.console:/oauth2redirect", "https://console.example/oauth2redirect"),
    created_at=NOW,
    updated_at=NOW,
)


@pytest.mark.parametrize(
    ("requested", "ok"),
    [
        ("com.example.console:/oauth2redirect", True),
        ("com.example.console:/oauth2redirect/", False),  # exact, as any non-loopback URI
        ("com.example.console://oauth2redirect", False),
        ("com.example.consolex:/oauth2redirect", False),
        ("COM.EXAMPLE.CONSOLE:/oauth2redirect", False),
        ("com.example.console:/oauth2redirect?x=1", False),
        ("https://console.example/oauth2redirect", True),
        ("https://console.example:8443/oauth2redirect", False),  # the port matters off loopback
        ("http://console.example/oauth2redirect", False),
    ],
)
def test_private_use_and_claimed_https_redirects_match_exactly(requested: str, ok: bool) -> None:
    assert oidc.redirect_uri_matches(NATIVE.redirect_uris, requested) is ok


def test_the_answer_to_a_private_use_redirect_keeps_its_form() -> None:
    params = {"code": "c", "state": "s", "iss": "https://idm.example"}
    assert (
        oidc.redirect_to("com.example.console:/oauth2redirect", params)
        == "com.example.console:/oauth2redirect?code=c&state=s&iss=https%3A%2F%2Fidm.example"
    )


def test_an_authorization_request_for_a_registered_private_use_redirect_is_valid() -> None:
    items = _items(client_id="native", redirect_uri="com.example.console:/oauth2redirect")
    request = oidc.validate_authorization(
        items, NATIVE.model_copy(update={"scopes": ("3gpp:mc:ptt_service",)})
    )
    assert request.redirect_uri == "com.example.console:/oauth2redirect"


def test_a_redirect_uri_stored_before_registration_was_checked_is_never_used() -> None:
    legacy = NATIVE.model_copy(update={"redirect_uris": ("javascript:alert(1)", "http://console.example/cb")})
    for uri in legacy.redirect_uris:
        with pytest.raises(AuthorizeError) as caught:
            oidc.validate_authorization(_items(client_id="native", redirect_uri=uri), legacy)
        assert caught.value.redirect_uri is None and "not allowed any more" in caught.value.description
