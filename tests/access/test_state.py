"""The access server's CSC-15 state: ordered changes, gaps, snapshots, and the saved copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asgate.access.state import AccessState, SequenceGap
from tests.access.test_policy import profile


def change(seq: int, kind: str, key: str, op: str = "PUT", payload: Any = None) -> dict[str, Any]:
    return {"sequence": seq, "kind": kind, "key": key, "op": op, "payload": payload}


POOL = {
    "serviceType": "GM",
    "serviceName": "gms",
    "instances": [
        {"serviceInstanceId": "i1", "host": "127.0.0.1", "port": 9101, "apiPrefix": "/gm", "protocol": "HTTP"}
    ],
}


def test_changes_apply_in_order_and_retries_are_harmless(tmp_path: Path) -> None:
    state = AccessState(path=tmp_path / "state.json")
    batch = [
        change(3, "service-pool", "GM/gms", payload=POOL),
        change(5, "app-profile", "p1", payload=profile().dump()),
        change(
            8, "user-authorization", "console-1/alice", payload={"appId": "console-1", "mcServiceId": "alice"}
        ),
    ]
    assert state.apply(batch, previous=0) == 3
    assert state.seq == 8 and state.dirty
    assert state.apply(batch, previous=0) == 0  # the registry retried: nothing applied twice
    assert state.profiles[1].pool == ("GM", "gms") and state.pools[("GM", "gms")].api_prefix == "/gm"
    assert ("console-1", "alice") in state.grants
    with pytest.raises(SequenceGap):
        state.apply([change(12, "app-profile", "p1", "DELETE")], previous=10)
    state.apply(
        [change(9, "app-profile", "p1", "DELETE"), change(10, "service-pool", "GM/gms", "DELETE")], previous=8
    )
    assert state.profiles == {} and state.pools[("GM", "gms")].upstream.instances == {}


def test_a_snapshot_replaces_everything_and_survives_a_restart(tmp_path: Path) -> None:
    state = AccessState(path=tmp_path / "state.json")
    state.apply(
        [change(1, "app-profile", "old", payload=profile(appProfileId="old", appProfileIndex=7).dump())], 0
    )
    snapshot = {
        "sequence": 40,
        "appProfiles": [profile().dump()],
        "userAuthorizations": [
            {"appId": "console-1", "mcServiceId": "alice", "services": [{"serviceType": "GM"}]}
        ],
        "servicePools": [POOL],
    }
    state.load(snapshot)
    assert set(state.profiles) == {1} and state.seq == 40
    state.save()
    restored = AccessState(path=tmp_path / "state.json")
    assert restored.restore()
    assert restored.seq == 40 and set(restored.profiles) == {1}
    assert [e.endpoint.port for e in restored.pools[("GM", "gms")].upstream.instances.values()] == [9101]
    assert restored.grants[("console-1", "alice")][0].service_type == "GM"  # type: ignore[index]


def test_an_unreadable_saved_state_is_not_fatal(tmp_path: Path) -> None:
    (tmp_path / "state.json").write_text("{not json")
    assert AccessState(path=tmp_path / "state.json").restore() is False
