"""The service registry server (seed 7.4.2.2.9): the operations of its APIs, without HTTP.

Writes run as transaction scripts (``scripts/``) through the store's unit of work
(``store.write(lambda tx: ...)``, in the group committer's next transaction); reads for
discovery come from the in-memory view, kept current from the change log. The same service object
serves the HTTP APIs and the administrator CLI (which works on the store before any server runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from asgate.auth import Principal
from asgate.domain.registry import (
    ApplicationProfile,
    ExternalApp,
    ExternalAppSpec,
    Grant,
    GrantSpec,
    ProfileEdit,
    ServiceInstance,
    ServiceRegistration,
    Version,
)
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.kernel.settings import DEFAULT_DENY_HOSTS
from asgate.kernel.uripolicy import HostPolicy, UriPolicy, check_instance_addresses, refused
from asgate.registry import discovery, interfaces
from asgate.registry.approvals import PoolScripts
from asgate.registry.lifecycle import Liveness
from asgate.registry.models import (
    AuthorizationRequest,
    AuthorizationResponse,
    PoolInterfaceState,
    ServiceInformation,
)
from asgate.registry.pools import POOL_NOT_PROVISIONED
from asgate.registry.scripts import Beat, Context, Heartbeat, Refusal, Scripts
from asgate.registry.view import RegistryView
from asgate.store import Store
from asgate.store.tx import Tx

R = TypeVar("R")

SERVICE_SCOPE = "mcx-service-registration"
APP_SCOPE = "mcx-registry"
ADMIN_SCOPE = "mcx-registry-admin"
SYNC_SCOPE = "mcx-access-profiles"


class RegistryService:
    def __init__(
        self,
        store: Store,
        policy: UriPolicy,
        *,
        liveness: Liveness,
        sas_url: str,
        api_root: str,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[], None] | None = None,
        addresses: HostPolicy | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.addresses = addresses or HostPolicy.build([], DEFAULT_DENY_HOSTS)  # instance addresses
        self.scripts = Scripts(Context(liveness=liveness, sas_url=sas_url.rstrip("/"), api_root=api_root))
        self.pool_scripts = PoolScripts(self.scripts)
        self.view = RegistryView(store.registry, store.pools)
        self._clock = clock
        self._on_change = on_change or (lambda: None)

    async def _write(self, work: Callable[[Tx], R]) -> R:
        result = await self.store.write(work)
        await self.view.refresh()
        self._on_change()
        return result

    # ------------------------------------------------------------ mcx-service-registration

    async def _check_addresses(
        self, principal: Principal, action: str, resource: str, registration: ServiceRegistration
    ) -> None:
        """The instance address policy (uripolicy.py); a refusal is audited: a service that names
        a metadata or loopback address is probing the SAS as a way in."""
        try:
            check_instance_addresses(self.addresses, registration)
        except ProblemError as refusal:
            reason = "; ".join(f"{p.param}: {p.reason}" for p in refusal.invalid_params or ())
            actor = principal.client_id
            await self.store.write(
                lambda tx: tx.audit.append(actor, action, resource, "denied", reason=reason)
            )
            raise

    async def register(self, principal: Principal, registration: ServiceRegistration) -> ServiceInstance:
        await self._check_addresses(
            principal, "service.register", f"service-pool/{registration.pool}", registration
        )
        client_id, now = principal.client_id, self._clock()
        record = await self._write(
            lambda tx: self.scripts.register(tx, client_id=client_id, registration=registration, now=now)
        )
        if isinstance(record, Refusal):
            raise record.error
        return record.view()

    async def update(
        self, principal: Principal, instance_id: str, registration: ServiceRegistration, if_match: str | None
    ) -> tuple[ServiceInstance, int]:
        resource = f"service-instance/{instance_id}"
        await self._check_addresses(principal, "service.update", resource, registration)
        client_id, now = principal.client_id, self._clock()
        record = await self._write(
            lambda tx: self.scripts.update(
                tx,
                client_id=client_id,
                instance_id=instance_id,
                registration=registration,
                if_match=if_match,
                now=now,
            )
        )
        if isinstance(record, Refusal):
            raise record.error
        return record.view(), record.version

    async def heartbeat(self, principal: Principal, instance_id: str) -> None:
        status = await self.store.write_many(
            self.scripts.heartbeats, Heartbeat(principal.client_id, instance_id, self._clock())
        )
        if status == Beat.UNKNOWN:
            raise ProblemError(
                404,
                Cause.CONTEXT_NOT_FOUND,
                "no such service instance (removed after missed heartbeats?): register again",
                invalid_params=[InvalidParam(param="{serviceInstanceId}", reason="not found")],
            )
        if status == Beat.NOT_OWNED:
            raise ProblemError(403, "INSTANCE_NOT_OWNED", "the instance was registered by another client")
        if status == Beat.POOL_NOT_PROVISIONED:
            raise ProblemError(
                403, POOL_NOT_PROVISIONED, "this client is no longer provisioned to serve the instance's pool"
            )
        if await self.view.refresh():  # a suspended instance came back
            self._on_change()

    async def deregister(self, principal: Principal, instance_id: str) -> None:
        client_id, now = principal.client_id, self._clock()
        refusal = await self._write(
            lambda tx: self.scripts.deregister(tx, client_id=client_id, instance_id=instance_id, now=now)
        )
        if isinstance(refusal, Refusal):
            raise refusal.error

    async def instance(self, principal: Principal | None, instance_id: str) -> tuple[ServiceInstance, int]:
        record = await self.store.registry.instance(instance_id)
        if record is None:
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no service instance {instance_id!r}")
        if principal is not None and record.client_id != principal.client_id:
            raise ProblemError(403, "INSTANCE_NOT_OWNED", "the instance was registered by another client")
        return record.view(), record.version

    async def sweep(self) -> int:
        """Apply liveness deadlines now; the number of pools that changed."""
        now = self._clock()
        changed = await self.store.write(lambda tx: self.scripts.sweep(tx, now=now))
        if changed:
            await self.view.refresh()
            self._on_change()
        return changed

    async def start(self) -> None:
        """After a (re)start: give every instance its heartbeat periods again, load the view."""
        started_at = self._clock()
        await self.store.write(lambda tx: self.scripts.reprieve(tx, started_at=started_at))
        await self.view.load()

    # ------------------------------------------------------------ mcx-registry (CSC-14)

    def service_information(
        self, principal: Principal, mc_service_id: str, query: discovery.Query
    ) -> list[ServiceInformation]:
        """Seed 10.X.3 steps 1-2 (from the in-memory view: no query per request)."""
        app = self.view.apps.get(principal.client_id)
        if app is None:
            raise ProblemError(
                403, "APP_NOT_REGISTERED", f"external application {principal.client_id!r} is not registered"
            )
        grant = self.view.grants.get((principal.client_id, mc_service_id))
        return discovery.get_service_information(
            self.view.candidates(query.service_type, query.service_name),
            app,
            grant.services if grant else None,
            grant is not None,
            query,
        )

    async def update_authorization(
        self, principal: Principal, request: AuthorizationRequest
    ) -> AuthorizationResponse:
        """Seed 10.X.3 steps 3-7."""
        destination = request.notification_destination
        if destination is None and request.request_type == "AUTHORIZE" and not request.websocket_notification:
            app = self.view.apps.get(principal.client_id)
            destination = app.default_notification_destination if app else None
        if destination is not None:
            reason = self.policy.check(destination)
            if reason is not None:
                raise refused("/notificationDestination", reason)
        app_id, now = principal.client_id, self._clock()
        outcome = await self._write(
            lambda tx: self.scripts.authorize(
                tx, app_id=app_id, request=request, destination=destination, now=now
            )
        )
        if isinstance(outcome, Refusal):
            raise outcome.error
        return outcome

    async def app_profile(
        self, principal: Principal | None, profile_id: str, version: int | None
    ) -> ApplicationProfile:
        """Seed 10.X.4 steps 4-5 (Tables 10.X.2.9/10): an application reads only its own profiles."""
        record = await self.store.registry.profile(profile_id)
        if record is None or (principal is not None and record.profile.app_id != principal.client_id):
            # The same answer for "not yours" as for "does not exist": profile ids reveal nothing.
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no application profile {profile_id!r}")
        if version is None or version == record.profile.version:
            return record.profile
        old = await self.store.registry.profile_version(profile_id, version)
        if old is None:
            raise ProblemError(
                404, Cause.CONTEXT_NOT_FOUND, f"no version {version} of application profile {profile_id!r}",
                invalid_params=[InvalidParam(param="query version", reason="unknown version")],
            )  # fmt: skip
        return old

    # ------------------------------------------------------------ administration

    async def put_app(
        self, actor: str, client_id: str, spec: ExternalAppSpec, if_match: str | None
    ) -> ExternalApp:
        if spec.default_notification_destination is not None:
            reason = self.policy.check(spec.default_notification_destination)
            if reason is not None:
                raise refused("/defaultNotificationDestination", reason)
        now = self._clock()
        return await self._write(
            lambda tx: self.scripts.put_app(
                tx, actor=actor, client_id=client_id, spec=spec, if_match=if_match, now=now
            )
        )

    async def delete_app(self, actor: str, client_id: str) -> None:
        now = self._clock()
        await self._write(lambda tx: self.scripts.delete_app(tx, actor=actor, client_id=client_id, now=now))

    async def app(self, client_id: str) -> ExternalApp:
        app = await self.store.registry.app(client_id)
        if app is None:
            raise ProblemError(404, Cause.CONTEXT_NOT_FOUND, f"no external application {client_id!r}")
        return app

    async def put_grant(self, actor: str, spec: GrantSpec) -> Grant:
        now = self._clock()
        return await self._write(lambda tx: self.scripts.put_grant(tx, actor=actor, spec=spec, now=now))

    async def delete_grant(self, actor: str, app_id: str, mc_service_id: str) -> None:
        now = self._clock()
        await self._write(
            lambda tx: self.scripts.delete_grant(
                tx, actor=actor, app_id=app_id, mc_service_id=mc_service_id, now=now
            )
        )

    async def edit_profile(
        self, actor: str, profile_id: str, edit: ProfileEdit, if_match: str | None
    ) -> ApplicationProfile:
        now = self._clock()
        return await self._write(
            lambda tx: self.scripts.edit_profile(
                tx, actor=actor, profile_id=profile_id, edit=edit, if_match=if_match, now=now
            )
        )

    async def delete_profile(self, actor: str, profile_id: str) -> None:
        now = self._clock()
        await self._write(
            lambda tx: self.scripts.delete_profile(tx, actor=actor, profile_id=profile_id, now=now)
        )

    async def evict(self, actor: str, instance_id: str) -> None:
        now = self._clock()
        await self._write(lambda tx: self.scripts.evict(tx, actor=actor, instance_id=instance_id, now=now))

    async def retry_notification(self, notification_id: int) -> bool:
        """Make a pending notification due now (skipping its backoff); False if none is pending."""
        now = self._clock()
        return await self.store.write(lambda tx: tx.outbox.retry_now(notification_id, now))

    # ------------------------------------------------------------ pool interfaces (issue 8 item 1)

    async def pool_interfaces(self, pool: tuple[str, str] | None = None) -> list[PoolInterfaceState]:
        """Every pool's approved description and what its instances offer beyond it."""
        return await self.store.write(lambda tx: self.pool_scripts.pool_states(tx, pool=pool))

    async def approve_pool(
        self, actor: str, pool: tuple[str, str], if_match: str | None = None
    ) -> PoolInterfaceState:
        now = self._clock()
        return await self._write(
            lambda tx: self.pool_scripts.approve_pool(tx, actor=actor, pool=pool, if_match=if_match, now=now)
        )

    async def reject_pool(
        self, actor: str, pool: tuple[str, str], if_match: str | None = None
    ) -> PoolInterfaceState:
        now = self._clock()
        return await self._write(
            lambda tx: self.pool_scripts.reject_pool(tx, actor=actor, pool=pool, if_match=if_match, now=now)
        )

    async def put_pool_interface(
        self, actor: str, pool: tuple[str, str], versions: list[Version]
    ) -> PoolInterfaceState:
        """Approve exactly ``versions`` for ``pool`` (also before any instance registered)."""
        now = self._clock()
        return await self._write(
            lambda tx: self.pool_scripts.put_pool_interface(
                tx, actor=actor, pool=pool, versions=versions, now=now
            )
        )

    async def ensure_approved(self, actor: str, pool: tuple[str, str], versions: list[Version]) -> bool:
        """Set-up code (``asgate up --samples``, ``asgate demo``): approve ``versions`` for ``pool``
        unless they already are; True if it approved them."""
        current = (await self.store.pools.interfaces([pool])).get(pool)
        if current is not None and not interfaces.additions(versions, current.approved):
            return False
        await self.put_pool_interface(actor, pool, versions)
        return True
