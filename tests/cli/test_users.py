"""``asgate users``: the administrator's MC user commands, in-process with click's runner, on the
same store a server uses; a user they create signs in through the real login page."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import Result

from asgate.client.browser import ScriptedBrowser
from asgate.kernel.problem import ProblemError
from asgate.kernel.settings import Settings
from asgate.system.roles import control_app
from asgate.system.runtime import Runtime
from tests.idm.conftest import authorize_url, query

Asgate = Callable[..., Result]


def _sign_in(tmp_path: Path, database: dict[str, Any], username: str, password: str) -> dict[str, str]:
    """Sign in at a server on the CLI's store, through the login form; the redirect's query."""

    async def go() -> dict[str, str]:
        settings = Settings.load(
            None, data_dir=tmp_path / "data", log_level="warning", sas_listen="127.0.0.1:0", **database
        )
        async with Runtime.open(settings) as rt, control_app(rt) as app:
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
                return query(await ScriptedBrowser(username, password, http=http).sign_in(authorize_url()))

    return asyncio.run(go())


def test_a_user_added_with_a_generated_password_can_sign_in(
    asgate: Asgate, tmp_path: Path, database: dict[str, Any]
) -> None:
    asgate("clients", "add", "console-1", "--public", "--scope", "3gpp:mc:ptt_service",
           "--scope", "3gpp:mc:data_service", "--redirect-uri", "http://127.0.0.1/cb")  # fmt: skip
    out = asgate("users", "add", "alice", "--mcptt-id", "alice@mc.example", "--name", "Alice Example").output
    password = re.search(r"password: (\S+)", out)
    assert password and len(password.group(1)) >= 20 and "stored only as a hash" in out
    shown = json.loads(asgate("users", "show", "alice", "--json").output)
    assert shown["mcptt_id"] == "alice@mc.example" and shown["display_name"] == "Alice Example"
    assert "password_hash" not in shown and password.group(1) not in json.dumps(shown)
    assert "code" in _sign_in(tmp_path, database, "alice", password.group(1))
    # A new password: the old one stops working.
    asgate("users", "passwd", "alice", "--password", "a new long password")
    with pytest.raises(ProblemError, match="Wrong user name or password"):
        _sign_in(tmp_path, database, "alice", password.group(1))
    assert "code" in _sign_in(tmp_path, database, "alice", "a new long password")
    # Disabled: the login is refused (access_denied to the application).
    asgate("users", "update", "alice", "--disable")
    assert _sign_in(tmp_path, database, "alice", "a new long password")["error"] == "access_denied"


def test_users_list_update_and_remove(asgate: Asgate) -> None:
    asgate("users", "add", "alice", "--mcptt-id", "alice@mc.example", "--password", "password-1")
    out = asgate("users", "add", "bob", "--mcptt-id", "bob@mc.example", "--mcdata-id", "bob.d@mc.example",
                 "--password", "password-2", "--json").output  # fmt: skip
    assert json.loads(out)["password"] is None  # given, so not echoed
    listed = json.loads(asgate("users", "list", "--json").output)
    assert [(u["username"], u["mcdata_id"]) for u in listed] == [("alice", None), ("bob", "bob.d@mc.example")]
    table = asgate("users", "list").output
    assert "MCPTT ID" in table and "bob.d@mc.example" in table
    out = asgate("users", "update", "bob", "--mcdata-id", "", "--mcvideo-id", "bob.v@mc.example").output
    assert out.strip() == "updated user bob: mcptt_id bob@mc.example, mcvideo_id bob.v@mc.example; enabled"
    sub = json.loads(asgate("users", "show", "bob", "--json").output)["user_id"]
    asgate("users", "update", "bob", "--name", "Bob B.")
    assert json.loads(asgate("users", "show", "bob", "--json").output)["user_id"] == sub  # sub is stable
    assert asgate("users", "remove", "bob").output.strip() == "removed user bob"
    assert [u["username"] for u in json.loads(asgate("users", "list", "--json").output)] == ["alice"]


def test_users_have_an_email_address_and_a_phone_number(asgate: Asgate) -> None:
    asgate("users", "add", "carol", "--email", "carol@example.com", "--phone", "+4930123456",
           "--password", "password-1")  # fmt: skip
    shown = json.loads(asgate("users", "show", "carol", "--json").output)
    assert (shown["email"], shown["phone_number"]) == ("carol@example.com", "+4930123456")
    asgate("users", "update", "carol", "--email", "c@example.org", "--phone", "")
    shown = json.loads(asgate("users", "show", "carol", "--json").output)
    assert (shown["email"], shown["phone_number"]) == ("c@example.org", None)
    assert "e-mail address like" in asgate("users", "update", "carol", "--email", "no-at", code=2).output
    assert "E.164" in asgate("users", "update", "carol", "--phone", "030 123456", code=2).output


def test_users_errors_are_one_line_with_a_non_zero_exit(asgate: Asgate) -> None:
    asgate("users", "add", "alice", "--mcptt-id", "alice@mc.example", "--password", "password-1")
    assert "user 'alice' already exists" in asgate("users", "add", "alice", code=1).output
    taken = asgate("users", "add", "eve", "--mcptt-id", "alice@mc.example", code=1).output
    assert taken.strip() == "Error: mcptt_id 'alice@mc.example' already belongs to user 'alice'"
    assert "no user 'ghost'" in asgate("users", "show", "ghost", code=1).output
    assert "no user 'ghost'" in asgate("users", "passwd", "ghost", code=1).output
    assert "no user 'ghost'" in asgate("users", "update", "ghost", "--name", "x", code=1).output
    assert "no user 'ghost'" in asgate("users", "remove", "ghost", code=1).output
    assert "at least 8 characters" in asgate("users", "passwd", "alice", "--password", "short", code=2).output
    assert "nothing to change" in asgate("users", "update", "alice", code=2).output
    assert "letters, digits" in asgate("users", "add", "bad name", code=2).output
    assert "no spaces" in asgate("users", "add", "x", "--mcptt-id", "a b", code=2).output


def test_every_users_command_has_an_example(asgate: Asgate) -> None:
    for command in ("add", "list", "show", "update", "passwd", "remove"):
        assert "$ asgate users " + command in asgate("users", command, "--help").output
