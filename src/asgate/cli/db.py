"""``asgate db``: the database schema, for a deployment that migrates once before its servers start."""

from __future__ import annotations

import click

from asgate.cli.base import CliContext, emit_json, json_option, pass_cli, run
from asgate.kernel.atrest import private_dir
from asgate.kernel.settings import Settings
from asgate.store import migrate


async def _revisions(settings: Settings, *, upgrade: bool) -> tuple[str | None, str | None]:
    """The revision before and after (after = before unless ``upgrade``)."""
    if settings.database_url is None:
        private_dir(settings.data_dir)  # the default SQLite database lives there
    return await migrate.revisions(
        settings.db_url,
        schema=settings.database_schema,
        sqlite_synchronous=settings.sqlite_synchronous,
        apply=upgrade,
    )


def _newer(current: str) -> str:
    return (
        f"the database is at revision {current}, which this version of asgate does not know: "
        "a newer version migrated it (upgrade asgate, or restore a backup)"
    )


@click.group()
def db() -> None:
    """The database schema. Servers apply migrations when they start; a deployment that wants them
    applied once, before any server (a Kubernetes Job, a systemd oneshot), runs `asgate db upgrade`."""


@db.command("upgrade")
@pass_cli
def upgrade(cli: CliContext) -> None:
    """Apply every pending schema migration, then exit (safe while other processes start or run:
    concurrent migrators are serialised).

    \b
    $ asgate db upgrade
    $ ASGATE_DATABASE_URL=postgresql://asgate@db.internal/asgate asgate db upgrade
    """
    settings = cli.settings()
    current, _ = run(_revisions(settings, upgrade=False))
    if current is not None and current not in migrate.known_revisions():
        raise click.ClickException(_newer(current))
    before, after = run(_revisions(settings, upgrade=True))
    if before == after:
        click.echo(f"database schema already at revision {after} (newest)")
    else:
        click.echo(f"database schema upgraded from revision {before or 'none'} to {after} (newest)")


@db.command("status")
@click.option("--check", is_flag=True, help="Exit with status 1 unless the schema is at the newest revision.")
@json_option
@pass_cli
def status(cli: CliContext, check: bool, as_json: bool) -> None:
    """Show the schema revision of the database and the newest this version knows (changes nothing).

    \b
    $ asgate db status
    $ asgate db status --check     # in a readiness gate: 1 until `asgate db upgrade` ran
    """
    current, _ = run(_revisions(cli.settings(), upgrade=False))
    newest = migrate.head()
    if as_json:
        emit_json({"current": current, "newest": newest, "up_to_date": current == newest})
    else:
        if current == newest:
            state = "up to date"
        elif current is not None and current not in migrate.known_revisions():
            state = _newer(current)
        else:
            state = "migrations pending: run `asgate db upgrade`"
        click.echo(f"revision {current or 'none'}, newest {newest}: {state}")
    if check and current != newest:
        raise SystemExit(1)
