"""``asgate up`` and ``asgate serve``: the listener options, on a real process."""

from __future__ import annotations

import shlex
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from asgate.cli import main
from tests.live import ASGATE, free_port, live_server, server_env


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


BANNER = "asgate is up, with the sample MC services"


@pytest.mark.slow
@pytest.mark.skipif(
    shutil.which("tmux") is None, reason="tmux is not installed: the terminal of `asgate up` not run"
)
def test_make_run_banner_stays_on_screen(tmp_path: Path) -> None:
    """``asgate up --samples`` in a 120x30 terminal: readable log lines, and 6 s (three heartbeats of
    five samples) after start-up the banner still shows where everything is."""
    env = server_env(
        tmp_path / "data",
        listen=f"127.0.0.1:{free_port()}",
        sas_listen=f"127.0.0.1:{free_port()}",
        log_level="info",
    )
    tmux = ["tmux", "-L", f"asgate-test-{free_port()}"]
    command = shlex.join([*ASGATE, "up", "--samples", "--samples-port", "0"]) + "; sleep 600"
    subprocess.run([*tmux, "new-session", "-d", "-x", "120", "-y", "30", command], env=env, check=True)

    def screen() -> str:
        return subprocess.run(
            [*tmux, "capture-pane", "-p"], capture_output=True, text=True, check=True
        ).stdout

    try:
        deadline = time.monotonic() + 60
        while BANNER not in screen():
            assert time.monotonic() < deadline, screen()
            time.sleep(0.2)
        time.sleep(6)
        shown = screen()
        assert BANNER in shown, shown
        assert "access server   http://127.0.0.1:" in shown
        assert '{"' not in shown  # no JSON on a terminal
    finally:
        subprocess.run([*tmux, "kill-server"], check=False)
