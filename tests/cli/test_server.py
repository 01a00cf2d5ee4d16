"""``asgate up`` and ``asgate serve``: the listener options, on a real process."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from asgate.cli import main
from tests.live import free_port, live_server


@pytest.mark.slow
def test_up_sas_listen_option_moves_the_data_plane_over_the_setting(tmp_path: Path) -> None:
    flag, setting = free_port(), free_port()
    with live_server(
        tmp_path / "data", args=("--sas-listen", f"127.0.0.1:{flag}"), sas_listen=f"127.0.0.1:{setting}"
    ):
        answer = httpx.get(f"http://127.0.0.1:{flag}/1/anything", timeout=5)
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        with (
            pytest.raises(ConnectionRefusedError),
            socket.create_connection(("127.0.0.1", setting), timeout=2),
        ):
            pass


def test_serve_sas_listen_needs_the_access_role(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        ["--data-dir", str(tmp_path), "serve", "idm", "--sas-listen", "127.0.0.1:9"],
        catch_exceptions=False,
    )
    assert result.exit_code == 2
    assert "--sas-listen is the access server's address: add the role 'access'" in result.output


def test_up_and_serve_document_sas_listen() -> None:
    for command in ("up", "serve"):
        result = CliRunner().invoke(main, [command, "--help"])
        assert "--sas-listen" in result.output
