"""The ``asgate`` command line: servers, administration, and the client commands (through the SDK).

Commands are loaded on first use (see ``AsgateGroup``).
"""

from __future__ import annotations

from asgate.cli.base import AsgateGroup, main

AsgateGroup.lazy = {
    "up": "asgate.cli.server:up",
    "demo": "asgate.cli.demo:demo",
    "serve": "asgate.cli.server:serve",
    "sas-worker": "asgate.cli.server:sas_worker",
    "clients": "asgate.cli.clients:clients",
    "users": "asgate.cli.bulk:users",
    "keys": "asgate.cli.keys:keys",
    "db": "asgate.cli.db:db",
    "as": "asgate.cli.msgs:as_group",
    "agent": "asgate.cli.agent:agent",
    "app": "asgate.cli.app:app",
    "apps": "asgate.cli.bulk:apps",
    "grants": "asgate.cli.bulk:grants",
    "profiles": "asgate.cli.registry:profiles",
    "services": "asgate.cli.registry:services",
    "pools": "asgate.cli.pools:pools",
    "outbox": "asgate.cli.registry:outbox",
    "access-servers": "asgate.cli.access_servers:access_servers",
    "audit": "asgate.cli.registry:audit",
}

__all__ = ["main"]
