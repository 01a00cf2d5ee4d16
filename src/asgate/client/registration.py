"""SDK for ``mcx-service-registration/v1``: an MC service server registers with the service
registry server (seed 5.2.8, 7.4.2.2.9), proves it is alive and deregisters.

This is the one-call-per-operation client; :class:`asgate.client.ServiceAgent` builds the
register / heartbeat / re-register lifecycle on top of it.
"""

from __future__ import annotations

from asgate.client._http import ApiClient
from asgate.domain.registry import ServiceInstance, ServiceRegistration

API = "/mcx-service-registration/v1"
SCOPE = "mcx-service-registration"


class ServiceRegistrationClient(ApiClient):
    """The operations of ``mcx-service-registration/v1``; errors raise :class:`ProblemError`."""

    async def register(self, registration: ServiceRegistration) -> tuple[ServiceInstance, str]:
        """``POST /services``: the stored instance and its ``Location``."""
        response = await self.request("POST", f"{API}/services", json=registration.dump())
        return ServiceInstance.model_validate_json(response.content), response.headers["location"]

    async def get(self, instance_id: str) -> ServiceInstance:
        """``GET /services/{id}``: the instance as stored, with its status (REGISTERED/SUSPENDED)."""
        response = await self.request("GET", f"{API}/services/{instance_id}")
        return ServiceInstance.model_validate_json(response.content)

    async def update(
        self, instance_id: str, registration: ServiceRegistration, *, if_match: str | None = None
    ) -> ServiceInstance:
        """``PUT /services/{id}``: replace the service information (counts as a heartbeat too)."""
        headers = {"If-Match": if_match} if if_match else None
        response = await self.request(
            "PUT", f"{API}/services/{instance_id}", json=registration.dump(), headers=headers
        )
        return ServiceInstance.model_validate_json(response.content)

    async def heartbeat(self, instance_id: str) -> None:
        """``PUT /services/{id}/heartbeat``; a 404 means the registry removed it: register again."""
        await self.request("PUT", f"{API}/services/{instance_id}/heartbeat")

    async def deregister(self, instance_id: str) -> None:
        """``DELETE /services/{id}``."""
        await self.request("DELETE", f"{API}/services/{instance_id}")
