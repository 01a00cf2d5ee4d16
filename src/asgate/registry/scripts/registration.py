"""Service instances registered, updated, deregistered and evicted (seed 7.4.2.2.9), with pool
ownership (issue 8 item 1) and the pool's shape checked in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

from asgate.domain.registry import ServiceRegistration
from asgate.kernel.problem import InvalidParam, ProblemError
from asgate.registry import interfaces, lifecycle, pools
from asgate.registry.lifecycle import Event, State
from asgate.registry.scripts.common import Refusal, _dt, _not_found, _pool_of, check_if_match
from asgate.registry.scripts.profiles import ProfileScripts
from asgate.store import registry as db
from asgate.store.ids import new_id
from asgate.store.tx import Tx


class RegistrationScripts(ProfileScripts):
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

    def _note_pending(self, tx: Tx, client_id: str, registration: ServiceRegistration) -> None:
        """Audit what a registration offers beyond its pool's approved description (pending)."""
        pool = _pool_of(registration)
        approval = tx.pools.interfaces([pool]).get(pool)
        adds = interfaces.additions(registration.versions, approval.approved if approval else None)
        if adds:
            self._audit(tx, client_id, "pool.pending", f"service-pool/{registration.pool}", additions=adds)
