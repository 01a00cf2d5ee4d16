"""SDK for the MSGin5G Server: an Application Server registers and de-registers (TS 29.538)."""

from __future__ import annotations

from asgate.client._http import ApiClient
from asgate.domain.msgin5g import Registration
from asgate.msgin5g.models import ASRegistration, ASRegistrationAck, RegistrationPage


class ApplicationServer(ApiClient):
    """``msgs-asregistration/v1`` as an AS uses it: ``register`` returns the ack and the Location."""

    async def register(self, registration: ASRegistration) -> tuple[ASRegistrationAck, str]:
        response = await self.request(
            "POST", "/msgs-asregistration/v1/registrations", json=registration.dump()
        )
        return ASRegistrationAck.model_validate_json(response.content), response.headers["location"]

    async def deregister(self, location_or_id: str) -> ASRegistrationAck | None:
        registration_id = location_or_id.rstrip("/").rsplit("/", 1)[-1]
        response = await self.request("DELETE", f"/msgs-asregistration/v1/registrations/{registration_id}")
        if response.status_code == 204:
            return None
        return ASRegistrationAck.model_validate_json(response.content)


class MsgsAdmin(ApiClient):
    """``msgs-admin/v1``: what an operator sees of the stored AS registrations."""

    async def list(
        self,
        *,
        limit: int = 100,
        after: str | None = None,
        client_id: str | None = None,
        as_svc_id: str | None = None,
    ) -> RegistrationPage:
        params = {"limit": limit, "after": after, "client-id": client_id, "as-svc-id": as_svc_id}
        response = await self.request(
            "GET", "/msgs-admin/v1/registrations", params={k: v for k, v in params.items() if v is not None}
        )
        return RegistrationPage.model_validate_json(response.content)

    async def get(self, registration_id: str) -> Registration:
        response = await self.request("GET", f"/msgs-admin/v1/registrations/{registration_id}")
        return Registration.model_validate_json(response.content)

    async def evict(self, registration_id: str) -> None:
        await self.request("DELETE", f"/msgs-admin/v1/registrations/{registration_id}")
