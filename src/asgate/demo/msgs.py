"""TS 23.554 8.2.5 and 8.2.6: an Application Server registers with the MSGin5G Server and
de-registers again, over ``msgs-asregistration/v1`` (TS 29.538) through the SDK's
``ApplicationServer``."""

from __future__ import annotations

from asgate.client import ApplicationServer, ProblemError
from asgate.demo.narrate import Narrator, StepFailed
from asgate.demo.system import AS_CLIENT, OPS, DemoSystem
from asgate.domain.msgin5g import ASProfile
from asgate.msgin5g.models import ASRegistration

REGISTRATIONS = "/msgs-asregistration/v1/registrations"
ADMIN = "/msgs-admin/v1/registrations"


async def registration_and_deregistration(system: DemoSystem, n: Narrator) -> None:
    journal = system.journal
    credentials = system.credentials(AS_CLIENT, "msgs-asregistration")
    server = ApplicationServer(system.url, credentials, transport=journal.transport(f"AS ({AS_CLIENT})"))
    try:
        registration_id = await _register(system, n, server)
        await _deregister(system, n, server, registration_id)
    finally:
        await server.aclose()


async def _operator_reads(system: DemoSystem, registration_id: str) -> int:
    """The operator looks the registration up (msgs-admin/v1); returns the status."""
    async with system.client("operator") as http:
        token = await system.credentials(OPS, "msgs-admin").token(http)
        response = await http.get(
            f"{system.url}{ADMIN}/{registration_id}", headers={"Authorization": f"Bearer {token}"}
        )
    return response.status_code


async def _register(system: DemoSystem, n: Narrator, server: ApplicationServer) -> str:
    journal = system.journal
    n.procedure("8.2.5", "Application Server registration", "TS 23.554 figure 8.2.5-1; TS 29.538")
    profile = ASProfile(app_name="Fleet tracker", app_providers=["Example Logistics"], app_senarios=["V2X"])
    async with n.step(
        1, "The AS sends a registration request: its credentials, AS Service ID AS1 and its AS profile"
    ) as step:
        mark = journal.mark()
        ack, location = await server.register(
            ASRegistration(as_svc_id="AS1", app_id="fleet-tracker", as_prof=profile)
        )
        step.exchange(journal.last(mark, "POST", "/oauth2/token"))
        post = journal.last(mark, "POST", REGISTRATIONS)
        step.sent(post)
    async with n.step(2, "The MSGin5G Server validates the request and verifies the credentials") as step:
        step.note(
            f"accepted: the token is asgate's (ES256, issuer, audience, expiry) with scope "
            f"msgs-asregistration, and AS1 is provisioned for client {AS_CLIENT}"
        )
        mark = journal.mark()
        try:
            await server.register(ASRegistration(as_svc_id="AS2", as_prof=profile))
        except ProblemError as exc:
            step.check(exc.status == 403, f"AS2 refused with 403, not {exc.status}")
        else:
            raise StepFailed("an AS Service ID not provisioned for the client was accepted")
        step.note("the same AS asking for AS2, an AS Service ID not provisioned for it, is refused:")
        step.exchange(journal.last(mark, "POST", REGISTRATIONS))
        async with system.client("AS with a forged token") as http:
            forged = await http.post(
                f"{system.url}{REGISTRATIONS}",
                json={"asSvcId": "AS1"},
                headers={"Authorization": "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJhcy0xIn0."},
            )
        step.check(forged.status_code == 401, f"a forged token refused with 401, not {forged.status_code}")
        step.exchange(journal.last(mark, "POST", REGISTRATIONS))
    async with n.step(
        3, "The MSGin5G Server answers and, the registration being successful, stores the AS profile"
    ) as step:
        step.received(post)
        step.check(post.status == 201 and ack.result.status == 201, "201 with an ASRegistrationAck")
        registration_id = location.rstrip("/").rsplit("/", 1)[-1]
        mark = journal.mark()
        status = await _operator_reads(system, registration_id)
        step.note("what the MSGin5G Server stored, as the operator sees it (msgs-admin/v1):")
        step.exchange(journal.last(mark, "GET", ADMIN))
        step.check(status == 200, "the registration stored")
    return registration_id


async def _deregister(
    system: DemoSystem, n: Narrator, server: ApplicationServer, registration_id: str
) -> None:
    journal = system.journal
    n.procedure("8.2.6", "Application Server de-registration", "TS 23.554 figure 8.2.6-1; TS 29.538")
    async with n.step(1, "The AS determines to de-register from the MSGin5G Server") as step:
        step.note(
            f"the fleet tracker is shutting down; it keeps its registration's Location ({registration_id})"
        )
    async with n.step(
        2, "The AS sends a de-registration request for its registration (AS Service ID AS1)"
    ) as step:
        mark = journal.mark()
        ack = await server.deregister(registration_id)
        delete = journal.last(mark, "DELETE", REGISTRATIONS)
        step.sent(delete)
    async with n.step(
        3, "The MSGin5G Server validates the request, verifies the credentials and deletes the AS profile"
    ) as step:
        step.note(f"the token's client ({AS_CLIENT}) is the one that registered: accepted")
        mark = journal.mark()
        status = await _operator_reads(system, registration_id)
        step.note("the registration and its AS profile are gone:")
        step.exchange(journal.last(mark, "GET", ADMIN))
        step.check(status == 404, "the registration deleted")
    async with n.step(4, "The MSGin5G Server replies with the de-registration response") as step:
        step.received(delete)
        step.check(delete.status in (200, 204) and (ack is None or ack.as_svc_id == "AS1"), "200 with an ack")
