"""Boundary: a native application's redirect URI (RFC 8252) -> the MC user's browser.

The authorization code goes wherever the redirect URI says, so the IdM must never send it anywhere
but the application. Two ways around that are tried here: an open redirect through the loopback
exception (RFC 8252 7.3 lets the port vary, nothing else) and a squatted or dangerous scheme (8.4:
private-use schemes are reverse domain names; ``javascript:`` and friends can never be registered,
and one stored before the check is never used).
"""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from asgate.client.browser import parse_login_page
from asgate.domain.idm import Client
from asgate.system.runtime import Runtime
from tests.idm.conftest import AddUser, add_user, alice, authorize_url, console  # noqa: F401 - fixtures

pytestmark = pytest.mark.usefixtures("console", "alice")


def _refused_with_a_page(response: httpx.Response) -> str:
    """RFC 6749 4.1.2.1: an untrusted redirect URI gets an error page, never a redirect."""
    assert response.status_code == 400 and "location" not in response.headers, response.headers
    assert "content-security-policy" in response.headers
    error = parse_login_page(response.text).error
    assert error is not None
    return error


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:80@evil.example/cb",  # user-info: the host is evil.example
        "http://127.0.0.1:1\\@evil.example/cb",
        "http://127.0.0.1.evil.example:8080/cb",  # a name that starts like the literal
        "http://127.0.0.1:8080.evil.example/cb",
        "http://127.0.0.1:8080/cb/../../evil",  # the path must match exactly
        "http://127.0.0.1:8080/cb?next=https://evil.example",  # so must the query
        "http://127.0.0.1:8080/cb#https://evil.example",
        "https://127.0.0.1:8080/cb",  # the scheme
        "http://[::1]:8080/cb",  # registered for 127.0.0.1 only: another address is another URI
        "http://localhost:8080/cb",  # RFC 8252 8.3: a name may resolve anywhere
        "http://0x7f.1:8080/cb",
    ],
)
async def test_the_loopback_port_exception_opens_no_redirect(
    http: httpx.AsyncClient, redirect_uri: str
) -> None:
    # console-1 registers http://127.0.0.1/cb (any port) and https://app.example/cb?x=1.
    error = _refused_with_a_page(await http.get(authorize_url(redirect_uri=redirect_uri)))
    assert "not registered for this application" in error


async def _native(rt: Runtime, *redirect_uris: str) -> None:
    now = datetime.now(UTC)
    client = Client(
        client_id="native",
        scopes=("3gpp:mc:ptt_service", "3gpp:mc:data_service"),
        redirect_uris=redirect_uris,
        created_at=now,
        updated_at=now,
    )
    await rt.store.write(lambda tx: tx.clients.add(client))


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "com.example.console.evil:/oauth2redirect",  # a squatter's look-alike
        "com.example:/oauth2redirect",
        "com.example.console:/oauth2redirect/../steal",
    ],
)
async def test_a_private_use_redirect_matches_its_registration_exactly(
    http: httpx.AsyncClient, rt: Runtime, redirect_uri: str
) -> None:
    await _native(rt, "com.example.console:/oauth2redirect")
    response = await http.get(authorize_url("native", redirect_uri=redirect_uri))
    assert "not registered for this application" in _refused_with_a_page(response)


@pytest.mark.parametrize(
    "stored",
    ["javascript:alert(document.cookie)", "myapp:/cb", "http://console.example/cb", "data:text/html,x"],
)
async def test_a_squatted_or_dangerous_scheme_stored_before_the_check_is_never_redirected_to(
    http: httpx.AsyncClient, rt: Runtime, stored: str
) -> None:
    # `asgate clients add --redirect-uri` refuses these now (tests/cli/test_cli.py); a store written
    # by an older asgate may still hold one: the IdM shows a page and sends no code there.
    await _native(rt, stored)
    response = await http.get(authorize_url("native", redirect_uri=stored))
    assert "not allowed any more" in _refused_with_a_page(response)


async def test_the_login_page_allows_only_the_matched_redirect_as_form_target(
    http: httpx.AsyncClient, rt: Runtime
) -> None:
    await _native(rt, "com.example.console:/oauth2redirect", "http://127.0.0.1/cb", "https://app.example/cb")
    page = await http.get(authorize_url("native", redirect_uri="http://127.0.0.1:49152/cb"))
    csp = page.headers["content-security-policy"]
    assert "form-action 'self' http://127.0.0.1:49152;" in csp
    assert "com.example.console" not in csp and "app.example" not in csp
