"""The registry's transaction scripts: each reads, decides with the pure modules, and writes the
resource, its audit events, its CSC-15 changes and its notifications in ONE transaction (run by the
store's group committer). A refusal is raised as a ProblemError before anything is written.

CSC-15 change kinds: ``service-pool`` (key ``TYPE/NAME``), ``app-profile`` (key = appProfileId),
``user-authorization`` (key ``APP/MC-SERVICE-ID``), and ``external-app`` (key = client id; used by
registry processes to refresh their views, not sent to service access servers).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from asgate.problem import Cause, InvalidParam, ProblemError
from asgate.registry import interfaces, lifecycle, policy, pools, profiles
from asgate.registry.lifecycle import Event, Liveness, State
from asgate.registry.models import (
    ApplicationProfile,
    AuthorizationRequest,
    AuthorizationResponse,
    ExternalApp,
    ExternalAppSpec,
    Grant,
    GrantSpec,
    ProfileEdit,
    ServiceFailure,
    ServiceRegistration,
)
from asgate.store import registry as db
from asgate.store.ids import new_id
from asgate.store.tx import Tx

CSC15_KINDS = ("service-pool", "app-profile", "user-authorization")


def etag(version: int) -> str:
    return f'"{version}"'


def etag_of(digest: str) -> str:
    return f'"{digest}"'


def check_if_match(if_match: str | None, version: int) -> None:
    """RFC 9110 13.1.1: a conditional update applies only to the version the client saw."""
    if (
        if_match is not None
        and if_match.strip() != "*"
        and etag(version) not in [t.strip() for t in if_match.split(",")]
    ):
        raise ProblemError(
            412, Cause.PRECONDITION_FAILED, f"the resource changed (now {etag(version)})",
            invalid_params=[InvalidParam(param="header If-Match", reason="does not match the current ETag")],
        )  # fmt: skip


def _not_found(what: str, key: str, param: str) -> ProblemError:
    return ProblemError(
        404,
        Cause.CONTEXT_NOT_FOUND,
        f"no {what} {key!r}",
        invalid_params=[InvalidParam(param=param, reason="not found")],
    )


@dataclass(frozen=True)
class Refusal:
    """A refusal whose audit events must be committed (a raised error would roll them back)."""

    error: ProblemError


class Beat:
    """The outcome of one heartbeat (:meth:`Scripts.heartbeats`)."""

    OK = "ok"
    UNKNOWN = "unknown"
    NOT_OWNED = "not-owned"
    POOL_NOT_PROVISIONED = pools.POOL_NOT_PROVISIONED


class Heartbeat(NamedTuple):
    """One heartbeat of a batch (:meth:`Scripts.heartbeats`)."""

    client_id: str
    instance_id: str
    now: float


@dataclass(frozen=True)
class Context:
    """What scripts need besides their arguments."""

    liveness: Liveness
    sas_url: str  # service location of untrusted applications' profiles
    api_root: str  # for appProfileRef in notifications


class Scripts:
    def __init__(self, context: Context) -> None:
        self.ctx = context

    # ------------------------------------------------------------ service instances

    def register(
        self, tx: Tx, *, client_id: str, registration: ServiceRegistration, now: float
    ) -> db.InstanceRecord | Refusal:
        refusal = self._check_pools_served(tx, client_id, "service.register", [_pool_of(registration)])
        if refusal is not None:
            return refusal
        self._check_pool_shape(tx, registration, None)
        suspend_at, remove_at = self.ctx.liveness.deadlines(now, registration.heartbeat_period)
        record = db.InstanceRecord(
            service_instance_id=new_id(),
            client_id=client_id,
            registration=registration,
            status=State.REGISTERED,
            registered_at=_dt(now),
            last_heartbeat=now,
            suspend_at=suspend_at,
            remove_at=remove_at,
            version=1,
        )
        tx.instances.put(record, new=True)
        self._note_pending(tx, client_id, registration)
        self._audit(
            tx,
            client_id,
            "service.register",
            f"service-instance/{record.service_instance_id}",
            pool=registration.pool,
        )
        self.pool_changed(tx, record.pool, now)
        return record

    def update(
        self,
        tx: Tx,
        *,
        client_id: str,
        instance_id: str,
        registration: ServiceRegistration,
        if_match: str | None,
        now: float,
    ) -> db.InstanceRecord | Refusal:
        record = self._own_instance(tx, client_id, instance_id)
        refusal = self._check_pools_served(
            tx, client_id, "service.update", [record.pool, _pool_of(registration)]
        )
        if refusal is not None:
            return refusal
        check_if_match(if_match, record.version)
        self._check_pool_shape(tx, registration, instance_id)
        old_pool = record.pool
        record.registration = registration
        record.version += 1
        record.status = State.REGISTERED
        record.last_heartbeat = now
        record.suspend_at, record.remove_at = self.ctx.liveness.deadlines(now, registration.heartbeat_period)
        tx.instances.put(record, new=False)
        self._note_pending(tx, client_id, registration)
        self._audit(
            tx, client_id, "service.update", f"service-instance/{instance_id}", pool=registration.pool
        )
        self.pool_changed(tx, record.pool, now)
        if old_pool != record.pool:
            self.pool_changed(tx, old_pool, now)
        return record

    def deregister(self, tx: Tx, *, client_id: str, instance_id: str, now: float) -> Refusal | None:
        record = self._own_instance(tx, client_id, instance_id)
        refusal = self._check_pools_served(tx, client_id, "service.deregister", [record.pool])
        if refusal is not None:
            return refusal
        lifecycle.transition(State(record.status), Event.DEREGISTER)
        tx.instances.delete(instance_id)
        self._audit(
            tx,
            client_id,
            "service.deregister",
            f"service-instance/{instance_id}",
            pool="/".join(record.pool),
        )
        self.pool_changed(tx, record.pool, now)
        return None

    def evict(self, tx: Tx, *, actor: str, instance_id: str, now: float) -> None:
        record = tx.instances.get(instance_id)
        if record is None:
            raise _not_found("service instance", instance_id, "{serviceInstanceId}")
        tx.instances.delete(instance_id)
        self._audit(tx, actor, "service.evict", f"service-instance/{instance_id}", pool="/".join(record.pool))
        self.pool_changed(tx, record.pool, now)

    def heartbeats(self, tx: Tx, items: list[Heartbeat]) -> list[str]:
        """Batch function (set-based, see :meth:`asgate.store.Store.write_batched`): a :class:`Beat`
        per heartbeat."""
        found = tx.instances.liveness([instance_id for _, instance_id, _ in items])
        served = tx.pools.patterns_of([client_id for client_id, _, _ in items])
        results: list[str] = []
        revived = set()
        for client_id, instance_id, now in items:
            row = found.get(instance_id)
            if row is None:
                results.append(Beat.UNKNOWN)
                continue
            owner, status, period, pool = row
            if owner != client_id:
                results.append(Beat.NOT_OWNED)
                continue
            if not pools.may_serve(served.get(client_id, ()), *pool):
                # Issue 8 item 1: a revoked pool is refused at once; the instance is then suspended
                # and removed by liveness like any instance that stopped heart-beating.
                results.append(Beat.POOL_NOT_PROVISIONED)
                self._audit_pool_denied(tx, client_id, "service.heartbeat", pool)
                continue
            state = lifecycle.transition(State(status), Event.HEARTBEAT)
            suspend_at, remove_at = self.ctx.liveness.deadlines(now, period)
            tx.instances.set_liveness(instance_id, state, now, suspend_at, remove_at)
            if status != state:
                revived.add(pool)
                self._audit(tx, client_id, "service.resume", f"service-instance/{instance_id}")
            found[instance_id] = (owner, state, period, pool)
            results.append(Beat.OK)
        for pool in sorted(revived):
            self.pool_changed(tx, pool, items[-1].now)
        return results

    def sweep(self, tx: Tx, *, now: float) -> int:
        """Apply the deadlines due at ``now``: REGISTERED -> SUSPENDED -> REMOVED."""
        changed: set[tuple[str, str]] = set()
        for record in tx.instances.due(now):
            event = lifecycle.due(State(record.status), now, record.suspend_at, record.remove_at)
            if event is None:
                continue
            state = lifecycle.transition(State(record.status), event)
            if state is State.REMOVED:
                tx.instances.delete(record.service_instance_id)
                action = "service.remove"
            else:
                tx.instances.set_liveness(
                    record.service_instance_id,
                    state,
                    record.last_heartbeat,
                    record.suspend_at,
                    record.remove_at,
                )
                action = "service.suspend"
            self._audit(
                tx,
                "registry",
                action,
                f"service-instance/{record.service_instance_id}",
                reason="missed heartbeats",
            )
            changed.add(record.pool)
        for pool in sorted(changed):
            self.pool_changed(tx, pool, now)
        return len(changed)

    def reprieve(self, tx: Tx, *, started_at: float) -> int:
        return tx.instances.reprieve_all(
            started_at, self.ctx.liveness.missed_heartbeats, self.ctx.liveness.removal_grace
        )

    def pool_changed(self, tx: Tx, pool: tuple[str, str], now: float) -> None:
        """CSC-15 service-pool change, and new profile versions where the pool's change shows."""
        instances = tx.instances.of_pool(pool)
        payload = pool_payload(pool, instances)
        op = "PUT" if instances else "DELETE"
        tx.changes.append("service-pool", "/".join(pool), op, payload if instances else None, _dt(now))
        records = tx.profiles.find(pool=pool)
        apps = tx.apps.many(sorted({r.profile.app_id for r in records}))
        mine = [(r, apps[r.profile.app_id]) for r in records if r.profile.app_id in apps]
        self._refresh_profiles(tx, mine, _effective_pools(tx, {pool: instances})[pool], now, notify=True)

    def _check_pool_shape(self, tx: Tx, registration: ServiceRegistration, instance_id: str | None) -> None:
        # The access server forwards {index}/x to {apiPrefix}/x on any instance of the pool: instances
        # of one pool must agree on the prefix of their proxied interface.
        mine = registration.proxied_interface()
        for other in tx.instances.of_pool((registration.service_type, registration.service_name)):
            theirs = other.registration.proxied_interface()
            if other.service_instance_id == instance_id or theirs is None or mine is None:
                continue
            if (theirs.api_prefix or "") != (mine.api_prefix or ""):
                raise ProblemError(
                    409,
                    "POOL_SHAPE_MISMATCH",
                    f"instances of {registration.pool} use apiPrefix {theirs.api_prefix or '(none)'!r}",
                    invalid_params=[
                        InvalidParam(param="/interfaces", reason="apiPrefix differs from the pool's")
                    ],
                )

    def _check_pools_served(
        self, tx: Tx, client_id: str, action: str, wanted: Sequence[tuple[str, str]]
    ) -> Refusal | None:
        """Issue 8 item 1: may ``client_id`` serve every pool of ``wanted``, as provisioned now?
        A refusal carries its audit row (returned, not raised: the row must be committed)."""
        served = tx.pools.patterns_of([client_id]).get(client_id, [])
        for pool in dict.fromkeys(wanted):
            if not pools.may_serve(served, *pool):
                self._audit_pool_denied(tx, client_id, action, pool)
                return Refusal(
                    ProblemError(
                        403,
                        pools.POOL_NOT_PROVISIONED,
                        f"this client is not provisioned to serve pool {'/'.join(pool)}",
                        invalid_params=[
                            InvalidParam(param="/serviceName", reason="pool not provisioned for this client")
                        ],
                    )
                )
        return None

    def _audit_pool_denied(self, tx: Tx, client_id: str, action: str, pool: tuple[str, str]) -> None:
        tx.audit.append(
            client_id,
            action,
            f"service-pool/{'/'.join(pool)}",
            "denied",
            reason=f"{pools.POOL_NOT_PROVISIONED}: the client may not serve this pool",
        )

    def _own_instance(self, tx: Tx, client_id: str, instance_id: str) -> db.InstanceRecord:
        record = tx.instances.get(instance_id)
        if record is None:
            raise _not_found("service instance", instance_id, "{serviceInstanceId}")
        if record.client_id != client_id:
            raise ProblemError(
                403,
                "INSTANCE_NOT_OWNED",
                "the instance was registered by another client",
                invalid_params=[
                    InvalidParam(param="{serviceInstanceId}", reason="registered by another client")
                ],
            )
        return record

    # ------------------------------------------------------------ external application authorization (CSC-14)

    def authorize(
        self, tx: Tx, *, app_id: str, request: AuthorizationRequest, destination: str | None, now: float
    ) -> AuthorizationResponse | Refusal:
        """Seed 10.X.3 steps 4-6: decide, store profiles, (un)subscribe, queue CSC-15 updates."""
        app = tx.apps.get(app_id)
        if app is None:
            raise ProblemError(
                403,
                "APP_NOT_REGISTERED",
                f"external application {app_id!r} is not registered by the administrator",
            )
        if request.request_type == "REMOVE":
            return self._remove(tx, app_id, request, now)
        grant = tx.grants.get(app_id, request.mc_service_id)
        wanted_types = {r.service_type.lower() for r in request.services_capabilities_information}
        pools = _effective_pools(tx, _registered_pools(tx, wanted_types))
        decisions = policy.decide(
            request.services_capabilities_information,
            {pool: [i.registration for i in records] for pool, records in pools.items()},
            app,
            grant.services if grant else None,
            grant is not None,
        )
        granted = [d for d in decisions if isinstance(d, policy.Granted)]
        denied = [d for d in decisions if isinstance(d, policy.Denied)]
        for decision in decisions:
            outcome = "ok" if isinstance(decision, policy.Granted) else "denied"
            reason = None if isinstance(decision, policy.Granted) else f"{decision.cause}: {decision.detail}"
            self._audit_decision(tx, app_id, request.mc_service_id, decision, outcome, reason)
        if not granted:  # returned, not raised: the denial's audit events must be committed
            first = denied[0]
            problems = [
                InvalidParam(param="/servicesCapabilitiesInformation", reason=f"{d.service_type}: {d.cause}")
                for d in denied
            ]
            return Refusal(ProblemError(403, first.cause, first.detail, invalid_params=problems))
        result = [
            self._upsert_profile(tx, app, g, pools[(g.service_type, g.service_name)], now) for g in granted
        ]
        tx.subscriptions.put(
            db.Subscription(
                app_id,
                None if request.websocket_notification else destination,
                bool(request.websocket_notification),
            ),
            _dt(now),
        )
        return AuthorizationResponse(
            result="PARTIAL_SUCCESS" if denied else "SUCCESS",
            application_profiles=result,
            failures=[
                ServiceFailure(
                    service_type=d.service_type, service_name=d.service_name, cause=d.cause, detail=d.detail
                )
                for d in denied
            ]
            or None,
        )

    def _remove(
        self, tx: Tx, app_id: str, request: AuthorizationRequest, now: float
    ) -> AuthorizationResponse:
        ids = set(request.application_profile_information or ())
        remaining = []
        for record in tx.profiles.find(app_id=app_id):
            profile = record.profile
            covered = any(
                r.service_type.lower() == profile.authorized_service.lower()
                and (r.service_name is None or r.service_name == profile.service_name)
                for r in request.services_capabilities_information
            )
            if covered and (not ids or profile.app_profile_id in ids):
                tx.profiles.delete(profile.app_profile_id)
                tx.changes.append("app-profile", profile.app_profile_id, "DELETE", None, _dt(now))
                self._audit(
                    tx,
                    app_id,
                    "profile.remove",
                    f"app-profile/{profile.app_profile_id}",
                    mcServiceId=request.mc_service_id,
                )
            else:
                remaining.append(profile)
        if not remaining:  # seed 10.X.3 step 4: no authorization left, no subscription either
            tx.subscriptions.delete(app_id)
        return AuthorizationResponse(result="SUCCESS", application_profiles=remaining)

    def _upsert_profile(
        self,
        tx: Tx,
        app: ExternalApp,
        granted: policy.Granted,
        instances: Sequence[db.InstanceRecord],
        now: float,
    ) -> ApplicationProfile:
        pool = (granted.service_type, granted.service_name)
        existing = next((p for p in tx.profiles.find(app_id=app.client_id, pool=pool)), None)
        if existing is not None:
            existing.requested = granted.requested
            return self._refresh_profile(tx, existing, app, instances, now, notify=False)
        profile = profiles.build(
            app_profile_id=str(uuid.uuid4()),
            app_id=app.client_id,
            app=app,
            service_type=granted.service_type,
            service_name=granted.service_name,
            index=tx.profiles.next_index(),
            instances=_registered(instances),
            caps=granted.capabilities,
            api_version=granted.api_version,
            sas_url=self.ctx.sas_url,
            version=1,
            now=_dt(now),
        )
        tx.profiles.insert(db.ProfileRecord(profile, granted.requested, None))
        tx.changes.append("app-profile", profile.app_profile_id, "PUT", profile.dump(), _dt(now))
        self._audit(
            tx,
            app.client_id,
            "profile.create",
            f"app-profile/{profile.app_profile_id}",
            index=profile.app_profile_index,
        )
        return profile

    def _refresh_profile(
        self,
        tx: Tx,
        record: db.ProfileRecord,
        app: ExternalAppSpec,
        instances: Sequence[db.InstanceRecord],
        now: float,
        *,
        notify: bool,
    ) -> ApplicationProfile:
        """Rebuild a profile from the current policy, pool and edit; a changed one gets a new version,
        a CSC-15 update and (seed 10.X.4 step 2) a notification to the application."""
        changed = self._refresh_profiles(tx, [(record, app)], instances, now, notify=notify)
        return changed[0] if changed else record.profile

    def _refresh_profiles(
        self,
        tx: Tx,
        records: Sequence[tuple[db.ProfileRecord, ExternalAppSpec]],
        instances: Sequence[db.InstanceRecord],
        now: float,
        *,
        notify: bool,
    ) -> list[ApplicationProfile]:
        """:meth:`_refresh_profile` for many profiles of one pool, written in a few statements; the
        profiles that changed."""
        if not instances:
            return []
        registered = _registered(instances) or [i.registration for i in instances]
        changed: list[db.ProfileRecord] = []
        for record, app in records:
            old = record.profile
            grant_caps, api_version = _caps_of(record, app)
            rebuilt = profiles.build(
                app_profile_id=old.app_profile_id,
                app_id=old.app_id,
                app=app,
                service_type=old.authorized_service,
                service_name=old.service_name,
                index=old.app_profile_index,
                instances=registered,
                caps=grant_caps,
                api_version=api_version,
                sas_url=self.ctx.sas_url,
                version=old.version,
                now=_dt(now),
                edit=record.edit,
            )
            if not profiles.same(old, rebuilt):
                record.profile = rebuilt.model_copy(update={"version": old.version + 1})
                changed.append(record)
        fresh = [record.profile for record in changed]
        tx.profiles.update_many(changed)
        tx.changes.append_many([("app-profile", p.app_profile_id, "PUT", p.dump()) for p in fresh], _dt(now))
        if notify:
            self._notify_many(tx, fresh, now)
        return fresh

    def _notify(self, tx: Tx, profile: ApplicationProfile, now: float) -> None:
        self._notify_many(tx, [profile], now)

    def _notify_many(self, tx: Tx, changed: Sequence[ApplicationProfile], now: float) -> None:
        """Seed 10.X.4 step 2: a notification per changed profile to its subscribed application."""
        subs = tx.subscriptions.many(sorted({p.app_id for p in changed}))
        queued = []
        for profile in changed:
            sub = subs.get(profile.app_id)
            destination = sub and ("websocket" if sub.websocket else sub.notification_destination)
            if destination:
                queued.append((profile.app_id, profile.app_profile_id, profile.version, destination))
        tx.outbox.enqueue_many(queued, now)

    # ------------------------------------------------------------ administration

    def put_app(
        self, tx: Tx, *, actor: str, client_id: str, spec: ExternalAppSpec, if_match: str | None, now: float
    ) -> ExternalApp:
        current = tx.apps.get(client_id)
        if current is not None:
            check_if_match(if_match, current.version)
        elif if_match not in (None, "*"):
            raise _not_found("external application", client_id, "{clientId}")
        app = ExternalApp(
            **spec.model_dump(),
            client_id=client_id,
            version=(current.version + 1) if current else 1,
            created_at=current.created_at if current else _dt(now),
            updated_at=_dt(now),
        )
        tx.apps.put(app, new=current is None)
        tx.changes.append("external-app", client_id, "PUT", None, _dt(now))
        self._audit(tx, actor, "app.update" if current else "app.create", f"external-app/{client_id}")
        for record in tx.profiles.find(app_id=client_id):
            self._refresh_profile(tx, record, app, _effective_pool(tx, record.pool), now, notify=True)
        return app

    def delete_app(self, tx: Tx, *, actor: str, client_id: str, now: float) -> None:
        if tx.apps.get(client_id) is None:
            raise _not_found("external application", client_id, "{clientId}")
        for record in tx.profiles.find(app_id=client_id):
            self._withdraw_profile(tx, actor, record.profile, now)
        for grant in tx.grants.of_app(client_id):
            self._delete_grant(tx, actor, grant.app_id, grant.mc_service_id, now)
        tx.subscriptions.delete(client_id)
        tx.apps.delete(client_id)
        tx.changes.append("external-app", client_id, "DELETE", None, _dt(now))
        self._audit(tx, actor, "app.delete", f"external-app/{client_id}")

    def put_grant(self, tx: Tx, *, actor: str, spec: GrantSpec, now: float) -> Grant:
        if tx.apps.get(spec.app_id) is None:
            raise ProblemError(
                404, Cause.CONTEXT_NOT_FOUND, f"no external application {spec.app_id!r}",
                invalid_params=[InvalidParam(param="/appId", reason="register the application first")],
            )  # fmt: skip
        current = tx.grants.get(spec.app_id, spec.mc_service_id)
        grant = Grant(
            **spec.model_dump(),
            version=(current.version + 1) if current else 1,
            created_at=current.created_at if current else _dt(now),
        )
        tx.grants.put(grant, new=current is None)
        key = f"{spec.app_id}/{spec.mc_service_id}"
        tx.changes.append("user-authorization", key, "PUT", grant_payload(grant), _dt(now))
        self._audit(tx, actor, "grant.put", f"grant/{key}")
        return grant

    def delete_grant(self, tx: Tx, *, actor: str, app_id: str, mc_service_id: str, now: float) -> None:
        if tx.grants.get(app_id, mc_service_id) is None:
            raise _not_found("grant", f"{app_id}/{mc_service_id}", "{mcServiceId}")
        self._delete_grant(tx, actor, app_id, mc_service_id, now)

    def _delete_grant(self, tx: Tx, actor: str, app_id: str, mc_service_id: str, now: float) -> None:
        tx.grants.delete(app_id, mc_service_id)
        key = f"{app_id}/{mc_service_id}"
        tx.changes.append("user-authorization", key, "DELETE", None, _dt(now))
        self._audit(tx, actor, "grant.delete", f"grant/{key}")

    def edit_profile(
        self, tx: Tx, *, actor: str, profile_id: str, edit: ProfileEdit, if_match: str | None, now: float
    ) -> ApplicationProfile:
        """An administrator edits a profile: seed 10.X.4 step 1 (the trigger of a reconfiguration)."""
        record = tx.profiles.get(profile_id)
        if record is None:
            raise _not_found("application profile", profile_id, "{appProfileId}")
        check_if_match(if_match, record.profile.version)
        app = tx.apps.get(record.profile.app_id)
        if app is None:
            raise _not_found("external application", record.profile.app_id, "appId")
        record.edit = edit
        # A new version (stored with the edit), a CSC-15 update and a notification if anything changed.
        updated = self._refresh_profile(tx, record, app, _effective_pool(tx, record.pool), now, notify=True)
        self._audit(tx, actor, "profile.edit", f"app-profile/{profile_id}", version=updated.version)
        return updated

    def delete_profile(self, tx: Tx, *, actor: str, profile_id: str, now: float) -> None:
        record = tx.profiles.get(profile_id)
        if record is None:
            raise _not_found("application profile", profile_id, "{appProfileId}")
        self._withdraw_profile(tx, actor, record.profile, now)

    def _withdraw_profile(self, tx: Tx, actor: str, profile: ApplicationProfile, now: float) -> None:
        tx.profiles.delete(profile.app_profile_id)
        tx.changes.append("app-profile", profile.app_profile_id, "DELETE", None, _dt(now))
        # The pointer now leads to a 404: the application learns the profile was withdrawn.
        self._notify(tx, profile.model_copy(update={"version": profile.version + 1}), now)
        self._audit(tx, actor, "profile.withdraw", f"app-profile/{profile.app_profile_id}")

    def _note_pending(self, tx: Tx, client_id: str, registration: ServiceRegistration) -> None:
        """Audit what a registration offers beyond its pool's approved description (pending)."""
        pool = _pool_of(registration)
        approval = tx.pools.interfaces([pool]).get(pool)
        adds = interfaces.additions(registration.versions, approval.approved if approval else None)
        if adds:
            self._audit(tx, client_id, "pool.pending", f"service-pool/{registration.pool}", additions=adds)

    # ------------------------------------------------------------ audit

    def _audit(self, tx: Tx, actor: str, action: str, resource: str, **details: Any) -> None:
        tx.audit.append(actor, action, resource, details=details or None)

    def _audit_decision(
        self,
        tx: Tx,
        app_id: str,
        user: str,
        decision: policy.Granted | policy.Denied,
        outcome: str,
        reason: str | None,
    ) -> None:
        service = f"{decision.service_type}/{decision.service_name or '*'}"
        tx.audit.append(
            app_id,
            "authorization.decide",
            f"service/{service}",
            outcome,
            reason=reason,
            details={"mcServiceId": user},
        )


