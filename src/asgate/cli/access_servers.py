"""``asgate access-servers``: the service access servers the registry pushes CSC-15 to (issue 10):
those that registered themselves, live or silent, and the static ``registry_sas_push_urls``, with
each one's acknowledged sequence and lag. Read from the store, like ``GET
/mcx-registry-admin/v1/access-servers``."""

from __future__ import annotations

import click

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, open_store, pass_cli, run
from asgate.registry.access_servers import AccessServerList, overview


@click.group("access-servers")
def access_servers() -> None:
    """Service access servers registered with the registry (CSC-15 targets)."""


@access_servers.command("list")
@click.option("--live", "live_only", is_flag=True, help="Only those the registry pushes to now.")
@json_option
@pass_cli
def access_servers_list(cli: CliContext, live_only: bool, as_json: bool) -> None:
    """Show every access server with its sequence and lag.

    \b
    $ asgate access-servers list
    """
    s = cli.settings()

    async def go() -> AccessServerList:
        async with open_store(cli) as store:
            return await overview(
                store, [u.rstrip("/") for u in s.registry_sas_push_urls], s.registry_sas_timeout
            )

    found = run(go())
    items = [i for i in found.items if i.live or not live_only]
    if as_json:
        emit_json({"sequence": found.sequence, "items": [i.dump() for i in items]})
        return
    emit_table(
        [
            (
                i.sas_id or "(static)",
                i.csc15_uri,
                "live" if i.live else "silent",
                i.acked_sequence,
                i.lag,
                i.last_seen_at.isoformat(timespec="seconds") if i.last_seen_at else "",
                i.last_error or "",
            )
            for i in items
        ],
        ["ID", "CSC-15 URI", "STATE", "ACKNOWLEDGED", "LAG", "LAST SEEN", "LAST ERROR"],
        title=f"Access servers (registry sequence {found.sequence})",
    )
