"""/docs on every server: the APIs of the roles it runs, rendered by Swagger UI served from the
server itself (no CDN, no inline script), and the OpenAPI documents with their references resolving."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest
import yaml
from openapi_spec_validator import validate
from openapi_spec_validator.readers import read_from_filename

from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.conftest import Provision

BASE = "http://docs.example:8080"
LISTED = [
    "msgs-admin",
    "mcx-service-registration",
    "mcx-registry",
    "mcx-registry-admin",
    "mcx-registry-sync",
    "mcx-access-profiles",
]


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what these tests are about


def _links(page: str, url: str) -> list[str]:
    return [urljoin(url, href) for href in re.findall(r"""(?:href|src|data-url)=['"]([^'"]+)['"]""", page)]


async def test_the_index_lists_every_api_of_the_roles_it_runs(http: httpx.AsyncClient) -> None:
    response = await http.get(f"{BASE}/docs")  # no token: a discovery document
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    links = _links(response.text, f"{BASE}/docs")
    for api in LISTED:
        assert f"{BASE}/docs/{api}" in links and f"{BASE}/openapi/{api}.yaml" in links
    assert f"{BASE}/.well-known/openid-configuration" in links  # the IdM, described by its metadata
    assert "TS29538_MSGS_ASRegistration.yaml" in response.text  # the official one is linked, not served
    for link in links:
        if link.startswith(BASE):
            assert (await http.get(link)).status_code == 200, link


async def test_a_page_renders_one_document_with_swagger_ui_from_this_server(http: httpx.AsyncClient) -> None:
    url = f"{BASE}/docs/mcx-registry"
    page = await http.get(url)
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "frame-ancestors 'none'" in csp
    assert not re.search(r"<script>", page.text)  # every script is a file from this server
    links = _links(page.text, url)
    assert f"{BASE}/openapi/mcx-registry.yaml" in links
    types = {}
    for link in links:
        assert link.startswith(BASE), link  # nothing from a CDN
        response = await http.get(link)
        assert response.status_code == 200, link
        types[link.rsplit("/", 1)[1]] = response.headers["content-type"].split(";")[0]
    assert types["swagger-ui-bundle.js"] == types["asgate-docs.js"] == "text/javascript"
    assert types["swagger-ui.css"] == "text/css"
    init = (await http.get(f"{BASE}/docs/assets/asgate-docs.js")).text
    assert "validatorUrl: null" in init  # Swagger UI would otherwise call validator.swagger.io


async def test_the_documents_are_valid_and_their_references_resolve_on_the_server(
    http: httpx.AsyncClient, tmp_path: Path
) -> None:
    fetched: set[str] = set()
    pending = [f"{api}.yaml" for api in LISTED]
    while pending:
        name = pending.pop()
        if name in fetched:
            continue
        response = await http.get(f"{BASE}/openapi/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/yaml"
        (tmp_path / name).write_text(response.text)
        fetched.add(name)
        pending += [ref for ref in re.findall(r"\$ref: '([^#']+)#", response.text)]
    assert fetched == {f"{api}.yaml" for api in [*LISTED, "mcx-registry-common"]}
    for name in sorted(fetched):
        document = yaml.safe_load((tmp_path / name).read_text())
        for server in document.get("servers", []):  # "Try it out" calls the server that served it
            assert server["variables"]["apiRoot"]["default"] == BASE
        if document.get("paths"):
            spec, base_uri = read_from_filename(str(tmp_path / name))
            validate(spec, base_uri=base_uri)


async def test_unknown_and_unshipped_documents_are_problem_details(http: httpx.AsyncClient) -> None:
    for path in (
        "/docs/nothing",
        "/openapi/nothing.yaml",
        "/docs/assets/evil.js",
        "/docs/mcx-registry-common",
    ):
        response = await http.get(path)
        assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    official = await http.get("/openapi/msgs-asregistration.yaml")
    assert official.status_code == 404 and "TS 29.538" in official.json()["detail"]


@pytest.fixture
async def idm_only(make_settings: Callable[..., Settings]) -> AsyncIterator[httpx.AsyncClient]:
    async with Runtime.open(make_settings()) as rt, control_app(rt, ["idm"]) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def test_a_server_running_some_roles_lists_only_their_apis(idm_only: httpx.AsyncClient) -> None:
    index = (await idm_only.get("/docs")).text
    assert "openid-configuration" in index and "mcx-registry" not in index and "msgs" not in index
    assert (await idm_only.get("/docs/mcx-registry")).status_code == 404
    # Documents stay fetchable: another server's documents refer to them.
    assert (await idm_only.get("/openapi/mcx-registry.yaml")).status_code == 200


async def test_authorize_posts_to_this_servers_token_endpoint(
    http: httpx.AsyncClient, provision: Provision
) -> None:
    """Swagger UI's "Authorize" takes tokenUrl as is: absolute, and the IdM answers there."""
    await provision("ops", scopes=("mcx-registry-admin",))
    for api in LISTED:
        document = yaml.safe_load((await http.get(f"{BASE}/openapi/{api}.yaml")).text)
        schemes = document["components"]["securitySchemes"].values()
        token_urls = {flow["tokenUrl"] for scheme in schemes for flow in scheme["flows"].values()}
        assert token_urls == {f"{BASE}/oauth2/token"}, api
    token = await http.post(
        f"{BASE}/oauth2/token",
        data={"grant_type": "client_credentials", "scope": "mcx-registry-admin"},
        auth=("ops", "ops-secret"),
    )
    assert token.status_code == 200 and token.json()["token_type"].lower() == "bearer"


