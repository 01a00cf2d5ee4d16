"""Approval of pools' service interface descriptions (issue 8 item 1): the administrator's
transaction scripts (list, approve, reject, set), each in ONE transaction with its audit event and,
when what applications may see changes, the pool's profile rebuild (new versions, notifications,
CSC-15 updates) through :meth:`Scripts.pool_changed`. The decisions are in ``interfaces.py``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime

from asgate.domain.registry import Version
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.registry import interfaces
from asgate.registry.models import PoolInterfaceState
from asgate.registry.scripts import Scripts, _not_found, etag_of
from asgate.store import pools as pools_db
from asgate.store import registry as db
from asgate.store.tx import Tx


def pool_interface_state(
    pool: tuple[str, str], instances: Sequence[db.InstanceRecord], approval: pools_db.PoolInterface | None
) -> PoolInterfaceState:
    """Approved, offered and pending description of one pool (issue 8 item 1)."""
    offered = interfaces.union(i.registration.versions for i in instances)
    approved = approval.approved if approval else None
    adds = interfaces.additions(offered, approved)
    digest = interfaces.digest(offered)
    state = "APPROVED" if not adds else "REJECTED" if approval and approval.rejected == digest else "PENDING"
    return PoolInterfaceState(
        service_type=pool[0],
        service_name=pool[1],
        state=state,
        approved_versions=approved,
        offered_versions=offered or None,
        additions=adds,
        digest=digest,
        updated_by=approval.updated_by if approval else None,
        updated_at=approval.updated_at if approval else None,
    )


class PoolScripts:
    def __init__(self, scripts: Scripts) -> None:
        self.scripts = scripts

    def pool_states(self, tx: Tx, *, pool: tuple[str, str] | None) -> list[PoolInterfaceState]:
        """Every pool's approved and offered description (``pool``: only that one)."""
        approvals = tx.pools.interfaces(None if pool is None else [pool])
        by_pool: dict[tuple[str, str], list[db.InstanceRecord]] = defaultdict(list)
        for record in tx.instances.of_pool(pool) if pool else tx.instances.all():
            by_pool[record.pool].append(record)
        keys = sorted(set(approvals) | set(by_pool))
        return [pool_interface_state(key, by_pool.get(key, []), approvals.get(key)) for key in keys]

    def approve_pool(
        self, tx: Tx, *, actor: str, pool: tuple[str, str], if_match: str | None, now: float
    ) -> PoolInterfaceState:
        """The administrator approves what a pool's instances offer: its profiles widen (new
        versions, notifications, CSC-15 updates) in this transaction."""
        instances = tx.instances.of_pool(pool)
        approval = tx.pools.interfaces([pool]).get(pool)
        state = self._pending_state(pool, instances, approval, if_match)
        offered = state.offered_versions or []
        approved = interfaces.union([offered, (approval.approved if approval else None) or []])
        item = self._put_interface(tx, actor, pool, approval, approved, now)
        self.scripts._audit(
            tx, actor, "pool.approve", f"service-pool/{'/'.join(pool)}",
            additions=state.additions, digest=state.digest,
        )  # fmt: skip
        self.scripts.pool_changed(tx, pool, now)
        return pool_interface_state(pool, instances, item)

    def reject_pool(
        self, tx: Tx, *, actor: str, pool: tuple[str, str], if_match: str | None, now: float
    ) -> PoolInterfaceState:
        """The administrator refuses the pending offer: applications keep seeing only the approved
        description; the offer is no longer listed as pending (a different one is)."""
        instances = tx.instances.of_pool(pool)
        approval = tx.pools.interfaces([pool]).get(pool)
        state = self._pending_state(pool, instances, approval, if_match)
        approved = approval.approved if approval else None
        item = self._put_interface(tx, actor, pool, approval, approved, now, rejected=state.digest)
        self.scripts._audit(
            tx, actor, "pool.reject", f"service-pool/{'/'.join(pool)}",
            additions=state.additions, digest=state.digest,
        )  # fmt: skip
        return pool_interface_state(pool, instances, item)

    def put_pool_interface(
        self, tx: Tx, *, actor: str, pool: tuple[str, str], versions: list[Version], now: float
    ) -> PoolInterfaceState:
        """The administrator sets a pool's approved description (before its first instance
        registers, or to narrow it); applied to its profiles at once."""
        approval = tx.pools.interfaces([pool]).get(pool)
        item = self._put_interface(tx, actor, pool, approval, versions, now)
        self.scripts._audit(
            tx, actor, "pool.approve", f"service-pool/{'/'.join(pool)}",
            digest=interfaces.digest(versions), set=True,
        )  # fmt: skip
        instances = tx.instances.of_pool(pool)
        if instances:
            self.scripts.pool_changed(tx, pool, now)
        return pool_interface_state(pool, instances, item)

    def _pending_state(
        self,
        pool: tuple[str, str],
        instances: Sequence[db.InstanceRecord],
        approval: pools_db.PoolInterface | None,
        if_match: str | None,
    ) -> PoolInterfaceState:
        if not instances and approval is None:
            raise _not_found("pool", "/".join(pool), "{serviceName}")
        state = pool_interface_state(pool, instances, approval)
        if (
            if_match is not None
            and if_match.strip() != "*"
            and etag_of(state.digest) not in [t.strip() for t in if_match.split(",")]
        ):
            raise ProblemError(
                412, Cause.PRECONDITION_FAILED, "the pool's offer changed: list the pending changes again",
                invalid_params=[InvalidParam(param="header If-Match", reason="not the offer's digest")],
            )  # fmt: skip
        if state.state != "PENDING":
            raise ProblemError(409, "NOTHING_PENDING", f"pool {'/'.join(pool)} has no pending change")
        return state

    def _put_interface(
        self,
        tx: Tx,
        actor: str,
        pool: tuple[str, str],
        current: pools_db.PoolInterface | None,
        approved: list[Version] | None,
        now: float,
        *,
        rejected: str | None = None,
    ) -> pools_db.PoolInterface:
        item = pools_db.PoolInterface(
            pool=pool,
            approved=approved,
            rejected=rejected,
            version=current.version + 1 if current else 1,
            updated_by=actor,
            updated_at=datetime.fromtimestamp(now, UTC),
        )
        tx.pools.interface_put(item, new=current is None)
        return item
