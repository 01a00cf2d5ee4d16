"""``asgate as``: the AS registrations the MSGin5G Server holds.

By default the commands read the store directly; with ``--api URL`` they go through the
``msgs-admin/v1`` API of a running server with a client holding scope ``msgs-admin``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import click

from asgate.cli.base import (
    CliContext,
    emit_fields,
    emit_json,
    emit_table,
    json_option,
    open_store,
    pass_cli,
    run,
)
from asgate.client import ClientCredentials, MsgsAdmin
from asgate.domain.msgin5g import Registration
from asgate.kernel.problem import ProblemError
from asgate.msgin5g import decisions
from asgate.msgin5g.models import RegistrationPage
from asgate.msgin5g.service import ADMIN_SCOPE


class _StoreAdmin:
    """The same three operations as :class:`MsgsAdmin`, on the store."""

    def __init__(self, store: Any) -> None:
        self._store = store

    async def list(
        self, *, limit: int, after: str | None, client_id: str | None, as_svc_id: str | None
    ) -> RegistrationPage:
        items = await self._store.registrations.scan(
            after=after, limit=limit, client_id=client_id, as_svc_id=as_svc_id
        )
        return RegistrationPage(items=items, next=items[-1].registration_id if len(items) == limit else None)

    async def get(self, registration_id: str) -> Registration:
        registration = await self._store.registrations.get(registration_id)
        if registration is None:
            raise ProblemError(404, "CONTEXT_NOT_FOUND", f"no AS registration {registration_id!r}")
        return registration  # type: ignore[no-any-return]

    async def evict(self, registration_id: str) -> None:
        evicted = await self._store.write(
            lambda tx: decisions.deregister(tx, registration_id, "cli", owner=None)
        )
        if not isinstance(evicted, decisions.Deregistered):
            raise ProblemError(404, "CONTEXT_NOT_FOUND", f"no AS registration {registration_id!r}")


def _remote_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed(
        [
            click.option(
                "--api",
                envvar="ASGATE_API_URL",
                help="Use a running server's admin API (e.g. http://127.0.0.1:7480).",
            ),
            click.option(
                "--client-id", envvar="ASGATE_CLIENT_ID", help="With --api: a client with scope msgs-admin."
            ),
            click.option("--client-secret", envvar="ASGATE_CLIENT_SECRET", help="With --api: its secret."),
        ]
    ):
        fn = option(fn)
    return fn


@asynccontextmanager
async def _admin(
    cli: CliContext, api: str | None, client_id: str | None, secret: str | None
) -> AsyncIterator[Any]:
    if api is None:
        async with open_store(cli) as store:
            yield _StoreAdmin(store)
        return
    if not client_id or secret is None:
        raise click.UsageError("--api needs --client-id and --client-secret (or ASGATE_CLIENT_ID/SECRET)")
    tokens = ClientCredentials(f"{api.rstrip('/')}/oauth2/token", client_id, secret, ADMIN_SCOPE)
    async with MsgsAdmin(api, tokens) as admin:
        yield admin


@click.group("as")
def as_group() -> None:
    """AS registrations held by the MSGin5G Server (TS 23.554 8.2.5)."""


@as_group.command("list")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000), help="Rows per page.")
@click.option("--after", help="Cursor: list registrations after this registration id.")
@click.option("--client", "client_id_filter", help="Only this client's registrations.")
@click.option("--as-svc-id", help="Only this AS Service ID.")
@click.option("--all", "all_pages", is_flag=True, help="Follow the cursor to the end.")
@json_option
@_remote_options
@pass_cli
def list_(
    cli: CliContext,
    limit: int,
    after: str | None,
    client_id_filter: str | None,
    as_svc_id: str | None,
    all_pages: bool,
    as_json: bool,
    api: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """List AS registrations, oldest first, one page at a time (fast with millions stored).

    \b
    $ asgate as list
    $ asgate as list --after 0193...   # the next page, as printed at the end of the last one
    $ asgate as list --api http://127.0.0.1:7480 --client-id ops --client-secret ...
    """

    async def go() -> None:
        cursor = after
        async with _admin(cli, api, client_id, client_secret) as admin:
            while True:
                page: RegistrationPage = await admin.list(
                    limit=limit, after=cursor, client_id=client_id_filter, as_svc_id=as_svc_id
                )
                _print_page(page, as_json)
                cursor = page.next
                if not all_pages or cursor is None:
                    break
        if cursor is not None and not as_json:
            click.echo(f"more: asgate as list --after {cursor}")

    run(go())


def _print_page(page: RegistrationPage, as_json: bool) -> None:
    if as_json:
        emit_json(page.dump())
        return
    emit_table(
        [
            (
                r.registration_id,
                r.as_svc_id,
                r.client_id,
                r.app_id,
                r.registered_at.isoformat(timespec="seconds"),
            )
            for r in page.items
        ],
        ["REGISTRATION ID", "AS SERVICE ID", "CLIENT", "APP ID", "REGISTERED"],
    )


@as_group.command("show")
@click.argument("registration_id")
@json_option
@_remote_options
@pass_cli
def show(
    cli: CliContext,
    registration_id: str,
    as_json: bool,
    api: str | None,
    client_id: str | None,
    client_secret: str | None,
) -> None:
    """Show one AS registration with its AS profile.

    \b
    $ asgate as show 0193c1d2-...
    """

    async def go() -> Registration:
        async with _admin(cli, api, client_id, client_secret) as admin:
            return await admin.get(registration_id)  # type: ignore[no-any-return]

    registration = run(go())
    if as_json:
        emit_json(registration.dump())
    else:
        emit_fields(registration.dump())


@as_group.command("remove")
@click.argument("registration_id")
@_remote_options
@pass_cli
def remove(
    cli: CliContext, registration_id: str, api: str | None, client_id: str | None, client_secret: str | None
) -> None:
    """Remove an AS registration as the operator (audited).

    \b
    $ asgate as remove 0193c1d2-...
    """

    async def go() -> None:
        async with _admin(cli, api, client_id, client_secret) as admin:
            await admin.evict(registration_id)

    run(go())
    click.echo(f"removed AS registration {registration_id}")
