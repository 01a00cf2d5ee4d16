"""What the service access server knows (seed 10.X.5 pre-condition 2): application profiles by
index, MC user authorizations per application, and the service pools, fed by CSC-15 changes and
snapshots. Kept in memory and saved to a file, so the access server keeps serving from it while the
registry is down, across its own restarts too.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from asgate.access.options import PoolOptions
from asgate.access.policy import ProfileRule
from asgate.access.upstream import Endpoint, UpstreamPool
from asgate.domain.registry import AllowedService, ApplicationProfile
from asgate.kernel import logs
from asgate.kernel.atrest import private_file, write_private

_log = logs.get("asgate.access.state")


MAX_SEQUENCE = 2**63 - 1  # the change log's BIGINT; anything larger is not a sequence number
MAX_BATCH = 1000  # changes in one POST /changes (the registry sends at most 500)


class SequenceMismatch(Exception):
    """A push that does not continue this server's sequence exactly: nothing was applied."""

    def __init__(self, current: int, previous: int) -> None:
        super().__init__(f"previous sequence {previous} does not continue this server's sequence {current}")
        self.current = current


def continues(current: int, previous: int, sequences: Sequence[int]) -> str | None:
    """Whether changes numbered ``sequences``, sent after ``previous``, continue ``current`` exactly.

    ``None`` if they do. The registry's numbers are its change log's row numbers, which skip the rows
    no access server needs (and numbers PostgreSQL burns on rolled-back transactions), so "the next
    number" is the next one the registry sent: strictly increasing after ``previous``. Whether each
    number was really issued is checked by the registry, which compares every sequence an access
    server reports with its log (``asgate.registry.sync``). Raises :class:`SequenceMismatch` when
    ``previous`` is not ``current`` (a retry of changes already held, a gap, or a forged jump);
    returns the reason when the batch itself is malformed.
    """
    if previous != current:
        raise SequenceMismatch(current, previous)
    if not sequences:
        return "no change"
    if len(sequences) > MAX_BATCH:
        return f"more than {MAX_BATCH} changes"
    last = previous
    for sequence in sequences:
        if not last < sequence <= MAX_SEQUENCE:
            return f"sequence {sequence} does not follow {last}"
        last = sequence
    return None


class MalformedChanges(ValueError):
    """A batch whose own numbering or payloads are inconsistent (a 400, nothing applied)."""


def _inconsistent(kind: str, key: str, op: str, payload: dict[str, Any] | None) -> str | None:
    """Why a change cannot be applied as sent (its payload must describe the resource it names)."""
    if op == "DELETE" or kind not in _KEY_FIELDS:
        return None if kind in _KEY_FIELDS else f"unknown kind {kind!r}"
    if payload is None:
        return "a PUT without a payload"
    fields = _KEY_FIELDS[kind]
    named = "/".join(str(payload.get(f, "")) for f in fields)
    if named != key:
        return f"the payload's {'/'.join(fields)} is not the key"
    if kind == "app-profile":
        try:
            ProfileRule.of(ApplicationProfile.model_validate(payload))
        except (ValueError, TypeError, KeyError):
            return "not a valid application profile"
    return None


_KEY_FIELDS = {
    "app-profile": ("appProfileId",),
    "user-authorization": ("appId", "mcServiceId"),
    "service-pool": ("serviceType", "serviceName"),
}


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
    # Issue 14: applications whose profiles and grants were fetched from the registry ahead of the
    # pushes, with the sequence they were read at; pushed changes up to it are older than what is held.
    fetched: dict[str, int] = field(default_factory=dict)

    # ------------------------------------------------------------ applying changes

    def apply(self, changes: Sequence[dict[str, Any]], previous: int) -> int:
        """Apply ordered changes ``{sequence, kind, key, op, payload}`` sent after ``previous``.

        All or nothing: a batch that does not continue this server's sequence exactly raises
        :class:`SequenceMismatch` (a retried push included: the registry resumes from the sequence
        it is told), a malformed one :class:`MalformedChanges`; then nothing is applied. Returns how
        many were applied.
        """
        reason = continues(self.seq, previous, [c["sequence"] for c in changes])
        for change in changes if reason is None else ():
            reason = _inconsistent(change["kind"], change["key"], change["op"], change.get("payload"))
            if reason is not None:
                reason = f"change {change['sequence']}: {reason}"
                break
        if reason is not None:
            raise MalformedChanges(reason)
        for change in changes:
            if self.fetched.get(self._app_of(change), -1) < change["sequence"]:
                self._apply_one(change["kind"], change["key"], change["op"], change.get("payload"))
            self.seq = change["sequence"]
        self.fetched = {app: seq for app, seq in self.fetched.items() if seq > self.seq}
        self.dirty = True
        return len(changes)

    def _app_of(self, change: dict[str, Any]) -> str:
        """The application a change is about (``""`` for a service pool)."""
        kind, key, payload = change["kind"], change["key"], change.get("payload")
        if kind == "user-authorization":
            return str(key.partition("/")[0])
        if kind == "app-profile":
            doc = payload or self.profile_docs.get(key) or {}
            return str(doc.get("appId", ""))
        return ""

    def refresh_app(self, app_id: str, subset: dict[str, Any]) -> bool:
        """Issue 14: take one application's profiles and grants as the registry has them now (its
        ``GET /mcx-registry-sync/v1/snapshot?appId=``), if they are newer than what this server
        holds. Returns whether anything changed."""
        sequence = int(subset.get("sequence", 0))
        if sequence <= max(self.seq, self.fetched.get(app_id, -1)):
            return False
        before = self._app_view(app_id)
        for profile_id in [i for i, doc in self.profile_docs.items() if doc.get("appId") == app_id]:
            self._put_profile(profile_id, None)
        for key in [k for k in self.grants if k[0] == app_id]:
            self.grants.pop(key)
        for profile in subset.get("appProfiles", []):
            if profile.get("appId") == app_id:
                self._put_profile(profile["appProfileId"], profile)
        for grant in subset.get("userAuthorizations", []):
            if grant.get("appId") == app_id:
                self._put_grant(app_id, grant["mcServiceId"], grant)
        for pool in subset.get("servicePools", []):
            key = (pool["serviceType"], pool["serviceName"])
            if key not in self._pool_docs:
                self._put_pool(key, pool)
        self.fetched[app_id] = sequence
        self.dirty = True
        return self._app_view(app_id) != before

    def _app_view(self, app_id: str) -> tuple[list[Any], list[Any]]:
        profiles = sorted(
            (i, d.get("version")) for i, d in self.profile_docs.items() if d.get("appId") == app_id
        )
        grants = sorted((k[1], repr(v)) for k, v in self.grants.items() if k[0] == app_id)
        return profiles, grants

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
        """Replace everything with a registry snapshot (at start, or when the registry asks): the
        snapshot is authoritative, so its sequence is adopted even if lower than the one held."""
        self.fetched.clear()
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
        write_private(self.path, json.dumps(self.snapshot()).encode())

    def restore(self) -> bool:
        if self.path is None or not self.path.is_file():
            return False
        try:
            private_file(self.path)  # saved by an older version with the umask's mode: owner-only now
            self.load(json.loads(self.path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError) as exc:
            _log.warning("saved access state unreadable; waiting for a snapshot", error=str(exc))
            return False
        self.dirty = False
        return True

    def close(self) -> None:
        for state in self.pools.values():
            state.upstream.close()
