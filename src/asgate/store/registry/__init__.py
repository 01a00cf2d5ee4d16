"""Persistence of the service registry server: one module per aggregate.

Writes run inside a group-commit transaction through the aggregates of
:class:`asgate.store.tx.Tx` (``tx.instances``, ``tx.apps``, ``tx.grants``, ``tx.profiles``,
``tx.subscriptions``, ``tx.outbox``, ``tx.changes``, ``tx.targets``, ``tx.access_servers``), each a
small class over the transaction's connection; reads run on the async engine through :class:`RegistryStore`
(``store.registry``). Rows holding documents (registrations, policies, profiles) keep them as JSON
text produced by pydantic.
"""

from __future__ import annotations

from asgate.store.registry._rows import (
    Change,
    Delivery,
    InstanceRecord,
    ProfileRecord,
    Subscription,
    TargetState,
)
from asgate.store.registry.access_servers import AccessServerRecord, AccessServers
from asgate.store.registry.apps import Apps
from asgate.store.registry.changes import Changes
from asgate.store.registry.grants import Grants
from asgate.store.registry.instances import Instances
from asgate.store.registry.outbox import Outbox
from asgate.store.registry.profiles import Profiles
from asgate.store.registry.reads import RegistryStore
from asgate.store.registry.subscriptions import Subscriptions
from asgate.store.registry.targets import Targets

__all__ = [
    "AccessServerRecord",
    "AccessServers",
    "Apps",
    "Change",
    "Changes",
    "Delivery",
    "Grants",
    "InstanceRecord",
    "Instances",
    "Outbox",
    "ProfileRecord",
    "Profiles",
    "RegistryStore",
    "Subscription",
    "Subscriptions",
    "TargetState",
    "Targets",
]
