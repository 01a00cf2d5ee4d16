"""GET/POST /oauth2/authorize through the real app: the login page, its errors (RFC 6749 4.1.2.1),
the single-use form handle, credentials, brute-force protection."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Callable
from datetime import UTC, datetime
from html import unescape

import httpx
import pytest

from asgate.client.browser import ScriptedBrowser, parse_login_page
from asgate.domain.idm import Client
from asgate.idm import csrf
from asgate.kernel.problem import ProblemError
from asgate.kernel.settings import Settings
from asgate.system.runtime import Runtime
from tests.idm.conftest import REDIRECT, AddUser, Login, authorize_url, exchange, query

pytestmark = pytest.mark.usefixtures("console", "alice")


async def _page(http: httpx.AsyncClient, **overrides: str | None) -> httpx.Response:
    return await http.get(authorize_url(**overrides))


async def _post(
    http: httpx.AsyncClient, handle: str, username: str, password: str, **headers: str
) -> httpx.Response:
    # The form's token, as the page gave it to this client (its cookie jar holds the browser key).
    token = csrf.form_token(http.cookies.get(csrf.COOKIE) or "", handle)
    form = {"handle": handle, "username": username, "password": password, "csrf": token}
    return await http.post("/oauth2/authorize", data=form, headers=headers)


async def test_the_login_page_is_a_safe_accessible_form(http: httpx.AsyncClient) -> None:
    response = await _page(http)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["cache-control"] == "no-store"
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp
    # The form may be followed by the redirect to the application (browsers apply form-action to it).
    assert "form-action 'self' http://127.0.0.1:53117" in csp
    html = response.text
    assert '<html lang="en">' in html and "<script" not in html and "http" not in html.split("<main>")[1]
    assert '<label for="username">' in html and '<label for="password">' in html
    assert 'autocomplete="current-password"' in html
    form = parse_login_page(html)
    assert form.method == "post" and form.action == "authorize"
    assert set(form.fields) == {"handle", "csrf", "username", "password"} and len(form.fields["handle"]) == 43
    assert form.fields["password"] == ""  # never filled in by the server
    assert "console-1 app" in html and "use MCPTT for you" in html and "use MCData for you" in html


async def test_the_standard_scopes_are_described_in_words(http: httpx.AsyncClient, rt: Runtime) -> None:
    await rt.store.write(
        lambda tx: tx.clients.update("console-1", scopes=("3gpp:mc:ptt_service", "email", "phone"))
    )
    html = (await _page(http, scope="openid 3gpp:mc:ptt_service email phone")).text
    assert "see your e-mail address" in html and "see your phone number" in html


async def test_every_page_shows_a_new_handle(http: httpx.AsyncClient) -> None:
    first = parse_login_page((await _page(http)).text).fields["handle"]
    second = parse_login_page((await _page(http)).text).fields["handle"]
    assert first != second


async def test_client_names_are_escaped(http: httpx.AsyncClient, rt: Runtime) -> None:
    await rt.store.write(lambda tx: tx.clients.update("console-1", name='<img src=x onerror="alert(1)">'))
    html = (await _page(http)).text
    assert "<img" not in html and "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"client_id": "ghost"}, "not registered"),
        ({"client_id": None}, "names no client"),
        ({"redirect_uri": "http://evil.example/cb"}, "not registered for this application"),
        ({"redirect_uri": "http://localhost:53117/cb"}, "not registered for this application"),
        ({"redirect_uri": None}, "no redirect_uri"),
    ],
)
async def test_an_untrusted_client_or_redirect_gets_an_error_page_never_a_redirect(
    http: httpx.AsyncClient, overrides: dict[str, str | None], message: str
) -> None:
    response = await _page(http, **overrides)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.headers["x-frame-options"] == "DENY"
    assert message in parse_login_page(response.text).error  # type: ignore[operator]


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"code_challenge": None}, "invalid_request"),
        ({"code_challenge_method": None}, "invalid_request"),
        ({"code_challenge_method": "plain"}, "invalid_request"),
        ({"code_challenge": "not-a-digest"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "3gpp:mc:ptt_service"}, "invalid_scope"),
        ({"scope": "openid msgs-admin"}, "invalid_scope"),
        ({"nonce": "x" * 513}, "invalid_request"),
        ({"prompt": "none"}, "login_required"),
    ],
)
async def test_a_bad_request_from_a_trusted_client_is_redirected_with_the_error(
    http: httpx.AsyncClient, rt: Runtime, overrides: dict[str, str | None], error: str
) -> None:
    response = await _page(http, **overrides)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    answer = query(location)
    assert answer["error"] == error and answer["state"] == "st-123"
    assert answer["iss"] == rt.settings.token_issuer and answer["error_description"]
    assert "code" not in answer


async def test_any_loopback_port_is_accepted(http: httpx.AsyncClient) -> None:
    for uri in ("http://127.0.0.1:1/cb", "http://127.0.0.1:65535/cb", "http://127.0.0.1/cb"):
        assert (await _page(http, redirect_uri=uri)).status_code == 200


async def test_login_redirects_with_code_state_and_issuer(login: Login, rt: Runtime) -> None:
    answer = await login()
    assert set(answer) == {"code", "state", "iss"}
    assert answer["state"] == "st-123" and answer["iss"] == rt.settings.token_issuer
    assert len(answer["code"]) == 43


async def test_the_login_answer_is_a_303_that_keeps_the_redirect_uris_query(
    http: httpx.AsyncClient, rt: Runtime
) -> None:
    handle = parse_login_page((await _page(http, redirect_uri="https://app.example/cb?x=1")).text)
    response = await _post(http, handle.fields["handle"], "alice", "alice-password")
    assert response.status_code == 303
    assert response.headers["location"].startswith("https://app.example/cb?x=1&code=")


async def test_a_wrong_password_shows_the_form_again_with_a_new_handle(http: httpx.AsyncClient) -> None:
    handle = parse_login_page((await _page(http)).text).fields["handle"]
    response = await _post(http, handle, "alice", "wrong-password")
    assert response.status_code == 200
    page = parse_login_page(response.text)
    assert page.error == "Wrong user name or password."
    assert page.fields["username"] == "alice" and page.fields["handle"] != handle
    # The new handle works; the old one is spent.
    assert (await _post(http, page.fields["handle"], "alice", "alice-password")).status_code == 303
    stale = await _post(http, handle, "alice", "alice-password")
    assert stale.status_code == 400 and "expired or was already used" in stale.text


async def test_an_unknown_user_looks_like_a_wrong_password(http: httpx.AsyncClient) -> None:
    answers = []
    for username in ("alice", "nobody"):
        handle = parse_login_page((await _page(http)).text).fields["handle"]
        response = await _post(http, handle, username, "wrong-password")
        answers.append((response.status_code, parse_login_page(response.text).error))
    assert answers[0] == answers[1] == (200, "Wrong user name or password.")


async def test_a_handle_is_single_use(http: httpx.AsyncClient) -> None:
    handle = parse_login_page((await _page(http)).text).fields["handle"]
    assert (await _post(http, handle, "alice", "alice-password")).status_code == 303
    again = await _post(http, handle, "alice", "alice-password")
    assert again.status_code == 400 and "location" not in again.headers
    forged = await _post(http, "x" * 43, "alice", "alice-password")
    assert forged.status_code == 400


async def test_a_cross_site_post_is_refused(http: httpx.AsyncClient) -> None:
    handle = parse_login_page((await _page(http)).text).fields["handle"]
    response = await _post(http, handle, "alice", "alice-password", **{"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and "location" not in response.headers
    same = await _post(http, handle, "alice", "alice-password", **{"Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303  # the refused post did not spend the handle


async def test_a_disabled_user_is_denied_by_redirect(http: httpx.AsyncClient, add_user: AddUser) -> None:
    await add_user("bob", disabled=True)
    location = await ScriptedBrowser("bob", "bob-password", http=http).sign_in(authorize_url())
    answer = query(location)
    assert answer["error"] == "access_denied" and answer["state"] == "st-123" and "code" not in answer
    # With a wrong password a disabled user learns nothing more than anybody else.
    with pytest.raises(ProblemError, match="Wrong user name or password"):
        await ScriptedBrowser("bob", "wrong-password", http=http).sign_in(authorize_url())


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(idm_login_max_failures=3, idm_login_max_failures_per_source=5, idm_login_window=60)


async def test_repeated_failures_for_a_user_give_429_even_with_the_right_password(
    http: httpx.AsyncClient,
) -> None:
    for _ in range(3):
        with pytest.raises(ProblemError) as caught:
            await ScriptedBrowser("alice", "guess-guess", http=http).sign_in(authorize_url())
        assert caught.value.status == 401
    handle = parse_login_page((await _page(http)).text).fields["handle"]
    response = await _post(http, handle, "alice", "alice-password")
    assert response.status_code == 429 and 1 <= int(response.headers["retry-after"]) <= 61
    page = parse_login_page(response.text)
    assert "Too many failed sign-in attempts" in (page.error or "") and page.fields["handle"] != handle
    # Another user name from the same address is still checked (the address limit is 5).
    with pytest.raises(ProblemError) as caught:
        await ScriptedBrowser("carol", "x" * 10, http=http).sign_in(authorize_url())
    assert caught.value.status == 401


async def test_an_address_trying_many_user_names_is_throttled(
    http: httpx.AsyncClient, add_user: AddUser
) -> None:
    await add_user("dave")
    for name in ("u1", "u2", "u3", "u4", "u5"):
        with pytest.raises(ProblemError):
            await ScriptedBrowser(name, "guess-guess", http=http).sign_in(authorize_url())
    with pytest.raises(ProblemError) as caught:
        await ScriptedBrowser("dave", "dave-password", http=http).sign_in(authorize_url())
    assert caught.value.status == 429


async def test_successful_logins_are_audited_and_failures_too(http: httpx.AsyncClient, rt: Runtime) -> None:
    with pytest.raises(ProblemError):
        await ScriptedBrowser("alice", "guess-guess", http=http).sign_in(authorize_url())
    await ScriptedBrowser("alice", "alice-password", http=http).sign_in(authorize_url())
    events = await rt.store.audit.scan(action="oidc.login")
    assert [(e.actor, e.outcome, e.reason) for e in events] == [
        ("alice", "denied", "wrong credentials"),
        ("alice", "ok", None),
    ]
    assert "alice-password" not in str(events) and "guess-guess" not in str(events)


async def test_removing_the_client_voids_its_pending_logins(http: httpx.AsyncClient, rt: Runtime) -> None:
    handle = parse_login_page((await _page(http)).text).fields["handle"]
    assert await rt.store.write(lambda tx: tx.clients.remove("console-1"))
    response = await _post(http, handle, "alice", "alice-password")
    assert response.status_code == 400 and "location" not in response.headers


def test_the_fixture_client_is_public(console: Client) -> None:
    assert console.secret_hash is None and console.created_at <= datetime.now(UTC)


def _form_post(response: httpx.Response) -> tuple[str, dict[str, str], str]:
    """The form_post page's form: its action, its hidden fields, and the CSP."""
    html = response.text
    action = re.search(r'<form method="post" action="([^"]*)">', html)
    assert action is not None, html
    fields = {
        unescape(k): unescape(v)
        for k, v in re.findall(r'<input type="hidden" name="([^"]*)" value="([^"]*)">', html)
    }
    return unescape(action.group(1)), fields, response.headers["content-security-policy"]


