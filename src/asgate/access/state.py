"""What the service access server knows (seed 10.X.5 pre-condition 2): application profiles by
index, MC user authorizations per application, and the service pools, fed by CSC-15 changes and
snapshots. Kept in memory and saved to a file, so the access server keeps serving from it while the
registry is down, across its own restarts too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgate import logs
from asgate.access.options import PoolOptions
from asgate.access.policy import ProfileRule
from asgate.access.upstream import Endpoint, UpstreamPool
from asgate.registry.models import AllowedService, ApplicationProfile

_log = logs.get("asgate.access.state")


class SequenceGap(Exception):
    """A change arrived whose predecessor this server never applied: pull a snapshot."""


def _tls(protocol: object) -> bool:
    """Instances registered with protocol HTTPS or WSS are reached over TLS."""
    return isinstance(protocol, str) and protocol.upper() in ("HTTPS", "WSS")


@dataclass
class PoolState:
    upstream: UpstreamPool
    api_prefix: str = ""


@dataclass
class AccessState:
    pool_options: PoolOptions = field(default_factory=PoolOptions)
    path: Path | None = None  # where the state is saved (None: memory only)
    seq: int = 0
    profiles: dict[int, ProfileRule] = field(default_factory=dict)  # by index
    profile_docs: dict[str, dict[str, Any]] = field(default_factory=dict)  # by id, as received
    grants: dict[tuple[str, str], list[AllowedService] | None] = field(default_factory=dict)
    pools: dict[tuple[str, str], PoolState] = field(default_factory=dict)
    _pool_docs: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    dirty: bool = False  # changed since the last save (saves are debounced by the owner)

    # ------------------------------------------------------------ applying changes

    def apply(self, changes: Iterable[dict[str, Any]], previous: int) -> int:
        """Apply ordered changes ``{sequence, kind, key, op, payload}`` sent after ``previous``.

        Changes this server already has are skipped (a retried push); a ``previous`` it never
        reached raises :class:`SequenceGap`. Returns how many were applied.
        """
        if previous > self.seq:
            raise SequenceGap(f"sequence {previous} expected, have {self.seq}")
        applied = 0
        for change in changes:
            if change["sequence"] <= self.seq:
                continue
            self._apply_one(change["kind"], change["key"], change["op"], change.get("payload"))
            self.seq = change["sequence"]
            applied += 1
        self.dirty = self.dirty or applied > 0
        return applied

    def _apply_one(self, kind: str, key: str, op: str, payload: dict[str, Any] | None) -> None:
        if kind == "app-profile":
            self._put_profile(key, payload if op == "PUT" else None)
        elif kind == "user-authorization":
            app_id, _, user = key.partition("/")
            self._put_grant(app_id, user, payload if op == "PUT" else None)
        elif kind == "service-pool":
            service_type, _, service_name = key.partition("/")
            self._put_pool((service_type, service_name), payload if op == "PUT" else None)

    def load(self, snapshot: dict[str, Any]) -> None:
        """Replace everything with a registry snapshot (at start, or after a gap)."""
        self.profiles.clear()
        self.profile_docs.clear()
        self.grants.clear()
        for profile in snapshot.get("appProfiles", []):
            self._put_profile(profile["appProfileId"], profile)
        for grant in snapshot.get("userAuthorizations", []):
            self._put_grant(grant["appId"], grant["mcServiceId"], grant)
        seen = set()
        for pool in snapshot.get("servicePools", []):
            key = (pool["serviceType"], pool["serviceName"])
            seen.add(key)
            self._put_pool(key, pool)
        for key in set(self.pools) - seen:
            self._put_pool(key, None)
        self.seq = int(snapshot.get("sequence", 0))
        self.dirty = True

    def _put_profile(self, profile_id: str, payload: dict[str, Any] | None) -> None:
        old = self.profile_docs.pop(profile_id, None)
        if old is not None:
            self.profiles.pop(old["appProfileIndex"], None)
        if payload is not None:
            rule = ProfileRule.of(ApplicationProfile.model_validate(payload))
            self.profile_docs[profile_id] = payload
            self.profiles[rule.index] = rule

    def _put_grant(self, app_id: str, user: str, payload: dict[str, Any] | None) -> None:
        if payload is None:
            self.grants.pop((app_id, user), None)
            return
        services = payload.get("services")
        self.grants[(app_id, user)] = (
            [AllowedService.model_validate(s) for s in services] if services else None
        )

    def _put_pool(self, key: tuple[str, str], payload: dict[str, Any] | None) -> None:
        instances = payload.get("instances", []) if payload else []
        if payload is None:
            self._pool_docs.pop(key, None)
        else:
            self._pool_docs[key] = payload
        state = self.pools.get(key)
        if state is None:
            state = self.pools[key] = PoolState(UpstreamPool("/".join(key), options=self.pool_options))
        state.upstream.update(
            Endpoint(i["serviceInstanceId"], i["host"], int(i["port"]), _tls(i.get("protocol")))
            for i in instances
        )
        if instances:
            state.api_prefix = instances[0].get("apiPrefix", "")

    # ------------------------------------------------------------ persistence

    def snapshot(self) -> dict[str, Any]:
        return {
            "sequence": self.seq,
            "appProfiles": list(self.profile_docs.values()),
            "userAuthorizations": [
                {
                    "appId": app,
                    "mcServiceId": user,
                    "services": [s.dump() for s in services] if services else None,
                }
                for (app, user), services in self.grants.items()
            ],
            "servicePools": list(self._pool_docs.values()),
        }

    def save(self) -> None:
        """Write the state atomically (a crash leaves the old file or the new one, never half)."""
        self.dirty = False
        if self.path is None:
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.snapshot()), encoding="utf-8")
        os.replace(tmp, self.path)

    def restore(self) -> bool:
        if self.path is None or not self.path.is_file():
            return False
        try:
            self.load(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            _log.warning("saved access state unreadable; waiting for a snapshot", error=str(exc))
            return False
        self.dirty = False
        return True

    def close(self) -> None:
        for state in self.pools.values():
            state.upstream.close()
