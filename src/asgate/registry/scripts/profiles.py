"""Application profiles kept current (seed 10.X.4): rebuilt when their pool, application or edit
changes, each change a new version, a CSC-15 update and a notification. The base of every script
class (its context and its audit).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from asgate.domain.registry import ApplicationProfile, ExternalAppSpec
from asgate.registry import pools, profiles
from asgate.registry.scripts.common import Context, _caps_of, _dt, _effective_pools, _registered, pool_payload
from asgate.store import registry as db
from asgate.store.tx import Tx


class ProfileScripts:
    """The profile rebuilds and the audit every script uses."""

    def __init__(self, context: Context) -> None:
        self.ctx = context

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

    def _withdraw_profile(self, tx: Tx, actor: str, profile: ApplicationProfile, now: float) -> None:
        tx.profiles.delete(profile.app_profile_id)
        tx.changes.append("app-profile", profile.app_profile_id, "DELETE", None, _dt(now))
        # The pointer now leads to a 404: the application learns the profile was withdrawn.
        self._notify(tx, profile.model_copy(update={"version": profile.version + 1}), now)
        self._audit(tx, actor, "profile.withdraw", f"app-profile/{profile.app_profile_id}")

    def _audit(self, tx: Tx, actor: str, action: str, resource: str, **details: Any) -> None:
        tx.audit.append(actor, action, resource, details=details or None)

    def _audit_pool_denied(self, tx: Tx, client_id: str, action: str, pool: tuple[str, str]) -> None:
        tx.audit.append(
            client_id,
            action,
            f"service-pool/{'/'.join(pool)}",
            "denied",
            reason=f"{pools.POOL_NOT_PROVISIONED}: the client may not serve this pool",
        )
