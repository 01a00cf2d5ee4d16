"""Rows of an administrator's import file (CSV, JSON array or JSON lines), each with the line it
starts on, and the conversions of their cells: what ``asgate.cli.bulk`` reads."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl"}


class RowError(Exception):
    """One row cannot be imported; the message is the reason shown to the administrator."""


@dataclass
class Row:
    line: int  # where the row starts in the file (1 = the first line)
    values: dict[str, Any]


def read_rows(path: Path, fmt: str | None, columns: Sequence[str]) -> list[Row]:
    """The rows of ``path``; a file that cannot be read as a whole is a usage error."""
    kind = fmt or FORMATS.get(path.suffix.lower())
    if kind is None:
        raise click.UsageError(f"{path.name}: use a .csv, .json or .jsonl file (or --format)")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise click.UsageError(f"{path}: {exc}") from None
    rows = _csv_rows(text) if kind == "csv" else _json_rows(text, lines=kind == "jsonl")
    unknown = sorted({k for row in rows for k in row.values if k not in columns})
    if unknown:
        raise click.UsageError(
            f"{path.name}: unknown column(s) {', '.join(unknown)}; the columns are {', '.join(columns)}"
        )
    return rows


def _csv_rows(text: str) -> list[Row]:
    reader = csv.reader(text.splitlines(keepends=True))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except StopIteration:
        return []
    rows = []
    start = reader.line_num + 1
    for record in reader:
        if any(cell.strip() for cell in record):
            if len(record) > len(header):
                raise click.UsageError(f"line {start}: more cells than columns")
            values = {k: v.strip() for k, v in zip(header, record, strict=False) if v.strip()}
            rows.append(Row(start, values))
        start = reader.line_num + 1
    return rows


def _json_rows(text: str, *, lines: bool) -> list[Row]:
    decoder = json.JSONDecoder()
    items: list[tuple[int, Any]] = []
    try:
        if lines:
            items = [(n, json.loads(t)) for n, t in enumerate(text.splitlines(), 1) if t.strip()]
        else:
            position = _skip(text, 0)
            if text[position : position + 1] != "[":
                raise click.UsageError("a .json file holds an array of objects")
            position = _skip(text, position + 1)
            while text[position : position + 1] != "]":
                item, end = decoder.raw_decode(text, position)
                items.append((text.count("\n", 0, position) + 1, item))
                position = _skip(text, end)
                if text[position : position + 1] == ",":
                    position = _skip(text, position + 1)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"line {exc.lineno}: not JSON: {exc.msg}") from None
    rows = []
    for line, item in items:
        if not isinstance(item, dict):
            raise click.UsageError(f"line {line}: each item must be an object")
        rows.append(Row(line, {str(k).lower(): v for k, v in item.items() if v not in (None, "")}))
    return rows


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


def cell_text(row: Row, key: str) -> str | None:
    value = row.values.get(key)
    return None if value is None else str(value)


def cell_required(row: Row, key: str) -> str:
    value = cell_text(row, key)
    if not value:
        raise RowError(f"{key} is required")
    return value


def cell_number(row: Row, key: str, kind: type[int] | type[float]) -> Any:
    value = row.values.get(key)
    if value is None:
        return None
    try:
        return kind(value)
    except (TypeError, ValueError):
        raise RowError(f"{key}: {value!r} is not {'an integer' if kind is int else 'a number'}") from None


def cell_flag(row: Row, key: str) -> bool:
    value = row.values.get(key, False)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "y"):
        return True
    if text in ("", "0", "false", "no", "n"):
        return False
    raise RowError(f"{key}: {value!r} is not true or false")


def cell_list(row: Row, key: str) -> list[str]:
    """A list in JSON, or space/semicolon-separated in CSV (commas separate capabilities)."""
    value = row.values.get(key)
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return str(value).replace(";", " ").split()
