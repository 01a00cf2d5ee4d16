"""The CLI through click's runner, on a fresh data directory and database of each backend."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from asgate.cli import main

Asgate = Callable[..., Result]


@pytest.fixture
def asgate(tmp_path: Path, database: dict[str, Any]) -> Asgate:
    """``asgate(*args, code=0)``: run a command, assert its exit code, return its result."""
    env = {"ASGATE_DATA_DIR": str(tmp_path / "data")} | {
        f"ASGATE_{k.upper()}": str(v) for k, v in database.items()
    }

    def run(*args: str, code: int = 0) -> Result:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == code, result.output
        return result

    return run
