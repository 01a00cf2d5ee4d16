"""deploy/systemd: the units of a VM install are valid (``systemd-analyze verify`` when systemd is
there, and its offline security score), hardened, ordered after the migration, and run real asgate
commands with real settings."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from asgate.cli import main
from asgate.kernel.settings import Settings
from asgate.system import roles
from tests.deploy.test_k8s import PENDING_SETTINGS

UNITS = Path(__file__).resolve().parents[2] / "deploy" / "systemd"
SERVERS = ("asgate-control.service", "asgate-access.service")
ALL = (*SERVERS, "asgate-migrate.service")
ANALYZE = shutil.which("systemd-analyze")
# Every unit must set these (the value, or any value for None).
HARDENING = {
    "User": "asgate",
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "StateDirectory": "asgate",
    "StateDirectoryMode": "0700",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
    "SystemCallArchitectures": "native",
}


def parse(path: Path) -> dict[str, dict[str, list[str]]]:
    """Section -> key -> every value (systemd keys may repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep, f"{path.name}: not KEY=VALUE: {line!r}"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def service(name: str) -> dict[str, list[str]]:
    return parse(UNITS / name)["Service"]


def test_the_three_units_are_there() -> None:
    assert sorted(p.name for p in UNITS.glob("*.service")) == sorted(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_unit_is_hardened(name: str) -> None:
    unit = service(name)
    for key, want in HARDENING.items():
        assert unit.get(key) == [want], f"{name}: {key}={unit.get(key)}, want {want!r}"
    # The deployment's shared settings first; a node's own file (optional, "-") may follow.
    assert unit["EnvironmentFile"][0] == "/etc/asgate/asgate.env"
    assert all(f.startswith("-/etc/asgate/") for f in unit["EnvironmentFile"][1:])
    assert "~@privileged" in unit["SystemCallFilter"] and "@system-service" in unit["SystemCallFilter"]


def _command(name: str) -> list[str]:
    (exec_start,) = service(name)["ExecStart"]
    binary, *args = exec_start.split()
    assert binary == "/opt/asgate/bin/asgate"
    return args


def test_the_units_run_real_commands_in_order() -> None:
    assert _command("asgate-control.service") == ["serve", "idm", "msgin5g", "registry"]
    assert _command("asgate-access.service") == ["serve", "access"]
    assert _command("asgate-migrate.service") == ["db", "upgrade"]
    for name in ALL:
        args = _command(name)
        if args[0] == "serve":
            assert set(args[1:]) <= set(roles.names())
        result = CliRunner().invoke(main, [*args[:2], "--help"] if args[0] == "db" else ["serve", "--help"])
        assert result.exit_code == 0, result.output
    assert service("asgate-migrate.service")["Type"] == ["oneshot"]
    for name in SERVERS:
        unit = parse(UNITS / name)["Unit"]
        assert "asgate-migrate.service" in " ".join(unit["After"]) and "asgate-migrate.service" in " ".join(
            unit["Wants"]
        )
        assert service(name)["Restart"] == ["on-failure"] and service(name)["KillMode"] == ["mixed"]


def _variables(name: str) -> dict[str, str]:
    return dict(v.split("=", 1) for v in service(name).get("Environment", []))


def test_each_unit_has_its_own_data_directory_and_listeners_that_do_not_collide() -> None:
    dirs = {_variables(name)["ASGATE_DATA_DIR"] for name in ALL}
    assert len(dirs) == len(ALL) and all(d.startswith("%S/asgate/") for d in dirs)  # in StateDirectory
    ports = [
        v.rpartition(":")[2]
        for name in SERVERS
        for k, v in _variables(name).items()
        if k in ("ASGATE_LISTEN", "ASGATE_SAS_LISTEN")
    ]
    assert len(ports) == 3 and len(set(ports)) == 3  # a control plane and an access server on one node


def test_the_servers_read_the_key_encryption_key_as_a_credential() -> None:
    for name in SERVERS:
        assert _variables(name)["ASGATE_KEY_ENCRYPTION_KEY_FILE"] == "%d/kek"  # the credentials directory
        assert service(name)["LoadCredential"] == ["kek:/etc/asgate/kek"]
    assert "ASGATE_KEY_ENCRYPTION_KEY_FILE" not in _variables("asgate-migrate.service")


def test_every_variable_is_a_setting() -> None:
    names = {n for name in ALL for n in _variables(name)}
    example = (UNITS / "asgate.env.example").read_text(encoding="utf-8")
    names |= set(re.findall(r"^(ASGATE_[A-Z0-9_]+)=", example, re.MULTILINE))
    assert "ASGATE_DATABASE_URL" in names
    unknown = {n.removeprefix("ASGATE_").lower() for n in names} - set(Settings.model_fields)
    assert unknown <= PENDING_SETTINGS, sorted(unknown - PENDING_SETTINGS)


def _installed_copy(tmp_path: Path, name: str, text: str | None = None) -> Path:
    """The unit as installed with asgate in this virtual environment (verify checks ExecStart)."""
    asgate = Path(sys.executable).parent / "asgate"
    if not asgate.exists():
        pytest.skip(f"no asgate script beside {sys.executable}")
    copy = tmp_path / name
    copy.write_text(
        (text or (UNITS / name).read_text(encoding="utf-8")).replace("/opt/asgate/bin/asgate", str(asgate))
    )
    return copy


def _verify(unit: Path) -> subprocess.CompletedProcess[str]:
    assert ANALYZE is not None
    return subprocess.run(
        [ANALYZE, "verify", "--man=no", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=unit.parent,
    )


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed (the parsing tests above ran)")
@pytest.mark.parametrize("name", ALL)
def test_systemd_analyze_verifies_every_unit(tmp_path: Path, name: str) -> None:
    done = _verify(_installed_copy(tmp_path, name))
    # verify exits 0 on most mistakes and only complains: any complaint fails.
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
def test_systemd_analyze_complains_about_a_mistake(tmp_path: Path) -> None:
    text = (UNITS / "asgate-control.service").read_text(encoding="utf-8")
    done = _verify(_installed_copy(tmp_path, "typo.service", text.replace("ProtectSystem=", "ProtectSytem=")))
    assert "Unknown key" in done.stderr


@pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")
@pytest.mark.parametrize("name", ALL)
def test_the_exposure_score_stays_low(tmp_path: Path, name: str) -> None:
    """``systemd-analyze security``: 0 (locked down) to 10 (unprotected); asgate's units 2 at most."""
    done = subprocess.run(
        [
            ANALYZE or "systemd-analyze",
            "security",
            "--offline=yes",
            "--no-pager",
            str(_installed_copy(tmp_path, name)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    if "--offline" in done.stderr and "unrecognized" in done.stderr:
        pytest.skip("this systemd-analyze has no --offline (systemd < 250)")
    score = re.search(r"Overall exposure level for \S+: ([0-9.]+)", done.stdout)
    assert score, done.stdout + done.stderr
    assert float(score.group(1)) <= 2.0, done.stdout
