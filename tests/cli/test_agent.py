"""``asgate agent``: the registration sidecar, from its TOML file to a real registry process."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from asgate.cli import main
from tests.live import ASGATE, LiveServer, live_server

DOCS_EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "service.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "service.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_documented_example_is_valid_and_prints_its_registration() -> None:
    result = CliRunner().invoke(main, ["agent", "--config", str(DOCS_EXAMPLE), "--dry-run"])
    assert result.exit_code == 0, result.output
    registration = json.loads(result.output)
    assert registration["serviceType"] == "GM" and registration["heartbeatPeriod"] == 10
    interface = {"referencePoint": "CSC-2", "protocol": "HTTP", "ipv4Addr": "127.0.0.1", "port": 9101}
    assert registration["interfaces"][0] == {**interface, "apiPrefix": "/gm"}


def test_the_help_shows_an_example_command_and_file() -> None:
    result = CliRunner().invoke(main, ["agent", "--help"])
    assert "$ asgate agent --config" in result.output and "[[registration.interfaces]]" in result.output


_GM = 'registry_url = "http://r"\n[registration]\nserviceType = "GM"\nserviceName = "g"\n'
_IF = '[[registration.interfaces]]\nreferencePoint = "CSC-2"\nprotocol = "HTTP"\nport = 1\n'


@pytest.mark.parametrize(
    ("text", "named"),
    [
        (
            _GM + "heartbeatPeriode = 1\n" + _IF + 'ipv4Adr = "1.2.3.4"\n',
            ["registration.heartbeatPeriode: unknown key", "registration.interfaces[0].ipv4Adr: unknown key"],
        ),
        (
            'registry_url = "r"\n',
            ["registry_url: Value error, must be an http", "registration: Field required"],
        ),
        (_GM + _IF + 'fqdn = "gm"\n[health]\nhttp = "http://h"\ntcp = "h:1"\n', ["exactly one of http"]),
        (_GM + _IF, ["exactly one of ipv4Addr, ipv6Addr, fqdn"]),
        ("registry_url = [", ["is not valid TOML"]),
    ],
)
def test_a_bad_file_exits_2_naming_each_bad_key(tmp_path: Path, text: str, named: list[str]) -> None:
    result = CliRunner().invoke(main, ["agent", "--config", str(write(tmp_path, text)), "--dry-run"])
    assert result.exit_code == 2
    message = " ".join(result.output.split())
    for part in named:
        assert part in message


def test_missing_credentials_are_a_usage_error(tmp_path: Path) -> None:
    text = DOCS_EXAMPLE.read_text().replace('client_id = "gms-1"', "")
    result = CliRunner().invoke(
        main, ["agent", "--config", str(write(tmp_path, text))], env={"ASGATE_CLIENT_ID": ""}
    )
    assert result.exit_code == 2 and "client credentials missing" in result.output


@contextmanager
def listening() -> Iterator[tuple[socket.socket, int]]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock, sock.getsockname()[1]


def _instance_id(log: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if line.startswith("{") and json.loads(line).get("event") == "registered":
                return str(json.loads(line)["instance"])
        time.sleep(0.05)
    raise AssertionError(f"the agent did not register:\n{log.read_text()[-2000:]}")


def _status_of(server: LiveServer, token: str) -> Callable[[str], str | None]:
    def status(instance_id: str) -> str | None:
        response = httpx.get(
            f"{server.url}/mcx-service-registration/v1/services/{instance_id}",
            headers={"Authorization": f"Bearer {token}"},
        )
        return None if response.status_code == 404 else str(response.json()["status"])

    return status


def _until(check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.xdist_group("process")
def test_the_sidecar_follows_the_tcp_health_check_and_deregisters_on_sigterm(tmp_path: Path) -> None:
    settings = {"registry_missed_heartbeats": "1", "registry_sweep_interval": "0.1"}
    with live_server(tmp_path / "data", None, **settings) as server, listening() as (health, port):
        server.cli(
            "clients", "add", "gms-1", "--scope", "mcx-service-registration", "--secret", "s3cret",
            "--pool", "GM/gms",
        )  # fmt: skip
        config = DOCS_EXAMPLE.read_text()
        config = config.replace("http://127.0.0.1:7480", server.url).replace(
            "heartbeatPeriod = 10", "heartbeatPeriod = 1"
        )
        config = config.replace(
            'http = "http://127.0.0.1:9101/healthz"', f'tcp = "127.0.0.1:{port}"\ninterval = 0.2'
        )
        env = {**server.env, "ASGATE_LOG_LEVEL": "info", "ASGATE_CLIENT_SECRET": "s3cret"}
        log = tmp_path / "agent.log"
        with log.open("wb") as out:
            agent = subprocess.Popen(
                [*ASGATE, "agent", "--config", str(write(tmp_path, config))], env=env, stderr=out
            )
        try:
            instance_id = _instance_id(log)
            token = httpx.post(
                f"{server.url}/oauth2/token",
                data={"grant_type": "client_credentials"},
                auth=("gms-1", "s3cret"),
            ).json()["access_token"]
            status = _status_of(server, token)
            assert status(instance_id) == "REGISTERED"

            health.close()  # the service stops accepting: no heartbeats, the registry suspends it
            _until(lambda: status(instance_id) == "SUSPENDED", 5)
            with socket.socket() as again:  # the service accepts again on its port
                again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                again.bind(("127.0.0.1", port))
                again.listen(64)
                _until(lambda: status(instance_id) == "REGISTERED", 5)

                agent.send_signal(signal.SIGTERM)
                assert agent.wait(timeout=10) == 0
            assert status(instance_id) is None
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait()
