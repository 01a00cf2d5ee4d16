"""Liveness (``lifecycle.py``): heartbeats in set-based batches, the sweep of deadlines, the
reprieve after a restart.
"""

from __future__ import annotations

from asgate.registry import lifecycle, pools
from asgate.registry.lifecycle import Event, State
from asgate.registry.scripts.common import Beat, Heartbeat
from asgate.registry.scripts.profiles import ProfileScripts
from asgate.store.tx import Tx


class LivenessScripts(ProfileScripts):
    def heartbeats(self, tx: Tx, items: list[Heartbeat]) -> list[str]:
        """Batch function (set-based, see :meth:`asgate.store.Store.write_many`): a :class:`Beat`
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
        """Apply the deadlines due at ``now``: REGISTERED -> SUSPENDED -> REMOVED. Processes sweep
        one at a time (``tx.instances.sweeping``), so a transition is applied, audited and notified
        once, whichever processes sweep."""
        if not tx.instances.sweeping():
            return 0
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
