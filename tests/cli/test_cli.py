"""The administrator CLI, in-process with click's runner, on the same store a server would use."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from asgate.cli import main
from tests.live import live_server


def test_clients_add_prints_a_generated_secret_that_works(
    asgate: Callable[..., Result], tmp_path: Path
) -> None:
    out = asgate(
        "clients", "add", "as-1", "--scope", "msgs-asregistration", "--as-svc-id", "AS1", "--as-svc-id", "AS2"
    ).output
    secret = re.search(r"client_secret: (\S+)", out)
    assert secret and len(secret.group(1)) >= 40
    shown = json.loads(asgate("clients", "show", "as-1", "--json").output)
    assert shown["as_svc_ids"] == ["AS1", "AS2"] and shown["confidential"] is True
    assert "secret_hash" not in shown and secret.group(1) not in json.dumps(shown)


def test_clients_can_be_registered_to_require_a_nonce(asgate: Callable[..., Result]) -> None:
    uri = "http://127.0.0.1/cb"
    # A new OpenID Connect client: RS256 ID tokens and refresh tokens only with offline_access.
    defaults = {"id_token_signed_response_alg": "RS256", "refresh_tokens": "offline_access"}
    asgate("clients", "add", "con", "--public", "--scope", "3gpp:mc:ptt_service", "--redirect-uri", uri)
    assert json.loads(asgate("clients", "show", "con", "--json").output)["attributes"] == defaults
    asgate("clients", "update", "con", "--require-nonce")
    assert json.loads(asgate("clients", "show", "con", "--json").output)["attributes"] == {
        **defaults,
        "require_nonce": True,
    }
    asgate("clients", "update", "con", "--no-require-nonce")
    assert json.loads(asgate("clients", "show", "con", "--json").output)["attributes"] == defaults
    asgate("clients", "add", "con2", "--public", "--scope", "x", "--redirect-uri", uri, "--require-nonce")
    assert json.loads(asgate("clients", "show", "con2", "--json").output)["attributes"] == {
        **defaults,
        "require_nonce": True,
    }


def test_clients_register_the_redirect_uris_of_native_apps(asgate: Callable[..., Result]) -> None:
    """RFC 8252: a private-use scheme, a claimed https URI and a loopback listener; update adds and
    removes them."""
    native = ("com.example.console:/oauth2redirect", "http://127.0.0.1/cb", "http://[::1]/cb")
    flags = [a for uri in native for a in ("--redirect-uri", uri)]
    asgate("clients", "add", "con", "--public", "--scope", "3gpp:mc:ptt_service", *flags)
    assert json.loads(asgate("clients", "show", "con", "--json").output)["redirect_uris"] == list(native)
    claimed = "https://console.example/oauth2redirect"
    asgate("clients", "update", "con", "--add-redirect-uri", claimed, "--remove-redirect-uri", native[2])
    assert json.loads(asgate("clients", "show", "con", "--json").output)["redirect_uris"] == [
        native[0],
        native[1],
        claimed,
    ]


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("myapp:/cb", "reverse domain name"),  # RFC 8252 8.4: scheme squatting
        ("javascript:alert(1)", "reverse domain name"),
        ("http://localhost:8080/cb", "instead of localhost"),  # RFC 8252 8.3
        ("http://console.example/cb", "only to a loopback IP literal"),
        ("https://console.example/cb#top", "no fragment"),
    ],
)
def test_clients_refuse_redirect_uris_rfc_8252_rules_out(
    asgate: Callable[..., Result], uri: str, reason: str
) -> None:
    added = asgate("clients", "add", "con", "--public", "--scope", "x", "--redirect-uri", uri, code=2)
    assert reason in added.output and "--redirect-uri" in added.output
    asgate("clients", "add", "con", "--public", "--scope", "x", "--redirect-uri", "http://127.0.0.1/cb")
    updated = asgate("clients", "update", "con", "--add-redirect-uri", uri, code=2)
    assert reason in updated.output
    assert json.loads(asgate("clients", "show", "con", "--json").output)["redirect_uris"] == [
        "http://127.0.0.1/cb"
    ]


def test_clients_id_token_algorithm_and_refresh_policy(asgate: Callable[..., Result]) -> None:
    uri = "http://127.0.0.1/cb"
    asgate("clients", "add", "con", "--public", "--scope", "x", "--redirect-uri", uri,
           "--id-token-alg", "ES256", "--refresh-tokens", "always")  # fmt: skip
    shown = json.loads(asgate("clients", "show", "con", "--json").output)["attributes"]
    assert shown == {"id_token_signed_response_alg": "ES256", "refresh_tokens": "always"}
    asgate("clients", "update", "con", "--id-token-alg", "RS256", "--refresh-tokens", "offline_access")
    shown = json.loads(asgate("clients", "show", "con", "--json").output)["attributes"]
    assert shown == {"id_token_signed_response_alg": "RS256", "refresh_tokens": "offline_access"}
    assert (
        "'HS256' is not one of"
        in asgate("clients", "update", "con", "--id-token-alg", "HS256", code=2).output
    )
    # A client without a redirect URI is no OpenID Connect client: nothing set for it.
    asgate("clients", "add", "as-9", "--scope", "msgs-asregistration")
    assert json.loads(asgate("clients", "show", "as-9", "--json").output)["attributes"] == {}


def test_clients_list_update_reset_remove(asgate: Callable[..., Result]) -> None:
    asgate("clients", "add", "as-1", "--scope", "msgs-asregistration", "--as-svc-id", "AS1", "--secret", "s1")
    asgate(
        "clients",
        "add",
        "ops",
        "--scope",
        "msgs-admin",
        "--scope",
        "asgate-metrics",
        "--secret",
        "s2",
        "--name",
        "Operations",
    )
    listed = json.loads(asgate("clients", "list", "--json").output)
    assert [(c["client_id"], c["scopes"]) for c in listed] == [
        ("as-1", ["msgs-asregistration"]),
        ("ops", ["msgs-admin", "asgate-metrics"]),
    ]
    table = asgate("clients", "list").output
    assert "as-1" in table and "Operations" in table and "AS1" in table
    assert (
        "AS Service IDs AS2"
        in asgate("clients", "update", "as-1", "--add-as-svc-id", "AS2", "--remove-as-svc-id", "AS1").output
    )
    assert "new secret for as-1:" in asgate("clients", "reset-secret", "as-1").output
    assert "removed client ops" in asgate("clients", "remove", "ops").output
    assert "no client 'ops'" in asgate("clients", "remove", "ops", code=1).output


def test_clients_errors_are_one_line_with_a_non_zero_exit(asgate: Callable[..., Result]) -> None:
    asgate("clients", "add", "as-1", "--scope", "msgs-asregistration", "--as-svc-id", "AS1")
    assert "already exists" in asgate("clients", "add", "as-1", "--scope", "x", code=1).output
    taken = asgate(
        "clients", "add", "as-2", "--scope", "msgs-asregistration", "--as-svc-id", "AS1", code=1
    ).output
    assert "AS Service ID 'AS1' is already provisioned for client 'as-1'" in taken
    assert "Missing option '--scope'" in asgate("clients", "add", "x", code=2).output


def test_a_bad_setting_exits_2_naming_it(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["clients", "list"], env={"ASGATE_DATA_DIR": str(tmp_path), "ASGATE_DATABASE_URL": "mysql://x"}
    )
    assert result.exit_code == 2
    assert "ASGATE_DATABASE_URL" in result.output


def test_keys_rotate_list_retire(asgate: Callable[..., Result], monkeypatch: pytest.MonkeyPatch) -> None:
    first = json.loads(asgate("keys", "list", "--json").stdout)
    assert [(k["alg"], k["active"]) for k in first] == [("ES256", True), ("RS256", True)]
    monkeypatch.setenv("ASGATE_SIGNING_KEY_PUBLISH_DELAY", "600")  # however slow the machine
    assert "is published and signs from" in asgate("keys", "rotate", "--alg", "ES256").output
    pending = json.loads(asgate("keys", "list", "--json").stdout)
    # Published at once, signing only after signing_key_publish_delay (every server has it by then).
    assert [(k["alg"], k["active"]) for k in pending] == [("ES256", True), ("RS256", True), ("ES256", False)]
    assert pending[2]["notBefore"] >= pending[2]["created"] + 600
    assert "published, signs from" in asgate("keys", "list").output
    asgate("keys", "retire", "--", pending[2]["kid"])  # a rotation can be undone before it signs
    monkeypatch.setenv("ASGATE_SIGNING_KEY_PUBLISH_DELAY", "0")
    asgate("keys", "rotate", "--alg", "ES256")
    second = json.loads(asgate("keys", "list", "--json").stdout)
    assert [(k["alg"], k["active"]) for k in second] == [("ES256", False), ("RS256", True), ("ES256", True)]
    assert "active key cannot be retired" in asgate("keys", "retire", "--", second[2]["kid"], code=1).output
    asgate("keys", "retire", "--", first[0]["kid"])
    assert [k["kid"] for k in json.loads(asgate("keys", "list", "--json").stdout)] == [
        second[1]["kid"],
        second[2]["kid"],
    ]
    assert "new RS256 signing key" in asgate("keys", "rotate").output  # both, by default
    assert len(json.loads(asgate("keys", "list", "--json").stdout)) == 4


def test_a_process_with_another_key_encryption_key_refuses_to_start_and_says_why(
    asgate: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    kids = [k["kid"] for k in json.loads(asgate("keys", "list", "--json").stdout)]  # data/kek made
    monkeypatch.setenv("ASGATE_KEY_ENCRYPTION_KEY", base64.b64encode(os.urandom(32)).decode())
    refused = asgate("keys", "rotate", code=2).output
    assert "cannot be decrypted with this process's key-encryption key" in refused
    monkeypatch.delenv("ASGATE_KEY_ENCRYPTION_KEY")
    assert [k["kid"] for k in json.loads(asgate("keys", "list", "--json").stdout)] == kids  # nothing made


@pytest.mark.slow
@pytest.mark.xdist_group("process")
def test_the_readme_walkthrough(tmp_path: Path, database: dict[str, Any]) -> None:
    """README: provision with the CLI, token and (de)registration with plain HTTP, `asgate as list`."""
    with live_server(tmp_path / "data", database) as server:
        out = server.cli(
            "clients", "add", "as-1", "--scope", "msgs-asregistration", "--as-svc-id", "AS1"
        ).stdout
        secret = re.search(r"client_secret: (\S+)", out)
        assert secret
        token = httpx.post(
            f"{server.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("as-1", secret.group(1)),
        ).json()["access_token"]
        created = httpx.post(
            f"{server.url}/msgs-asregistration/v1/registrations",
            json={"asSvcId": "AS1", "asProf": {"appName": "demo"}},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert created.status_code == 201
        registration_id = created.headers["location"].rsplit("/", 1)[1]
        listed = server.cli("as", "list").stdout
        assert registration_id in listed and "AS1" in listed
        assert '"appName": "demo"' in server.cli("as", "show", registration_id, "--json").stdout

        # The same through the admin API, as a remote operator would.
        ops = re.search(
            r"client_secret: (\S+)", server.cli("clients", "add", "ops", "--scope", "msgs-admin").stdout
        )
        assert ops
        remote = ["--api", server.url, "--client-id", "ops", "--client-secret", ops.group(1)]
        assert registration_id in server.cli("as", "list", *remote).stdout
        wrong = server.cli(
            "as", "list", "--api", server.url, "--client-id", "ops", "--client-secret", "nope", check=False
        )
        assert wrong.returncode == 1 and "invalid_client" in wrong.stderr

        gone = httpx.delete(created.headers["location"], headers={"Authorization": f"Bearer {token}"})
        assert gone.status_code == 200
        assert "AS1" not in server.cli("as", "list").stdout


def test_as_list_pages_with_a_cursor(
    asgate: Callable[..., Result], tmp_path: Path, database: dict[str, Any]
) -> None:
    import asyncio
    import datetime as dt

    from asgate.domain.msgin5g import Registration
    from asgate.store import Store
    from asgate.store.ids import new_id

    async def seed() -> None:
        store = await Store.open(database["database_url"], schema=database.get("database_schema"))
        now = dt.datetime.now(dt.UTC)
        registrations = [
            Registration(
                registration_id=new_id(), as_svc_id=f"AS{i:03d}", client_id="as-1", registered_at=now
            )
            for i in range(7)
        ]
        await store.write(lambda tx: tx.registrations.put(*registrations))
        await store.close()

    asgate("clients", "list")  # creates and migrates the database
    asyncio.run(seed())
    first = asgate("as", "list", "--limit", "3").output
    cursor = re.search(r"more: asgate as list --after (\S+)", first)
    assert cursor and first.count("AS0") == 3
    rest = json.loads(asgate("as", "list", "--limit", "100", "--after", cursor.group(1), "--json").output)
    assert [r["asSvcId"] for r in rest["items"]] == ["AS003", "AS004", "AS005", "AS006"]
    everything = asgate("as", "list", "--limit", "2", "--all").output
    assert all(f"AS{i:03d}" in everything for i in range(7))
    assert "CONTEXT_NOT_FOUND" in asgate("as", "show", "nope", code=1).output


def test_clients_are_provisioned_for_pools_and_a_bad_pattern_is_refused(
    asgate: Callable[..., Result],
) -> None:
    out = asgate(
        "clients", "add", "gms-1", "--scope", "mcx-service-registration", "--pool", "GM/gm-north",
        "--pool", "CM/*", "--secret", "s",
    ).output  # fmt: skip
    assert "pools: GM/gm-north CM/*" in out
    assert json.loads(asgate("clients", "show", "gms-1", "--json").output)["service_pools"] == [
        "CM/*",
        "GM/gm-north",
    ]
    assert "GM/gm-north" in asgate("clients", "list").output
    updated = asgate(
        "clients", "update", "gms-1", "--add-pool", "GM/gm-south", "--remove-pool", "CM/*"
    ).output
    assert "pools GM/gm-north GM/gm-south" in updated
    for bad in ("GM", "GM/gm-*", "GM/a/b"):
        refused = asgate(
            "clients", "add", "gms-2", "--scope", "mcx-service-registration", "--pool", bad, code=2
        )
        assert "TYPE/NAME" in refused.output
    assert "no client 'gms-2'" in asgate("clients", "show", "gms-2", code=1).output  # nothing half-done
