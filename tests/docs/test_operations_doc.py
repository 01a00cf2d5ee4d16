"""docs/operations.md lists every setting of ``asgate.kernel.settings.Settings`` with its default, and nothing
that is not a setting: an operator reading the tables reads the code's truth."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from asgate.kernel.settings import Settings

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
ROW = re.compile(r"^\| `([a-z0-9_]+)` \| ([^|]*) \|", re.MULTILINE)


def documented() -> dict[str, str]:
    """Setting name -> the default cell, from the tables of the "## Settings" section."""
    text = DOC.read_text(encoding="utf-8")
    start = text.index("\n## Settings\n")
    section = text[start : text.index("\n## ", start + 1)]
    rows: dict[str, str] = {}
    for name, default in ROW.findall(section):
        assert name not in rows, f"{name} is documented twice"
        rows[name] = default.strip()
    return rows


def expected(default: Any) -> str | None:
    """How the default is written in the table; None: described in words (no default value)."""
    if default is None or default == []:
        return None
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, list):
        return ",".join(str(item) for item in default)
    return str(default)


def test_every_setting_is_documented_and_nothing_else() -> None:
    fields = set(Settings.model_fields)
    rows = set(documented())
    assert sorted(fields - rows) == [], "settings missing from docs/operations.md"
    assert sorted(rows - fields) == [], "docs/operations.md documents settings that do not exist"


@pytest.mark.parametrize("name", sorted(Settings.model_fields))
def test_the_documented_default_is_the_code_default(name: str) -> None:
    cell = documented()[name]
    want = expected(Settings.model_fields[name].default)
    if want is None:
        assert cell.startswith("—"), f"{name}: no default in the code, the table says {cell!r}"
        return
    shown = cell.strip("`")
    if isinstance(Settings.model_fields[name].default, int | float) and not isinstance(
        Settings.model_fields[name].default, bool
    ):
        assert float(shown) == float(want), f"{name}: documented {shown}, the code says {want}"
    else:
        assert shown == want, f"{name}: documented {shown!r}, the code says {want!r}"


def test_the_environment_variables_are_named_after_the_settings() -> None:
    text = DOC.read_text(encoding="utf-8")
    for variable in set(re.findall(r"\bASGATE_[A-Z0-9_]+", text)):
        name = variable.removeprefix("ASGATE_").lower()
        not_settings = {"config", "client_id", "client_secret", "user_password", "api_url"}
        assert name in Settings.model_fields or name in not_settings, f"{variable} is no setting"
