"""SDK for ``mcx-registry/v1`` (reference point CSC-14): what an external application asks the
service registry server (seed 7.5.2.14, procedures 10.X.3 and 10.X.4).

This is the one-call-per-operation client; :class:`asgate.client.ExternalApplication` builds the
configure / reconfigure / access life of an application on top of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from asgate.client._http import ApiClient
from asgate.domain.registry import ApplicationProfile
from asgate.registry.models import (
    AuthorizationRequest,
    AuthorizationResponse,
    ServiceInformation,
    ServiceInformationList,
)

API = "/mcx-registry/v1"
SCOPE = "mcx-registry"


class RegistryClient(ApiClient):
    """The operations of ``mcx-registry/v1``; errors raise :class:`ProblemError` with the
    registry's cause (``USER_NOT_AUTHORIZED``, ``SERVICE_NOT_ALLOWED``, ...)."""

    async def get_service_information(
        self,
        mc_service_id: str,
        *,
        service_type: str | None = None,
        service_name: str | None = None,
        reference_point: str | None = None,
        protocol: str | None = None,
        api_version: str | None = None,
        capability: str | None = None,
        environment: Mapping[str, str] | None = None,
    ) -> list[ServiceInformation]:
        """``GET /service-information`` (Tables 10.X.2.1/2): the services this application may use
        for the MC user, matching every criterion given (``environment``: every pair)."""
        criteria = {
            "service-type": service_type,
            "service-name": service_name,
            "reference-point": reference_point,
            "protocol": protocol,
            "api-version": api_version,
            "capability": capability,
        }
        params: list[tuple[str, str]] = [("mc-service-id", mc_service_id)]
        params += [(key, value) for key, value in criteria.items() if value is not None]
        params += [("environment", f"{key}:{value}") for key, value in (environment or {}).items()]
        response = await self.request("GET", f"{API}/service-information", params=params)
        return ServiceInformationList.model_validate_json(response.content).service_information

    async def update_authorization(self, request: AuthorizationRequest) -> AuthorizationResponse:
        """``POST /authorizations`` (Tables 10.X.2.3/4): AUTHORIZE or REMOVE. Nothing granted at
        all is a 403 :class:`ProblemError` with the first denial's cause."""
        response = await self.request("POST", f"{API}/authorizations", json=request.dump())
        return AuthorizationResponse.model_validate_json(response.content)

    async def get_app_profile(self, app_profile_id: str, version: int | None = None) -> ApplicationProfile:
        """``GET /app-profiles/{id}`` (Tables 10.X.2.9/10): the current profile, or an earlier
        ``version``; another application's profile is a 404 like an unknown one."""
        params = {"version": str(version)} if version is not None else None
        response = await self.request(
            "GET", f"{API}/app-profiles/{quote(app_profile_id, safe='')}", params=params
        )
        return ApplicationProfile.model_validate_json(response.content)
