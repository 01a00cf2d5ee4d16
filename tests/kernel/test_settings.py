"""Settings: defaults < TOML < environment < command line; bad settings are named."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgate.kernel.settings import HostPort, Settings, SettingsError


def test_defaults_are_a_working_single_machine_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    s = Settings.load()
    assert s.listen == HostPort(host="127.0.0.1", port=7480)
    assert s.db_url == f"sqlite+aiosqlite:///{tmp_path / '.asgate' / 'asgate.db'}"
    assert s.public_root == s.token_issuer == "http://127.0.0.1:7480"
    assert s.msgs_delete_status == 200 and s.sqlite_synchronous == "FULL"


def test_precedence_toml_then_env_then_overrides(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "asgate.toml"
    config.write_text(
        'listen = "0.0.0.0:8000"\ntoken_ttl = 600\nmsgs_delete_status = 204\noutbound_schemes = ["https"]\n'
    )
    s = Settings.load(config)
    assert (str(s.listen), s.token_ttl, s.msgs_delete_status, s.outbound_schemes) == (
        "0.0.0.0:8000",
        600,
        204,
        ["https"],
    )
    assert s.public_root == "http://127.0.0.1:8000"
    monkeypatch.setenv("ASGATE_TOKEN_TTL", "900")
    monkeypatch.setenv("ASGATE_OUTBOUND_ALLOW_HOSTS", "*.example.com, 10.0.0.0/8")
    s = Settings.load(config, listen="127.0.0.1:9000")
    assert (str(s.listen), s.token_ttl) == ("127.0.0.1:9000", 900)
    assert s.outbound_allow_hosts == ["*.example.com", "10.0.0.0/8"]


def test_a_toml_file_may_use_an_asgate_table(tmp_path: Path) -> None:
    config = tmp_path / "asgate.toml"
    config.write_text(
        '[asgate]\napi_root = "https://gw.example/"\n'
        '[[asgate.trusted_issuers]]\nissuer = "https://idp"\njwks_uri = "https://idp/jwks"\n'
    )
    s = Settings.load(config)
    assert s.api_root == "https://gw.example"
    assert s.trusted_issuers[0].jwks_uri == "https://idp/jwks"


@pytest.mark.parametrize(
    ("env", "value", "named"),
    [
        ("ASGATE_LISTEN", "nonsense", "ASGATE_LISTEN"),
        ("ASGATE_LISTEN", "127.0.0.1:99999", "ASGATE_LISTEN"),
        ("ASGATE_TOKEN_TTL", "5", "ASGATE_TOKEN_TTL"),
        ("ASGATE_DATABASE_URL", "mysql://x", "ASGATE_DATABASE_URL"),
        ("ASGATE_MSGS_DELETE_STATUS", "202", "ASGATE_MSGS_DELETE_STATUS"),
        ("ASGATE_TLS_CERT", "/nonexistent/cert.pem", "ASGATE_TLS_CERT"),
        ("ASGATE_API_ROOT", "ftp://x", "ASGATE_API_ROOT"),
        ("ASGATE_DATABASE_SCHEMA", "Robert'); DROP", "ASGATE_DATABASE_SCHEMA"),
    ],
)
def test_a_bad_setting_is_named(monkeypatch: pytest.MonkeyPatch, env: str, value: str, named: str) -> None:
    monkeypatch.setenv(env, value)
    with pytest.raises(SettingsError, match=named):
        Settings.load()


def test_unknown_toml_keys_and_bad_files_are_refused(tmp_path: Path) -> None:
    config = tmp_path / "asgate.toml"
    config.write_text('lisen = "0.0.0.0:1"\n')
    with pytest.raises(SettingsError, match="'lisen' in .*unknown setting"):
        Settings.load(config)
    config.write_text("listen = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        Settings.load(config)
    with pytest.raises(SettingsError, match="cannot read config file"):
        Settings.load(tmp_path / "missing.toml")


def test_tls_settings_must_come_in_pairs(tmp_path: Path) -> None:
    cert = tmp_path / "cert.pem"
    cert.write_text("x")
    with pytest.raises(SettingsError, match="tls_cert and tls_key"):
        Settings.load(tls_cert=cert)
    with pytest.raises(SettingsError, match="msgs_mtls_only needs tls_client_ca"):
        Settings.load(tls_cert=cert, tls_key=cert, msgs_mtls_only=True)
    s = Settings.load(tls_cert=cert, tls_key=cert)
    assert s.tls and s.public_root.startswith("https://")


def test_plain_database_urls_get_their_async_driver() -> None:
    assert Settings.load(database_url="postgresql://u@h/db").db_url == "postgresql+asyncpg://u@h/db"
    assert Settings.load(database_url="sqlite:////tmp/x.db").db_url == "sqlite+aiosqlite:////tmp/x.db"
