"""MSGin5G Server, AS-facing side: AS registration and de-registration (TS 23.554 8.2.5/8.2.6).

Re-registration semantics (the specification is silent): a registration for an AS Service ID that
already has a live registration *replaces* it. The new registration gets a new ``registrationId``;
the old one stops existing, so a stale instance of a restarted AS that de-registers with the old
id gets 404 and cannot remove the new registration.
"""

from __future__ import annotations

from datetime import UTC, datetime

from asgate.auth import Principal
from asgate.domain.msgin5g import Registration
from asgate.kernel.metrics import Metrics
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.kernel.uripolicy import UriPolicy, refused
from asgate.msgin5g import decisions
from asgate.msgin5g.models import ASRegistration
from asgate.store import Store
from asgate.store.ids import new_id

SCOPE = "msgs-asregistration"
ADMIN_SCOPE = "msgs-admin"


class MsgsService:
    def __init__(self, store: Store, policy: UriPolicy, metrics: Metrics) -> None:
        self._store = store
        self._policy = policy
        self._metrics = metrics
        self._registered = metrics.msgs_operations.labels("register", "ok")

    async def register(self, principal: Principal, request: ASRegistration) -> Registration:
        """8.2.5 steps 2-3: verify the AS may use the AS Service ID, then store its AS profile."""
        if request.target_uri is not None:
            reason = self._policy.check(request.target_uri)
            if reason is not None:
                self._metrics.msgs_operations.labels("register", "rejected").inc()
                raise refused("/targetUri", reason)
        registration = Registration(
            registration_id=new_id(),
            as_svc_id=request.as_svc_id,
            client_id=principal.client_id,
            app_id=request.app_id,
            target_uri=request.target_uri,
            as_prof=request.as_prof,
            registered_at=datetime.now(UTC),
        )
        # 8.2.5 pre-condition 2: checked in the same transaction as the write, so a provisioning
        # change applies at once.
        outcome = await self._store.write_many(decisions.register, registration)
        if isinstance(outcome, decisions.NotProvisioned):
            self._metrics.msgs_operations.labels("register", "denied").inc()
            raise ProblemError(
                403,
                Cause.AS_SVC_ID_NOT_ALLOWED,
                f"AS Service ID {request.as_svc_id!r} is not provisioned for client {principal.client_id!r}",
                invalid_params=[InvalidParam(param="/asSvcId", reason="not provisioned for this client")],
            )
        self._registered.inc()
        return registration

    async def deregister(self, principal: Principal, registration_id: str) -> Registration:
        """8.2.6 steps 3-4: only the AS that registered may de-register; its AS profile is deleted."""
        client_id = principal.client_id
        outcome = await self._store.write(
            lambda tx: decisions.deregister(tx, registration_id, client_id, owner=client_id)
        )
        if isinstance(outcome, decisions.NotOwner):
            self._metrics.msgs_operations.labels("deregister", "denied").inc()
            raise ProblemError(
                403,
                Cause.REGISTRATION_NOT_OWNED,
                "the registration belongs to another Application Server",
                invalid_params=[
                    InvalidParam(param="{registrationId}", reason="registered by another client")
                ],
            )
        if isinstance(outcome, decisions.NotFound):  # also: replaced or de-registered concurrently
            raise self._not_found(registration_id)
        self._metrics.msgs_operations.labels("deregister", "ok").inc()
        return outcome.registration

    # ------------------------------------------------------------ administration

    async def get(self, registration_id: str) -> Registration:
        registration = await self._store.registrations.get(registration_id)
        if registration is None:
            raise self._not_found(registration_id)
        return registration

    async def page(
        self, *, after: str | None, limit: int, client_id: str | None, as_svc_id: str | None
    ) -> tuple[list[Registration], str | None]:
        items = await self._store.registrations.scan(
            after=after, limit=limit, client_id=client_id, as_svc_id=as_svc_id
        )
        return items, items[-1].registration_id if len(items) == limit else None

    async def evict(self, actor: str, registration_id: str) -> Registration:
        """An operator removes a registration (audited under the operator's identity)."""
        outcome = await self._store.write(
            lambda tx: decisions.deregister(tx, registration_id, actor, owner=None)
        )
        if not isinstance(outcome, decisions.Deregistered):
            raise self._not_found(registration_id)
        self._metrics.msgs_operations.labels("evict", "ok").inc()
        return outcome.registration

    # ------------------------------------------------------------ helpers

    @staticmethod
    def _not_found(registration_id: str) -> ProblemError:
        return ProblemError(
            404,
            Cause.CONTEXT_NOT_FOUND,
            f"no AS registration {registration_id!r}",
            invalid_params=[InvalidParam(param="{registrationId}", reason="not found")],
        )
