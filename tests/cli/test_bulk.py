"""Bulk import (``asgate users|apps|grants import``), in-process with click's runner on both
backends: every valid row imported as the single-item command would (validated, audited, with
the registry's notifications and CSC-15 changes), every other row reported by its line."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from asgate.auth import Principal
from asgate.cli import main
from asgate.cli.base import CliContext
from asgate.cli.registry import _service
from asgate.domain.registry import ServiceCapabilities, ServiceRegistration
from asgate.idm.passwords import verify_secret
from asgate.registry.models import AuthorizationRequest
from asgate.store import Store
from tests.registry.conftest import gm_registration

Asgate = Callable[..., Result]
ALICE = "alice@mc.example"


@pytest.fixture
def overrides(tmp_path: Path, database: dict[str, Any]) -> dict[str, Any]:
    # The GM instance and the notification destination of _authorize are on 127.0.0.1.
    loopback = {"outbound_allow_loopback": True, "instance_allow_loopback": True}
    return {"data_dir": tmp_path / "data", **loopback, **database}


@pytest.fixture
def asgate(overrides: dict[str, Any]) -> Asgate:
    env = {f"ASGATE_{k.upper()}": str(v) for k, v in overrides.items()}

    def invoke(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return invoke


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text.lstrip("\n"))
    return path


def test_users_import_reports_every_refused_row_by_line(
    asgate: Asgate, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    users = write(tmp_path, "users.csv", """
username,password,name,mcptt_id,mcdata_id,disabled
alice,alice-password,"Alice, Dispatcher",alice@mc.example,alice@mc.example,
bob,,,bob@mc.example,,no

b b,long-enough-1,,,,
carol,short,,,,
alice,another-password,,,,
dave,dave-password,,alice@mc.example,,
erin,erin-password,,erin@mc.example,,maybe
""")  # fmt: skip
    result = asgate("users", "import", str(users), code=1)
    assert result.stdout.splitlines()[0] == "imported 2 of 7 users from users.csv"
    assert result.stderr == ""  # no progress bar when stderr is not a terminal
    report = result.stdout[result.stdout.index("refused 5:") :].splitlines()
    assert report == [
        "refused 5:",
        "  line 5: username: 1-128 characters: letters, digits and . _ @ + -",
        "  line 6: password: at least 8 characters",
        "  line 7: user 'alice' already exists",
        "  line 8: mcptt_id 'alice@mc.example' already belongs to user 'alice'",
        "  line 9: disabled: 'maybe' is not true or false",
    ]
    listed = json.loads(asgate("users", "list", "--json").stdout)
    assert [(u["username"], u["display_name"], u["mcptt_id"]) for u in listed] == [
        ("alice", "Alice, Dispatcher", ALICE),
        ("bob", None, "bob@mc.example"),
    ]
    # bob had no password: one was generated, printed once, and is the one stored (as a hash).
    (line,) = [line for line in result.stdout.splitlines() if line.strip().startswith("bob ")]
    generated = line.split()[1]

    async def stored_hash() -> str | None:
        store = await Store.open(overrides["database_url"], schema=overrides.get("database_schema"))
        try:
            user = await store.users.by_username("bob")
            return user.password_hash if user else None
        finally:
            await store.close()

    assert verify_secret(asyncio.run(stored_hash()), generated)
    events = json.loads(asgate("audit", "--action", "user.add", "--json").stdout)
    assert [e["resource"] for e in events] == ["user/alice", "user/bob"]


def test_apps_and_grants_import_behave_like_add_and_notify_the_application(
    asgate: Asgate, tmp_path: Path, overrides: dict[str, Any]
) -> None:
    apps = write(tmp_path, "apps.json", """
[
  {"client_id": "console-1", "name": "Dispatch", "allow": ["GM", "MCData/sds:send,inbox"],
   "max_priority": "mcpttp.10", "app_rate": 50, "origins": "HTTPS://Console.Example"},
  {"client_id": "cad-7", "trust": "TRUSTED", "allow": "GM:groups", "user_rate": "5"},
  {"client_id": "bad-1", "max_priority": "urgent"},
  {"client_id": "bad-2", "trust": "sideways"},
  {"client_id": "bad-3", "app_rate": "fast"},
  {"name": "no id"},
  {"client_id": "bad-4", "origins": "*"}
]
""")  # fmt: skip
    result = json.loads(asgate("apps", "import", str(apps), "--json", code=1).stdout)
    assert (result["rows"], result["imported"]) == (7, 2)
    assert [(r["line"], r["reason"].split(":")[0]) for r in result["refused"]] == [
        (5, "maxPriority"),
        (6, "trust"),
        (7, "app_rate"),
        (8, "client_id is required"),
        (9, "allowed origin"),
    ]
    shown = json.loads(asgate("apps", "show", "console-1", "--json").stdout)
    assert shown["allowedServices"][1] == {"serviceType": "MCData", "serviceName": "sds",
                                           "capabilities": ["send", "inbox"]}  # fmt: skip
    assert shown["rateLimits"] == {"perApplication": {"rate": 50.0}} and shown["maxPriority"] == "mcpttp.10"
    assert shown["allowedOrigins"] == ["https://console.example"]
    assert json.loads(asgate("apps", "show", "cad-7", "--json").stdout)["trustDomain"] == "TRUSTED"
    grants = write(tmp_path, "grants.csv", """