async def test_without_the_idm_authorize_posts_to_the_issuer(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings(issuer="https://idm.example:8443")
    async with Runtime.open(settings) as rt, control_app(rt, ["registry"]) as app:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            document = yaml.safe_load((await client.get("/openapi/mcx-registry.yaml")).text)
            page = await client.get("/docs/mcx-registry")
    flows = document["components"]["securitySchemes"]["oAuth2ClientCredentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == "https://idm.example:8443/oauth2/token"
    assert "connect-src 'self' https://idm.example:8443;" in page.headers["content-security-policy"]


@pytest.fixture
async def with_3gpp(
    make_settings: Callable[..., Settings], threegpp_dir: Path
) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        Runtime.open(make_settings(docs_3gpp_dir=threegpp_dir)) as rt,
        control_app(rt) as app,
    ):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=BASE) as client:
            yield client


async def test_docs_serve_the_official_ts_29538_document_from_docs_3gpp_dir(
    with_3gpp: httpx.AsyncClient, threegpp_dir: Path
) -> None:
    index = (await with_3gpp.get("/docs")).text
    assert f"{BASE}/docs/msgs-asregistration" in _links(index, f"{BASE}/docs")
    page = await with_3gpp.get("/docs/msgs-asregistration")
    assert page.status_code == 200 and "data-url='../openapi/msgs-asregistration.yaml'" in page.text
    served = await with_3gpp.get("/openapi/msgs-asregistration.yaml")
    assert served.status_code == 200 and served.headers["content-type"] == "application/yaml"
    document = yaml.safe_load(served.text)
    assert document["info"]["title"] == "MSGS_ASRegistration"
    assert set(document["paths"]) == {"/registrations", "/registrations/{registrationId}"}
    assert document["servers"][0]["variables"]["apiRoot"]["default"] == BASE  # "Try it out": here
    flows = document["components"]["securitySchemes"]["oAuth2ClientCredentials"]["flows"]
    assert flows["clientCredentials"]["tokenUrl"] == f"{BASE}/oauth2/token"  # not '{tokenUrl}'
    # Its references resolve beside it, to the 3GPP files themselves.
    common = await with_3gpp.get("/openapi/TS29571_CommonData.yaml")
    assert common.text == (threegpp_dir / "TS29571_CommonData.yaml").read_text(encoding="utf-8")
    for name in ("TS29999_Nothing", "..%2F..%2Fetc%2Fpasswd", "TS29571_CommonData.yaml%00"):
        assert (await with_3gpp.get(f"/openapi/{name}.yaml")).status_code in {400, 404}, name


async def test_without_docs_3gpp_dir_the_index_says_how_to_serve_it(http: httpx.AsyncClient) -> None:
    index = (await http.get(f"{BASE}/docs")).text
    assert "set <code>docs_3gpp_dir</code>" in index
    assert (await http.get(f"{BASE}/docs/msgs-asregistration")).status_code == 404
    assert (await http.get(f"{BASE}/openapi/TS29571_CommonData.yaml")).status_code == 404
