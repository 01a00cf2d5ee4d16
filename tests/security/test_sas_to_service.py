"""Trust boundary: service access server -> MC service instance (seed 10.X.5 step 3).

What crosses it: the application's request, the SAS's statement of who calls, never the MC user's
own token (unless the administrator opts a pool in). Every test looks at what the instance (a real
recording server registered as GM/recorder, or a sample) actually received.
"""

from __future__ import annotations

import base64
import json
import ssl
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import pytest

from asgate.access.options import PoolOptions, upstream_tls
from asgate.access.server import AccessServer
from asgate.access.upstream import Endpoint, UpstreamPool
from asgate.client import SasAssertionError, SasKeys, verify_sas_assertion
from asgate.kernel.settings import Settings, SettingsError
from tests.access import conftest as engine
from tests.access.backend import Backend
from tests.access.certs import Authority
from tests.access.system import ALICE, System, bearer, raw_request, running_system

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("sas-system")]

RECORDER = "GM/recorder"


@pytest.fixture(params=["sqlite"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)  # the store is not what these tests are about


@pytest.fixture
async def system(make_settings: Callable[..., Settings]) -> AsyncIterator[System]:
    async with running_system(make_settings, sas_refusal_hold=0.0) as started:
        yield started


async def _recorder_base(system: System) -> str:
    profile = await system.authorize("GM", serviceName="recorder")
    return str(profile["serviceLocationInformation"])


def _keys(system: System) -> SasKeys:
    return SasKeys(f"{system.api}/oauth2/jwks")


async def test_the_instance_gets_a_valid_assertion_and_never_the_users_token(system: System) -> None:
    base = await _recorder_base(system)
    token = system.user_token()
    response = await system.http.get(
        f"{base}/items", headers={**bearer(token), "Resource-Priority": "mcpttp.9"}
    )
    assert response.status_code == 204
    (seen,) = system.recorder.requests
    assert "authorization" not in seen.headers
    assert token not in str(seen.headers)
    keys = _keys(system)
    try:
        caller = await verify_sas_assertion(
            seen.headers, keys, issuer=system.rt.settings.sas_issuer, audience=RECORDER
        )
    finally:
        await keys.aclose()
    assert (caller.mc_service_id, caller.client_id, caller.priority) == (ALICE, "console-1", "mcpttp.9")
    assert caller.mc_service_ids == {"mcptt_id": ALICE}
    assert caller.claims["exp"] - caller.claims["iat"] <= 60
    # The convenience headers say the same, and the applied priority is the SAS's, not the client's.
    assert seen.headers["asgate-mc-service-id"] == ALICE
    assert seen.headers["asgate-application"] == "console-1"
    assert seen.headers["resource-priority"] == "mcpttp.9"


async def test_client_forged_identity_headers_never_reach_the_instance(system: System) -> None:
    base = await _recorder_base(system)
    forged = [
        ("Asgate-MC-Service-Id", "mallory@mc.example"),
        ("Asgate_MC_Service_Id", "mallory@mc.example"),
        ("asgate_mc_service_id", "mallory@mc.example"),
        ("ASGATE-APPLICATION", "admin-console"),
        ("Asgate_Application", "admin-console"),
        ("Asgate-Assertion", "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."),
        ("ASGATE_ASSERTION", "forged"),
        ("Resource_Priority", "mcpttp.15"),
        ("X_Forwarded_For", "10.9.9.9"),
        ("Transfer_Encoding", "chunked"),
    ]
    response = await system.http.get(f"{base}/items", headers=[*bearer(system.user_token()).items(), *forged])
    assert response.status_code == 204
    (seen,) = system.recorder.requests
    names = set(seen.headers)
    for name, _ in forged:
        if "_" in name:
            assert name.lower() not in names, name
    assert seen.headers["asgate-mc-service-id"] == ALICE
    assert seen.headers["asgate-application"] == "console-1"
    assert "resource-priority" not in seen.headers  # none applied: the client's is not passed on
    assert seen.headers["x-forwarded-for"] == "127.0.0.1"
    assert "mallory" not in str(seen.headers) and "admin-console" not in str(seen.headers)
    assert (
        seen.headers["asgate-assertion"].count(".") == 2 and "forged" not in seen.headers["asgate-assertion"]
    )


async def test_an_instance_reached_around_the_sas_refuses_plain_identity_headers(system: System) -> None:
    gm = system.samples["gm-1"].url
    direct = await system.http.get(
        f"{gm}/gm/groups", headers={"Asgate-MC-Service-Id": ALICE, "Asgate-Application": "console-1"}
    )
    assert direct.status_code == 401
    assert direct.headers["content-type"] == "application/problem+json"
    assert direct.json()["cause"] == "INVALID_SAS_ASSERTION"


async def test_two_authorization_headers_are_refused_before_anything_is_forwarded(system: System) -> None:
    base = await _recorder_base(system)
    index = base.rsplit("/", 1)[1]
    token = system.user_token()
    other = system.user_token(user="bob@mc.example")
    status, body = await raw_request(
        system.sas_port,
        f"GET /{index}/items HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {token}\r\n"
        f"Authorization: Bearer {other}\r\n\r\n",
    )
    assert status == 400 and '"cause":"INVALID_MSG_FORMAT"' in body and "Authorization" in body
    assert system.recorder.requests == []


@pytest.mark.parametrize(
    "segment",
    [
        "%c0%ae%c0%ae",  # overlong UTF-8 "." (2 bytes)
        "%e0%80%ae%e0%80%ae",  # overlong UTF-8 "." (3 bytes)
        "a%c0%afb",  # overlong UTF-8 "/"
        "%25%32%65%25%32%65",  # "%2e%2e" once decoded, ".." twice
        "%252e%252e",
        "..;",  # Tomcat/Jetty: path parameters dropped, then ".."
        ".;x=1",
        "%2e%2e%3b",
        "%ef%bc%8e%ef%bc%8e",  # FULLWIDTH FULL STOP x2: ".." after NFKC
        "a%ef%bc%8fb",  # FULLWIDTH SOLIDUS: "/" after NFKC
        "...",
    ],
)
async def test_non_canonical_dot_and_slash_encodings_are_refused_before_an_instance(
    system: System, segment: str
) -> None:
    base = await _recorder_base(system)
    index = base.rsplit("/", 1)[1]
    token = system.user_token()
    status, body = await raw_request(
        system.sas_port,
        f"GET /{index}/items/{segment}/x HTTP/1.1\r\nHost: sas\r\nAuthorization: Bearer {token}\r\n\r\n",
    )
    assert status == 400 and '"cause":"INVALID_MSG_FORMAT"' in body
    assert system.recorder.requests == []


async def test_an_assertion_is_never_accepted_as_an_access_token(system: System) -> None:
    base = await _recorder_base(system)
    assert (await system.http.get(f"{base}/items", headers=bearer(system.user_token()))).status_code == 204
    assertion = system.recorder.requests[0].headers["asgate-assertion"]
    replayed = await system.http.get(f"{base}/items", headers=bearer(assertion))
    assert (replayed.status_code, replayed.json()["cause"]) == (401, "INVALID_TOKEN")
    for method, path in (
        ("GET", "/mcx-registry/v1/service-information?serviceType=GM"),
        ("POST", "/mcx-service-registration/v1/services"),
        ("GET", "/mcx-registry-admin/v1/apps"),
        ("GET", "/mcx-access-profiles/v1/state"),
    ):
        refused = await system.http.request(method, f"{system.api}{path}", headers=bearer(assertion), json={})
        assert (refused.status_code, refused.json()["cause"]) == (401, "INVALID_TOKEN"), path
    assert len(system.recorder.requests) == 1  # the replay reached no instance


async def test_verify_sas_assertion_refuses_expired_foreign_and_confused_tokens(system: System) -> None:
    base = await _recorder_base(system)
    token = system.user_token()
    assert (await system.http.get(f"{base}/items", headers=bearer(token))).status_code == 204
    headers = system.recorder.requests[0].headers
    issuer = system.rt.settings.sas_issuer
    keys = _keys(system)
    try:

        async def refused(source: object, **kw: object) -> str:
            options: dict[str, object] = {"issuer": issuer, "audience": RECORDER, **kw}
            with pytest.raises(SasAssertionError) as error:
                await verify_sas_assertion(source, keys, **options)  # type: ignore[arg-type]
            assert error.value.status == 401 and error.value.cause == "INVALID_SAS_ASSERTION"
            return str(error.value.detail)

        assert "another service pool" in await refused(headers, audience="GM/sample-gm")
        assert "expired" in await refused(headers, clock=lambda: time.time() + 120)
        assert "another issuer" in await refused(headers, issuer=system.api)
        assert "typ" in await refused({"Asgate-Assertion": token})  # an access token is no assertion
        head, payload, signature = headers["asgate-assertion"].split(".")
        flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
        assert "invalid" in await refused({"asgate-assertion": f"{head}.{payload}.{flipped}"})
        assert "no Asgate-Assertion" in await refused({})
        # Made-up key ids make the service fetch the JWKS at most once per refresh floor.
        for n in range(20):
            fake = {"alg": "ES256", "typ": "asgate-sas+jwt", "kid": f"k{n}"}
            fake_head = base64.urlsafe_b64encode(json.dumps(fake).encode()).rstrip(b"=").decode()
            assert "unknown key" in await refused({"asgate-assertion": f"{fake_head}.{payload}.{signature}"})
        assert keys.fetches <= 2
    finally:
        await keys.aclose()


async def test_the_users_token_reaches_only_the_pools_the_administrator_opted_in(
    make_settings: Callable[..., Settings],
) -> None:
    async with running_system(make_settings, sas_forward_user_token=["GM/recorder"]) as system:
        base = await _recorder_base(system)
        token = system.user_token()
        assert (await system.http.get(f"{base}/items", headers=bearer(token))).status_code == 204
        (seen,) = system.recorder.requests
        assert seen.headers["authorization"] == f"Bearer {token}"
        assert "asgate-assertion" in seen.headers  # the assertion is sent all the same
    with pytest.raises(SettingsError, match="serviceType/serviceName"):
        Settings.isolated(sas_forward_user_token=["recorder"])


def test_an_assertion_issuer_that_could_pass_for_a_token_issuer_is_refused_at_start() -> None:
    with pytest.raises(SettingsError, match="sas_assertion_issuer"):
        Settings.isolated(issuer="https://mc.example", sas_assertion_issuer="https://mc.example")
    trusted = [{"issuer": "https://idp.example", "jwks_uri": "https://idp.example/jwks"}]
    with pytest.raises(SettingsError, match="sas_assertion_issuer"):
        Settings.isolated(trusted_issuers=trusted, sas_assertion_issuer="https://idp.example")


async def test_mutual_tls_to_instances_only_with_the_configured_ca_and_client_certificate(
    tmp_path: Path,
) -> None:
    """A real HTTPS instance that requires a client certificate: the SAS reaches it only with its
    own certificate, and never talks to an instance whose certificate the configured CA did not sign
    (a rogue listener on the instance's address)."""
    ca, rogue_ca = Authority(tmp_path, "instances"), Authority(tmp_path, "rogue")
    sas_ca = Authority(tmp_path, "sas")
    sas_client = sas_ca.issue("sas-1", server=False)
    settings = Settings.isolated(
        data_dir=tmp_path / "data",
        sas_upstream_ca=ca.path,
        sas_upstream_client_cert=sas_client.cert,
        sas_upstream_client_key=sas_client.key,
    )
    mutual = PoolOptions.from_settings(settings).tls
    assert mutual is not None
    no_client_cert = upstream_tls(ca.path)
    genuine = ca.server_context(ca.issue("gms-1", server=True), client_ca=sas_ca.path)
    rogue = rogue_ca.server_context(rogue_ca.issue("gms-1", server=True))

    async def through_sas(tls: ssl.SSLContext, instance: ssl.SSLContext) -> tuple[int, Backend]:
        backend = await Backend().start(tls=instance)
        pool = UpstreamPool(
            "GM/gms",
            [Endpoint("i1", "127.0.0.1", backend.port, tls=True)],
            replace(engine.FAST_POOL, tls=tls),
        )
        server = AccessServer(engine.TestGate(pool), engine.FAST)
        await server.start("127.0.0.1", 0)
        try:
            status, _, _ = await engine.request(server.port, "/1/echo", headers="authorization: Bearer t\r\n")
        finally:
            await server.stop(grace=0.5)
            pool.close()
            await backend.stop()
        return status, backend

    status, backend = await through_sas(mutual, genuine)
    assert status == 200 and [r.path for r in backend.requests] == ["/api/echo"]
    status, backend = await through_sas(no_client_cert, genuine)  # the instance wants a certificate
    assert status == 502 and backend.requests == []
    status, backend = await through_sas(mutual, rogue)  # not signed by sas_upstream_ca
    assert status == 502 and backend.requests == []
