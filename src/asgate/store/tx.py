"""The store's unit of work: one transaction, seen through one typed object per aggregate.

A role package writes with ``await store.write(lambda tx: scripts.register(tx, ...))``: the function
runs inside the next group-commit transaction, in a savepoint of its own (see
:meth:`asgate.store.Store.write`), and reaches the data only through ``tx``'s aggregates, never
through SQL or a ``Connection``. Decisions (provisioning, ownership, lifecycle) stay in the role
packages and can be table-tested with a fake ``tx`` that has the same attributes.
"""

from __future__ import annotations

from sqlalchemy import Connection

from asgate.store.audit import AuditTx
from asgate.store.pools import PoolsTx
from asgate.store.registry import (
    Apps,
    Changes,
    Grants,
    Instances,
    Outbox,
    Profiles,
    Subscriptions,
    Targets,
)


class Tx:
    """One transaction. Each aggregate of the store is an attribute, e.g. ``tx.instances``."""

    __slots__ = (
        "_conn",
        # the registry (store/registry/, store/pools.py) and the audit log
        "apps",
        "audit",
        "changes",
        "grants",
        "instances",
        "outbox",
        "pools",
        "profiles",
        "subscriptions",
        "targets",
    )

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        # the registry (store/registry/, store/pools.py) and the audit log
        self.instances = Instances(conn)
        self.apps = Apps(conn)
        self.grants = Grants(conn)
        self.profiles = Profiles(conn)
        self.subscriptions = Subscriptions(conn)
        self.outbox = Outbox(conn)
        self.changes = Changes(conn)
        self.targets = Targets(conn)
        self.pools = PoolsTx(conn)
        self.audit = AuditTx(conn)
