"""The sample configuration management server: one document per MC user, administrators list."""

from __future__ import annotations

from tests.samples.conftest import InProcess, as_user

ALICE, BOB, ADMIN = "alice@mc.example", "bob@mc.example", "admin@mc.example"


async def test_a_user_stores_and_reads_back_its_own_document(in_process: InProcess) -> None:
    cm = in_process("cm")
    missing = await cm.get("/cm/configurations/me", headers=as_user(ALICE))
    assert missing.status_code == 404 and missing.json()["cause"] == "CONTEXT_NOT_FOUND"

    document = {"defaultGroup": "fire@mc.example", "emergencyAlert": True}
    stored = await cm.put("/cm/configurations/me", json=document, headers=as_user(ALICE, app="console-7"))
    assert stored.status_code == 201 and stored.headers["etag"] == '"1"'
    assert stored.json()["document"] == document and stored.json()["updatedBy"] == "console-7"

    read = await cm.get("/cm/configurations/me", headers=as_user(ALICE))
    assert read.status_code == 200 and read.json()["document"] == document
    assert read.json()["mcServiceId"] == ALICE and read.headers["etag"] == '"1"'
    assert (await cm.get("/cm/configurations/me", headers=as_user(BOB))).status_code == 404


async def test_if_match_refuses_a_write_based_on_a_stale_version(in_process: InProcess) -> None:
    cm = in_process("cm")
    await cm.put("/cm/configurations/me", json={"v": 1}, headers=as_user(ALICE))
    second = await cm.put(
        "/cm/configurations/me", json={"v": 2}, headers=as_user(ALICE, **{"If-Match": '"1"'})
    )
    assert second.status_code == 200 and second.json()["version"] == 2 and second.headers["etag"] == '"2"'
    stale = await cm.put(
        "/cm/configurations/me", json={"v": 3}, headers=as_user(ALICE, **{"If-Match": '"1"'})
    )
    assert stale.status_code == 412 and stale.json()["cause"] == "PRECONDITION_FAILED"
    assert (await cm.get("/cm/configurations/me", headers=as_user(ALICE))).json()["document"] == {"v": 2}


async def test_only_administrators_read_other_users_documents(in_process: InProcess) -> None:
    cm = in_process("cm")
    await cm.put("/cm/configurations/me", json={"a": 1}, headers=as_user(ALICE))
    await cm.put("/cm/configurations/me", json={"b": 2}, headers=as_user(BOB))

    assert (await cm.get("/cm/configurations", headers=as_user(ALICE))).status_code == 403
    assert (await cm.get(f"/cm/configurations/{BOB}", headers=as_user(ALICE))).status_code == 403
    own = await cm.get(f"/cm/configurations/{ALICE}", headers=as_user(ALICE))
    assert own.status_code == 200 and own.json()["document"] == {"a": 1}

    listed = await cm.get("/cm/configurations", headers=as_user(ADMIN))
    assert sorted(c["mcServiceId"] for c in listed.json()["configurations"]) == [ALICE, BOB]
    bob = await cm.get(f"/cm/configurations/{BOB}", headers=as_user(ADMIN))
    assert bob.json()["document"] == {"b": 2}


async def test_a_document_must_be_a_json_object(in_process: InProcess) -> None:
    cm = in_process("cm")
    array = await cm.put("/cm/configurations/me", json=[1, 2], headers=as_user(ALICE))
    assert array.status_code == 400 and array.json()["cause"] == "INVALID_MSG_FORMAT"
    text = await cm.put(
        "/cm/configurations/me", content=b"x=1", headers=as_user(ALICE, **{"Content-Type": "text/plain"})
    )
    assert text.status_code == 415
    broken = await cm.put(
        "/cm/configurations/me", content=b"{", headers=as_user(ALICE, **{"Content-Type": "application/json"})
    )
    assert broken.status_code == 400
    assert (await cm.get("/cm/configurations/me", headers=as_user(ALICE))).status_code == 404