async def test_response_mode_form_post_posts_the_code_to_the_redirect_uri(http: httpx.AsyncClient) -> None:
    page = await _page(http, response_mode="form_post")
    handle = parse_login_page(page.text).fields["handle"]
    answer = await _post(http, handle, "alice", "alice-password")
    assert answer.status_code == 200 and "location" not in answer.headers
    assert answer.headers["cache-control"] == "no-store" and answer.headers["x-frame-options"] == "DENY"
    action, fields, csp = _form_post(answer)
    assert action == REDIRECT and set(fields) == {"code", "state", "iss"} and fields["state"] == "st-123"
    # The CSP lets the page submit its form to the application, and run only its own script.
    assert "form-action 'self' http://127.0.0.1:53117;" in csp and "default-src 'none'" in csp
    script = re.search(r"<script>(.*?)</script>", answer.text, re.S)
    assert script is not None and "submit()" in script.group(1)
    digest = base64.b64encode(hashlib.sha256(script.group(1).encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert (await exchange(http, fields["code"])).status_code == 200


async def test_errors_follow_the_requested_response_mode(http: httpx.AsyncClient) -> None:
    refused = await _page(http, response_mode="form_post", prompt="none")
    assert refused.status_code == 200
    action, fields, _ = _form_post(refused)
    assert action == REDIRECT and fields["error"] == "login_required" and fields["state"] == "st-123"
    # An unknown response mode is never ignored: an error redirect (in the query, the default mode).
    unknown = await _page(http, response_mode="fragment")
    assert unknown.status_code == 302
    assert query(unknown.headers["location"])["error"] == "unsupported_response_mode"
    explicit = await _page(http, response_mode="query")
    assert explicit.status_code == 200 and parse_login_page(explicit.text).fields["handle"]


async def test_a_disabled_user_is_refused_by_form_post_too(http: httpx.AsyncClient, rt: Runtime) -> None:
    await rt.store.write(lambda tx: tx.users.update("alice", disabled=True))
    page = await _page(http, response_mode="form_post")
    answer = await _post(http, parse_login_page(page.text).fields["handle"], "alice", "alice-password")
    _, fields, _ = _form_post(answer)
    assert fields["error"] == "access_denied" and "code" not in fields


PRIVATE_USE = "com.example.console:/oauth2redirect"  # RFC 8252 7.1, what AppAuth registers


async def test_a_private_use_scheme_redirect_completes_sign_in(http: httpx.AsyncClient, rt: Runtime) -> None:
    await rt.store.write(
        lambda tx: tx.clients.update("console-1", redirect_uris=("http://127.0.0.1/cb", PRIVATE_USE))
    )
    page = await _page(http, redirect_uri=PRIVATE_USE)
    # A scheme-source: "com.example.console://" is no valid source and Chromium blocked the form.
    assert "form-action 'self' com.example.console:;" in page.headers["content-security-policy"]
    answer = await _post(http, parse_login_page(page.text).fields["handle"], "alice", "alice-password")
    assert answer.status_code == 303
    location = answer.headers["location"]
    assert location.startswith(PRIVATE_USE + "?code=")
    params = query(location)
    assert params["state"] == "st-123" and params["iss"] == rt.settings.token_issuer
    token = await exchange(http, params["code"], redirect_uri=PRIVATE_USE)
    assert token.status_code == 200 and token.json()["id_token"]
