"""External applications (CSC-14): the authorization decision (seed 10.X.3), and the administrator's
applications, grants and profile edits.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from asgate.domain.registry import (
    ApplicationProfile,
    ExternalApp,
    ExternalAppSpec,
    Grant,
    GrantSpec,
    ProfileEdit,
)
from asgate.kernel.problem import Cause, InvalidParam, ProblemError
from asgate.registry import policy, profiles
from asgate.registry.models import AuthorizationRequest, AuthorizationResponse, ServiceFailure
from asgate.registry.scripts.common import (
    Refusal,
    _dt,
    _effective_pool,
    _effective_pools,
    _not_found,
    _registered,
    _registered_pools,
    check_if_match,
    grant_payload,
)
from asgate.registry.scripts.profiles import ProfileScripts
from asgate.store import registry as db
from asgate.store.tx import Tx


class ApplicationScripts(ProfileScripts):
    def authorize(
        self, tx: Tx, *, app_id: str, request: AuthorizationRequest, destination: str | None, now: float
    ) -> AuthorizationResponse | Refusal:
        """Seed 10.X.3 steps 4-6: decide, store profiles, (un)subscribe, queue CSC-15 updates."""
        app = tx.apps.get(app_id)
        if app is None:
            raise ProblemError(
                403,
                "APP_NOT_REGISTERED",
                f"external application {app_id!r} is not registered by the administrator",
            )
        if request.request_type == "REMOVE":
            return self._remove(tx, app_id, request, now)
        grant = tx.grants.get(app_id, request.mc_service_id)
        wanted_types = {r.service_type.lower() for r in request.services_capabilities_information}
        pools = _effective_pools(tx, _registered_pools(tx, wanted_types))
        decisions = policy.decide(
            request.services_capabilities_information,
            {pool: [i.registration for i in records] for pool, records in pools.items()},
            app,
            grant.services if grant else None,
            grant is not None,
        )
        granted = [d for d in decisions if isinstance(d, policy.Granted)]
        denied = [d for d in decisions if isinstance(d, policy.Denied)]
        for decision in decisions:
            outcome = "ok" if isinstance(decision, policy.Granted) else "denied"
            reason = None if isinstance(decision, policy.Granted) else f"{decision.cause}: {decision.detail}"
            self._audit_decision(tx, app_id, request.mc_service_id, decision, outcome, reason)
        if not granted:  # returned, not raised: the denial's audit events must be committed
            return Refusal(policy.refusal(denied))
        result = [
            self._upsert_profile(tx, app, g, pools[(g.service_type, g.service_name)], now) for g in granted
        ]
        tx.subscriptions.put(
            db.Subscription(
                app_id,
                None if request.websocket_notification else destination,
                bool(request.websocket_notification),
            ),
            _dt(now),
        )
        return AuthorizationResponse(
            result="PARTIAL_SUCCESS" if denied else "SUCCESS",
            application_profiles=result,
            failures=[
                ServiceFailure(
                    service_type=d.service_type, service_name=d.service_name, cause=d.cause, detail=d.detail
                )
                for d in denied
            ]
            or None,
        )

    def _remove(
        self, tx: Tx, app_id: str, request: AuthorizationRequest, now: float
    ) -> AuthorizationResponse:
        remaining = []
        for record in tx.profiles.find(app_id=app_id):
            profile = record.profile
            if policy.removes(request, profile):
                tx.profiles.delete(profile.app_profile_id)
                tx.changes.append("app-profile", profile.app_profile_id, "DELETE", None, _dt(now))
                self._audit(
                    tx,
                    app_id,
                    "profile.remove",
                    f"app-profile/{profile.app_profile_id}",
                    mcServiceId=request.mc_service_id,
                )
            else:
                remaining.append(profile)
        if not remaining:  # seed 10.X.3 step 4: no authorization left, no subscription either
            tx.subscriptions.delete(app_id)
        return AuthorizationResponse(result="SUCCESS", application_profiles=remaining)

    def _upsert_profile(
        self,
        tx: Tx,
        app: ExternalApp,
        granted: policy.Granted,
        instances: Sequence[db.InstanceRecord],
        now: float,
    ) -> ApplicationProfile:
        pool = (granted.service_type, granted.service_name)
        existing = next((p for p in tx.profiles.find(app_id=app.client_id, pool=pool)), None)
        if existing is not None:
            existing.requested = granted.requested
            return self._refresh_profile(tx, existing, app, instances, now, notify=False)
        profile = profiles.build(
            app_profile_id=str(uuid.uuid4()),
            app_id=app.client_id,
            app=app,
            service_type=granted.service_type,
            service_name=granted.service_name,
            index=tx.profiles.next_index(),
            instances=_registered(instances),
            caps=granted.capabilities,
            api_version=granted.api_version,
            sas_url=self.ctx.sas_url,
            version=1,
            now=_dt(now),
        )
        tx.profiles.insert(db.ProfileRecord(profile, granted.requested, None))
        tx.changes.append("app-profile", profile.app_profile_id, "PUT", profile.dump(), _dt(now))
        self._audit(
            tx,
            app.client_id,
            "profile.create",
            f"app-profile/{profile.app_profile_id}",
            index=profile.app_profile_index,
        )
        return profile

    def _audit_decision(
        self,
        tx: Tx,
        app_id: str,
        user: str,
        decision: policy.Granted | policy.Denied,
        outcome: str,
        reason: str | None,
    ) -> None:
        service = f"{decision.service_type}/{decision.service_name or '*'}"
        tx.audit.append(
            app_id,
            "authorization.decide",
            f"service/{service}",
            outcome,
            reason=reason,
            details={"mcServiceId": user},
        )

    def put_app(
        self, tx: Tx, *, actor: str, client_id: str, spec: ExternalAppSpec, if_match: str | None, now: float
    ) -> ExternalApp:
        current = tx.apps.get(client_id)
        if current is not None:
            check_if_match(if_match, current.version)
        elif if_match not in (None, "*"):
            raise _not_found("external application", client_id, "{clientId}")
        app = ExternalApp(
            **spec.model_dump(),
            client_id=client_id,
            version=(current.version + 1) if current else 1,
            created_at=current.created_at if current else _dt(now),
            updated_at=_dt(now),
        )
        tx.apps.put(app, new=current is None)
        tx.changes.append("external-app", client_id, "PUT", None, _dt(now))
        self._audit(tx, actor, "app.update" if current else "app.create", f"external-app/{client_id}")
        for record in tx.profiles.find(app_id=client_id):
            self._refresh_profile(tx, record, app, _effective_pool(tx, record.pool), now, notify=True)
        return app

    def delete_app(self, tx: Tx, *, actor: str, client_id: str, now: float) -> None:
        if tx.apps.get(client_id) is None:
            raise _not_found("external application", client_id, "{clientId}")
        for record in tx.profiles.find(app_id=client_id):
            self._withdraw_profile(tx, actor, record.profile, now)
        for grant in tx.grants.of_app(client_id):
            self._delete_grant(tx, actor, grant.app_id, grant.mc_service_id, now)
        tx.subscriptions.delete(client_id)
        tx.apps.delete(client_id)
        tx.changes.append("external-app", client_id, "DELETE", None, _dt(now))
        self._audit(tx, actor, "app.delete", f"external-app/{client_id}")

    def put_grant(self, tx: Tx, *, actor: str, spec: GrantSpec, now: float) -> Grant:
        if tx.apps.get(spec.app_id) is None:
            raise ProblemError(
                404, Cause.CONTEXT_NOT_FOUND, f"no external application {spec.app_id!r}",
                invalid_params=[InvalidParam(param="/appId", reason="register the application first")],
            )  # fmt: skip
        current = tx.grants.get(spec.app_id, spec.mc_service_id)
        grant = Grant(
            **spec.model_dump(),
            version=(current.version + 1) if current else 1,
            created_at=current.created_at if current else _dt(now),
        )
        tx.grants.put(grant, new=current is None)
        key = f"{spec.app_id}/{spec.mc_service_id}"
        tx.changes.append("user-authorization", key, "PUT", grant_payload(grant), _dt(now))
        self._audit(tx, actor, "grant.put", f"grant/{key}")
        return grant

    def delete_grant(self, tx: Tx, *, actor: str, app_id: str, mc_service_id: str, now: float) -> None:
        if tx.grants.get(app_id, mc_service_id) is None:
            raise _not_found("grant", f"{app_id}/{mc_service_id}", "{mcServiceId}")
        self._delete_grant(tx, actor, app_id, mc_service_id, now)

    def _delete_grant(self, tx: Tx, actor: str, app_id: str, mc_service_id: str, now: float) -> None:
        tx.grants.delete(app_id, mc_service_id)
        key = f"{app_id}/{mc_service_id}"
        tx.changes.append("user-authorization", key, "DELETE", None, _dt(now))
        self._audit(tx, actor, "grant.delete", f"grant/{key}")

    def edit_profile(
        self, tx: Tx, *, actor: str, profile_id: str, edit: ProfileEdit, if_match: str | None, now: float
    ) -> ApplicationProfile:
        """An administrator edits a profile: seed 10.X.4 step 1 (the trigger of a reconfiguration)."""
        record = tx.profiles.get(profile_id)
        if record is None:
            raise _not_found("application profile", profile_id, "{appProfileId}")
        check_if_match(if_match, record.profile.version)
        app = tx.apps.get(record.profile.app_id)
        if app is None:
            raise _not_found("external application", record.profile.app_id, "appId")
        record.edit = edit
        # A new version (stored with the edit), a CSC-15 update and a notification if anything changed.
        updated = self._refresh_profile(tx, record, app, _effective_pool(tx, record.pool), now, notify=True)
        self._audit(tx, actor, "profile.edit", f"app-profile/{profile_id}", version=updated.version)
        return updated

    def delete_profile(self, tx: Tx, *, actor: str, profile_id: str, now: float) -> None:
        record = tx.profiles.get(profile_id)
        if record is None:
            raise _not_found("application profile", profile_id, "{appProfileId}")
        self._withdraw_profile(tx, actor, record.profile, now)
