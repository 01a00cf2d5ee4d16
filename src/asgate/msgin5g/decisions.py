"""The MSGin5G Server's decisions on AS registrations (TS 23.554 8.2.5/8.2.6), as pure functions.

Each runs inside one unit of work (``await store.write_many(decisions.register, registration)``,
``await store.write(lambda tx: decisions.deregister(tx, ...))``) and reaches the data only through
``tx``: the check and the write share a transaction, so a provisioning change applies at once, and
two registrations for one AS Service ID in one group commit are applied in arrival order (the later
one replaces the earlier one). A refusal is *returned*, not raised, so
that its audit row commits with the transaction. Tested with a fake ``tx``
(tests/msgin5g/test_decisions.py).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any, Protocol

from asgate.domain.msgin5g import Registration


class Registrations(Protocol):
    """``tx.registrations`` (:class:`asgate.store.msgs.RegistrationsTx`)."""

    def owners(self, as_svc_ids: Collection[str]) -> dict[str, str]: ...
    def get(self, registration_id: str) -> Registration | None: ...
    def put(self, *registrations: Registration) -> None: ...
    def delete(self, registration_id: str) -> Registration | None: ...
    def delete_for(self, as_svc_ids: Collection[str]) -> dict[str, str]: ...


class Audit(Protocol):
    def append(
        self,
        actor: str,
        action: str,
        resource: str,
        outcome: str = "ok",
        *,
        reason: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None: ...


class MsgsTx(Protocol):
    """What the decisions need of the store's unit of work (:class:`asgate.store.tx.Tx`)."""

    @property
    def registrations(self) -> Registrations: ...
    @property
    def audit(self) -> Audit: ...


@dataclass(frozen=True, slots=True)
class Registered:
    replaced: str | None  # the id of the live registration it replaced


@dataclass(frozen=True, slots=True)
class NotProvisioned:
    pass


@dataclass(frozen=True, slots=True)
class Deregistered:
    registration: Registration


@dataclass(frozen=True, slots=True)
class NotFound:
    pass


@dataclass(frozen=True, slots=True)
class NotOwner:
    pass


NOT_PROVISIONED = NotProvisioned()
NOT_FOUND = NotFound()
NOT_OWNER = NotOwner()


def register(tx: MsgsTx, registrations: list[Registration]) -> list[Registered | NotProvisioned]:
    """8.2.5 step 2 for a batch (``await store.write_many(register, registration)``): store each
    registration whose AS Service ID is provisioned for its client, replacing the live registration
    for that AS Service ID (a restarted AS registering again). Applied in arrival order: of two for
    one AS Service ID, the later one replaces the earlier one."""
    # TS 23.554 8.2.5 pre-condition 2: the AS Service ID must be provisioned for this AS.
    owners = tx.registrations.owners({r.as_svc_id for r in registrations})
    allowed = {r.as_svc_id for r in registrations if owners.get(r.as_svc_id) == r.client_id}
    # The specification is silent on re-registration: the new registration replaces the live one.
    live = tx.registrations.delete_for(allowed)
    winners: dict[str, Registration] = {}
    outcomes: list[Registered | NotProvisioned] = []
    for reg in registrations:
        if owners.get(reg.as_svc_id) != reg.client_id:
            reason = "AS Service ID not provisioned"
            tx.audit.append(
                reg.client_id, "msgs.register", f"as-svc-id/{reg.as_svc_id}", "denied", reason=reason
            )
            outcomes.append(NOT_PROVISIONED)
            continue
        replaced = live.get(reg.as_svc_id)
        live[reg.as_svc_id] = reg.registration_id
        winners[reg.as_svc_id] = reg
        details = {"asSvcId": reg.as_svc_id, "replaced": replaced} if replaced else {"asSvcId": reg.as_svc_id}
        tx.audit.append(
            reg.client_id, "msgs.register", f"as-registration/{reg.registration_id}", details=details
        )
        outcomes.append(Registered(replaced))
    tx.registrations.put(*winners.values())
    return outcomes


def deregister(
    tx: MsgsTx, registration_id: str, actor: str, *, owner: str | None
) -> Deregistered | NotFound | NotOwner:
    """8.2.6 steps 3-4: delete a registration. With ``owner`` (an AS de-registering), only the AS
    that registered may; without (an operator's eviction), anyone who reached here may."""
    if owner is not None:
        current = tx.registrations.get(registration_id)
        if current is None:
            return NOT_FOUND
        if current.client_id != owner:
            tx.audit.append(
                actor,
                "msgs.deregister",
                f"as-registration/{registration_id}",
                "denied",
                reason="not the owner",
            )
            return NOT_OWNER
    deleted = tx.registrations.delete(registration_id)
    if deleted is None:
        return NOT_FOUND
    tx.audit.append(
        actor, "msgs.deregister", f"as-registration/{registration_id}", details={"asSvcId": deleted.as_svc_id}
    )
    return Deregistered(deleted)