# ---------------------------------------------------------------- helpers


def _pool_of(registration: ServiceRegistration) -> tuple[str, str]:
    return registration.service_type, registration.service_name


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


def _registered(instances: Sequence[db.InstanceRecord]) -> list[ServiceRegistration]:
    return [i.registration for i in instances if i.status == State.REGISTERED]


def _effective_pools(
    tx: Tx, by_pool: Mapping[tuple[str, str], Sequence[db.InstanceRecord]]
) -> dict[tuple[str, str], list[db.InstanceRecord]]:
    """Issue 8 item 1: the instances as applications may see them, each description cut down to
    what the administrator approved for its pool (profiles, authorization decisions)."""
    approvals = tx.pools.interfaces(list(by_pool))
    out: dict[tuple[str, str], list[db.InstanceRecord]] = {}
    for pool, records in by_pool.items():
        approval = approvals.get(pool)
        approved = approval.approved if approval else None
        out[pool] = [
            dataclasses.replace(r, registration=interfaces.effective_registration(r.registration, approved))
            for r in records
        ]
    return out


def _effective_pool(tx: Tx, pool: tuple[str, str]) -> list[db.InstanceRecord]:
    return _effective_pools(tx, {pool: tx.instances.of_pool(pool)})[pool]


def _registered_pools(tx: Tx, service_types: set[str]) -> dict[tuple[str, str], list[db.InstanceRecord]]:
    pools: dict[tuple[str, str], list[db.InstanceRecord]] = defaultdict(list)
    for record in tx.instances.registered(service_types):
        pools[record.pool].append(record)
    return dict(pools)


