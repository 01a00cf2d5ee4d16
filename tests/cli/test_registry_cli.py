"""The registry's administrator commands, in-process with click's runner, on both backends."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import Result

from asgate.auth import Principal
from asgate.cli.base import CliContext
from asgate.cli.registry import _service
from asgate.domain.registry import ServiceRegistration
from tests.registry.conftest import gm_registration


def test_apps_grants_and_the_audit_trail(asgate: Callable[..., Result]) -> None:
    asgate(
        "apps",
        "add",
        "console-1",
        "--trust",
        "untrusted",
        "--allow",
        "GM",
        "--allow",
        "MCData/sds:send,inbox",
        "--max-priority",
        "mcpttp.10",
    )
    shown = json.loads(asgate("apps", "show", "console-1", "--json").output)
    assert shown["allowedServices"] == [
        {"serviceType": "GM"},
        {"serviceType": "MCData", "serviceName": "sds", "capabilities": ["send", "inbox"]},
    ]
    assert shown["maxPriority"] == "mcpttp.10" and shown["version"] == 1
    updated = json.loads(
        asgate(
            "apps", "update", "console-1", "--max-priority", "mcpttp.12", "--app-rate", "50", "--json"
        ).output
    )
    assert updated["maxPriority"] == "mcpttp.12" and updated["version"] == 2
    assert updated["allowedServices"][0] == {"serviceType": "GM"}  # untouched by the update
    assert updated["rateLimits"] == {"perApplication": {"rate": 50.0}}
    asgate("grants", "add", "console-1", "alice@mc.example")
    asgate("grants", "add", "console-1", "bob@mc.example", "--service", "GM")
    grants = json.loads(asgate("grants", "list", "--app", "console-1", "--json").output)
    assert [(g["mcServiceId"], g.get("services")) for g in grants] == [
        ("alice@mc.example", None),
        ("bob@mc.example", [{"serviceType": "GM"}]),
    ]
    asgate("grants", "remove", "console-1", "bob@mc.example")
    assert "bob" not in asgate("grants", "list").output
    table = asgate("apps", "list").output
    assert "console-1" in table and "MCData/sds:send,inbox" in table
    actions = [e["action"] for e in json.loads(asgate("audit", "--json").output)]
    assert actions == ["app.create", "app.update", "grant.put", "grant.put", "grant.delete"]
    asgate("apps", "remove", "console-1")
    assert "no external application 'console-1'" in asgate("apps", "show", "console-1", code=1).output


def test_allowed_origins_are_added_normalised_and_removed(asgate: Callable[..., Result]) -> None:
    asgate("apps", "add", "console-1", "--allow", "GM", "--allow-origin", "HTTPS://Console.Example:443")
    shown = json.loads(asgate("apps", "show", "console-1", "--json").output)
    assert shown["allowedOrigins"] == ["https://console.example"]
    updated = json.loads(
        asgate(
            "apps", "update", "console-1", "--allow-origin", "http://localhost:8080",
            "--allow-origin", "https://console.example", "--json",
        ).output
    )  # fmt: skip
    assert updated["allowedOrigins"] == ["https://console.example", "http://localhost:8080"]
    assert updated["allowedServices"] == [{"serviceType": "GM"}]  # untouched
    removed = asgate("apps", "update", "console-1", "--remove-origin", "https://CONSOLE.example", "--json")
    assert json.loads(removed.output)["allowedOrigins"] == ["http://localhost:8080"]
    assert "not an allowed origin" in asgate("apps", "update", "console-1", "--remove-origin",
                                             "https://other.example", code=2).output  # fmt: skip
    for bad, reason in [
        ("*", "'*' is not allowed"),
        ("null", "'null' origin"),
        ("https://console.example/app", "no path"),
        ("console.example", "scheme is http or https"),
    ]:
        assert reason in asgate("apps", "update", "console-1", "--allow-origin", bad, code=2).output


def test_bad_input_is_one_line_and_a_non_zero_exit(asgate: Callable[..., Result]) -> None:
    assert "maxPriority" in asgate("apps", "add", "x", "--max-priority", "urgent", code=2).output
    assert "G M" in asgate("apps", "add", "x", "--allow", "G M", code=2).output
    assert "no external application 'nope'" in asgate("grants", "add", "nope", "alice", code=1).output
    assert "no application profile" in asgate("profiles", "show", "zzz", code=1).output
    assert "no pending notification 9" in asgate("outbox", "retry", "9", code=1).output


def test_empty_views_render(asgate: Callable[..., Result]) -> None:
    assert "INSTANCE" in asgate("services", "list").output
    assert "Notifications" in asgate("outbox", "list").output
    assert json.loads(asgate("profiles", "list", "--json").output) == []


def test_pools_pending_approve_and_reject(
    asgate: Callable[..., Result], tmp_path: Path, database: dict[str, Any]
) -> None:
    asgate(
        "clients", "add", "gms-1", "--scope", "mcx-service-registration", "--pool", "GM/gms", "--secret", "s"
    )
    # the sample registration is on 127.0.0.1: a lab allows loopback instances explicitly
    overrides = {"data_dir": tmp_path / "data", "instance_allow_loopback": True, **database}
    asyncio.run(_register(CliContext(None, overrides), gm_registration()))
    pending = asgate("pools", "pending").output
    assert (
        "GM/gms" in pending
        and "PENDING" in pending
        and "v1: resource groups /groups (GET, POST): new" in pending
    )
    approved = asgate("pools", "approve", "GM/gms").output
    assert approved.startswith("approved GM/gms\n") and "v1: new API version" in approved
    assert "NOTHING_PENDING" in asgate("pools", "approve", "GM/gms", code=1).output
    wider = gm_registration()
    wider["versions"][0]["resources"][0]["operations"].append("DELETE")
    asyncio.run(_register(CliContext(None, overrides), wider))
    [listed] = json.loads(asgate("pools", "pending", "--json").output)
    assert listed["additions"] == ["v1: resource groups: adds DELETE"]
    assert "412" in asgate("pools", "approve", "GM/gms", "--digest", "0" * 32, code=1).output
    assert "rejected GM/gms\n  v1: resource groups: adds DELETE" in asgate("pools", "reject", "GM/gms").output
    assert json.loads(asgate("pools", "pending", "--json").output) == []
    states = [(p["serviceName"], p["state"]) for p in json.loads(asgate("pools", "list", "--json").output)]
    assert states == [("gms", "REJECTED")]
    actions = [e["action"] for e in json.loads(asgate("audit", "--json", "--limit", "100").stdout)]
    assert actions.count("pool.approve") == 1 and actions.count("pool.reject") == 1
    assert "TYPE/NAME" in asgate("pools", "approve", "GM", code=2).output


async def _register(cli: CliContext, body: dict[str, Any]) -> None:
    async with _service(cli) as service:
        gms = Principal("gms-1", "gms-1", frozenset({"mcx-service-registration"}), "test", time.time() + 60)
        await service.register(gms, ServiceRegistration.model_validate(body))
