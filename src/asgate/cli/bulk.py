"""Bulk import for administrators: ``asgate users import``, ``asgate apps import`` and
``asgate grants import`` read a CSV or JSON file and apply each row exactly as the single-item
command would (``users add``, ``apps add``, ``grants add``): the same validation, the same store
and registry service, so every row is audited and causes the same notifications and CSC-15
updates. Rows are applied one by one, in file order; a refused row does not stop the others, and
the summary names every refused row by its line with the reason (exit code 1 if any).

File formats, by extension (or ``--format``; reading in ``asgate.cli.rows``):

* ``.csv``: a header line with the column names below, one row per line (RFC 4180 quoting);
* ``.json``: an array of objects with the same keys; ``.jsonl``/``.ndjson``: one object a line.

Empty cells and absent keys mean "not given". The commands are attached here to the groups of
``asgate.cli.users`` and ``asgate.cli.registry``; ``users``, ``apps`` and ``grants`` below are
those groups, with ``import`` added (the lazy command map points at them).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, open_store, pass_cli, run
from asgate.cli.registry import ACTOR, _service, _spec, apps, grants, parse_service
from asgate.cli.rows import (
    Row,
    RowError,
    cell_flag,
    cell_list,
    cell_number,
    cell_required,
    cell_text,
    read_rows,
)
from asgate.cli.users import _MC_ID, _MIN_PASSWORD, _USERNAME, _audited, _generate, users
from asgate.domain.idm import User
from asgate.domain.registry import ExternalAppSpec, GrantSpec
from asgate.idm.passwords import hash_secret
from asgate.kernel.claims import MC_ID_CLAIMS
from asgate.kernel.problem import ProblemError
from asgate.store import McIdTakenError, UserExistsError
from asgate.store.ids import new_id

__all__ = ["apps", "grants", "users"]

USER_COLUMNS = ("username", "password", "name", *MC_ID_CLAIMS, "disabled")
APP_COLUMNS = ("client_id", "name", "trust", "allow", "max_priority", "app_rate", "app_burst",
               "user_rate", "user_burst", "max_inflight", "notify", "origins")  # fmt: skip
GRANT_COLUMNS = ("app_id", "mc_service_id", "services")


@dataclass
class Report:
    kind: str
    total: int
    imported: list[int] = field(default_factory=list)
    refused: list[tuple[int, str]] = field(default_factory=list)
    generated: list[dict[str, str]] = field(default_factory=list)  # users: passwords made up


def _services(row: Row, key: str) -> list[str]:
    """Services as ``asgate apps add --allow`` / ``grants add --service`` take them, checked."""
    texts = cell_list(row, key)
    for text in texts:
        try:
            parse_service(text)
        except click.BadParameter as exc:
            raise RowError(f"{key}: {exc.message}") from None
    return texts


# ---------------------------------------------------------------- importers


async def _apply(
    rows: Sequence[Row], report: Report, action: Callable[[Row], Awaitable[None]], progress: Progress
) -> None:
    task = progress.add_task(f"importing {report.kind}", total=len(rows))
    for row in rows:
        try:
            await action(row)
        except RowError as exc:
            report.refused.append((row.line, str(exc)))
        except ProblemError as exc:
            report.refused.append((row.line, str(exc)))
        except click.ClickException as exc:  # the single-item commands' own validation
            report.refused.append((row.line, exc.format_message()))
        except ValueError as exc:  # a model refused a value
            report.refused.append((row.line, _reason(exc)))
        else:
            report.imported.append(row.line)
        progress.advance(task)


def _reason(exc: ValueError) -> str:
    errors: list[dict[str, Any]] = getattr(exc, "errors", list)()
    if errors:
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in errors)
    return str(exc)


async def import_users(cli: CliContext, rows: Sequence[Row], progress: Progress) -> Report:
    report = Report("users", len(rows))
    plain: dict[int, str | None] = {}
    for row in rows:
        password = cell_text(row, "password")
        plain[row.line] = password if password and len(password) >= _MIN_PASSWORD else None
    # Argon2 hashing is the slow part: in threads (it releases the GIL), ahead of the writes.
    limit = asyncio.Semaphore(os.cpu_count() or 2)
    generated = {row.line: _generate() for row in rows if not cell_text(row, "password")}

    async def digest(line: int) -> str | None:
        secret = plain[line] or generated.get(line)
        if secret is None:
            return None
        async with limit:
            return await asyncio.to_thread(hash_secret, secret)

    hashes = {row.line: asyncio.ensure_future(digest(row.line)) for row in rows}
    async with open_store(cli) as store:

        async def add(row: Row) -> None:
            user = _user(row, await hashes[row.line])
            try:
                await store.write(lambda tx: _audited(tx, "user.add", user.username, tx.users.add(user)))
            except UserExistsError:
                raise RowError(f"user {user.username!r} already exists") from None
            except McIdTakenError as exc:
                raise RowError(str(exc)) from None
            if row.line in generated:
                report.generated.append({"username": user.username, "password": generated[row.line]})

        try:
            await _apply(rows, report, add, progress)
        finally:
            for pending in hashes.values():
                pending.cancel()
    return report


def _user(row: Row, password_hash: str | None) -> User:
    """The checks of ``asgate users add``, for one row."""
    username = cell_required(row, "username")
    if not _USERNAME.match(username):
        raise RowError("username: 1-128 characters: letters, digits and . _ @ + -")
    if password_hash is None:
        raise RowError(f"password: at least {_MIN_PASSWORD} characters")
    ids = {k: cell_text(row, k) for k in MC_ID_CLAIMS}
    for key, value in ids.items():
        if value is not None and not _MC_ID.match(value):
            raise RowError(f"{key}: an MC service ID has no spaces (at most 256 characters)")
    now = datetime.now(UTC)
    return User(
        user_id=new_id(),
        username=username,
        password_hash=password_hash,
        display_name=cell_text(row, "name"),
        disabled=cell_flag(row, "disabled"),
        created_at=now,
        updated_at=now,
        **ids,
    )


async def import_apps(cli: CliContext, rows: Sequence[Row], progress: Progress) -> Report:
    report = Report("apps", len(rows))
    async with _service(cli) as service:

        async def put(row: Row) -> None:
            client_id = cell_required(row, "client_id")
            trust = (cell_text(row, "trust") or "").lower() or None
            if trust not in (None, "trusted", "untrusted"):
                raise RowError(f"trust: {trust!r} is not trusted or untrusted")
            given = {
                "display_name": cell_text(row, "name"),
                "trust": trust,
                "allow": tuple(_services(row, "allow")),
                "max_priority": cell_text(row, "max_priority"),
                "app_rate": cell_number(row, "app_rate", float),
                "app_burst": cell_number(row, "app_burst", int),
                "user_rate": cell_number(row, "user_rate", float),
                "user_burst": cell_number(row, "user_burst", int),
                "max_inflight": cell_number(row, "max_inflight", int),
                "notification": cell_text(row, "notify"),
                "allow_origin": tuple(cell_list(row, "origins")),
            }
            spec = _spec(ExternalAppSpec(), **given)  # what `asgate apps add` builds
            await service.put_app(ACTOR, client_id, spec, None)

        await _apply(rows, report, put, progress)
    return report


async def import_grants(cli: CliContext, rows: Sequence[Row], progress: Progress) -> Report:
    report = Report("grants", len(rows))
    async with _service(cli) as service:

        async def put(row: Row) -> None:
            services = [parse_service(s) for s in _services(row, "services")] or None
            spec = GrantSpec(
                app_id=cell_required(row, "app_id"),
                mc_service_id=cell_required(row, "mc_service_id"),
                services=services,
            )
            await service.put_grant(ACTOR, spec)

        await _apply(rows, report, put, progress)
    return report


# ---------------------------------------------------------------- commands


def _is_tty() -> bool:
    return sys.stderr.isatty()


@contextmanager
def _progress(quiet: bool) -> Iterator[Progress]:
    """A progress bar on stderr, only for a person watching (not with --quiet, not into a pipe)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    console = Console(file=sys.stderr)
    with Progress(*columns, console=console, disable=quiet or not _is_tty()) as progress:
        yield progress