def _caps_of(record: db.ProfileRecord, app: ExternalAppSpec) -> tuple[frozenset[str] | None, str | None]:
    from asgate.registry import capabilities
    from asgate.registry.discovery import allowed_entry

    requested = record.requested
    wanted = frozenset(requested.capabilities) if requested and requested.capabilities else None
    entry = allowed_entry(
        app.allowed_services, record.profile.authorized_service, record.profile.service_name
    )
    return capabilities.intersect(
        capabilities.of(entry), wanted
    ), requested.api_version if requested else None


def pool_payload(pool: tuple[str, str], instances: Sequence[db.InstanceRecord]) -> dict[str, Any]:
    """CSC-15 service-pool body: where the access server may forward (REGISTERED instances only)."""
    endpoints = []
    for record in instances:
        interface = record.registration.proxied_interface()
        if record.status != State.REGISTERED or interface is None:
            continue
        endpoints.append(
            {
                "serviceInstanceId": record.service_instance_id,
                "host": interface.host,
                "port": interface.port,
                "apiPrefix": interface.api_prefix or "",
                "protocol": interface.protocol,
            }
        )
    return {"serviceType": pool[0], "serviceName": pool[1], "instances": endpoints}


def grant_payload(grant: Grant) -> dict[str, Any]:
    return {
        "appId": grant.app_id,
        "mcServiceId": grant.mc_service_id,
        "services": [s.dump() for s in grant.services] if grant.services else None,
    }
