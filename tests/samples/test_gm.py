"""The sample group management server: groups and members, owned by the MC user the SAS names."""

from __future__ import annotations

import httpx

from asgate.samples import SamplesHandle
from tests.samples.conftest import InProcess, as_user, assertion

ALICE, BOB, CAROL = "alice@mc.example", "bob@mc.example", "carol@mc.example"


async def test_the_creator_owns_a_new_group_and_is_its_first_member(in_process: InProcess) -> None:
    gm = in_process("gm")
    created = await gm.post(
        "/gm/groups",
        json={"groupId": "fire@mc.example", "displayName": "Fire", "members": [BOB]},
        headers=as_user(ALICE),
    )
    assert created.status_code == 201
    assert created.headers["location"] == "/gm/groups/fire@mc.example"
    assert created.headers["x-sample-instance"] == "gm-1"
    body = created.json()
    assert body["owner"] == ALICE and body["members"] == [ALICE, BOB] and body["displayName"] == "Fire"

    fetched = await gm.get(created.headers["location"], headers=as_user(BOB))
    assert fetched.status_code == 200 and fetched.json() == body
    listed = await gm.get("/gm/groups", headers=as_user(BOB))
    assert [g["groupId"] for g in listed.json()["groups"]] == ["fire@mc.example"]
    assert (await gm.get("/gm/groups", headers=as_user(CAROL))).json() == {"groups": []}


async def test_only_members_see_a_group_and_only_the_owner_changes_it(in_process: InProcess) -> None:
    gm = in_process("gm")
    await gm.post("/gm/groups", json={"groupId": "police"}, headers=as_user(ALICE))

    hidden = await gm.get("/gm/groups/police", headers=as_user(CAROL))
    assert hidden.status_code == 403 and hidden.headers["content-type"] == "application/problem+json"
    assert hidden.json()["cause"] == "NOT_ALLOWED"

    added = await gm.put(f"/gm/groups/police/members/{BOB}", headers=as_user(ALICE))
    assert added.status_code == 200 and added.json()["members"] == [ALICE, BOB]
    refused = await gm.put(f"/gm/groups/police/members/{CAROL}", headers=as_user(BOB))
    assert refused.status_code == 403
    assert (await gm.delete("/gm/groups/police", headers=as_user(BOB))).status_code == 403

    left = await gm.delete(f"/gm/groups/police/members/{BOB}", headers=as_user(BOB))
    assert left.status_code == 200 and left.json()["members"] == [ALICE]
    again = await gm.delete(f"/gm/groups/police/members/{BOB}", headers=as_user(ALICE))
    assert again.status_code == 404 and again.json()["cause"] == "CONTEXT_NOT_FOUND"

    assert (await gm.delete("/gm/groups/police", headers=as_user(ALICE))).status_code == 204
    gone = await gm.get("/gm/groups/police", headers=as_user(ALICE))
    assert gone.status_code == 404 and "police" in gone.json()["detail"]


async def test_bad_requests_are_problem_details(in_process: InProcess) -> None:
    gm = in_process("gm")
    await gm.post("/gm/groups", json={"groupId": "g1"}, headers=as_user(ALICE))
    duplicate = await gm.post("/gm/groups", json={"groupId": "g1"}, headers=as_user(BOB))
    assert duplicate.status_code == 409 and duplicate.json()["cause"] == "GROUP_EXISTS"

    invalid = await gm.post("/gm/groups", json={"groupId": "no spaces"}, headers=as_user(ALICE))
    assert invalid.status_code == 400
    assert invalid.json()["invalidParams"][0]["param"] == "/groupId"

    anonymous = await gm.get("/gm/groups")
    assert anonymous.status_code == 401 and anonymous.json()["cause"] == "INVALID_SAS_ASSERTION"
    assert anonymous.headers["x-sample-instance"] == "gm-1"

    forged = await gm.get("/gm/groups", headers={"Asgate-MC-Service-Id": ALICE, "Asgate-Application": "c"})
    assert forged.status_code == 401 and forged.json()["cause"] == "INVALID_SAS_ASSERTION"
    probing = await gm.get("/gm/nothing-here")  # no valid assertion: refused before routing
    assert probing.status_code == 401 and probing.json()["cause"] == "INVALID_SAS_ASSERTION"
    elsewhere = {"Asgate-Assertion": assertion(ALICE, aud="CM/sample-cm")}
    other_pool = await gm.get("/gm/groups", headers=elsewhere)
    assert other_pool.status_code == 401 and "another service pool" in other_pool.json()["detail"]

    unknown = await gm.get("/gm/nothing-here", headers=as_user(ALICE))
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    wrong = await gm.patch("/gm/groups/g1", headers=as_user(ALICE))
    assert wrong.status_code == 405 and wrong.json()["cause"] == "METHOD_NOT_ALLOWED"


async def test_two_instances_of_a_pool_share_groups_and_name_themselves(samples: SamplesHandle) -> None:
    async with httpx.AsyncClient(timeout=5) as http:
        created = await http.post(
            f"{samples['gm-1'].url}/gm/groups", json={"groupId": "shared"}, headers=as_user(ALICE)
        )
        assert created.headers["x-sample-instance"] == "gm-1"
        seen = await http.get(f"{samples['gm-2'].url}/gm/groups/shared", headers=as_user(ALICE))
        assert seen.status_code == 200 and seen.headers["x-sample-instance"] == "gm-2"
        assert "127.0.0.1" not in seen.headers["x-sample-instance"]