Importer = Callable[[CliContext, Sequence[Row], Progress], Awaitable[Report]]


def _run_import(
    cli: CliContext,
    file: Path,
    fmt: str | None,
    quiet: bool,
    as_json: bool,
    importer: Importer,
    columns: Sequence[str],
) -> None:
    rows = read_rows(file, fmt, columns)

    async def go() -> Report:
        with _progress(quiet) as progress:
            return await importer(cli, rows, progress)

    report = run(go())
    _summary(report, file, as_json)
    if report.refused:
        raise click.exceptions.Exit(1)


def _summary(report: Report, file: Path, as_json: bool) -> None:
    if as_json:
        emit_json(
            {
                "file": str(file),
                "rows": report.total,
                "imported": len(report.imported),
                "refused": [{"line": line, "reason": reason} for line, reason in report.refused],
                **({"generatedPasswords": report.generated} if report.generated else {}),
            }
        )
        return
    click.echo(f"imported {len(report.imported)} of {report.total} {report.kind} from {file.name}")
    if report.generated:
        click.echo("generated passwords (stored only as hashes; give them to the users now):")
        emit_table([(g["username"], g["password"]) for g in report.generated], ["USER", "PASSWORD"])
    if report.refused:
        click.echo(f"refused {len(report.refused)}:")
        for line, reason in report.refused:
            click.echo(f"  line {line}: {reason}")