app_id,mc_service_id,services
console-1,alice@mc.example,
console-1,bob@mc.example,GM;MCData/sds
nobody,carol@mc.example,
console-1,,GM
""")  # fmt: skip
    out = asgate("grants", "import", str(grants), "--quiet", code=1).stdout
    assert "imported 2 of 4 grants" in out
    assert "line 4: 404 CONTEXT_NOT_FOUND: no external application 'nobody'" in out
    assert "line 5: mc_service_id is required" in out
    listed = json.loads(asgate("grants", "list", "--json").stdout)
    assert [(g["mcServiceId"], g.get("services")) for g in listed] == [
        (ALICE, None),
        ("bob@mc.example", [{"serviceType": "GM"}, {"serviceType": "MCData", "serviceName": "sds"}]),
    ]
    # console-1 holds a GM profile; importing a new policy for it is an application update: a new
    # profile version and a notification for the application, as `asgate apps update` would do.
    asgate("clients", "add", "gms-1", "--scope", "mcx-service-registration", "--pool", "GM/gms")
    profile_id = asyncio.run(_authorize(CliContext(None, overrides)))
    update = write(tmp_path, "update.csv", "client_id,allow,max_priority\nconsole-1,GM,mcpttp.12\n")
    assert "imported 1 of 1 apps" in asgate("apps", "import", str(update)).stdout
    profile = json.loads(asgate("profiles", "show", profile_id, "--json").stdout)
    assert (profile["version"], profile["serviceInterfaceDescription"]["maxPriority"]) == (2, "mcpttp.12")
    outbox = json.loads(asgate("outbox", "list", "--json").stdout)["notifications"]
    assert [(n["app_profile_id"], n["version"], n["state"]) for n in outbox] == [(profile_id, 2, "PENDING")]
    actions = [e["action"] for e in json.loads(asgate("audit", "--json", "--limit", "100").stdout)]
    assert actions.count("app.create") == 2 and actions.count("grant.put") == 2 and "app.update" in actions


async def _authorize(cli: CliContext) -> str:
    """A GM instance registers and console-1 gets authorized for alice (as over CSC-14)."""
    async with _service(cli) as service:
        gms = Principal("gms-1", "gms-1", frozenset({"mcx-service-registration"}), "test", time.time() + 60)
        await service.register(gms, ServiceRegistration.model_validate(gm_registration()))
        console = Principal("console-1", "console-1", frozenset({"mcx-registry"}), "test", time.time() + 60)
        answer = await service.update_authorization(
            console,
            AuthorizationRequest(
                mc_service_id=ALICE,
                request_type="AUTHORIZE",
                services_capabilities_information=[ServiceCapabilities(service_type="GM")],
                notification_destination="http://127.0.0.1:9/notify",
            ),
        )
        return answer.application_profiles[0].app_profile_id


@pytest.mark.parametrize("backend", ["sqlite"])
def test_progress_bar_formats_and_bad_files(
    asgate: Asgate, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = "".join(json.dumps({"username": f"u{i}", "password": f"password-{i}"}) + "\n" for i in range(3))
    users = write(tmp_path, "users.jsonl", rows)
    monkeypatch.setattr("asgate.cli.bulk._is_tty", lambda: True)  # as if a person watched
    shown = asgate("users", "import", str(users))
    assert "importing users" in shown.stderr and "3/3" in shown.stderr
    assert shown.stdout == "imported 3 of 3 users from users.jsonl\n"
    more = write(tmp_path, "more.csv", "username,password\nu9,password-9\n")
    assert asgate("users", "import", str(more), "--quiet").stderr == ""
    # Files that cannot be read as a whole are refused before any row is imported.
    typo = write(tmp_path, "typo.csv", "username,pasword\nzed,zed-password\n")
    assert "unknown column(s) pasword" in asgate("users", "import", str(typo), code=2).output
    broken = write(tmp_path, "broken.json", '[\n  {"username": "x"},\n  {"username": }\n]')
    assert "line 3: not JSON" in asgate("users", "import", str(broken), code=2).output
    text = write(tmp_path, "users.txt", "username\nx\n")
    assert "use a .csv, .json or .jsonl file" in asgate("users", "import", str(text), code=2).output
    assert "imported 1 of 1" in asgate("users", "import", str(text), "--format", "csv", "-q").stdout
    names = [u["username"] for u in json.loads(asgate("users", "list", "--json").stdout)]
    assert names == ["u0", "u1", "u2", "u9", "x"]
