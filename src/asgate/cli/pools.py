"""``asgate pools``: the approval of each pool's service interface description (issue 8 item 1).

What a pool's instances describe reaches applications only as far as the administrator approved
it; a widening (new API versions, resources, URIs or operations) is pending until approved here or
through ``mcx-registry-admin``. Approving rebuilds the pool's application profiles at once (new
versions, notifications, CSC-15 updates), also when the command runs beside a server.
"""

from __future__ import annotations

import click

from asgate.cli.base import CliContext, emit_json, emit_table, json_option, pass_cli
from asgate.cli.registry import ACTOR, _with
from asgate.registry.models import PoolInterfaceState


@click.group()
def pools() -> None:
    """Pools' service interface descriptions: pending widenings, approval, rejection."""


def _pool(text: str) -> tuple[str, str]:
    service_type, sep, service_name = text.partition("/")
    if not sep or not service_type or not service_name or "/" in service_name:
        raise click.BadParameter(f"{text!r}: give the pool as TYPE/NAME, e.g. GM/gm-north")
    return service_type, service_name


def _rows(items: list[PoolInterfaceState], as_json: bool) -> None:
    if as_json:
        emit_json([i.dump() for i in items])
        return
    emit_table(
        [
            (f"{i.service_type}/{i.service_name}", i.state, "; ".join(i.additions) or "-", i.digest[:12])
            for i in items
        ],
        ["POOL", "STATE", "PENDING ADDITIONS", "DIGEST"],
    )


@pools.command("list")
@json_option
@pass_cli
def pools_list(cli: CliContext, as_json: bool) -> None:
    """List every pool with its approval state.

    \b
    $ asgate pools list
    """
    _rows(_with(cli, lambda svc: svc.pool_interfaces()), as_json)


@pools.command("pending")
@json_option
@pass_cli
def pools_pending(cli: CliContext, as_json: bool) -> None:
    """List the pools whose instances offer more than is approved, with what they add.

    \b
    $ asgate pools pending
    """
    items = _with(cli, lambda svc: svc.pool_interfaces())
    _rows([i for i in items if i.state == "PENDING"], as_json)


def _done(item: PoolInterfaceState, as_json: bool, verb: str) -> None:
    if as_json:
        emit_json(item.dump())
        return
    click.echo(f"{verb} {item.service_type}/{item.service_name}")
    for line in item.additions if verb == "rejected" else ():
        click.echo(f"  {line}")


@pools.command("approve")
@click.argument("pool")
@click.option("--digest", help="Approve only the offer with this digest (as listed by `pools pending`).")
@json_option
@pass_cli
def pools_approve(cli: CliContext, pool: str, digest: str | None, as_json: bool) -> None:
    """Approve what a pool's instances offer: its applications' profiles widen now.

    \b
    $ asgate pools pending
    $ asgate pools approve GM/gm-north
    """
    before = _with(cli, lambda svc: svc.pool_interfaces(_pool(pool)))
    # Approve exactly the offer shown (412 if it changed in between: list it again).
    digest = digest or (before[0].digest if before else None)
    item = _with(cli, lambda svc: svc.approve_pool(ACTOR, _pool(pool), f'"{digest}"' if digest else None))
    _done(item, as_json, "approved")
    if not as_json and before:
        for line in before[0].additions:
            click.echo(f"  {line}")


@pools.command("reject")
@click.argument("pool")
@click.option("--digest", help="Reject only the offer with this digest (as listed by `pools pending`).")
@json_option
@pass_cli
def pools_reject(cli: CliContext, pool: str, digest: str | None, as_json: bool) -> None:
    """Refuse a pool's pending offer: applications keep the approved description.

    \b
    $ asgate pools reject GM/gm-north
    """
    if_match = f'"{digest}"' if digest else None
    item = _with(cli, lambda svc: svc.reject_pool(ACTOR, _pool(pool), if_match))
    _done(item, as_json, "rejected")
