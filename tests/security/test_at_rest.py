"""Boundary: the host's other local users -> asgate's data directory (files at rest).

The database, its WAL and SHM, the signing keys, the access server's state, the samples' secret and
every other file asgate creates in its data directory are 0600, its folders 0700, whatever the umask
of the process that started it: checked on the real files after a real ``asgate up`` and writes.
"""

from __future__ import annotations

import contextlib
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.live import ASGATE, live_server, server_env

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("process")]


@contextlib.contextmanager
def umask(mask: int) -> Iterator[None]:
    """Processes started inside inherit ``mask`` (the most permissive one an operator could have)."""
    previous = os.umask(mask)
    try:
        yield
    finally:
        os.umask(previous)


def modes(root: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(root.stat().st_mode)}
    for path in root.rglob("*"):
        if path.name.startswith("server-") and path.suffix == ".log":
            continue  # the test harness's own log of the server's output
        found[str(path.relative_to(root))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def wide(found: dict[str, int], root: Path) -> dict[str, str]:
    return {
        name: oct(mode)
        for name, mode in found.items()
        if mode != (0o700 if (root / name).is_dir() else 0o600)
    }


def wait_for(path: Path, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} was never written"
        time.sleep(0.1)


def test_a_real_start_and_writes_leave_only_owner_only_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with umask(0), live_server(data, args=("--samples",)) as server:
        # The samples register (a write, through the WAL); the registry pushes their pools to the
        # access server, which saves its state.
        wait_for(data / "sas-state.json")
        server.cli("clients", "add", "ops", "--secret", "ops-secret", "--scope", "mcx-registry-admin")
        token = httpx.post(
            f"{server.url}/oauth2/token",
            data={"grant_type": "client_credentials"},
            auth=("ops", "ops-secret"),
        ).json()["access_token"]
        put = httpx.put(
            f"{server.url}/mcx-registry-admin/v1/apps/console-1",
            json={"allowedServices": [{"serviceType": "GM"}]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert put.status_code == 201, put.text
        found = modes(data)
        # Every kind of file is there to be checked, while the server still holds the database open.
        for name in (
            "asgate.db",
            "asgate.db-wal",
            "asgate.db-shm",
            "kek",
            "sas-state.json",
            "samples-secret",
        ):
            assert name in found, sorted(found)
        assert not any(name.startswith("keys/") for name in found)  # the keys are in the database
        assert wide(found, data) == {}
    assert wide(modes(data), data) == {}  # and after a clean stop


def test_an_administrator_command_before_any_server_creates_owner_only_files(tmp_path: Path) -> None:
    import subprocess

    data = tmp_path / "fresh" / "data"
    env = server_env(data)
    with umask(0):
        subprocess.run(
            [*ASGATE, "clients", "add", "ops", "--secret", "ops-secret", "--scope", "mcx-registry-admin"],
            env=env,
            check=True,
            capture_output=True,
            timeout=60,
        )
    found = modes(data)
    assert "asgate.db" in found
    assert wide(found, data) == {}
    assert stat.S_IMODE((tmp_path / "fresh").stat().st_mode) == 0o700  # created for it: owner-only too


def test_files_left_readable_by_an_older_version_are_narrowed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(data):
        pass
    os.chmod(data, 0o755)  # noqa: S103 - what an older version left, on purpose
    for path in data.rglob("*"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    with umask(0), live_server(data):
        assert wide(modes(data), data) == {}
