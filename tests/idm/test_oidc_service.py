"""The token endpoint's code redemption as a decision over a fake unit of work (``oidc_service.redeem``):
what it refuses, what a refusal writes (the login revoked, the event audited) and what it returns so
that those writes commit. The real store and HTTP flows: test_user_tokens.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from asgate.domain.idm import Client, CodeGrant, Family, GrantProblem, GrantRejected
from asgate.idm.oidc import s256
from asgate.idm.oidc_service import redeem
from asgate.store.tx import Tx

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
VERIFIER = "v" * 43
REDIRECT = "http://127.0.0.1:5000/cb"
FAMILY = Family("f-1", "console-1", "u-1", ("openid",), NOW, NOW + timedelta(days=1))
GRANT = CodeGrant(FAMILY, REDIRECT, "n", s256(VERIFIER))
CONSOLE = Client(client_id="console-1", created_at=NOW, updated_at=NOW)


class FakeGrants:
    def __init__(self, outcome: CodeGrant | GrantRejected) -> None:
        self.outcome = outcome
        self.revoked: list[str] = []

    def redeem_code(self, code_hash: str, now: datetime) -> CodeGrant | GrantRejected:
        assert (code_hash, now) == ("h", NOW)
        return self.outcome

    def revoke_family(self, family_id: str, now: datetime) -> bool:
        self.revoked.append(family_id)
        return True


class FakeAudit:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str, str, str | None]] = []

    def append(self, actor: str, action: str, resource: str, outcome: str = "ok", **kw: Any) -> None:
        self.events.append((actor, action, resource, outcome, kw.get("reason")))


class FakeTx:
    def __init__(self, outcome: CodeGrant | GrantRejected) -> None:
        self.grants_oidc = FakeGrants(outcome)
        self.audit = FakeAudit()


FORM = {"redirect_uri": REDIRECT, "code_verifier": VERIFIER}


@pytest.mark.parametrize(
    ("client_id", "form", "reason"),
    [
        ("console-1", FORM, None),
        ("portal", FORM, "the code was issued to another client"),
        (
            "console-1",
            {**FORM, "redirect_uri": REDIRECT + "/x"},
            "redirect_uri does not match the authorization request",
        ),
        ("console-1", {"redirect_uri": REDIRECT}, "code_verifier does not match the code challenge"),
        ("console-1", {**FORM, "code_verifier": "w" * 43}, "code_verifier does not match the code challenge"),
    ],
)
def test_a_code_is_spent_by_a_wrong_client_redirect_or_verifier(
    client_id: str, form: dict[str, str], reason: str | None
) -> None:
    tx = FakeTx(GRANT)
    client = CONSOLE.model_copy(update={"client_id": client_id})
    outcome = redeem(cast(Tx, tx), client, "h", form, NOW)
    if reason is None:
        assert outcome == GRANT and tx.grants_oidc.revoked == [] and tx.audit.events == []
        return
    # Spent: nothing may ever be issued with it, so its login is revoked in the same unit of work.
    assert not isinstance(outcome, (CodeGrant, GrantRejected)) and outcome.reason == reason
    assert tx.grants_oidc.revoked == ["f-1"]
    assert tx.audit.events == [(client_id, "oidc.token.code", "user/u-1", "denied", reason)]


@pytest.mark.parametrize(
    ("rejected", "resource", "reason"),
    [
        (GrantRejected(GrantProblem.UNKNOWN), "client/console-1", "unknown"),
        (GrantRejected(GrantProblem.EXPIRED, FAMILY), "user/u-1", "expired"),
        (GrantRejected(GrantProblem.REVOKED, FAMILY), "user/u-1", "revoked"),
        (
            GrantRejected(GrantProblem.REUSED, FAMILY),
            "user/u-1",
            "replayed; every token of this login revoked",
        ),
    ],
)
def test_a_refused_code_is_audited_and_returned(rejected: GrantRejected, resource: str, reason: str) -> None:
    tx = FakeTx(rejected)
    assert redeem(cast(Tx, tx), CONSOLE, "h", FORM, NOW) is rejected  # returned: its writes commit
    assert tx.audit.events == [("console-1", "oidc.token.code", resource, "denied", reason)]
    assert tx.grants_oidc.revoked == []  # a replay's revocation is the store's (redeem_code)
