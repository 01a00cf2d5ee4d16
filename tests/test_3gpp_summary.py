"""The tests that need the official 3GPP files say so at the end of the run when the files are missing.

A real pytest run in a subprocess on a tiny test folder, with ``tests/conftest.py`` loaded as a plugin
and ``ASGATE_3GPP_DIR`` pointing at a folder with or without the files.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = """
from tests.conftest import official_3gpp


def test_registers(threegpp_dir):
    assert (threegpp_dir / "TS29538_MSGS_ASRegistration.yaml").is_file()


def test_rel17_clients():
    assert official_3gpp("rel-17/TS29538_MSGS_ASRegistration.yaml").is_file()


def test_needs_nothing():
    pass
"""


def _pytest(tmp_path: Path, three_gpp: Path, *args: str) -> str:
    (tmp_path / "tiny").mkdir(exist_ok=True)
    (tmp_path / "tiny" / "test_tiny.py").write_text(TINY)
    (tmp_path / "tiny" / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ASGATE_", "PYTEST_"))}
    env |= {"ASGATE_3GPP_DIR": str(three_gpp), "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'src'}"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "tests.conftest", "-p", "no:cacheprovider", "-q", *args, "."],
        cwd=tmp_path / "tiny",
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.stdout + result.stderr


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["one-process", "xdist"])
def test_a_run_without_the_files_says_what_did_not_run_and_how_to_provide_them(
    tmp_path: Path, workers: list[str]
) -> None:
    empty = tmp_path / "no-3gpp"
    empty.mkdir()
    out = _pytest(tmp_path, empty, *workers)
    assert "1 passed, 2 skipped" in out, out
    lines = [line for line in out.splitlines() if "did not run" in line]
    assert lines == [
        f"2 tests did not run (3GPP conformance): the official 3GPP OpenAPI files are not in {empty}; "
        "set ASGATE_3GPP_DIR to the folder holding TS29538_MSGS_ASRegistration.yaml (README, Tests)"
    ], out


def test_a_run_with_the_files_runs_them_and_says_nothing(tmp_path: Path) -> None:
    files = tmp_path / "3gpp"
    (files / "rel-17").mkdir(parents=True)
    (files / "TS29538_MSGS_ASRegistration.yaml").write_text("openapi: 3.0.0\n")
    (files / "rel-17" / "TS29538_MSGS_ASRegistration.yaml").write_text("openapi: 3.0.0\n")
    out = _pytest(tmp_path, files)
    assert "3 passed" in out, out
    assert "did not run" not in out, out


def test_a_missing_older_release_is_counted_too(tmp_path: Path) -> None:
    files = tmp_path / "3gpp"
    files.mkdir()
    (files / "TS29538_MSGS_ASRegistration.yaml").write_text("openapi: 3.0.0\n")
    out = _pytest(tmp_path, files)
    assert "2 passed, 1 skipped" in out, out
    assert (
        f"1 test did not run (3GPP conformance): the official 3GPP OpenAPI files are not in {files};" in out
    )
