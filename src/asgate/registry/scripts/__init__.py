"""The registry's transaction scripts: each reads, decides with the pure modules, and writes the
resource, its audit events, its CSC-15 changes and its notifications in ONE unit of work
(``store.write(lambda tx: scripts.register(tx, ...))``, run by the store's group committer). A refusal
is raised as a ProblemError before anything is written.

One module per part: ``registration`` (service instances), ``liveness`` (heartbeats, sweep),
``applications`` (CSC-14 authorization, applications, grants, profile edits), ``profiles`` (the
profile rebuilds they share), ``common`` (ETags, refusals, payloads).

CSC-15 change kinds: ``service-pool`` (key ``TYPE/NAME``), ``app-profile`` (key = appProfileId),
``user-authorization`` (key ``APP/MC-SERVICE-ID``), and ``external-app`` (key = client id; used by
registry processes to refresh their views, not sent to service access servers).
"""

from __future__ import annotations

from asgate.registry.scripts.applications import ApplicationScripts
from asgate.registry.scripts.common import (
    CSC15_KINDS,
    Beat,
    Context,
    Heartbeat,
    Refusal,
    _not_found,
    check_if_match,
    etag,
    etag_of,
    grant_payload,
    pool_payload,
)
from asgate.registry.scripts.liveness import LivenessScripts
from asgate.registry.scripts.registration import RegistrationScripts

__all__ = [
    "CSC15_KINDS",
    "Beat",
    "Context",
    "Heartbeat",
    "Refusal",
    "Scripts",
    "_not_found",
    "check_if_match",
    "etag",
    "etag_of",
    "grant_payload",
    "pool_payload",
]


class Scripts(RegistrationScripts, LivenessScripts, ApplicationScripts):
    """Every transaction script of the registry, over one :class:`Context`."""
