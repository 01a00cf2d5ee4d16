"""The access server's CSC-15 state: ordered changes, gaps, snapshots, and the saved copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from asgate.access.state import AccessState, MalformedChanges, SequenceMismatch, continues
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


def test_changes_apply_in_order_and_a_retry_is_refused_whole(tmp_path: Path) -> None:
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
    with pytest.raises(SequenceMismatch) as retried:  # the registry retried: it resumes from 8
        state.apply(batch, previous=0)
    assert retried.value.current == 8
    assert state.profiles[1].pool == ("GM", "gms") and state.pools[("GM", "gms")].api_prefix == "/gm"
    assert ("console-1", "alice") in state.grants
    with pytest.raises(SequenceMismatch):
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


@pytest.mark.parametrize(
    ("current", "previous", "sequences", "verdict"),
    [
        (5, 5, [6], None),
        (5, 5, [7, 9, 12], None),  # the registry's numbers skip rows no access server needs
        (5, 4, [5], "mismatch"),  # a retry of what it holds
        (5, 6, [7], "mismatch"),  # a gap
        (5, 10**18, [10**18 + 1], "mismatch"),  # a forged jump in previous
        (5, 5, [5], "does not follow"),  # not after previous
        (5, 5, [7, 7], "does not follow"),  # repeated
        (5, 5, [8, 7], "does not follow"),  # out of order
        (5, 5, [2**63], "does not follow"),  # beyond the change log's BIGINT
        (5, 5, [], "no change"),
        (0, 0, list(range(1, 1002)), "more than 1000"),
    ],
)
def test_a_push_must_continue_the_sequence_exactly(
    current: int, previous: int, sequences: list[int], verdict: str | None
) -> None:
    if verdict == "mismatch":
        with pytest.raises(SequenceMismatch) as caught:
            continues(current, previous, sequences)
        assert caught.value.current == current
        return
    reason = continues(current, previous, sequences)
    assert reason is None if verdict is None else verdict in (reason or "")


def test_nothing_is_applied_from_a_batch_with_one_bad_change() -> None:
    state = AccessState()
    good = change(1, "service-pool", "GM/gms", payload=POOL)
    for bad in (
        change(2, "app-profile", "other-id", payload=profile().dump()),  # payload names another profile
        change(2, "service-pool", "GM/other", payload=POOL),
        change(2, "user-authorization", "c/bob", payload={"appId": "c", "mcServiceId": "alice"}),
        change(2, "app-profile", "p1", payload=None),
        change(1, "app-profile", "p1", "DELETE"),  # numbering inside the batch
    ):
        with pytest.raises(MalformedChanges):
            state.apply([good, bad], previous=0)
        assert state.seq == 0 and state.pools == {} and not state.dirty


def test_an_application_fetched_ahead_of_the_pushes_is_not_set_back_by_them() -> None:
    """Issue 14: the access server fetched console-1's profiles as of sequence 10; the pushes of
    changes 6..10 arrive later and must not bring back the older state."""
    state = AccessState()
    state.apply([change(5, "service-pool", "GM/gms", payload=POOL)], previous=0)
    v2 = profile(version=2).dump()
    fetched = {
        "sequence": 10,
        "appProfiles": [v2],
        "userAuthorizations": [{"appId": "console-1", "mcServiceId": "alice", "services": None}],
    }
    assert state.refresh_app("console-1", fetched) is True
    assert state.profile_docs["p1"]["version"] == 2 and ("console-1", "alice") in state.grants
    assert state.refresh_app("console-1", fetched) is False  # nothing newer: a negative answer
    state.apply(
        [
            change(7, "app-profile", "p1", payload=profile(version=1).dump()),
            change(8, "user-authorization", "console-1/alice", "DELETE"),
            change(9, "app-profile", "p2", payload=profile(appProfileId="p2", appProfileIndex=2).dump()),
            change(10, "app-profile", "p1", payload=v2),
        ],
        previous=5,
    )
    assert state.profile_docs["p1"]["version"] == 2 and ("console-1", "alice") in state.grants
    assert "p2" not in state.profile_docs  # 9 was older than the fetch, and the fetch had no p2
    assert state.seq == 10 and state.fetched == {}  # caught up: later pushes apply as usual
    state.apply([change(11, "app-profile", "p1", "DELETE")], previous=10)
    assert state.profiles == {}
    assert state.refresh_app("console-1", {"sequence": 3, "appProfiles": [v2]}) is False  # older


def test_allowed_origins_come_with_the_profile_and_an_older_registrys_profile_has_none(
    tmp_path: Path,
) -> None:
    state = AccessState(path=tmp_path / "state.json")
    with_origins = profile().dump()
    with_origins["serviceInterfaceDescription"]["allowedOrigins"] = ["https://console.example"]
    older = profile(appProfileId="p2", appProfileIndex=2).dump()  # a registry before CORS: no field
    state.apply(
        [change(1, "app-profile", "p1", payload=with_origins), change(2, "app-profile", "p2", payload=older)],
        0,
    )
    assert state.profiles[1].origins == {b"https://console.example"}
    assert state.profiles[2].origins == frozenset()
    state.save()
    restarted = AccessState(path=tmp_path / "state.json")
    assert restarted.restore() and restarted.profiles[1].origins == {b"https://console.example"}
    # A profile whose origins are not origins is not applied (and nothing of its batch is).
    bad = profile(appProfileId="p3", appProfileIndex=3).dump()
    bad["serviceInterfaceDescription"]["allowedOrigins"] = ["*"]
    with pytest.raises(MalformedChanges, match="not a valid application profile"):
        state.apply([change(3, "app-profile", "p3", payload=bad)], 2)
    assert 3 not in state.profiles and state.seq == 2