def _import_command(group: click.Group, importer: Importer, columns: Sequence[str], doc: str) -> None:
    @group.command("import", help=doc)
    @click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
    @click.option(
        "--format", "fmt", type=click.Choice(["csv", "json", "jsonl"]), help="Instead of the extension."
    )
    @click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
    @json_option
    @pass_cli
    def command(cli: CliContext, file: Path, fmt: str | None, quiet: bool, as_json: bool) -> None:
        _run_import(cli, file, fmt, quiet, as_json, importer, columns)


_import_command(
    users,
    import_users,
    USER_COLUMNS,
    """Add many MC users from a CSV or JSON file, each as `asgate users add` would (audited).

    Columns: username (required), password (at least 8 characters; generated and printed when
    absent), name, mcptt_id, mcvideo_id, mcdata_id, disabled (true/false). An existing user name
    or an MC service ID already taken refuses the row.

    \b
    $ asgate users import users.csv
    $ asgate users import users.json --quiet --json
    \b
    users.csv:
      username,password,name,mcptt_id,mcdata_id
      alice,correct-horse-1,Alice Example,alice@mc.example,alice@mc.example
    """,
)
_import_command(
    apps,
    import_apps,
    APP_COLUMNS,
    """Register many external applications' policies from a CSV or JSON file, each as `asgate
    apps add` would: an application already registered gets the row's policy as a new version,
    and its profiles are refreshed (the application is notified, access servers updated).

    Columns: client_id (required), name, trust (trusted/untrusted), allow (services separated by
    spaces or ";": TYPE[/NAME][:cap,cap]; a list in JSON), max_priority, app_rate, app_burst,
    user_rate, user_burst, max_inflight, notify (default notificationDestination), origins (browser
    origins, as --allow-origin takes them, separated like allow).

    \b
    $ asgate apps import apps.csv
    \b
    apps.csv:
      client_id,name,trust,allow,max_priority,app_rate
      console-1,Dispatch console,untrusted,"GM MCData/sds:send,inbox",mcpttp.10,50
    """,
)
_import_command(
    grants,
    import_grants,
    GRANT_COLUMNS,
    """Authorize many MC users for external applications from a CSV or JSON file, each as
    `asgate grants add` would (the access servers are updated).

    Columns: app_id (required), mc_service_id (required), services (separated by spaces or ";":
    TYPE[/NAME][:cap,cap]; absent: every service the application's policy allows).

    \b
    $ asgate grants import grants.csv
    \b
    grants.csv:
      app_id,mc_service_id,services
      console-1,alice@mc.example,
      console-1,bob@mc.example,GM;MCData
    """,
)
