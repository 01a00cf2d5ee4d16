"""Shared CLI machinery: settings from --config/--data-dir/--database-url, output, error handling."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from collections.abc import AsyncIterator, Coroutine, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click
from rich.console import Console
from rich.table import Table

from asgate import __version__
from asgate.kernel.atrest import private_dir
from asgate.kernel.problem import ProblemError
from asgate.kernel.settings import Settings, SettingsError

if TYPE_CHECKING:
    from asgate.store import Store

T = TypeVar("T")


class AsgateGroup(click.Group):
    """Loads each command's module on first use (``asgate --help`` and every command start faster),
    and turns the errors users cause into one readable line and a non-zero exit code."""

    lazy: dict[str, str] = {}  # command name -> "module:attribute"

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            self.add_command(getattr(importlib.import_module(module), attribute), cmd_name)
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ProblemError as exc:
            raise click.ClickException(str(exc)) from None
        except SettingsError as exc:
            raise SettingsClickError(str(exc)) from None


class SettingsClickError(click.ClickException):
    exit_code = 2


@dataclass
class CliContext:
    config: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    _settings: Settings | None = None

    def settings(self, **extra: Any) -> Settings:
        if extra:
            return Settings.load(self.config, **self.overrides, **extra)
        if self._settings is None:
            self._settings = Settings.load(self.config, **self.overrides)
        return self._settings


pass_cli = click.make_pass_decorator(CliContext)


@click.group(
    cls=AsgateGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100}
)
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="ASGATE_CONFIG",
    help="TOML settings file.",
)
@click.option(
    "--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Data directory (default ./.asgate)."
)
@click.option("--database-url", help="sqlite+aiosqlite:///FILE or postgresql+asyncpg://USER@HOST/DB.")
@click.version_option(__version__, prog_name="asgate")
@click.pass_context
def main(ctx: click.Context, config: Path | None, data_dir: Path | None, database_url: str | None) -> None:
    """asgate: MSGin5G AS registration and external application access to Mission Critical services.

    \b
    $ asgate up                                   # run every server role
    $ asgate clients add as-1 --scope msgs-asregistration --as-svc-id AS1
    $ asgate as list
    """
    ctx.obj = CliContext(config, {"data_dir": data_dir, "database_url": database_url})


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@asynccontextmanager
async def open_store(cli: CliContext) -> AsyncIterator[Store]:
    """The server's own store (administrator commands work before any server runs)."""
    from asgate.store import Store

    settings = cli.settings()
    private_dir(settings.data_dir)
    store = await Store.open(
        settings.db_url, sqlite_synchronous=settings.sqlite_synchronous, schema=settings.database_schema
    )
    try:
        yield store
    finally:
        await store.close()


# ---------------------------------------------------------------- output

json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON output.")


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def emit_table(rows: Sequence[Sequence[Any]], columns: Sequence[str], *, title: str | None = None) -> None:
    table = Table(*columns, title=title, title_justify="left", box=None, header_style="bold")
    for row in rows:
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    Console(file=sys.stdout, width=max(100, Console().width), soft_wrap=True).print(table)


def emit_fields(fields: dict[str, Any]) -> None:
    width = max(len(k) for k in fields) if fields else 0
    for key, value in fields.items():
        if isinstance(value, list | tuple):
            value = ", ".join(str(v) for v in value) or "-"
        elif isinstance(value, dict):
            value = json.dumps(value) if value else "-"
        click.echo(f"{key.ljust(width)}  {'-' if value is None else value}")
